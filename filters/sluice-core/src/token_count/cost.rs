//! Cost: usage times a price table, in integer micro-dollars.
//!
//! Prices are US dollars per million tokens, so one token at price `p` costs `p` micro-dollars.
//! Cached prompt tokens use `cached_input` (default: `input`).

use serde::Deserialize;

use super::usage::Usage;
use crate::config::{ConfigError, JsonPath};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceConfig {
    /// Model globs this price applies to; the first matching entry wins.
    pub models: Vec<String>,
    /// USD per 1M prompt tokens.
    pub input: f64,
    /// USD per 1M completion tokens.
    pub output: f64,
    /// USD per 1M cached prompt tokens.
    #[serde(default)]
    pub cached_input: Option<f64>,
}

impl PriceConfig {
    pub fn validate(&self, path: &JsonPath) -> Result<(), ConfigError> {
        if self.models.is_empty() {
            return Err(path.field("models").error("must name at least one model"));
        }
        for (i, g) in self.models.iter().enumerate() {
            glob::Pattern::new(g).map_err(|e| {
                path.field("models")
                    .index(i)
                    .error(format!("bad glob {g:?}: {e}"))
            })?;
        }
        let prices = [
            ("input", Some(self.input)),
            ("output", Some(self.output)),
            ("cached_input", self.cached_input),
        ];
        for (name, price) in prices {
            if let Some(p) = price {
                if !(p.is_finite() && (0.0..=1_000_000.0).contains(&p)) {
                    return Err(path
                        .field(name)
                        .error("must be a price between 0 and 1000000 USD per 1M tokens"));
                }
            }
        }
        Ok(())
    }
}

/// Compiled price table.
pub struct Prices(Vec<(Vec<glob::Pattern>, PriceConfig)>);

impl Prices {
    pub fn new(config: &[PriceConfig]) -> Self {
        Prices(
            config
                .iter()
                .map(|p| {
                    (
                        p.models
                            .iter()
                            .filter_map(|g| glob::Pattern::new(g).ok())
                            .collect(),
                        p.clone(),
                    )
                })
                .collect(),
        )
    }

    /// Micro-dollars for a request's usage; `None` when no price matches the model.
    pub fn cost_micros(
        &self,
        model: &str,
        prompt: u64,
        completion: u64,
        cached: u64,
    ) -> Option<u64> {
        let (_, p) = self
            .0
            .iter()
            .find(|(globs, _)| globs.iter().any(|g| g.matches(model)))?;
        let cached = cached.min(prompt);
        let micros = (prompt - cached) as f64 * p.input
            + cached as f64 * p.cached_input.unwrap_or(p.input)
            + completion as f64 * p.output;
        Some(micros.round() as u64)
    }

    /// Same, from a [`Usage`] with the local prompt count as fallback.
    pub fn cost_of(&self, model: &str, usage: &Usage, local_prompt: u64) -> Option<u64> {
        self.cost_micros(
            model,
            usage.prompt.unwrap_or(local_prompt),
            usage.completion.unwrap_or(0),
            usage.cached.unwrap_or(0),
        )
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn micro_dollars_by_model() {
        let prices = Prices::new(&[
            PriceConfig {
                models: vec!["gpt-4o-mini*".into()],
                input: 0.15,
                output: 0.6,
                cached_input: Some(0.075),
            },
            PriceConfig {
                models: vec!["gpt-4o*".into()],
                input: 2.5,
                output: 10.0,
                cached_input: None,
            },
        ]);
        // 1000 prompt (400 cached) + 200 completion on gpt-4o-mini:
        // 600 * 0.15 + 400 * 0.075 + 200 * 0.6 = 90 + 30 + 120 = 240 micro-dollars.
        assert_eq!(prices.cost_micros("gpt-4o-mini", 1000, 200, 400), Some(240));
        assert_eq!(prices.cost_micros("gpt-4o", 1000, 100, 0), Some(3500));
        assert_eq!(prices.cost_micros("claude", 1, 1, 0), None);
    }

    #[test]
    fn bad_prices_name_the_field() {
        let p = PriceConfig {
            models: vec!["m".into()],
            input: -1.0,
            output: 1.0,
            cached_input: None,
        };
        assert_eq!(p.validate(&JsonPath::root()).unwrap_err().path, "$.input");
    }
}
