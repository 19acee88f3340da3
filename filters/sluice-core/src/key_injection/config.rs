//! key-injection's plugin config.
//!
//! The same module is listed twice in the chain with two configs: `authenticate` (first, on
//! request headers: who is calling, may they) and `inject` (after the router has chosen the
//! provider: which credential goes upstream).
//!
//! ```json
//! {"role": "authenticate",
//!  "consumers": [{"id": "demo", "tenant": "acme", "key_sha256": "<64 hex>",
//!                 "models": ["gpt-4o*"], "paths": ["/v1/*"], "expires_at": "2027-01-01T00:00:00Z"}]}
//! {"role": "inject",
//!  "providers": {"openai": {"clusters": ["openai"], "header": "authorization",
//!                           "value": "Bearer {key}", "keys": [{"env": "OPENAI_API_KEY"}]}}}
//! ```

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::config::{require_non_empty, require_range, ConfigError, JsonPath, Validate};

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
    /// Request headers a caller's key may arrive in, in the order they are looked at. Each is
    /// removed before the request goes upstream. `authorization` takes `Bearer <key>`.
    #[serde(default = "default_caller_headers")]
    pub caller_headers: Vec<String>,
    /// `authenticate`: who may call.
    #[serde(default)]
    pub consumers: Vec<ConsumerConfig>,
    /// `authenticate`: the largest body read for the model check (only for consumers whose
    /// models are restricted); larger gets 413. `inject`: the longest error answer held whole to
    /// scrub keys from (a longer one's text is replaced). Envoy's buffer limit.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// `inject`: credentials per provider, by provider name.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
}

fn default_caller_headers() -> Vec<String> {
    vec!["authorization".into(), "api-key".into(), "x-api-key".into()]
}

fn default_max_body_bytes() -> u64 {
    4 << 20
}

fn any() -> Vec<String> {
    vec!["*".into()]
}

fn yes() -> bool {
    true
}

fn default_tenant() -> String {
    "default".into()
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerConfig {
    pub id: String,
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// SHA-256 of the caller's key, hex (`make key-digest KEY=…` prints it).
    pub key_sha256: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Model globs the consumer may use; default `["*"]`.
    #[serde(default = "any")]
    pub models: Vec<String>,
    /// Path globs the consumer may call; default `["*"]`.
    #[serde(default = "any")]
    pub paths: Vec<String>,
    /// RFC 3339 time after which the key is refused.
    #[serde(default)]
    pub expires_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Envoy clusters this provider's credential is for (matched when the router's decision
    /// in filter state names no provider).
    #[serde(default)]
    pub clusters: Vec<String>,
    /// Header that carries the credential: `authorization`, `api-key`, `x-api-key`, ….
    pub header: String,
    /// The header's value; `{key}` stands for the key. Default `{key}`.
    #[serde(default = "default_value_format")]
    pub value: String,
    /// Extra fixed headers, e.g. `anthropic-version`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Keys, used round-robin; one in cool-down is skipped while another is available.
    pub keys: Vec<SecretSource>,
    /// How long a key rests after the provider answered 401 or 429 with it (a `retry-after`
    /// in seconds on the answer is used instead when present).
    #[serde(default = "default_cooldown")]
    pub cooldown_seconds: u64,
}

fn default_value_format() -> String {
    "{key}".into()
}

fn default_cooldown() -> u64 {
    60
}

/// Where a secret comes from: the VM's environment (Envoy `vm_config.environment_variables`,
/// Istio `vmConfig.env`), or inline.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    #[serde(default)]
    pub env: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
}

/// A header name as HTTP/2 and Envoy want it: lower-case token characters.
fn require_header_name(path: &JsonPath, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(path.error(format!("{name:?} is not a lower-case header name")))
    }
}

fn require_globs(path: &JsonPath, globs: &[String]) -> Result<(), ConfigError> {
    for (i, g) in globs.iter().enumerate() {
        glob::Pattern::new(g).map_err(|e| path.index(i).error(format!("bad glob {g:?}: {e}")))?;
    }
    Ok(())
}

/// Parses an RFC 3339 time to Unix seconds.
pub fn parse_expiry(text: &str) -> Result<u64, String> {
    let t = humantime::parse_rfc3339_weak(text).map_err(|e| e.to_string())?;
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| "before 1970".to_owned())
}

/// Decodes a 64-character hex SHA-256 digest.
pub fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let text = std::str::from_utf8(pair).ok()?;
        *slot = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

