//! An encoding's byte-pair ranks, laid out when a config asks for the encoding (a few
//! milliseconds, at config load, never on a request) from the deflated token list that
//! `build.rs` put in the module. Three parts, by token length:
//!
//! - two bytes: a direct table indexed by the two bytes (merging starts by looking up every
//!   adjacent byte pair of a piece);
//! - up to seven bytes (most tokens, most lookups): open addressing over the bytes packed in a
//!   `u64` with the length in the top byte, so a probe compares one word;
//! - longer: open addressing over `tag << 22 | entry offset` slots, where `entries` holds each
//!   token as `[len: u8][rank: u24 LE][bytes]` and `tag` is the hash's top 10 bits, so that most
//!   probes never touch `entries`.
//!
//! Both hashed parts are at most 60% full and probe linearly.

use std::hash::{BuildHasher, Hasher};

use foldhash::fast::FixedState;
use miniz_oxide::inflate::stream::{inflate, InflateState};
use miniz_oxide::{DataFormat, MZFlush, MZStatus};

const OFFSET_BITS: u32 = 22;
const OFFSET_MASK: u32 = (1 << OFFSET_BITS) - 1;
const TAG_SHIFT: u32 = 64 - (32 - OFFSET_BITS);
const EMPTY: u32 = u32::MAX;
const SHORT_MAX: usize = 7;

/// Sizes of an encoding's token list (from `build.rs`).
pub(super) struct Sizes {
    pub tokens: usize,
    /// Tokens kept by value (up to seven bytes, but two).
    pub short: usize,
    /// Tokens kept by reference (longer), and their bytes.
    pub long: usize,
    pub long_bytes: usize,
}

/// Bytes → rank.
pub struct Table {
    pairs: Vec<u32>,
    short_keys: Vec<u64>,
    short_ranks: Vec<u32>,
    short_mask: usize,
    /// `64 - log2(short_keys.len())`: a key's hash, shifted by it, is where its search starts.
    short_shift: u32,
    slots: Vec<u32>,
    entries: Vec<u8>,
    mask: usize,
    longest: usize,
}

/// Slots for `n` keys, at most 60% full (a miss, most lookups while merging, probes two or
/// three).
fn slots_for(n: usize) -> usize {
    (n * 5 / 3).next_power_of_two().max(2)
}

impl Table {
    /// Lays out the table from `[len][bytes]` records in rank order, deflated. Inflated a
    /// chunk at a time, so the whole list is never held twice.
    pub(super) fn build(deflated: &[u8], sizes: &Sizes) -> Result<Table, String> {
        let short = slots_for(sizes.short);
        let long = slots_for(sizes.long);
        let mut table = Table {
            pairs: vec![u32::MAX; 1 << 16],
            short_keys: vec![0; short],
            short_ranks: vec![u32::MAX; short],
            short_mask: short - 1,
            short_shift: 64 - short.trailing_zeros(),
            slots: vec![EMPTY; long],
            entries: Vec::with_capacity(sizes.long_bytes + 4 * sizes.long),
            mask: long - 1,
            longest: 0,
        };
        let mut state = InflateState::new_boxed(DataFormat::Raw);
        let mut input = deflated;
        let mut chunk = vec![0u8; 64 * 1024];
        let mut pending: Vec<u8> = Vec::new();
        let mut rank = 0u32;
        loop {
            let step = inflate(&mut state, input, &mut chunk, MZFlush::None);
            input = input.get(step.bytes_consumed..).unwrap_or_default();
            pending.extend_from_slice(chunk.get(..step.bytes_written).unwrap_or_default());
            // Insert every whole record; keep a record cut by the chunk's end for the next.
            let mut rest = pending.as_slice();
            while let Some((&len, tail)) = rest.split_first() {
                let Some(bytes) = tail.get(..usize::from(len)) else {
                    break;
                };
                table.insert(bytes, rank)?;
                rank += 1;
                rest = tail.get(usize::from(len)..).unwrap_or_default();
            }
            let used = pending.len() - rest.len();
            pending.drain(..used);
            match step.status {
                Ok(MZStatus::StreamEnd) => break,
                Ok(_) if step.bytes_consumed > 0 || step.bytes_written > 0 => {}
                other => return Err(format!("cannot inflate the token list: {other:?}")),
            }
        }
        if rank as usize != sizes.tokens || !pending.is_empty() {
            return Err(format!(
                "the token list has {rank} tokens, not {}",
                sizes.tokens
            ));
        }
        Ok(table)
    }

