//! token-count's plugin config.
//!
//! ```json
//! {"default_encoding": "o200k_base",
//!  "encodings": [{"models": ["my-finetune-*"], "encoding": "cl100k_base"}],
//!  "max_prompt_tokens": 128000,
//!  "model_limits": [{"models": ["gpt-4o-mini*"], "max_prompt_tokens": 16000}],
//!  "consumer_header": "x-consumer-id"}
//! ```

use serde::Deserialize;

use super::budget::BudgetConfig;
use super::cost::PriceConfig;
use crate::config::{require_non_empty, require_range, ConfigError, JsonPath, Validate};

/// A tiktoken encoding the filter can count with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Default)]
pub enum Encoding {
    #[default]
    #[serde(rename = "o200k_base")]
    O200kBase,
    #[serde(rename = "cl100k_base")]
    Cl100kBase,
}

impl Encoding {
    pub const fn name(self) -> &'static str {
        match self {
            Encoding::O200kBase => "o200k_base",
            Encoding::Cl100kBase => "cl100k_base",
        }
    }
}

/// Models (globs) counted with an encoding; checked in order, before the built-in OpenAI rules.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncodingRule {
    pub models: Vec<String>,
    pub encoding: Encoding,
}

/// A prompt-token limit for some models (globs).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelLimit {
    pub models: Vec<String>,
    pub max_prompt_tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenCountConfig {
    /// Encoding for models no rule matches.
    #[serde(default)]
    pub default_encoding: Encoding,
    /// Extra model → encoding rules, before the built-in ones.
    #[serde(default)]
    pub encodings: Vec<EncodingRule>,
    /// Apply OpenAI's own model families (gpt-4o, o-series, gpt-5 → o200k_base; gpt-4,
    /// gpt-3.5, embeddings → cl100k_base). Turn off to load only the encodings named here.
    #[serde(default = "yes")]
    pub builtin_model_rules: bool,
    /// Requests whose prompt is over this many tokens are refused with 400
    /// `context_length_exceeded` before going upstream.
    #[serde(default)]
    pub max_prompt_tokens: Option<u64>,
    /// Per-model limits; the first rule that matches wins over `max_prompt_tokens`.
    #[serde(default)]
    pub model_limits: Vec<ModelLimit>,
    /// Largest request body the filter reads; larger ones get 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// Header naming the consumer for metrics when key-injection's filter state is absent.
    #[serde(default)]
    pub consumer_header: Option<String>,
    /// Token budgets per consumer or tenant, enforced by reservation.
    #[serde(default)]
    pub budgets: Vec<BudgetConfig>,
    /// Completion tokens reserved for a request that sets no `max_tokens` /
    /// `max_completion_tokens`.
    #[serde(default = "default_completion_reservation")]
    pub default_max_completion_tokens: u64,
    /// Prices per model (USD per 1M tokens) for the cost counters.
    #[serde(default)]
    pub prices: Vec<PriceConfig>,
}

fn default_completion_reservation() -> u64 {
    4096
}

fn yes() -> bool {
    true
}

fn default_max_body_bytes() -> u64 {
    4 << 20
}

fn require_globs(path: &JsonPath, globs: &[String]) -> Result<(), ConfigError> {
    if globs.is_empty() {
        return Err(path.error("must name at least one model"));
    }
    for (i, g) in globs.iter().enumerate() {
        glob::Pattern::new(g).map_err(|e| path.index(i).error(format!("bad glob {g:?}: {e}")))?;
    }
    Ok(())
}

impl Validate for TokenCountConfig {
    fn validate(&self, path: &JsonPath) -> Result<(), ConfigError> {
        require_range(
            &path.field("max_body_bytes"),
            self.max_body_bytes,
            1,
            64 << 20,
        )?;
        for (i, rule) in self.encodings.iter().enumerate() {
            require_globs(
                &path.field("encodings").index(i).field("models"),
                &rule.models,
            )?;
        }
        if let Some(max) = self.max_prompt_tokens {
            require_range(&path.field("max_prompt_tokens"), max, 1, 100_000_000)?;
        }
        for (i, limit) in self.model_limits.iter().enumerate() {
            let at = path.field("model_limits").index(i);
            require_globs(&at.field("models"), &limit.models)?;
            require_range(
                &at.field("max_prompt_tokens"),
                limit.max_prompt_tokens,
                1,
                100_000_000,
            )?;
        }
        if let Some(h) = &self.consumer_header {
            require_non_empty(&path.field("consumer_header"), h)?;
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, b) in self.budgets.iter().enumerate() {
            let at = path.field("budgets").index(i);
            b.validate(&at)?;
            if !names.insert(b.name.as_str()) {
                return Err(at
                    .field("name")
                    .error(format!("duplicate budget {:?}", b.name)));
            }
        }
        for (i, p) in self.prices.iter().enumerate() {
            p.validate(&path.field("prices").index(i))?;
        }
        require_range(
            &path.field("default_max_completion_tokens"),
            self.default_max_completion_tokens,
            0,
            10_000_000,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::parse_config;

    #[test]
    fn defaults() {
        let c: TokenCountConfig = parse_config(b"{}").unwrap();
        assert_eq!(c.default_encoding, Encoding::O200kBase);
        assert!(c.builtin_model_rules);
        assert_eq!(c.max_prompt_tokens, None);
    }

    #[test]
    fn bad_encoding_names_the_field() {
        let err = parse_config::<TokenCountConfig>(br#"{"default_encoding":"p50k"}"#).unwrap_err();
        assert_eq!(err.path, "$.default_encoding");
    }

    #[test]
    fn zero_body_limit_is_refused() {
        let err = parse_config::<TokenCountConfig>(br#"{"max_body_bytes":0}"#).unwrap_err();
        assert_eq!(err.path, "$.max_body_bytes");
    }

    #[test]
    fn budgets_are_checked() {
        let err = parse_config::<TokenCountConfig>(
            br#"{"budgets":[{"name":"m","scope":"consumer","window_seconds":60,"tokens":10},{"name":"m","scope":"tenant","window_seconds":60,"tokens":10}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.path, "$.budgets[1].name");
        let err = parse_config::<TokenCountConfig>(
            br#"{"budgets":[{"name":"m","scope":"user","window_seconds":60,"tokens":10}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.path, "$.budgets[0].scope");
        let err = parse_config::<TokenCountConfig>(
            br#"{"budgets":[{"name":"m","scope":"tenant","window_seconds":0,"tokens":10}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.path, "$.budgets[0].window_seconds");
    }

    #[test]
    fn limit_rules_are_checked() {
        let err = parse_config::<TokenCountConfig>(
            br#"{"model_limits":[{"models":["gpt-*"],"max_prompt_tokens":0}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.path, "$.model_limits[0].max_prompt_tokens");
        let err = parse_config::<TokenCountConfig>(
            br#"{"encodings":[{"models":[],"encoding":"cl100k_base"}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.path, "$.encodings[0].models");
    }
}
