//! Builds token-count's tables at compile time:
//!
//! - `char_classes.rs`: the Unicode character classes the tiktoken split patterns use
//!   (`\p{Lu}`, `\p{Ll}`, `\p{M}`, `\s`, …), taken from `regex-syntax` (the Unicode data the
//!   `regex` engine under tiktoken uses) as a two-level table of one byte per code point.
//! - `<encoding>.lengths.deflate`, `<encoding>.bytes.deflate`: each encoding's tokens in rank
//!   order, their lengths (a byte each) and their bytes, deflated apart; `<encoding>.pilots`:
//!   the pilots of its perfect hashes (`tokenizer/place.rs`), one `u16` per bucket,
//!   little-endian, the short tokens' buckets then the long ones'; `<encoding>.rs`: its sizes
//!   (`tokenizer::table::Sizes`). The ranks come from the
//!   `.tiktoken` files inside the `tiktoken-rs` crate. Why compressed and not a ready-made
//!   table: V8 under Envoy keeps several copies of a module's bytes (measured: 1.5 MB of
//!   module data, 12 MB of Envoy RSS), so `tokenizer/table.rs` lays out the table from these
//!   bytes, each token straight into its slot, when a config asks for the encoding.

use std::error::Error;
use std::fmt::Write as _;
use std::path::Path;

use regex_syntax::hir::{Class, HirKind};

#[path = "src/token_count/tokenizer/place.rs"]
mod place;

/// Character classes; the tokenizer's scanners match on these (keep in sync with
/// `tokenizer/classes.rs`).
const CLASSES: &[(u8, &str)] = &[
    (1, r"[\p{Lu}\p{Lt}]"), // UPPER
    (2, r"\p{Ll}"),         // LOWER
    (3, r"[\p{Lm}\p{Lo}]"), // LETTER (upper and lower for o200k)
    (4, r"\p{M}"),          // MARK
    (5, r"\p{N}"),          // NUMBER
    (6, r"\s"),             // SPACE (\r and \n are NEWLINE, set below)
];
const NEWLINE: u8 = 7;
const BLOCK_BITS: u32 = 7;

const ENCODINGS: &[&str] = &["o200k_base", "cl100k_base"];

/// Keys per bucket of the perfect hashes, on average: fewer buckets, fewer pilots in the
/// module, but harder to place (at 99% full, five per bucket needs pilots up to about 38,000
/// on o200k's long tokens: they fit a `u16`).
const KEYS_PER_BUCKET: u64 = 5;

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/token_count/tokenizer/place.rs");
    let out = std::env::var("OUT_DIR")?;
    let out = Path::new(&out);
    write_classes(out)?;
    for name in ENCODINGS {
        write_tokens(out, name)?;
    }
    Ok(())
}

fn class_ranges(pattern: &str) -> Result<Vec<(u32, u32)>, Box<dyn Error>> {
    let hir = regex_syntax::Parser::new().parse(pattern)?;
    match hir.kind() {
        HirKind::Class(Class::Unicode(c)) => Ok(c
            .ranges()
            .iter()
            .map(|r| (r.start() as u32, r.end() as u32))
            .collect()),
        other => Err(format!("{pattern} is not a Unicode class: {other:?}").into()),
    }
}

fn write_classes(out: &Path) -> Result<(), Box<dyn Error>> {
    let mut class = vec![0u8; 0x11_0000];
    for (id, pattern) in CLASSES {
        for (start, end) in class_ranges(pattern)? {
            for c in class.iter_mut().take(end as usize + 1).skip(start as usize) {
                if *c != 0 {
                    return Err(format!("classes overlap at {pattern}").into());
                }
                *c = *id;
            }
        }
    }
    for nl in [b'\r', b'\n'] {
        if let Some(c) = class.get_mut(usize::from(nl)) {
            *c = NEWLINE;
        }
    }
    // Two levels: blocks of 128 code points, identical blocks stored once (fewer than 256, so
    // the index is a byte per block).
    let block = 1usize << BLOCK_BITS;
    let mut blocks: Vec<&[u8]> = Vec::new();
    let mut index = Vec::new();
    for chunk in class.chunks(block) {
        let at = match blocks.iter().position(|b| *b == chunk) {
            Some(at) => at,
            None => {
                blocks.push(chunk);
                blocks.len() - 1
            }
        };
        index.push(u8::try_from(at)?);
    }
    let mut src = String::new();
    writeln!(src, "pub(super) const BLOCK_BITS: u32 = {BLOCK_BITS};")?;
    writeln!(
        src,
        "pub(super) static BLOCK_INDEX: [u8; {}] = {index:?};",
        index.len()
    )?;
    let flat: Vec<u8> = blocks.concat();
    writeln!(
        src,
        "pub(super) static BLOCKS: [u8; {}] = {flat:?};",
        flat.len()
    )?;
    std::fs::write(out.join("char_classes.rs"), src)?;
    Ok(())
}

