//! model-router's plugin config.

use crate::config::{require_non_empty, ConfigError, JsonPath, Validate};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ModelRouterConfig {
    /// Envoy cluster for models no rule matches; none means unknown models are refused.
    #[serde(default)]
    pub default_cluster: Option<String>,
}

impl Validate for ModelRouterConfig {
    fn validate(&self, path: &JsonPath) -> Result<(), ConfigError> {
        if let Some(cluster) = &self.default_cluster {
            require_non_empty(&path.field("default_cluster"), cluster)?;
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
    fn empty_cluster_names_the_field() {
        let err = parse_config::<ModelRouterConfig>(br#"{"default_cluster":""}"#).unwrap_err();
        assert_eq!(err.to_string(), "$.default_cluster: must not be empty");
    }
}
