//! Which encoding a model uses, the loaded encodings, and the prompt limits.

use super::config::{Encoding, TokenCountConfig};
use super::tokenizer::Tokenizer;
use crate::ConfigError;

/// OpenAI's own model families, checked after the configured rules.
const BUILTIN_RULES: &[(&str, Encoding)] = &[
    ("gpt-4o*", Encoding::O200kBase),
    ("chatgpt-4o*", Encoding::O200kBase),
    ("gpt-4.1*", Encoding::O200kBase),
    ("gpt-4.5*", Encoding::O200kBase),
    ("gpt-5*", Encoding::O200kBase),
    ("gpt-oss*", Encoding::O200kBase),
    ("o1*", Encoding::O200kBase),
    ("o3*", Encoding::O200kBase),
    ("o4*", Encoding::O200kBase),
    ("gpt-4*", Encoding::Cl100kBase),
    ("gpt-3.5*", Encoding::Cl100kBase),
    // Azure OpenAI's name for gpt-3.5.
    ("gpt-35*", Encoding::Cl100kBase),
    ("text-embedding-*", Encoding::Cl100kBase),
    ("davinci-002", Encoding::Cl100kBase),
    ("babbage-002", Encoding::Cl100kBase),
];

fn compile(globs: &[String]) -> Vec<glob::Pattern> {
    globs
        .iter()
        .filter_map(|g| glob::Pattern::new(g).ok())
        .collect()
}

/// Counts tokens: the encodings the config can reach (their tables laid out at config load, so
/// no request waits for them), and the rules that pick one per model.
pub struct Counter {
    rules: Vec<(Vec<glob::Pattern>, Encoding)>,
    default: Encoding,
    o200k: Option<Tokenizer>,
    cl100k: Option<Tokenizer>,
    limits: Vec<(Vec<glob::Pattern>, u64)>,
    max_prompt_tokens: Option<u64>,
}

impl Counter {
    pub fn new(config: &TokenCountConfig) -> Result<Self, ConfigError> {
        let mut rules: Vec<(Vec<glob::Pattern>, Encoding)> = config
            .encodings
            .iter()
            .map(|r| (compile(&r.models), r.encoding))
            .collect();
        if config.builtin_model_rules {
            for (g, e) in BUILTIN_RULES {
                rules.push((compile(&[(*g).to_owned()]), *e));
            }
        }
        let needed = |e: Encoding| config.default_encoding == e || rules.iter().any(|r| r.1 == e);
        let load = |e: Encoding| -> Result<Option<Tokenizer>, ConfigError> {
            if !needed(e) {
                return Ok(None);
            }
            let built = match e {
                Encoding::O200kBase => Tokenizer::o200k_base(),
                Encoding::Cl100kBase => Tokenizer::cl100k_base(),
            };
            built
                .map(Some)
                .map_err(|err| ConfigError::new("$", format!("cannot load {}: {err}", e.name())))
        };
        Ok(Counter {
            o200k: load(Encoding::O200kBase)?,
            cl100k: load(Encoding::Cl100kBase)?,
            rules,
            default: config.default_encoding,
            limits: config
                .model_limits
                .iter()
                .map(|l| (compile(&l.models), l.max_prompt_tokens))
                .collect(),
            max_prompt_tokens: config.max_prompt_tokens,
        })
    }

    /// The encoding for a model (`None`: the default).
    pub fn encoding_for(&self, model: Option<&str>) -> Encoding {
        let Some(model) = model else {
            return self.default;
        };
        self.rules
            .iter()
            .find(|(globs, _)| globs.iter().any(|g| g.matches(model)))
            .map(|(_, e)| *e)
            .unwrap_or(self.default)
    }

    /// Tokens in `text` with `encoding`, special-token text counted as plain text (as
    /// tiktoken's `encode(text, disallowed_special=())`).
    pub fn count(&self, encoding: Encoding, text: &str) -> u64 {
        if text.is_empty() {
            return 0;
        }
        let tokenizer = match encoding {
            Encoding::O200kBase => self.o200k.as_ref().or(self.cl100k.as_ref()),
            Encoding::Cl100kBase => self.cl100k.as_ref().or(self.o200k.as_ref()),
        };
        tokenizer.map_or(0, |t| t.count(text))
    }

    /// Tokens in raw bytes: invalid UTF-8 is replaced with U+FFFD first, as tiktoken users do.
    pub fn count_bytes(&self, encoding: Encoding, bytes: &[u8]) -> u64 {
        self.count(encoding, &String::from_utf8_lossy(bytes))
    }