fn ranks(name: &str) -> Result<Vec<Vec<u8>>, Box<dyn Error>> {
    let bpe = match name {
        "o200k_base" => tiktoken_rs::o200k_base()?,
        "cl100k_base" => tiktoken_rs::cl100k_base()?,
        other => return Err(format!("unknown encoding {other}").into()),
    };
    let mut tokens = Vec::new();
    for rank in 0u32.. {
        match bpe.decode_bytes(&[rank]) {
            Ok(bytes) => tokens.push(bytes),
            Err(_) => break,
        }
    }
    Ok(tokens)
}

fn write_tokens(out: &Path, name: &str) -> Result<(), Box<dyn Error>> {
    let tokens = ranks(name)?;
    let mut lengths = Vec::new();
    for bytes in &tokens {
        lengths.push(u8::try_from(bytes.len())?);
    }
    let deflate = |raw: &[u8]| miniz_oxide::deflate::compress_to_vec(raw, 10);
    std::fs::write(
        out.join(format!("{name}.lengths.deflate")),
        deflate(&lengths),
    )?;
    std::fs::write(
        out.join(format!("{name}.bytes.deflate")),
        deflate(&tokens.concat()),
    )?;
    // The table keeps tokens of two bytes in a direct table, up to 7 bytes by value, longer
    // ones by reference; the last two kinds each where their perfect hash puts them.
    let mut short = Vec::new();
    let mut long = Vec::new();
    for bytes in tokens.iter().filter(|t| t.len() != 2) {
        match place::short_key(bytes) {
            Some(key) => short.push(place::short_hash(key)),
            None => long.push(place::long_hash(bytes)),
        }
    }
    let long_bytes: usize = tokens.iter().filter(|t| t.len() > 7).map(Vec::len).sum();
    let short_place = place_keys(&short).map_err(|e| format!("{name}, short tokens: {e}"))?;
    let long_place = place_keys(&long).map_err(|e| format!("{name}, long tokens: {e}"))?;
    let pilots: Vec<u8> = short_place
        .pilots
        .iter()
        .chain(&long_place.pilots)
        .flat_map(|p| p.to_le_bytes())
        .collect();
    std::fs::write(out.join(format!("{name}.pilots")), pilots)?;
    let mut src = String::new();
    writeln!(
        src,
        "pub(super) const SIZES: super::Sizes = super::Sizes {{ tokens: {}, \
         long: {}, long_bytes: {long_bytes}, short_buckets: {}, short_slots: {}, \
         long_buckets: {}, long_slots: {} }};",
        tokens.len(),
        long.len(),
        short_place.pilots.len(),
        short_place.slots,
        long_place.pilots.len(),
        long_place.slots,
    )?;
    std::fs::write(out.join(format!("{name}.rs")), src)?;
    Ok(())
}

/// A perfect hash for keys with these hashes: a pilot per bucket, and how many slots.
struct Placement {
    pilots: Vec<u16>,
    slots: u32,
}

/// Chooses pilots (PTHash's way: buckets largest first, each the first pilot that puts all its
/// keys in free slots of their own) for a table 99% full; if some bucket fits no pilot, tries
/// again with a little more room. Deterministic: the same keys give the same table.
fn place_keys(hashes: &[u64]) -> Result<Placement, Box<dyn Error>> {
    let n = u64::try_from(hashes.len())?;
    let buckets = u32::try_from(n.div_ceil(KEYS_PER_BUCKET).max(1))?;
    let mut members: Vec<Vec<u64>> = vec![Vec::new(); buckets as usize];
    for &hash in hashes {
        members
            .get_mut(place::bucket(hash, buckets) as usize)
            .ok_or("bucket out of range")?
            .push(hash);
    }
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_by_key(|&b| std::cmp::Reverse(members.get(b).map_or(0, Vec::len)));
    'fill: for percent in [99u64, 98, 97, 95, 90, 80] {
        let slots = u32::try_from((n * 100).div_ceil(percent).max(1))?;
        let mut taken = vec![false; slots as usize];
        let mut pilots = vec![0u16; members.len()];
        let mut spots = Vec::new();
        for &b in &order {
            let keys = members.get(b).ok_or("bucket out of range")?;
            let mut found = None;
            for pilot in 0..=u16::MAX {
                spots.clear();
                let fits = keys.iter().all(|&hash| {
                    let at = place::slot(hash, pilot, slots) as usize;
                    let free = !taken.get(at).copied().unwrap_or(true) && !spots.contains(&at);
                    spots.push(at);
                    free
                });
                if fits {
                    found = Some(pilot);
                    break;
                }
            }
            let Some(pilot) = found else {
                continue 'fill;
            };
            for &at in &spots {
                if let Some(t) = taken.get_mut(at) {
                    *t = true;
                }
            }
            if let Some(p) = pilots.get_mut(b) {
                *p = pilot;
            }
        }
        return Ok(Placement { pilots, slots });
    }
    Err("no pilots place these keys".into())
}
