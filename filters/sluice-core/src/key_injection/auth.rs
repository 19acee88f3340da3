//! Who is calling, and may they: the `authenticate` role.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::config::{parse_digest, parse_expiry, KeyInjectionConfig};
use crate::{ApiError, ConfigError, ErrorKind};

/// A consumer ready for matching (digest decoded, globs compiled, expiry in Unix seconds).
#[derive(Debug, Clone)]
pub struct Consumer {
    pub id: String,
    pub tenant: String,
    digest: [u8; 32],
    enabled: bool,
    models: Vec<glob::Pattern>,
    paths: Vec<glob::Pattern>,
    expires_at: Option<u64>,
}

impl Consumer {
    /// True unless the consumer may use every model (then no body needs reading).
    pub fn restricts_models(&self) -> bool {
        !self.models.iter().any(|p| p.as_str() == "*")
    }

    pub fn allows_model(&self, model: &str) -> bool {
        self.models.iter().any(|p| p.matches(model))
    }

    /// The consumer's model globs as the `sluice.model_grant` filter state carries them (a
    /// JSON array), for [`grant_allows`].
    pub fn model_grant(&self) -> String {
        let globs: Vec<&str> = self.models.iter().map(glob::Pattern::as_str).collect();
        serde_json::to_string(&globs).unwrap_or_default()
    }

    fn allows_path(&self, path: &str) -> bool {
        let path = path.split('?').next().unwrap_or(path);
        self.paths.iter().any(|p| p.matches(path))
    }
}

/// The `authenticate` role's compiled config.
#[derive(Debug, Clone)]
pub struct Authenticator {
    caller_headers: Vec<String>,
    consumers: Vec<Consumer>,
    pub max_body_bytes: u64,
}

fn compile(globs: &[String]) -> Result<Vec<glob::Pattern>, ConfigError> {
    globs
        .iter()
        .map(|g| glob::Pattern::new(g).map_err(|e| ConfigError::new("$", e.to_string())))
        .collect()
}

impl Authenticator {
    /// Builds from a validated config.
    pub fn new(config: &KeyInjectionConfig) -> Result<Self, ConfigError> {
        let consumers = config
            .consumers
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let at = format!("$.consumers[{i}]");
                Ok(Consumer {
                    id: c.id.clone(),
                    tenant: c.tenant.clone(),
                    digest: parse_digest(&c.key_sha256).ok_or_else(|| {
                        ConfigError::new(format!("{at}.key_sha256"), "bad digest")
                    })?,
                    enabled: c.enabled,
                    models: compile(&c.models)?,
                    paths: compile(&c.paths)?,
                    expires_at: c
                        .expires_at
                        .as_deref()
                        .map(parse_expiry)
                        .transpose()
                        .map_err(|e| ConfigError::new(format!("{at}.expires_at"), e))?,
                })
            })
            .collect::<Result<_, ConfigError>>()?;
        Ok(Authenticator {
            caller_headers: config.caller_headers.clone(),
            consumers,
            max_body_bytes: config.max_body_bytes,
        })
    }

    pub fn consumer(&self, id: &str) -> Option<&Consumer> {
        self.consumers.iter().find(|c| c.id == id)
    }

    /// Headers a caller's key may arrive in (all removed before the request goes upstream).
    pub fn caller_headers(&self) -> &[String] {
        &self.caller_headers
    }

    /// The key the caller presented: the first configured header that carries one.
    /// `authorization` must be `Bearer <key>` (scheme case-insensitive).
    pub fn presented_key(&self, header: impl Fn(&str) -> Option<String>) -> Option<String> {
        self.caller_headers.iter().find_map(|name| {
            let value = header(name)?;
            let value = value.trim();
            let key = if name == "authorization" {
                let (scheme, rest) = value.split_once(' ')?;
                if !scheme.eq_ignore_ascii_case("bearer") {
                    return None;
                }
                rest.trim()
            } else {
                value
            };
            (!key.is_empty()).then(|| key.to_owned())
        })
    }

    /// Checks a presented key and the request path. Errors never contain the key.
    pub fn authenticate(
        &self,
        key: Option<&str>,
        path: &str,
        now_secs: u64,
    ) -> Result<&Consumer, ApiError> {
        let Some(key) = key else {
            return Err(ApiError::new(
                ErrorKind::Authentication,
                "Missing API key: send it as `Authorization: Bearer <key>`, `api-key` or `x-api-key`.",
            )
            .with_code("missing_api_key"));
        };
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut found = None;
        for c in &self.consumers {
            // Constant-time per comparison; every consumer is compared.
            let equal = bool::from(c.digest.ct_eq(&digest));
            if equal && found.is_none() {
                found = Some(c);
            }
        }
        let Some(consumer) = found else {
            return Err(
                ApiError::new(ErrorKind::Authentication, "Incorrect API key provided.")
                    .with_code("invalid_api_key"),
            );
        };
        if !consumer.enabled {
            return Err(
                ApiError::new(ErrorKind::Authentication, "This API key is disabled.")
                    .with_code("api_key_disabled"),
            );
        }
        if consumer.expires_at.is_some_and(|exp| now_secs >= exp) {
            return Err(
                ApiError::new(ErrorKind::Authentication, "This API key has expired.")
                    .with_code("api_key_expired"),
            );
        }
        if !consumer.allows_path(path) {
            let shown = path.split('?').next().unwrap_or(path);
            return Err(ApiError::new(
                ErrorKind::Permission,
                format!("This API key may not call {shown}."),
            )
            .with_code("path_not_allowed"));
        }
        Ok(consumer)
    }
}

