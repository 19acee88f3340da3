//! moderation's plugin config.

use crate::config::{require_non_empty, ConfigError, JsonPath, Validate};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ModerationConfig {
    /// Patterns that block a request or response when they match.
    #[serde(default)]
    pub deny: Vec<String>,
}

impl Validate for ModerationConfig {
    fn validate(&self, path: &JsonPath) -> Result<(), ConfigError> {
        let deny = path.field("deny");
        for (i, pattern) in self.deny.iter().enumerate() {
            require_non_empty(&deny.index(i), pattern)?;
        }
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
    fn empty_pattern_names_its_index() {
        let err = parse_config::<ModerationConfig>(br#"{"deny":["ok",""]}"#).unwrap_err();
        assert_eq!(err.path, "$.deny[1]");
    }

    #[test]
    fn unknown_field_is_refused() {
        let err = parse_config::<ModerationConfig>(br#"{"denny":[]}"#).unwrap_err();
        assert!(err.message.contains("denny"), "{err}");
    }
}
