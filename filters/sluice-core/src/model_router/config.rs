//! model-router's plugin config.
//!
//! ```json
//! {"routes": [
//!   {"models": ["gpt-4o"], "targets": [{"provider": "openai", "cluster": "openai"}]},
//!   {"models": ["fast"], "targets": [
//!     {"provider": "openai", "cluster": "openai", "model": "gpt-4o-mini", "weight": 90},
//!     {"provider": "azure", "kind": "azure_openai", "cluster": "azure_openai", "model": "my-deployment", "weight": 10}],
//!    "sticky": "consumer"},
//!   {"models": ["gpt-*", "o*"], "targets": [{"provider": "openai", "cluster": "openai"}]}],
//!  "default": {"provider": "openai", "cluster": "openai"}}
//! ```
//!
//! Rules are tried in order; a rule's `models` are globs (`gpt-4o` exact, `gpt-*` prefix, any
//! glob). A target's `model` renames the model upstream (aliasing); without it the caller's
//! name is kept. Weights split traffic; `sticky` keeps one consumer (or one value of a header)
//! on one target.

use serde::Deserialize;

use crate::config::{require_non_empty, require_range, ConfigError, JsonPath, Validate};

/// The API dialect a target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// OpenAI and OpenAI-compatible: the request passes as it is (but for the model name).
    #[default]
    Openai,
    /// Azure OpenAI: the deployment goes in the path, with `api-version`.
    AzureOpenai,
    /// Anthropic Messages.
    Anthropic,
}

impl Kind {
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Openai => "openai",
            Kind::AzureOpenai => "azure_openai",
            Kind::Anthropic => "anthropic",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Provider name: key-injection picks the credential by it.
    pub provider: String,
    #[serde(default)]
    pub kind: Kind,
    /// Envoy cluster to send the request to.
    pub cluster: String,
    /// Upstream model (or Azure deployment) name; default: the caller's.
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default = "one")]
    pub weight: u32,
    /// Azure OpenAI `api-version`.
    #[serde(default)]
    pub api_version: Option<String>,
}

fn one() -> u32 {
    1
}

/// What keeps a caller on one target of a weighted split.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sticky {
    /// The consumer key-injection authenticated.
    Consumer,
    /// The value of this request header.
    Header(String),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub models: Vec<String>,
    pub targets: Vec<Target>,
    #[serde(default)]
    pub sticky: Option<Sticky>,
    /// Tried in order when the chosen target answers one of `fallback_on` (a timeout is Envoy's
    /// 504) before any byte reached the caller.
    #[serde(default)]
    pub fallback: Vec<Target>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ModelRouterConfig {
    #[serde(default)]
    pub routes: Vec<Rule>,
    /// Target for models no rule matches; none means 404 `model_not_found`.
    #[serde(default)]
    pub default: Option<Target>,
    /// Largest request body read; larger gets 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// `max_tokens` sent to an Anthropic target when an OpenAI caller set no limit (Anthropic
    /// requires one).
    #[serde(default = "default_max_tokens")]
    pub default_max_tokens: u64,
    /// Answers that send the request on to the next fallback target.
    #[serde(default = "default_fallback_on")]
    pub fallback_on: Vec<u16>,
    /// The cluster fallback attempts are sent through: Envoy's internal listener running
    /// key-injection's inject role and the router (see envoy/sluice.yaml).
    #[serde(default = "default_fallback_cluster")]
    pub fallback_cluster: String,
    /// Time limit of one fallback attempt.
    #[serde(default = "default_fallback_timeout_ms")]
    pub fallback_timeout_ms: u64,
}

fn default_fallback_on() -> Vec<u16> {
    vec![429, 500, 502, 503, 504]
}

fn default_fallback_cluster() -> String {
    "sluice_loopback".to_owned()
}

fn default_fallback_timeout_ms() -> u64 {
    60_000
}

fn default_max_tokens() -> u64 {
    4096
}

fn default_max_body_bytes() -> u64 {
    4 << 20
}

