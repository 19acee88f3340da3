//! An encoding's byte-pair ranks, laid out when a config asks for the encoding (at config
//! load, never on a request) from the deflated token list that `build.rs` put in the module.
//! Three parts, by token length:
//!
//! - two bytes: a direct table indexed by the two bytes (merging starts by looking up every
//!   adjacent byte pair of a piece);
//! - up to seven bytes (most tokens, most lookups): the bytes packed in a `u64` with the length
//!   in the top byte, so a lookup compares one word;
//! - longer: `tag << 22 | entry offset` slots, where `entries` holds each token as
//!   `[len: u8][rank: u24 LE][bytes]` and `tag` is the hash's top 10 bits, so that most misses
//!   never touch `entries`.
//!
//! The last two are 99% full: each token's slot is given by a perfect hash whose pilots
//! `build.rs` chose ([`super::place`]), so a lookup reads one slot and never probes, and the
//! table needs no empty half (a probed table did: 7.3 MB per VM for both encodings, now 4.6).

use std::sync::atomic::{AtomicU64, Ordering};

use super::place::{bucket, long_hash, short_hash, short_key, slot};
use super::stream::Inflater;

const OFFSET_BITS: u32 = 22;
const OFFSET_MASK: u32 = (1 << OFFSET_BITS) - 1;
const TAG_SHIFT: u32 = 64 - (32 - OFFSET_BITS);
const EMPTY: u32 = u32::MAX;

/// An encoding as `build.rs` put it in the module: the tokens' lengths (one byte each) and
/// bytes, in rank order, as two deflate streams (apart, they deflate 5% smaller), the pilots of
/// its perfect hashes, and its sizes.
#[derive(Clone, Copy)]
pub(super) struct Packed {
    pub lengths: &'static [u8],
    pub bytes: &'static [u8],
    pub pilots: &'static [u8],
    pub sizes: Sizes,
}

/// Sizes of an encoding's token list and of its perfect hash (from `build.rs`).
#[derive(Clone, Copy)]
pub(super) struct Sizes {
    pub tokens: usize,
    /// Tokens kept by reference (longer), and their bytes.
    pub long: usize,
    pub long_bytes: usize,
    pub short_buckets: u32,
    pub short_slots: u32,
    pub long_buckets: u32,
    pub long_slots: u32,
}

/// The pilots of one part's perfect hash (`u16` LE per bucket, in the module) and its slots.
struct Place {
    pilots: &'static [u8],
    buckets: u32,
    slots: u32,
}

impl Place {
    /// The slot of the key whose hash is `hash`.
    #[inline]
    fn slot(&self, hash: u64) -> usize {
        let at = bucket(hash, self.buckets) as usize * 2;
        let pilot = match self.pilots.get(at..at + 2) {
            Some([lo, hi]) => u16::from_le_bytes([*lo, *hi]),
            _ => 0,
        };
        slot(hash, pilot, self.slots) as usize
    }
}

/// Bytes → rank.
pub struct Table {
    pairs: Vec<u32>,
    short: Place,
    short_keys: Vec<u64>,
    short_ranks: Vec<u32>,
    long: Place,
    slots: Vec<u32>,
    entries: Vec<u8>,
    longest: usize,
    /// Short tokens lately found whole, by the top bits of their hash (0: none): a piece that is
    /// a token is most often a common word, and one word-sized load answers for it. Atomic only
    /// so that a table shared between threads (the host tests) is `Sync`: relaxed loads and
    /// stores, plain ones on wasm32.
    seen: Box<[AtomicU64]>,
}

/// `seen` holds 2^10 keys (8 KB).
const SEEN_BITS: u32 = 10;