/// The refusal for a model the consumer may not use.
/// Whether `model` is one a [`Consumer::model_grant`] allows; a grant that does not read as one
/// allows nothing.
pub fn grant_allows(grant: &str, model: &str) -> bool {
    serde_json::from_str::<Vec<String>>(grant)
        .unwrap_or_default()
        .iter()
        .filter_map(|g| glob::Pattern::new(g).ok())
        .any(|p| p.matches(model))
}

/// A restricted consumer's request whose model is known to no filter by the time it leaves.
pub fn model_unknown() -> ApiError {
    ApiError::new(
        ErrorKind::Permission,
        "This API key may use some models only, and this request names none.",
    )
    .with_code("model_not_allowed")
    .with_param("model")
}

pub fn model_not_allowed(model: &str) -> ApiError {
    ApiError::new(
        ErrorKind::Permission,
        format!("This API key may not use the model `{model}`."),
    )
    .with_code("model_not_allowed")
    .with_param("model")
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::key_injection::key_digest_hex;
    use crate::parse_config;

    fn authenticator() -> Authenticator {
        let json = format!(
            r#"{{"role":"authenticate","consumers":[
                {{"id":"alice","tenant":"acme","key_sha256":"{}"}},
                {{"id":"bob","key_sha256":"{}","enabled":false}},
                {{"id":"carol","key_sha256":"{}","expires_at":"2020-01-01T00:00:00Z"}},
                {{"id":"dave","key_sha256":"{}","models":["gpt-4o*"],"paths":["/v1/chat/*"]}}
            ]}}"#,
            key_digest_hex("sk-alice"),
            key_digest_hex("sk-bob"),
            key_digest_hex("sk-carol"),
            key_digest_hex("sk-dave"),
        );
        Authenticator::new(&parse_config(json.as_bytes()).unwrap()).unwrap()
    }

    const NOW: u64 = 1_800_000_000;
    const CHAT: &str = "/v1/chat/completions";

    #[test]
    fn known_key_gives_its_consumer() {
        let a = authenticator();
        let c = a.authenticate(Some("sk-alice"), CHAT, NOW).unwrap();
        assert_eq!((c.id.as_str(), c.tenant.as_str()), ("alice", "acme"));
        assert!(!c.restricts_models());
    }

    #[test]
    fn refusals_have_the_right_status_and_never_echo_the_key() {
        let a = authenticator();
        let cases = [
            (None, CHAT, 401, "missing_api_key"),
            (Some("sk-mallory"), CHAT, 401, "invalid_api_key"),
            (Some("sk-bob"), CHAT, 401, "api_key_disabled"),
            (Some("sk-carol"), CHAT, 401, "api_key_expired"),
            (Some("sk-dave"), "/v1/embeddings", 403, "path_not_allowed"),
        ];
        for (key, path, status, code) in cases {
            let err = a.authenticate(key, path, NOW).unwrap_err();
            assert_eq!((err.status(), err.code.as_deref()), (status, Some(code)));
            if let Some(k) = key {
                let body = String::from_utf8(err.body(crate::Dialect::OpenAi)).unwrap();
                assert!(!body.contains(k), "{body}");
            }
        }
    }

    #[test]
    fn expiry_is_checked_against_now() {
        let a = authenticator();
        assert!(a
            .authenticate(Some("sk-carol"), CHAT, 1_500_000_000)
            .is_ok());
    }

    #[test]
    fn model_globs() {
        let a = authenticator();
        let dave = a
            .authenticate(Some("sk-dave"), "/v1/chat/completions?x=1", NOW)
            .unwrap();
        assert!(dave.restricts_models());
        let grant = dave.model_grant();
        assert!(grant_allows(&grant, "gpt-4o-mini"));
        assert!(!grant_allows(&grant, "gpt-5"));
        assert!(!grant_allows("not json", "gpt-4o-mini"));
        assert!(dave.allows_model("gpt-4o-mini"));
        assert!(!dave.allows_model("claude-3"));
    }

    #[test]
    fn key_is_found_in_each_sdk_header() {
        let a = authenticator();
        let from = |name: &'static str, value: &'static str| {
            a.presented_key(move |h| (h == name).then(|| value.to_owned()))
        };
        assert_eq!(
            from("authorization", "Bearer sk-1").as_deref(),
            Some("sk-1")
        );
        assert_eq!(
            from("authorization", "bearer   sk-1 ").as_deref(),
            Some("sk-1")
        );
        assert_eq!(from("authorization", "Basic abc"), None);
        assert_eq!(from("api-key", "sk-2").as_deref(), Some("sk-2"));
        assert_eq!(from("x-api-key", "sk-3").as_deref(), Some("sk-3"));
        assert_eq!(from("x-api-key", "  "), None);
    }
}
