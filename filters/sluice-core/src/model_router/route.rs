//! Choosing a target for a model, and what changes on the way upstream.

use std::hash::{DefaultHasher, Hasher};

use serde_json::Value;

use super::config::{ModelRouterConfig, Rule, Sticky, Target};
use crate::token_count::budget::RATELIMIT_TOKEN_HEADERS;
use crate::ApiError;

/// The routing rules, compiled.
pub struct Router {
    rules: Vec<(Vec<glob::Pattern>, Rule)>,
    default: Option<Target>,
}

/// Where one request goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice<'a> {
    pub target: &'a Target,
    /// The model name sent upstream (the target's alias, else the caller's).
    pub upstream_model: String,
    /// Where to try next if the target fails.
    pub fallback: &'a [Target],
}

impl Router {
    pub fn new(config: &ModelRouterConfig) -> Self {
        Router {
            rules: config
                .routes
                .iter()
                .map(|r| {
                    let globs = r
                        .models
                        .iter()
                        .filter_map(|g| glob::Pattern::new(g).ok())
                        .collect();
                    (globs, r.clone())
                })
                .collect(),
            default: config.default.clone(),
        }
    }

    /// The target for `model`. `sticky` gives the value a rule's stickiness names (consumer or
    /// header), if the request has one; `turn` spreads requests without one over the weights.
    pub fn route(
        &self,
        model: &str,
        sticky: impl Fn(&Sticky) -> Option<String>,
        turn: u64,
    ) -> Option<Choice<'_>> {
        let rule = self
            .rules
            .iter()
            .find(|(globs, _)| globs.iter().any(|g| g.matches(model)))
            .map(|(_, r)| r);
        let (target, fallback) = match rule {
            Some(rule) => {
                let key = rule.sticky.as_ref().and_then(&sticky);
                (
                    pick(&rule.targets, key.as_deref(), turn)?,
                    rule.fallback.as_slice(),
                )
            }
            None => (self.default.as_ref()?, &[][..]),
        };
        Some(Choice {
            target,
            upstream_model: upstream_model(target, model),
            fallback,
        })
    }
}

/// The model name a target is sent: its alias, else the caller's.
pub fn upstream_model(target: &Target, model: &str) -> String {
    target.model.clone().unwrap_or_else(|| model.to_owned())
}

/// A weighted choice: by the hash of `key` when there is one (the same key, the same target),
/// else by `turn` (consecutive turns cover the weights exactly).
fn pick<'a>(targets: &'a [Target], key: Option<&str>, turn: u64) -> Option<&'a Target> {
    let total: u64 = targets.iter().map(|t| u64::from(t.weight)).sum();
    if total == 0 {
        return None;
    }
    let mut at = match key {
        Some(k) => {
            let mut h = DefaultHasher::new();
            h.write(k.as_bytes());
            h.finish() % total
        }
        None => turn % total,
    };
    for t in targets {
        let w = u64::from(t.weight);
        if at < w {
            return Some(t);
        }
        at -= w;
    }
    targets.last()
}

/// The refusal for a model no rule or default covers.
pub fn model_not_found(model: &str) -> ApiError {
    ApiError::not_found(format!(
        "The model `{model}` does not exist or you do not have access to it."
    ))
    .with_code("model_not_found")
    .with_param("model")
}

/// The answer when a fallback target's call-out brought no answer a caller can read: none at
/// all, or Envoy's own plain-text reply (`status`, e.g. its 504 when the call-out's
/// `fallback_timeout_ms` ran out).
pub fn fallback_unanswered(timeout_ms: u64, status: u16) -> ApiError {
    let seen = match status {
        0 => String::new(),
        s => format!(" (the gateway saw {s})"),
    };
    ApiError::new(
        crate::ErrorKind::BadGateway,
        format!(
            "The model's provider failed, and its fallback did not answer within {timeout_ms} ms{seen}."
        ),
    )
    .with_code("fallback_unanswered")
}

/// Whether a call-out's answer is one to pass to a caller: it has a status, and a JSON or SSE
/// body (a provider's answer with no content type counts as JSON); Envoy's own replies to a
/// call-out (its timeout, a reset) are plain text.
pub fn fallback_answered(status: u16, content_type: Option<&str>) -> bool {
    status != 0
        && content_type
            .is_none_or(|t| t.starts_with("application/json") || t.starts_with("text/event-stream"))
}

/// Whether a header of a fallback provider's answer goes to the caller with it: `retry-after`
/// and `x-ratelimit-*` do (the others were the provider's own business), but not the
/// `x-ratelimit-*-tokens` ones when a gateway token budget stands for the request
/// (`budgeted`): the caller gets the budget's there, as on an answer that needed no fallback
/// (token-count writes them over the provider's).
pub fn fallback_passes_header(name: &str, budgeted: bool) -> bool {
    (name == "retry-after" || name.starts_with("x-ratelimit-"))
        && !(budgeted && RATELIMIT_TOKEN_HEADERS.contains(&name))
}

/// The refusal for a body that names no model.
pub fn model_missing() -> ApiError {
    ApiError::invalid_request("you must provide a model parameter")
        .with_code("missing_model")
        .with_param("model")
}

/// The body with its `model` replaced (other fields are kept; their order may change).
pub fn with_model(body: &[u8], model: &str) -> Result<Vec<u8>, ApiError> {
    let mut v: Value = crate::body::parse(body)?;
    let Some(obj) = v.as_object_mut() else {
        return Err(ApiError::invalid_request("the body must be a JSON object"));
    };
    obj.insert("model".to_owned(), Value::String(model.to_owned()));
    serde_json::to_vec(&v).map_err(|e| ApiError::malformed_json(&e.to_string()))
}