fn validate_target(path: &JsonPath, t: &Target) -> Result<(), ConfigError> {
    require_non_empty(&path.field("provider"), &t.provider)?;
    require_non_empty(&path.field("cluster"), &t.cluster)?;
    if let Some(m) = &t.model {
        require_non_empty(&path.field("model"), m)?;
    }
    require_range(&path.field("weight"), u64::from(t.weight), 0, 1_000_000)?;
    if t.kind == Kind::AzureOpenai && t.api_version.as_deref().is_none_or(str::is_empty) {
        return Err(path
            .field("api_version")
            .error("required for kind azure_openai"));
    }
    Ok(())
}

impl Validate for ModelRouterConfig {
    fn validate(&self, path: &JsonPath) -> Result<(), ConfigError> {
        for (i, rule) in self.routes.iter().enumerate() {
            let at = path.field("routes").index(i);
            if rule.models.is_empty() {
                return Err(at.field("models").error("must name at least one model"));
            }
            for (j, g) in rule.models.iter().enumerate() {
                glob::Pattern::new(g).map_err(|e| {
                    at.field("models")
                        .index(j)
                        .error(format!("bad glob {g:?}: {e}"))
                })?;
            }
            if rule.targets.is_empty() {
                return Err(at.field("targets").error("must hold at least one target"));
            }
            for (j, t) in rule.targets.iter().enumerate() {
                validate_target(&at.field("targets").index(j), t)?;
            }
            if rule.targets.iter().all(|t| t.weight == 0) {
                return Err(at
                    .field("targets")
                    .error("at least one target needs a weight above 0"));
            }
            for (j, t) in rule.fallback.iter().enumerate() {
                validate_target(&at.field("fallback").index(j), t)?;
            }
            if let Some(Sticky::Header(h)) = &rule.sticky {
                require_non_empty(&at.field("sticky").field("header"), h)?;
            }
        }
        if let Some(t) = &self.default {
            validate_target(&path.field("default"), t)?;
        }
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
    fn a_full_config_parses() {
        let c: ModelRouterConfig = parse_config(
            br#"{"routes":[{"models":["fast"],"sticky":{"header":"x-user"},"targets":[
                {"provider":"openai","cluster":"openai","model":"gpt-4o-mini","weight":90},
                {"provider":"azure","kind":"azure_openai","cluster":"azure","model":"dep","weight":10,"api_version":"2024-10-21"}]}],
               "default":{"provider":"openai","cluster":"openai"}}"#,
        )
        .unwrap();
        assert_eq!(c.routes[0].sticky, Some(Sticky::Header("x-user".into())));
        assert_eq!(c.routes[0].targets[1].kind, Kind::AzureOpenai);
    }

    #[test]
    fn checks_name_the_field() {
        let cases = [
            (
                r#"{"routes":[{"models":[],"targets":[]}]}"#,
                "$.routes[0].models",
            ),
            (
                r#"{"routes":[{"models":["a"],"targets":[]}]}"#,
                "$.routes[0].targets",
            ),
            (
                r#"{"routes":[{"models":["a"],"targets":[{"provider":"p","cluster":""}]}]}"#,
                "$.routes[0].targets[0].cluster",
            ),
            (
                r#"{"routes":[{"models":["a"],"targets":[{"provider":"p","cluster":"c","kind":"azure_openai"}]}]}"#,
                "$.routes[0].targets[0].api_version",
            ),
            (
                r#"{"routes":[{"models":["a"],"targets":[{"provider":"p","cluster":"c","weight":0}]}]}"#,
                "$.routes[0].targets",
            ),
            (
                r#"{"default":{"provider":"p","cluster":"c","kind":"bedrock"}}"#,
                "$.default.kind",
            ),
        ];
        for (json, path) in cases {
            let err = parse_config::<ModelRouterConfig>(json.as_bytes()).unwrap_err();
            assert_eq!(err.path, path, "{json}: {err}");
        }
    }
}
