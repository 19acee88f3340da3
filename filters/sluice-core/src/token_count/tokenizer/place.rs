//! Where a token sits in its encoding's table: a perfect hash, chosen at compile time and
//! followed at run time. Shared word for word by `build.rs` (which chooses the pilots) and
//! `table.rs` (which follows them), so both must compute exactly the same numbers on the host
//! and on wasm32: only `u64` arithmetic here, nothing that depends on the platform's word size
//! (the general-purpose hash crates do not promise that, foldhash on wasm32 for one).
//!
//! The scheme is PTHash's: keys fall into buckets by their hash; each bucket has a two-byte
//! pilot, picked at compile time (largest buckets first) so that every key of the bucket lands
//! in a slot of its own. A lookup is then one slot, never a probe sequence, and the table can
//! be nearly full (a probed table must stay around half empty to keep misses short).

/// A token of at most seven bytes as one word: the bytes, little-endian, and the length in the
/// top byte (so no key is 0, which marks an empty slot). `None` for longer tokens.
#[inline]
pub fn short_key(bytes: &[u8]) -> Option<u64> {
    if bytes.len() > 7 {
        return None;
    }
    Some(le_word(bytes) | (bytes.len() as u64) << 56)
}

/// Up to eight bytes as a little-endian word.
#[inline]
fn le_word(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |word, b| word << 8 | u64::from(*b))
}

/// A short key's hash: the key times 2^64/φ (Fibonacci hashing), whose top bits depend on every
/// byte. The packed key is its own hash input, which is far cheaper than hashing the bytes.
#[inline]
pub fn short_hash(key: u64) -> u64 {
    key.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// A longer token's hash: its bytes taken eight at a time, each word folded in with a
/// multiply, then mixed (the murmur3 finaliser) so that the top bits depend on all of them.
#[inline]
pub fn long_hash(bytes: &[u8]) -> u64 {
    let mut h = (bytes.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for chunk in bytes.chunks(8) {
        h = (h ^ le_word(chunk))
            .wrapping_mul(0xFF51_AFD7_ED55_8CCD)
            .rotate_left(31);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    h ^ (h >> 33)
}

/// `x`'s top 32 bits scaled to `0..n` (Lemire's reduction: a multiply, no division).
#[inline]
fn scale(x: u64, n: u32) -> u32 {
    (((x >> 32) * u64::from(n)) >> 32) as u32
}

/// The bucket of a key whose hash is `hash`.
#[inline]
pub fn bucket(hash: u64, buckets: u32) -> u32 {
    scale(hash, buckets)
}

/// The slot of a key whose hash is `hash`, when its bucket's pilot is `pilot`.
#[inline]
pub fn slot(hash: u64, pilot: u16, slots: u32) -> u32 {
    let x = (hash ^ u64::from(pilot)).wrapping_mul(0x517C_C1B7_2722_0A95);
    scale(x, slots)
}