impl Validate for KeyInjectionConfig {
    fn validate(&self, path: &JsonPath) -> Result<(), ConfigError> {
        let headers = path.field("caller_headers");
        for (i, h) in self.caller_headers.iter().enumerate() {
            require_header_name(&headers.index(i), h)?;
        }
        require_range(
            &path.field("max_body_bytes"),
            self.max_body_bytes,
            1,
            64 << 20,
        )?;
        match self.role {
            Role::Authenticate => {
                if !self.providers.is_empty() {
                    return Err(path.field("providers").error("only for role \"inject\""));
                }
                let consumers = path.field("consumers");
                let mut ids = BTreeSet::new();
                let mut digests = BTreeSet::new();
                for (i, c) in self.consumers.iter().enumerate() {
                    let at = consumers.index(i);
                    require_non_empty(&at.field("id"), &c.id)?;
                    if !ids.insert(c.id.as_str()) {
                        return Err(at
                            .field("id")
                            .error(format!("duplicate consumer id {:?}", c.id)));
                    }
                    require_non_empty(&at.field("tenant"), &c.tenant)?;
                    let digest = parse_digest(&c.key_sha256).ok_or_else(|| {
                        at.field("key_sha256")
                            .error("must be 64 hex characters (SHA-256 of the key)")
                    })?;
                    if !digests.insert(digest) {
                        return Err(at
                            .field("key_sha256")
                            .error("the same key is given to two consumers"));
                    }
                    require_globs(&at.field("models"), &c.models)?;
                    require_globs(&at.field("paths"), &c.paths)?;
                    if let Some(exp) = &c.expires_at {
                        parse_expiry(exp).map_err(|e| {
                            at.field("expires_at")
                                .error(format!("not an RFC 3339 time: {e}"))
                        })?;
                    }
                }
            }
            Role::Inject => {
                if !self.consumers.is_empty() {
                    return Err(path
                        .field("consumers")
                        .error("only for role \"authenticate\""));
                }
                let providers = path.field("providers");
                for (name, p) in &self.providers {
                    let at = providers.key(name);
                    require_non_empty(&at, name)?;
                    require_header_name(&at.field("header"), &p.header)?;
                    if !p.value.contains("{key}") {
                        return Err(at.field("value").error("must contain {key}"));
                    }
                    for extra in p.headers.keys() {
                        require_header_name(&at.field("headers").key(extra), extra)?;
                    }
                    if p.keys.is_empty() {
                        return Err(at.field("keys").error("must hold at least one key"));
                    }
                    for (i, k) in p.keys.iter().enumerate() {
                        let kat = at.field("keys").index(i);
                        match (&k.env, &k.value) {
                            (Some(env), None) => require_non_empty(&kat.field("env"), env)?,
                            (None, Some(v)) => require_non_empty(&kat.field("value"), v)?,
                            _ => return Err(kat.error("give exactly one of \"env\" or \"value\"")),
                        }
                    }
                    require_range(&at.field("cooldown_seconds"), p.cooldown_seconds, 1, 86_400)?;
                }
            }
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

    const DIGEST: &str = "a3c1a3b1f6f7e8d9a3c1a3b1f6f7e8d9a3c1a3b1f6f7e8d9a3c1a3b1f6f7e8d9";

    fn auth(consumer: &str) -> Result<KeyInjectionConfig, ConfigError> {
        parse_config(format!(r#"{{"role":"authenticate","consumers":[{consumer}]}}"#).as_bytes())
    }

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
    fn consumer_defaults() {
        let c = auth(&format!(r#"{{"id":"a","key_sha256":"{DIGEST}"}}"#)).unwrap();
        let c = &c.consumers[0];
        assert_eq!((c.tenant.as_str(), c.enabled), ("default", true));
        assert_eq!(c.models, vec!["*"]);
    }

    #[test]
    fn bad_digest_names_the_field() {
        let err = auth(r#"{"id":"a","key_sha256":"abc"}"#).unwrap_err();
        assert_eq!(err.path, "$.consumers[0].key_sha256");
    }

    #[test]
    fn bad_expiry_and_glob_name_the_field() {
        let err = auth(&format!(
            r#"{{"id":"a","key_sha256":"{DIGEST}","expires_at":"soon"}}"#
        ))
        .unwrap_err();
        assert_eq!(err.path, "$.consumers[0].expires_at");
        let err = auth(&format!(
            r#"{{"id":"a","key_sha256":"{DIGEST}","models":["ok","[x"]}}"#
        ))
        .unwrap_err();
        assert_eq!(err.path, "$.consumers[0].models[1]");
    }

    #[test]
    fn duplicate_ids_and_keys_are_refused() {
        let one = format!(r#"{{"id":"a","key_sha256":"{DIGEST}"}}"#);
        let err = auth(&format!("{one},{one}")).unwrap_err();
        assert_eq!(err.path, "$.consumers[1].id");
        let other = format!(r#"{{"id":"b","key_sha256":"{DIGEST}"}}"#);
        let err = auth(&format!("{one},{other}")).unwrap_err();
        assert_eq!(err.path, "$.consumers[1].key_sha256");
    }

    #[test]
    fn provider_checks_name_the_field() {
        let cases = [
            (
                r#"{"header":"Authorization","keys":[{"value":"k"}]}"#,
                r#"$.providers["p"].header"#,
            ),
            (
                r#"{"header":"authorization","value":"Bearer","keys":[{"value":"k"}]}"#,
                r#"$.providers["p"].value"#,
            ),
            (
                r#"{"header":"authorization","keys":[]}"#,
                r#"$.providers["p"].keys"#,
            ),
            (
                r#"{"header":"authorization","keys":[{"env":"A","value":"k"}]}"#,
                r#"$.providers["p"].keys[0]"#,
            ),
            (
                r#"{"header":"authorization","keys":[{"value":"k"}],"cooldown_seconds":0}"#,
                r#"$.providers["p"].cooldown_seconds"#,
            ),
        ];
        for (provider, path) in cases {
            let json = format!(r#"{{"role":"inject","providers":{{"p":{provider}}}}}"#);
            let err = parse_config::<KeyInjectionConfig>(json.as_bytes()).unwrap_err();
            assert_eq!(err.path, path, "{provider}: {err}");
        }
    }

    #[test]
    fn sections_must_match_the_role() {
        let err = parse_config::<KeyInjectionConfig>(
            br#"{"role":"authenticate","providers":{"p":{"header":"x","keys":[{"value":"k"}]}}}"#,
        )
        .unwrap_err();
        assert_eq!(err.path, "$.providers");
    }

    #[test]
    fn expiry_parses_to_unix_seconds() {
        assert_eq!(parse_expiry("1970-01-02T00:00:00Z").unwrap(), 86_400);
    }
}
