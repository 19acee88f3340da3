//! The tokenizer against tiktoken-rs (token ids on random and tricky text, host only) and
//! against Python tiktoken (the corpus, host and wasm32: in `counter.rs`).

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use std::sync::OnceLock;

use super::*;

fn o200k() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| Tokenizer::o200k_base().unwrap())
}

fn cl100k() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| Tokenizer::cl100k_base().unwrap())
}

#[test]
fn every_single_byte_is_a_token() {
    for tok in [o200k(), cl100k()] {
        for b in 0..=255u8 {
            assert!(tok.table.rank(&[b]).is_some(), "{b}");
        }
    }
    // A list that does not hold the tokens it should, or is cut short, is refused.
    let more = Packed {
        sizes: Sizes {
            tokens: O200K.sizes.tokens + 1,
            ..O200K.sizes
        },
        ..O200K
    };
    assert!(Table::build(&more).is_err());
    for cut in [
        Packed {
            lengths: &O200K.lengths[..1000],
            ..O200K
        },
        Packed {
            bytes: &O200K.bytes[..1000],
            ..O200K
        },
        Packed {
            lengths: CL100K.lengths,
            ..O200K
        },
    ] {
        assert!(Table::build(&cut).is_err());
    }
    // Pilots that are not this list's put two tokens in one slot, or are too few.
    let shuffled: Vec<u8> = O200K.pilots.iter().rev().copied().collect();
    for pilots in [shuffled.leak() as &'static [u8], CL100K.pilots] {
        assert!(Table::build(&Packed { pilots, ..O200K }).is_err());
    }
}

#[test]
fn contains_agrees_with_rank_cold_and_warm() {
    // Words and near-words: tokens and non-tokens that share the cache's slots over the run.
    let mut pieces: Vec<Vec<u8>> = Vec::new();
    for word in [
        "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "zzqx", "qqq",
    ] {
        for prefix in ["", " ", "  "] {
            for suffix in ["", "s", "ed", "x", "\u{e9}"] {
                pieces.push(format!("{prefix}{word}{suffix}").into_bytes());
            }
        }
    }
    pieces.extend((0..=255u8).map(|b| vec![b, b'a', b'b']));
    for tok in [o200k(), cl100k()] {
        for _ in 0..2 {
            for piece in &pieces {
                let want = tok.table.rank(piece).is_some();
                assert_eq!(tok.table.contains(piece), want, "{piece:?}");
            }
        }
    }
}

#[test]
fn known_ids() {
    assert_eq!(o200k().encode("hello world"), vec![24912, 2375]);
    assert_eq!(cl100k().encode("hello world"), vec![15339, 1917]);
    assert_eq!(o200k().count(""), 0);
}

#[cfg(not(target_arch = "wasm32"))]
mod against_tiktoken_rs {
    use super::*;

    fn reference() -> [(&'static Tokenizer, tiktoken_rs::CoreBPE, &'static str); 2] {
        [
            (o200k(), tiktoken_rs::o200k_base().unwrap(), "o200k"),
            (cl100k(), tiktoken_rs::cl100k_base().unwrap(), "cl100k"),
        ]
    }

    /// tiktoken's cl100k split pattern (tiktoken-rs has it inline, not as a constant).
    const CL100K_PATTERN: &str = r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s";

    fn patterns() -> [(Split, fancy_regex::Regex); 2] {
        [
            (
                Split::O200k,
                fancy_regex::Regex::new(tiktoken_rs::O200K_BASE_PAT_STR).unwrap(),
            ),
            (
                Split::Cl100k,
                fancy_regex::Regex::new(CL100K_PATTERN).unwrap(),
            ),
        ]
    }

    fn check_pieces(patterns: &[(Split, fancy_regex::Regex)], text: &str) {
        for (split, regex) in patterns {
            let want: Vec<&str> = regex.find_iter(text).map(|m| m.unwrap().as_str()).collect();
            let got: Vec<&str> = split
                .pieces(text)
                .map(|p| std::str::from_utf8(p).unwrap())
                .collect();
            assert_eq!(got, want, "{split:?} pieces of {text:?}");
        }
    }

    fn check(refs: &[(&'static Tokenizer, tiktoken_rs::CoreBPE, &'static str)], text: &str) {
        for (ours, theirs, name) in refs {
            let want = theirs.encode_ordinary(text);
            assert_eq!(ours.encode(text), want, "{name} on {text:?}");
            assert_eq!(
                ours.count(text),
                want.len() as u64,
                "{name} count on {text:?}"
            );
        }
    }

    /// Characters from every class the split patterns distinguish, and the bytes around them.
    const ALPHABET: &[&str] = &[
        "a", "b", "s", "t", "d", "m", "l", "e", "r", "v", "A", "S", "T", "L", "R", "E", "V", "D",
        "M", "x", "Z", "ſ", "ǅ", "é", "É", "ß", "ж", "Ж", "中", "文", "ʰ", "\u{301}", "\u{94d}",
        "क", "ا", "1", "2", "9", "٣", "७", "½", "Ⅻ", " ", " ", " ", "\t", "\n", "\r", "\u{a0}",
        "\u{2028}", "\u{3000}", "\u{b}", "'", "'", "’", "/", ".", ",", "!", "?", "-", "_", "(",
        "{", "\"", "#", "<", "=", "😀", "👍🏽", "\u{200d}", "\u{0}", "\u{7f}", "\u{feff}",
    ];

    /// A random string of up to `max` characters of `ALPHABET`.
    fn random_text(rng: &mut fastrand::Rng, max: usize) -> String {
        let len = rng.usize(1..max);
        (0..len)
            .map(|_| ALPHABET[rng.usize(..ALPHABET.len())])
            .collect()
    }

    #[test]
    fn pieces_equal_the_split_regexes_on_random_text() {
        let patterns = patterns();
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..50_000 {
            check_pieces(&patterns, &random_text(&mut rng, 16));
        }
    }

    #[test]
    fn ids_equal_tiktoken_rs_on_random_text() {
        let refs = reference();
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..20_000 {
            check(&refs, &random_text(&mut rng, 24));
        }
    }

    #[test]
    fn ids_equal_tiktoken_rs_on_tricky_text() {
        let refs = reference();
        let long_word = "abc".repeat(400);
        let long_digits = "1234567890".repeat(50);
        let long_symbols = "=-+*".repeat(300);
        let long_space = " ".repeat(500) + "x";
        let base64 = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0123456789+/".repeat(40);
        for text in [
            "Hello, world!",
            "don't you're we've I'm they'll he'd IT'S DON'T 'sup 'S 'ſ",
            "CamelCaseWord HTTPServer XMLHttpRequest iPhone ÉCOLE école",
            "  leading and trailing  ",
            "line\r\nbreaks\n\n\n  indented\n\t\ttabs \n ",
            "url https://example.com/a/b?c=d&e=f#g //comment\n/* block */",
            "numbers 1 12 123 1234 12345 3.14159 -42 1e10 ٣٤٥٦",
            "emoji 😀👍🏽👨‍👩‍👧 flags 🇺🇸",
            "中文测试，日本語のテキスト、한국어 텍스트",
            "Ελληνικά русский עברית العربية हिन्दी",
            "def f(x):\n    return x ** 2  # comment\n",
            "<|endoftext|> special text counts as plain",
            &long_word,
            &long_digits,
            &long_symbols,
            &long_space,
            &base64,
        ] {
            check_pieces(&patterns(), text);
            check(&refs, text);
        }
    }
}
