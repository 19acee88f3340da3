//! Builds token-count's tables at compile time:
//!
//! - `char_classes.rs`: the Unicode character classes the tiktoken split patterns use
//!   (`\p{Lu}`, `\p{Ll}`, `\p{M}`, `\s`, …), taken from `regex-syntax` (the Unicode data the
//!   `regex` engine under tiktoken uses) as a two-level table of one byte per code point.
//! - `<encoding>.tokens.deflate`: each encoding's tokens in rank order, `[len: u8][bytes]`
//!   each, deflated; `<encoding>.rs`: its sizes (`tokenizer::table::Sizes`). The ranks come
//!   from the `.tiktoken` files inside the `tiktoken-rs` crate. Why compressed and not a
//!   ready-made hash table: V8 under Envoy keeps several copies of a module's bytes, so every
//!   MB of module data costs several MB of RSS; `tokenizer/table.rs` lays out the table from
//!   these bytes when a config asks for the encoding.

use std::error::Error;
use std::fmt::Write as _;
use std::path::Path;

use regex_syntax::hir::{Class, HirKind};

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

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=build.rs");
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
    // Two levels: blocks of 128 code points, identical blocks stored once.
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
        index.push(u16::try_from(at)?);
    }
    let mut src = String::new();
    writeln!(src, "pub(super) const BLOCK_BITS: u32 = {BLOCK_BITS};")?;
    writeln!(
        src,
        "pub(super) static BLOCK_INDEX: [u16; {}] = {index:?};",
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
    let mut raw = Vec::new();
    for bytes in &tokens {
        raw.push(u8::try_from(bytes.len())?);
        raw.extend_from_slice(bytes);
    }
    let deflated = miniz_oxide::deflate::compress_to_vec(&raw, 10);
    std::fs::write(out.join(format!("{name}.tokens.deflate")), deflated)?;
    let mut src = String::new();
    // The table keeps tokens of up to 7 bytes (but 2) by value, longer ones by reference.
    let short = tokens
        .iter()
        .filter(|t| t.len() <= 7 && t.len() != 2)
        .count();
    let long = tokens.iter().filter(|t| t.len() > 7).count();
    let long_bytes: usize = tokens.iter().filter(|t| t.len() > 7).map(Vec::len).sum();
    writeln!(
        src,
        "pub(super) const SIZES: super::Sizes = super::Sizes {{ tokens: {}, short: {short}, \
         long: {long}, long_bytes: {long_bytes} }};",
        tokens.len()
    )?;
    std::fs::write(out.join(format!("{name}.rs")), src)?;
    Ok(())
}