    fn insert(&mut self, bytes: &[u8], rank: u32) -> Result<(), String> {
        if rank >= 1 << 24 {
            return Err("the token list is too long for the table".to_owned());
        }
        self.longest = self.longest.max(bytes.len());
        if let [b0, b1] = bytes {
            if let Some(pair) = self.pairs.get_mut(pair_index(*b0, *b1)) {
                *pair = rank;
            }
            return Ok(());
        }
        if let Some(key) = short_key(bytes) {
            let mut at = self.short_start(key);
            for _ in 0..=self.short_mask {
                match self.short_keys.get_mut(at) {
                    Some(slot) if *slot == 0 => {
                        *slot = key;
                        if let Some(r) = self.short_ranks.get_mut(at) {
                            *r = rank;
                        }
                        return Ok(());
                    }
                    _ => at = (at + 1) & self.short_mask,
                }
            }
            return Err("the short-token table is full".to_owned());
        }
        let offset = u32::try_from(self.entries.len()).map_err(|e| e.to_string())?;
        let len = u8::try_from(bytes.len()).map_err(|e| e.to_string())?;
        if offset >= OFFSET_MASK {
            return Err("the token list is too long for the table".to_owned());
        }
        self.entries.push(len);
        self.entries
            .extend_from_slice(rank.to_le_bytes().get(..3).unwrap_or_default());
        self.entries.extend_from_slice(bytes);
        let hash = hash_of(bytes);
        let tag = (hash >> TAG_SHIFT) as u32;
        let mut at = hash as usize & self.mask;
        for _ in 0..=self.mask {
            match self.slots.get_mut(at) {
                Some(slot) if *slot == EMPTY => {
                    *slot = tag << OFFSET_BITS | offset;
                    return Ok(());
                }
                _ => at = (at + 1) & self.mask,
            }
        }
        Err("the table is full".to_owned())
    }

    /// The rank of the token whose bytes are `bytes`, if there is one.
    #[inline]
    pub fn rank(&self, bytes: &[u8]) -> Option<u32> {
        if let [b0, b1] = bytes {
            let rank = *self.pairs.get(pair_index(*b0, *b1))?;
            return (rank != u32::MAX).then_some(rank);
        }
        if let Some(key) = short_key(bytes) {
            return self.short_rank(key);
        }
        if bytes.len() > self.longest {
            return None;
        }
        let hash = hash_of(bytes);
        let tag = (hash >> TAG_SHIFT) as u32;
        let mut at = hash as usize & self.mask;
        // The table is at most 60% full, so an empty slot ends every search; the bound only
        // guards the loop.
        for _ in 0..=self.mask {
            let slot = self.slots.get(at).copied().unwrap_or(EMPTY);
            if slot == EMPTY {
                return None;
            }
            if slot >> OFFSET_BITS == tag {
                if let Some(rank) = self.entry(slot & OFFSET_MASK, bytes) {
                    return Some(rank);
                }
            }
            at = (at + 1) & self.mask;
        }
        None
    }

    #[inline]
    fn short_rank(&self, key: u64) -> Option<u32> {
        let mut at = self.short_start(key);
        for _ in 0..=self.short_mask {
            match self.short_keys.get(at).copied() {
                Some(k) if k == key => return self.short_ranks.get(at).copied(),
                Some(0) | None => return None,
                Some(_) => at = (at + 1) & self.short_mask,
            }
        }
        None
    }

    /// Where a short key's search starts. The packed key is its own hash input: multiplied by
    /// 2^64/φ, whose top bits depend on every byte (Fibonacci hashing), far cheaper than
    /// hashing the bytes again.
    #[inline]
    fn short_start(&self, key: u64) -> usize {
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.short_shift) as usize
    }

    /// The rank stored at entry `offset` if its bytes are `bytes`.
    #[inline]
    fn entry(&self, offset: u32, bytes: &[u8]) -> Option<u32> {
        let offset = offset as usize;
        let (len, r0, r1, r2) = match self.entries.get(offset..offset + 4)? {
            [len, r0, r1, r2] => (*len, *r0, *r1, *r2),
            _ => return None,
        };
        if usize::from(len) != bytes.len() {
            return None;
        }
        let stored = self.entries.get(offset + 4..offset + 4 + bytes.len())?;
        (stored == bytes).then_some(u32::from_le_bytes([r0, r1, r2, 0]))
    }

    /// Bytes held (for logs and memory accounting).
    pub fn heap_bytes(&self) -> usize {
        (self.pairs.len() + self.slots.len() + self.short_ranks.len()) * 4
            + self.short_keys.len() * 8
            + self.entries.len()
    }
}

fn pair_index(b0: u8, b1: u8) -> usize {
    usize::from(b0) << 8 | usize::from(b1)
}

/// A token of at most seven bytes as one word: the bytes, and the length in the top byte (so
/// no key is 0, the empty slot).
#[inline]
fn short_key(bytes: &[u8]) -> Option<u64> {
    if bytes.len() > SHORT_MAX {
        return None;
    }
    let packed = bytes
        .iter()
        .rev()
        .fold(0u64, |word, b| word << 8 | u64::from(*b));
    Some(packed | (bytes.len() as u64) << 56)
}

/// The tables' hashes. The table is laid out in the same VM that reads it, so any fast,
/// well-mixed hash will do; foldhash is hashbrown's.
#[inline]
fn hash_of(bytes: &[u8]) -> u64 {
    let mut hasher = FixedState::with_seed(0).build_hasher();
    hasher.write(bytes);
    hasher.finish()
}
