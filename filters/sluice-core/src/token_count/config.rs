//! token-count's plugin config.

use crate::config::{require_range, ConfigError, JsonPath, Validate};
use serde::Deserialize;

/// A tiktoken encoding the filter can count with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum Encoding {
    #[default]
    #[serde(rename = "o200k_base")]
    O200kBase,
    #[serde(rename = "cl100k_base")]
    Cl100kBase,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenCountConfig {
    /// Encoding for models no pattern matches.
    #[serde(default)]
    pub default_encoding: Encoding,
    /// Largest request body the filter reads; larger ones get 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
}

fn default_max_body_bytes() -> u64 {
    1 << 20
}

impl Validate for TokenCountConfig {
    fn validate(&self, path: &JsonPath) -> Result<(), ConfigError> {
        require_range(
            &path.field("max_body_bytes"),
            self.max_body_bytes,
            1,
            64 << 20,
        )
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
        assert_eq!(c.max_body_bytes, 1 << 20);
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
}