impl Table {
    /// Lays out the table from an encoding's tokens as `build.rs` packed them: their lengths
    /// and their bytes in rank order, each stream deflated, and the pilots that place them.
    pub(super) fn build(packed: &Packed) -> Result<Table, String> {
        let (pilots, sizes) = (packed.pilots, &packed.sizes);
        let short_pilots = 2 * sizes.short_buckets as usize;
        let long_pilots = 2 * sizes.long_buckets as usize;
        let (Some(short), Some(long)) = (
            pilots.get(..short_pilots),
            pilots.get(short_pilots..short_pilots + long_pilots),
        ) else {
            return Err("the pilots are fewer than the buckets".to_owned());
        };
        let mut table = Table {
            pairs: vec![u32::MAX; 1 << 16],
            short: Place {
                pilots: short,
                buckets: sizes.short_buckets,
                slots: sizes.short_slots,
            },
            short_keys: vec![0; sizes.short_slots as usize],
            short_ranks: vec![u32::MAX; sizes.short_slots as usize],
            long: Place {
                pilots: long,
                buckets: sizes.long_buckets,
                slots: sizes.long_slots,
            },
            slots: vec![EMPTY; sizes.long_slots as usize],
            entries: Vec::with_capacity(sizes.long_bytes + 4 * sizes.long),
            longest: 0,
            seen: (0..1 << SEEN_BITS).map(|_| AtomicU64::new(0)).collect(),
        };
        let mut lengths = Inflater::new(packed.lengths);
        let mut bytes = Inflater::new(packed.bytes);
        let mut rank = 0u32;
        while let Some(&[len]) = lengths.take(1)? {
            let Some(token) = bytes.take(usize::from(len))? else {
                return Err(format!("the token list ends inside token {rank}"));
            };
            table.insert(token, rank)?;
            rank += 1;
        }
        if rank as usize != sizes.tokens || !bytes.is_done()? {
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
            let at = self.short.slot(short_hash(key));
            return match (self.short_keys.get_mut(at), self.short_ranks.get_mut(at)) {
                (Some(slot), Some(r)) if *slot == 0 => {
                    *slot = key;
                    *r = rank;
                    Ok(())
                }
                _ => Err(MISPLACED.to_owned()),
            };
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
        let hash = long_hash(bytes);
        let tag = (hash >> TAG_SHIFT) as u32;
        match self.slots.get_mut(self.long.slot(hash)) {
            Some(slot) if *slot == EMPTY => {
                *slot = tag << OFFSET_BITS | offset;
                Ok(())
            }
            _ => Err(MISPLACED.to_owned()),
        }
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
        let hash = long_hash(bytes);
        let slot = self
            .slots
            .get(self.long.slot(hash))
            .copied()
            .unwrap_or(EMPTY);
        if slot == EMPTY || slot >> OFFSET_BITS != (hash >> TAG_SHIFT) as u32 {
            return None;
        }
        self.entry(slot & OFFSET_MASK, bytes)
    }

    #[inline]
    fn short_rank(&self, key: u64) -> Option<u32> {
        self.short_rank_hashed(key, short_hash(key))
    }

    #[inline]
    fn short_rank_hashed(&self, key: u64, hash: u64) -> Option<u32> {
        let at = self.short.slot(hash);
        if self.short_keys.get(at).copied()? != key {
            return None;
        }
        self.short_ranks.get(at).copied()
    }

    /// Whether `bytes` is a token (counting asks this of every piece; the rank is not needed).
    #[inline]
    pub fn contains(&self, bytes: &[u8]) -> bool {
        let Some(key) = short_key(bytes).filter(|_| bytes.len() != 2) else {
            return self.rank(bytes).is_some();
        };
        let hash = short_hash(key);
        let Some(seen) = self.seen.get((hash >> (64 - SEEN_BITS)) as usize) else {
            return false;
        };
        if seen.load(Ordering::Relaxed) == key {
            return true;
        }
        let found = self.short_rank_hashed(key, hash).is_some();
        if found {
            seen.store(key, Ordering::Relaxed);
        }
        found
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
            + (self.short_keys.len() + self.seen.len()) * 8
            + self.entries.len()
    }
}

/// A token the pilots put in a taken slot: the pilots were chosen for another list.
const MISPLACED: &str = "the token list does not match its pilots";

fn pair_index(b0: u8, b1: u8) -> usize {
    usize::from(b0) << 8 | usize::from(b1)
}
