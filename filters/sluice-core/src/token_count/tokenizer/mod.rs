//! tiktoken's `o200k_base` and `cl100k_base` encodings, without tiktoken-rs at run time.
//!
//! tiktoken-rs inside a Wasm filter was slower than native, held each encoding as a hash map
//! built per VM from base64 text (about 100 MB of Envoy RSS per encoding at two workers), and
//! stalled the first request while building it. Here the token lists are deflated into the
//! module at compile time (`build.rs`) with the perfect hash that places them ([`place`]), an
//! encoding's table is laid out only when a config uses it, at config load ([`table`]), the
//! split patterns are hand-written scanners ([`split`]), and merging is [`bpe`]. The counts
//! must stay exact: the tests compare them with Python tiktoken's (the corpus) and with
//! tiktoken-rs's token ids and regex pieces on random text.

mod bpe;
mod classes;
mod place;
mod split;
mod stream;
mod table;

use split::Split;
use table::{Packed, Sizes, Table};

mod o200k {
    include!(concat!(env!("OUT_DIR"), "/o200k_base.rs"));
}
mod cl100k {
    include!(concat!(env!("OUT_DIR"), "/cl100k_base.rs"));
}

/// One encoding: its rank table and its split pattern.
pub struct Tokenizer {
    table: Table,
    split: Split,
}

/// What `build.rs` packed for an encoding (see [`table::Packed`]).
macro_rules! packed {
    ($name:literal, $sizes:expr) => {
        Packed {
            lengths: include_bytes!(concat!(env!("OUT_DIR"), "/", $name, ".lengths.deflate")),
            bytes: include_bytes!(concat!(env!("OUT_DIR"), "/", $name, ".bytes.deflate")),
            pilots: include_bytes!(concat!(env!("OUT_DIR"), "/", $name, ".pilots")),
            sizes: $sizes,
        }
    };
}

static O200K: Packed = packed!("o200k_base", o200k::SIZES);
static CL100K: Packed = packed!("cl100k_base", cl100k::SIZES);

impl Tokenizer {
    /// `o200k_base` (gpt-4o, gpt-4.1, o-series, gpt-5).
    pub fn o200k_base() -> Result<Tokenizer, String> {
        Ok(Tokenizer {
            table: Table::build(&O200K)?,
            split: Split::O200k,
        })
    }

    /// `cl100k_base` (gpt-4, gpt-3.5, embeddings).
    pub fn cl100k_base() -> Result<Tokenizer, String> {
        Ok(Tokenizer {
            table: Table::build(&CL100K)?,
            split: Split::Cl100k,
        })
    }

    /// Bytes of tables this tokenizer holds.
    pub fn heap_bytes(&self) -> usize {
        self.table.heap_bytes()
    }
}

impl Tokenizer {
    /// Ordinary tokens in `text` (special-token text counted as plain text, as tiktoken's
    /// `encode_ordinary`).
    pub fn count(&self, text: &str) -> u64 {
        let mut n = 0u64;
        for bytes in self.split.pieces(text) {
            n += if bytes.len() == 1 || self.table.contains(bytes) {
                1
            } else {
                bpe::merge_count(&self.table, bytes) as u64
            };
        }
        n
    }

    /// The token ids of `text` (tiktoken's `encode_ordinary`); the tests compare them with
    /// tiktoken-rs's, the filter only counts.
    #[cfg(test)]
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        for bytes in self.split.pieces(text) {
            if let Some(rank) = self.table.rank(bytes) {
                out.push(rank);
                continue;
            }
            let starts = bpe::merge(&self.table, bytes);
            let ends = starts.iter().skip(1).copied().chain([bytes.len()]);
            for (from, to) in starts.iter().copied().zip(ends) {
                out.push(
                    bytes
                        .get(from..to)
                        .and_then(|t| self.table.rank(t))
                        .unwrap_or(u32::MAX),
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