/// Azure OpenAI's path for an OpenAI path: `/openai/deployments/{deployment}/{operation}?api-version=…`.
/// `None` for a path Azure has no equivalent for.
pub fn azure_path(path: &str, deployment: &str, api_version: &str) -> Option<String> {
    let bare = path.split('?').next().unwrap_or(path);
    let operation = ["chat/completions", "completions", "embeddings"]
        .into_iter()
        .find(|op| bare.ends_with(&format!("/{op}")))?;
    Some(format!(
        "/openai/deployments/{deployment}/{operation}?api-version={api_version}"
    ))
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::parse_config;

    fn router() -> Router {
        Router::new(
            &parse_config(
                br#"{"routes":[
                {"models":["gpt-4o"],"targets":[{"provider":"openai","cluster":"exact"}]},
                {"models":["fast"],"targets":[
                    {"provider":"openai","cluster":"a","model":"gpt-4o-mini","weight":3},
                    {"provider":"openai","cluster":"b","model":"gpt-4.1-nano","weight":1}]},
                {"models":["sticky"],"sticky":"consumer","targets":[
                    {"provider":"openai","cluster":"a","weight":1},
                    {"provider":"openai","cluster":"b","weight":1}]},
                {"models":["gpt-*"],"targets":[{"provider":"openai","cluster":"prefix"}]},
                {"models":["claude-?-*"],"targets":[{"provider":"anthropic","kind":"anthropic","cluster":"glob"}]}],
                "default":{"provider":"openai","cluster":"default"}}"#,
            )
            .unwrap(),
        )
    }

    fn cluster(r: &Router, model: &str) -> String {
        r.route(model, |_| None, 0).unwrap().target.cluster.clone()
    }

    #[test]
    fn exact_prefix_glob_and_default_in_order() {
        let r = router();
        assert_eq!(cluster(&r, "gpt-4o"), "exact");
        assert_eq!(cluster(&r, "gpt-4o-mini"), "prefix");
        assert_eq!(cluster(&r, "claude-3-haiku"), "glob");
        assert_eq!(cluster(&r, "llama"), "default");
        let none = Router::new(&ModelRouterConfig::default());
        assert!(none.route("x", |_| None, 0).is_none());
    }

    #[test]
    fn weights_split_exactly_over_turns_and_alias() {
        let r = router();
        let mut counts = std::collections::BTreeMap::new();
        for turn in 0..400 {
            let c = r.route("fast", |_| None, turn).unwrap();
            *counts.entry(c.upstream_model).or_insert(0) += 1;
        }
        assert_eq!(counts["gpt-4o-mini"], 300);
        assert_eq!(counts["gpt-4.1-nano"], 100);
    }

    #[test]
    fn sticky_keys_keep_their_target() {
        let r = router();
        let by = |who: &str| {
            let who = who.to_owned();
            r.route("sticky", move |_| Some(who.clone()), 0)
                .unwrap()
                .target
                .cluster
                .clone()
        };
        for who in ["alice", "bob", "carol", "dave"] {
            let first = by(who);
            assert!((0..20).all(|_| by(who) == first));
        }
        let spread: std::collections::BTreeSet<String> =
            (0..50).map(|i| by(&format!("user{i}"))).collect();
        assert_eq!(spread.len(), 2, "different keys use both targets");
    }

    #[test]
    fn body_and_path_rewrites() {
        let body = with_model(br#"{"model":"fast","messages":[],"x":1}"#, "gpt-4o-mini").unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (v["model"].as_str(), v["x"].as_i64()),
            (Some("gpt-4o-mini"), Some(1))
        );
        assert_eq!(with_model(b"[]", "m").unwrap_err().status(), 400);
        assert_eq!(
            azure_path("/v1/chat/completions", "dep", "2024-10-21").as_deref(),
            Some("/openai/deployments/dep/chat/completions?api-version=2024-10-21")
        );
        assert_eq!(
            azure_path("/v1/embeddings?x=1", "e", "v").as_deref(),
            Some("/openai/deployments/e/embeddings?api-version=v")
        );
        assert_eq!(azure_path("/v1/models", "d", "v"), None);
    }

    #[test]
    fn a_fallback_answer_a_caller_cannot_read_is_replaced() {
        assert!(fallback_answered(200, Some("application/json")));
        assert!(fallback_answered(429, None));
        assert!(fallback_answered(
            200,
            Some("text/event-stream; charset=utf-8")
        ));
        assert!(!fallback_answered(504, Some("text/plain")));
        assert!(!fallback_answered(0, None));
        let err = fallback_unanswered(500, 504);
        assert_eq!(err.status(), 502);
        assert!(
            err.message.contains("500 ms (the gateway saw 504)"),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_fallback_passes_its_rate_limits_but_a_budget_tells_the_tokens() {
        let passed = |budgeted| -> Vec<&str> {
            [
                "retry-after",
                "x-ratelimit-limit-requests",
                "x-ratelimit-remaining-requests",
                "x-ratelimit-limit-tokens",
                "x-ratelimit-remaining-tokens",
                "x-ratelimit-reset-tokens",
                "content-type",
                "x-request-id",
                "anthropic-ratelimit-tokens-limit",
            ]
            .into_iter()
            .filter(|name| fallback_passes_header(name, budgeted))
            .collect()
        };
        assert_eq!(
            passed(false),
            [
                "retry-after",
                "x-ratelimit-limit-requests",
                "x-ratelimit-remaining-requests",
                "x-ratelimit-limit-tokens",
                "x-ratelimit-remaining-tokens",
                "x-ratelimit-reset-tokens",
            ]
        );
        assert_eq!(
            passed(true),
            [
                "retry-after",
                "x-ratelimit-limit-requests",
                "x-ratelimit-remaining-requests",
            ]
        );
    }
}
