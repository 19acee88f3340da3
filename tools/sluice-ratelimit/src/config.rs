//! The service's config: which descriptors are limited, to how many tokens, over which window.
//!
//! ```json
//! {"domain": "sluice",
//!  "limits": [{"name": "tokens", "keys": ["consumer", "model"], "max_tokens": 100000,
//!              "window_seconds": 60}]}
//! ```
//!
//! A limit applies to a descriptor that has every one of its `keys` (and, with `when`, those
//! entries with those values); each distinct set of values of the `keys` has its own counter
//! (one budget per consumer and model above).

use std::collections::BTreeMap;

use limitador::limit::{Condition, Limit};
use serde::Deserialize;

/// The descriptor entry that marks a charge made when the stream is done: added, never refused.
pub const CHARGE_KEY: &str = "charge";
/// Its value for the completion tokens (envoy/sluice-ratelimit.yaml).
pub const STREAM_DONE: &str = "stream_done";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The rate-limit domain Envoy's filter sends (`domain: sluice` in the shipped config).
    pub domain: String,
    pub limits: Vec<LimitConfig>,
    /// How long one Redis round trip may take before the answer is an error (Envoy then lets
    /// the request through, `failure_mode_deny: false`). Default 500 ms.
    #[serde(default = "default_redis_timeout_ms")]
    pub redis_timeout_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    #[serde(default)]
    pub name: Option<String>,
    /// Descriptor keys: one counter per distinct set of their values.
    pub keys: Vec<String>,
    /// Only descriptors with these entries (key → value).
    #[serde(default)]
    pub when: BTreeMap<String, String>,
    pub max_tokens: u64,
    pub window_seconds: u64,
}

fn default_redis_timeout_ms() -> u64 {
    500
}

impl Config {
    /// Parses and checks a config; the error names what is wrong.
    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config =
            serde_json::from_str(text).map_err(|e| format!("config is not valid: {e}"))?;
        if config.domain.is_empty() {
            return Err("config: domain is empty".to_owned());
        }
        if config.limits.is_empty() {
            return Err("config: no limits".to_owned());
        }
        if config.redis_timeout_ms == 0 {
            return Err("config: redis_timeout_ms must be at least 1".to_owned());
        }
        for (i, limit) in config.limits.iter().enumerate() {
            if limit.keys.is_empty() {
                return Err(format!("config: limits[{i}].keys is empty"));
            }
            if limit.window_seconds == 0 {
                return Err(format!(
                    "config: limits[{i}].window_seconds must be at least 1"
                ));
            }
            if i64::try_from(limit.max_tokens).is_err() {
                return Err(format!("config: limits[{i}].max_tokens is too large"));
            }
            let reserved = limit
                .keys
                .iter()
                .chain(limit.when.keys())
                .any(|k| k == CHARGE_KEY);
            if reserved {
                return Err(format!(
                    "config: limits[{i}]: `{CHARGE_KEY}` is reserved (it marks the charges made at stream end)"
                ));
            }
        }
        config.limits()?;
        Ok(config)
    }

    /// The limits in limitador's terms (namespace = the domain).
    pub fn limits(&self) -> Result<Vec<Limit>, String> {
        self.limits
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let conditions = l
                    .when
                    .iter()
                    .map(|(k, v)| {
                        if v.contains('\'') || v.contains('"') {
                            return Err(format!(
                                "config: limits[{i}].when.{k}: quotes are not allowed"
                            ));
                        }
                        Condition::try_from(format!("{k} == '{v}'"))
                            .map_err(|e| format!("config: limits[{i}].when.{k}: {e:?}"))
                    })
                    .collect::<Result<Vec<Condition>, String>>()?;
                let max = i64::try_from(l.max_tokens)
                    .map_err(|_| format!("config: limits[{i}].max_tokens is too large"))?;
                let mut limit = Limit::new(
                    self.domain.as_str(),
                    max,
                    l.window_seconds,
                    conditions,
                    l.keys.iter().map(String::as_str),
                );
                if let Some(name) = &l.name {
                    limit.set_name(name.clone());
                }
                Ok(limit)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_config() {
        let c = Config::parse(
            r#"{"domain":"sluice","limits":[{"name":"t","keys":["consumer","model"],
                "when":{"consumer":"demo"},"max_tokens":1000,"window_seconds":60}]}"#,
        )
        .unwrap();
        assert_eq!(c.redis_timeout_ms, 500);
        let limits = c.limits().unwrap();
        assert_eq!(limits.len(), 1);
        assert_eq!(limits[0].max_value(), 1000);
        assert_eq!(limits[0].seconds(), 60);
        assert_eq!(limits[0].name(), Some("t"));
        let values = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(limits[0].applies(&values(&[("consumer", "demo"), ("model", "m")])));
        assert!(!limits[0].applies(&values(&[("consumer", "other"), ("model", "m")])));
        assert!(!limits[0].applies(&values(&[("consumer", "demo")])));
    }

    #[test]
    fn refuses_bad_configs() {
        for (text, want) in [
            (r#"{"domain":"","limits":[]}"#, "domain is empty"),
            (r#"{"domain":"d","limits":[]}"#, "no limits"),
            (
                r#"{"domain":"d","limits":[{"keys":[],"max_tokens":1,"window_seconds":1}]}"#,
                "limits[0].keys is empty",
            ),
            (
                r#"{"domain":"d","limits":[{"keys":["a"],"max_tokens":1,"window_seconds":0}]}"#,
                "window_seconds must be at least 1",
            ),
            (
                r#"{"domain":"d","limits":[{"keys":["charge"],"max_tokens":1,"window_seconds":1}]}"#,
                "is reserved",
            ),
            (
                r#"{"domain":"d","limits":[{"keys":["a"],"max_tokens":18446744073709551615,"window_seconds":1}]}"#,
                "too large",
            ),
            (
                r#"{"domain":"d","limits":[{"keys":["a"],"when":{"b":"x'y"},"max_tokens":1,"window_seconds":1}]}"#,
                "quotes are not allowed",
            ),
            (r#"{"domain":"d","limits":[],"extra":1}"#, "unknown field"),
        ] {
            let err = Config::parse(text).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
