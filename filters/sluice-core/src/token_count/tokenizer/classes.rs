//! The Unicode character classes tiktoken's split patterns are written in, one byte per code
//! point in a two-level table that `build.rs` takes from `regex-syntax`.

mod generated {
    include!(concat!(env!("OUT_DIR"), "/char_classes.rs"));
}

/// A character's class. The general categories are disjoint, so every character has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Not a letter, mark, number or white space (punctuation, symbols, controls, emoji).
    Other,
    /// `\p{Lu}`, `\p{Lt}`.
    Upper,
    /// `\p{Ll}`.
    Lower,
    /// `\p{Lm}`, `\p{Lo}` (scripts without case).
    Letter,
    /// `\p{M}`: combining marks (not letters in `\p{L}`, but in o200k's word classes).
    Mark,
    /// `\p{N}`.
    Number,
    /// `\s` other than `\r` and `\n`.
    Space,
    /// `\r`, `\n`.
    Newline,
}

impl Class {
    const fn from_id(id: u8) -> Class {
        match id {
            1 => Class::Upper,
            2 => Class::Lower,
            3 => Class::Letter,
            4 => Class::Mark,
            5 => Class::Number,
            6 => Class::Space,
            7 => Class::Newline,
            _ => Class::Other,
        }
    }

    /// `\s`.
    pub const fn is_space(self) -> bool {
        matches!(self, Class::Space | Class::Newline)
    }

    /// `\p{L}`.
    pub const fn is_letter(self) -> bool {
        matches!(self, Class::Upper | Class::Lower | Class::Letter)
    }

    /// `[^\s\p{L}\p{N}]`.
    pub const fn is_symbol(self) -> bool {
        matches!(self, Class::Other | Class::Mark)
    }

    /// `[^\r\n\p{L}\p{N}]`: what may lead a word.
    pub const fn may_lead_word(self) -> bool {
        matches!(self, Class::Other | Class::Mark | Class::Space)
    }
}

/// The class of a code point.
#[inline]
pub fn class_of(c: char) -> Class {
    let cp = c as usize;
    let block = generated::BLOCK_INDEX
        .get(cp >> generated::BLOCK_BITS)
        .copied()
        .unwrap_or(0) as usize;
    let at = (block << generated::BLOCK_BITS) | (cp & ((1 << generated::BLOCK_BITS) - 1));
    Class::from_id(generated::BLOCKS.get(at).copied().unwrap_or(0))
}

/// The class of an ASCII byte (the first block of the table is ASCII's).
#[inline]
pub fn class_of_ascii(b: u8) -> Class {
    Class::from_id(generated::BLOCKS.get(usize::from(b)).copied().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn classes_of_sample_characters() {
        for (c, class) in [
            ('A', Class::Upper),
            ('ǅ', Class::Upper), // titlecase
            ('a', Class::Lower),
            ('ſ', Class::Lower),
            ('中', Class::Letter),
            ('ʰ', Class::Letter), // modifier letter
            ('\u{301}', Class::Mark),
            ('७', Class::Number),
            ('Ⅻ', Class::Number),
            ('½', Class::Number),
            (' ', Class::Space),
            ('\t', Class::Space),
            ('\u{a0}', Class::Space),
            ('\u{2028}', Class::Space),
            ('\u{3000}', Class::Space),
            ('\n', Class::Newline),
            ('\r', Class::Newline),
            ('!', Class::Other),
            ('😀', Class::Other),
            ('\u{0}', Class::Other),
            ('\u{10ffff}', Class::Other),
        ] {
            assert_eq!(class_of(c), class, "{c:?}");
        }
        for b in 0..128u8 {
            assert_eq!(class_of_ascii(b), class_of(char::from(b)), "{b}");
        }
    }
}
