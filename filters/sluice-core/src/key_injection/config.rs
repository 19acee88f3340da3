//! key-injection's plugin config.
//!
//! The same module is listed twice in the chain with two configs: `authenticate` (first, on
//! request headers) and `inject` (after the router has chosen the provider).

use crate::config::{ConfigError, JsonPath, Validate};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Authenticate,
    Inject,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyInjectionConfig {
    pub role: Role,
}

impl Validate for KeyInjectionConfig {
    fn validate(&self, _path: &JsonPath) -> Result<(), ConfigError> {
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
    fn role_is_required() {
        let err = parse_config::<KeyInjectionConfig>(b"{}").unwrap_err();
        assert!(err.message.contains("missing field `role`"), "{err}");
    }

    #[test]
    fn bad_role_names_the_field() {
        let err = parse_config::<KeyInjectionConfig>(br#"{"role":"both"}"#).unwrap_err();
        assert_eq!(err.path, "$.role");
    }

    #[test]
    fn both_roles_parse() {
        let a: KeyInjectionConfig = parse_config(br#"{"role":"authenticate"}"#).unwrap();
        let b: KeyInjectionConfig = parse_config(br#"{"role":"inject"}"#).unwrap();
        assert_eq!((a.role, b.role), (Role::Authenticate, Role::Inject));
    }
}
