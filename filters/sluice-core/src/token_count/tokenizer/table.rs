//! An encoding's byte-pair ranks as a flat open-addressing hash table, laid out when a config
//! asks for the encoding (a few milliseconds, at config load, never on a request) from the
//! deflated token list that `build.rs` put in the module.
//!
//! `entries` holds each token as `[len: u8][rank: u24 LE][bytes]`; each slot is `EMPTY` or
//! `tag << 22 | entry offset`, at the index given by the low bits of `hash_of(bytes)` (linear
//! probing), with `tag` the hash's top 10 bits so that most probes never touch `entries`.

use miniz_oxide::inflate::stream::{inflate, InflateState};
use miniz_oxide::{DataFormat, MZFlush, MZStatus};
use std::hash::{BuildHasher, Hasher};

use foldhash::fast::FixedState;

const OFFSET_BITS: u32 = 22;
const OFFSET_MASK: u32 = (1 << OFFSET_BITS) - 1;
const TAG_SHIFT: u32 = 64 - (32 - OFFSET_BITS);
const EMPTY: u32 = u32::MAX;

/// Bytes → rank.
pub struct Table {
    /// Ranks of the two-byte tokens, indexed by the two bytes (`u32::MAX`: none): merging
    /// starts by looking up every adjacent byte pair of a piece, and this spares those hashes.
    pairs: Vec<u32>,
    slots: Vec<u32>,
    entries: Vec<u8>,
    mask: usize,
    longest: usize,
}

impl Table {
    /// Lays out the table from `[len][bytes]` records in rank order, deflated. Inflated a
    /// chunk at a time, so the whole list is never held twice.
    pub(super) fn build(deflated: &[u8], raw_len: usize, tokens: usize) -> Result<Table, String> {
        // Slots for at most 40% load: a miss (most lookups while merging) probes about two.
        let size = (tokens * 5 / 2).next_power_of_two();
        let mut table = Table {
            pairs: vec![u32::MAX; 1 << 16],
            slots: vec![EMPTY; size],
            entries: Vec::with_capacity(raw_len + 3 * tokens),
            mask: size - 1,
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
        if rank as usize != tokens || !pending.is_empty() {
            return Err(format!("the token list has {rank} tokens, not {tokens}"));
        }
        Ok(table)
    }

    fn insert(&mut self, bytes: &[u8], rank: u32) -> Result<(), String> {
        let offset = u32::try_from(self.entries.len()).map_err(|e| e.to_string())?;
        let len = u8::try_from(bytes.len()).map_err(|e| e.to_string())?;
        if offset >= OFFSET_MASK || rank >= 1 << 24 {
            return Err("the token list is too long for the table".to_owned());
        }
        self.entries.push(len);
        self.entries
            .extend_from_slice(rank.to_le_bytes().get(..3).unwrap_or_default());
        self.entries.extend_from_slice(bytes);
        self.longest = self.longest.max(bytes.len());
        if let [b0, b1] = bytes {
            if let Some(pair) = self.pairs.get_mut(usize::from(*b0) << 8 | usize::from(*b1)) {
                *pair = rank;
            }
        }
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
            let rank = self.pairs.get(usize::from(*b0) << 8 | usize::from(*b1))?;
            return (*rank != u32::MAX).then_some(*rank);
        }
        if bytes.len() > self.longest {
            return None;
        }
        let hash = hash_of(bytes);
        let tag = (hash >> TAG_SHIFT) as u32;
        let mut at = hash as usize & self.mask;
        // The table is at most 40% full, so an empty slot ends every search; the bound only
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
        (self.pairs.len() + self.slots.len()) * 4 + self.entries.len()
    }
}

/// The table's hash of a token's bytes. The table is laid out in the same VM that reads it, so
/// any fast, well-mixed hash will do; foldhash is hashbrown's.
#[inline]
fn hash_of(bytes: &[u8]) -> u64 {
    let mut hasher = FixedState::with_seed(0).build_hasher();
    hasher.write(bytes);
    hasher.finish()
}