    /// The prompt limit for a model: the first matching model rule, else the global one.
    pub fn limit_for(&self, model: Option<&str>) -> Option<u64> {
        model
            .and_then(|m| {
                self.limits
                    .iter()
                    .find(|(globs, _)| globs.iter().any(|g| g.matches(m)))
                    .map(|(_, limit)| *limit)
            })
            .or(self.max_prompt_tokens)
    }

    /// Bytes of rank tables this counter holds (for the load log).
    pub fn table_bytes(&self) -> usize {
        [&self.o200k, &self.cl100k]
            .into_iter()
            .flatten()
            .map(Tokenizer::heap_bytes)
            .sum()
    }

    /// Which encodings are loaded (for logs and memory accounting).
    pub fn loaded(&self) -> Vec<Encoding> {
        let mut out = Vec::new();
        if self.o200k.is_some() {
            out.push(Encoding::O200kBase);
        }
        if self.cl100k.is_some() {
            out.push(Encoding::Cl100kBase);
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use std::sync::OnceLock;

    use super::*;
    use crate::parse_config;

    /// One counter with both encodings, shared by the tests (building one takes a while).
    pub fn counter() -> &'static Counter {
        static C: OnceLock<Counter> = OnceLock::new();
        C.get_or_init(|| {
            Counter::new(
                &parse_config(
                    br#"{"max_prompt_tokens":1000,"model_limits":[{"models":["tiny-*"],"max_prompt_tokens":5}]}"#,
                )
                .unwrap(),
            )
            .unwrap()
        })
    }

    #[test]
    fn models_map_to_openai_encodings() {
        let c = counter();
        for m in [
            "gpt-4o",
            "gpt-4o-mini",
            "gpt-4.1-nano",
            "o3-mini",
            "gpt-5",
            "unknown-model",
        ] {
            assert_eq!(c.encoding_for(Some(m)), Encoding::O200kBase, "{m}");
        }
        for m in [
            "gpt-4",
            "gpt-4-turbo",
            "gpt-3.5-turbo",
            "text-embedding-3-small",
        ] {
            assert_eq!(c.encoding_for(Some(m)), Encoding::Cl100kBase, "{m}");
        }
    }

    #[test]
    fn configured_rules_come_first_and_only_needed_encodings_load() {
        let c = Counter::new(
            &parse_config(
                br#"{"builtin_model_rules":false,"encodings":[{"models":["gpt-4o*"],"encoding":"o200k_base"}]}"#,
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(c.loaded(), vec![Encoding::O200kBase]);
        // Only o200k's table is held: less than both, and more than nothing.
        assert!(c.table_bytes() > 1_000_000 && c.table_bytes() < counter().table_bytes());
        assert_eq!(c.encoding_for(Some("gpt-4")), Encoding::O200kBase);
    }

    #[test]
    fn known_counts() {
        let c = counter();
        assert_eq!(c.count(Encoding::Cl100kBase, "hello world"), 2);
        assert_eq!(c.count(Encoding::O200kBase, "hello world"), 2);
        assert_eq!(c.count(Encoding::O200kBase, ""), 0);
        // Special-token text is plain text.
        assert!(c.count(Encoding::Cl100kBase, "<|endoftext|>") > 1);
    }

    /// The judge: every corpus text counts exactly as Python `tiktoken` counted it
    /// (testdata/tokens/make_corpus.py wrote the expected numbers).
    #[test]
    fn counts_equal_python_tiktoken_on_the_corpus() {
        let corpus: serde_json::Value =
            serde_json::from_str(include_str!("../../testdata/tokens/corpus.json")).unwrap();
        let entries = corpus["entries"].as_array().unwrap();
        assert!(entries.len() >= 100);
        let c = counter();
        let mut mismatches = Vec::new();
        for e in entries {
            let name = e["name"].as_str().unwrap();
            for enc in [Encoding::O200kBase, Encoding::Cl100kBase] {
                let expected = e[enc.name()].as_u64().unwrap();
                let got = match (e["text"].as_str(), e["hex"].as_str()) {
                    (Some(text), _) => c.count(enc, text),
                    (None, Some(hex)) => {
                        let bytes: Vec<u8> = (0..hex.len())
                            .step_by(2)
                            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                            .collect();
                        c.count_bytes(enc, &bytes)
                    }
                    _ => panic!("entry {name} has no text"),
                };
                if got != expected {
                    mismatches.push(format!("{name} / {}: {got} != {expected}", enc.name()));
                }
            }
        }
        assert!(mismatches.is_empty(), "{mismatches:#?}");
    }

    #[test]
    fn limits() {
        let c = counter();
        assert_eq!(c.limit_for(Some("tiny-model")), Some(5));
        assert_eq!(c.limit_for(Some("gpt-4o")), Some(1000));
        assert_eq!(c.limit_for(None), Some(1000));
    }
}
