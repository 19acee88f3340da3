//! The external moderation check: the call-out's request (OpenAI-compatible `/v1/moderations` or
//! Azure AI Content Safety `text:analyze`) and the verdict read from its answer. The glue sends
//! the call with the configured timeout; a failed call, a timeout, a non-200 and an answer that
//! is not the expected JSON all come here as a failure, and `failure_mode` decides.

use serde_json::{json, Value};

use super::config::{ExternalConfig, ExternalKind, FailureMode};
use super::engine::Cause;
use crate::error::{ApiError, ErrorKind};

/// Azure's text limit, in characters; longer input is cut to it.
const AZURE_MAX_CHARS: usize = 10_000;

/// The call-out: headers (pseudo-headers included) and body.
#[derive(Debug, Clone, PartialEq)]
pub struct CallOut {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What the service said.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Pass,
    /// The first category at or over its threshold.
    Block(String),
    /// No usable answer; the reason is for logs and counters (never user text).
    Failed(&'static str),
}

/// What the filter does after the check.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Pass,
    /// The service was unusable and `failure_mode` is `open`.
    PassFailedOpen,
    Refuse(ApiError, Option<Cause>),
}

pub fn call_out(config: &ExternalConfig, texts: &[&str]) -> CallOut {
    let authority = config
        .authority
        .clone()
        .unwrap_or_else(|| config.cluster.clone());
    let mut headers = vec![
        (":method".to_owned(), "POST".to_owned()),
        (":path".to_owned(), config.path().to_owned()),
        (":authority".to_owned(), authority),
        ("content-type".to_owned(), "application/json".to_owned()),
    ];
    let body = match config.kind {
        ExternalKind::OpenAi => {
            if let Some(key) = &config.api_key {
                headers.push(("authorization".to_owned(), format!("Bearer {key}")));
            }
            let mut body = json!({ "input": texts });
            if let (Some(model), Some(obj)) = (&config.model, body.as_object_mut()) {
                obj.insert("model".into(), json!(model));
            }
            body
        }
        ExternalKind::AzureContentSafety => {
            if let Some(key) = &config.api_key {
                headers.push(("ocp-apim-subscription-key".to_owned(), key.clone()));
            }
            let joined = texts.join("\n");
            let text: String = joined.chars().take(AZURE_MAX_CHARS).collect();
            json!({ "text": text, "outputType": "FourSeverityLevels" })
        }
    };
    CallOut {
        headers,
        body: serde_json::to_vec(&body).unwrap_or_default(),
    }
}

/// Reads the service's answer. `status` 0 means the call failed or timed out.
pub fn verdict(config: &ExternalConfig, status: u16, body: &[u8]) -> Verdict {
    if status == 0 {
        return Verdict::Failed("no answer");
    }
    if status != 200 {
        return Verdict::Failed("status");
    }
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Verdict::Failed("not json");
    };
    match config.kind {
        ExternalKind::OpenAi => openai(config, &value),
        ExternalKind::AzureContentSafety => azure(config, &value),
    }
}

fn openai(config: &ExternalConfig, value: &Value) -> Verdict {
    let Some(results) = value.get("results").and_then(Value::as_array) else {
        return Verdict::Failed("no results");
    };
    if results.is_empty() {
        return Verdict::Failed("no results");
    }
    for result in results {
        if config.thresholds.is_empty() {
            match result.get("flagged").and_then(Value::as_bool) {
                Some(true) => {
                    let category = result
                        .get("categories")
                        .and_then(Value::as_object)
                        .and_then(|c| c.iter().find(|(_, v)| v.as_bool() == Some(true)))
                        .map_or("flagged".to_owned(), |(k, _)| k.clone());
                    return Verdict::Block(category);
                }
                Some(false) => {}
                None => return Verdict::Failed("no flagged"),
            }
        } else {
            let Some(scores) = result.get("category_scores").and_then(Value::as_object) else {
                return Verdict::Failed("no category_scores");
            };
            for (category, threshold) in &config.thresholds {
                if let Some(score) = scores.get(category).and_then(Value::as_f64) {
                    if score >= *threshold {
                        return Verdict::Block(category.clone());
                    }
                }
            }
        }
    }
    Verdict::Pass
}

fn azure(config: &ExternalConfig, value: &Value) -> Verdict {
    let Some(analysis) = value.get("categoriesAnalysis").and_then(Value::as_array) else {
        return Verdict::Failed("no categoriesAnalysis");
    };
    if value
        .get("blocklistsMatch")
        .and_then(Value::as_array)
        .is_some_and(|m| !m.is_empty())
    {
        return Verdict::Block("blocklist".to_owned());
    }
    for item in analysis {
        let (Some(category), Some(severity)) = (
            item.get("category").and_then(Value::as_str),
            item.get("severity").and_then(Value::as_f64),
        ) else {
            return Verdict::Failed("bad categoriesAnalysis");
        };
        let threshold = if config.thresholds.is_empty() {
            4.0
        } else {
            match config.thresholds.get(category) {
                Some(t) => *t,
                None => continue,
            }
        };
        if severity >= threshold {
            return Verdict::Block(category.to_owned());
        }
    }
    Verdict::Pass
}

/// The verdict as counted (`sluice_moderation_external_total{result}`): `pass`, `blocked`,
/// `failed_open` or `failed_closed`.
pub fn result_label(config: &ExternalConfig, verdict: &Verdict) -> &'static str {
    match (verdict, config.failure_mode) {
        (Verdict::Pass, _) => "pass",
        (Verdict::Block(_), _) => "blocked",
        (Verdict::Failed(_), FailureMode::Open) => "failed_open",
        (Verdict::Failed(_), FailureMode::Closed) => "failed_closed",
    }
}

/// The verdict under the configured failure policy.
pub fn decide(config: &ExternalConfig, verdict: &Verdict) -> Decision {
    match verdict {
        Verdict::Pass => Decision::Pass,
        Verdict::Block(category) => {
            let cause = Cause::External(category.clone());
            Decision::Refuse(cause.error(), Some(cause))
        }
        Verdict::Failed(_) => match config.failure_mode {
            FailureMode::Open => Decision::PassFailedOpen,
            FailureMode::Closed => Decision::Refuse(
                ApiError::new(
                    ErrorKind::Unavailable,
                    "The moderation service did not answer usably; the gateway refuses requests it cannot check.",
                )
                .with_code("moderation_unavailable"),
                None,
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn config(json: &str) -> ExternalConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn openai_call_and_verdicts() {
        let c = config(
            r#"{"kind":"openai","cluster":"mod","failure_mode":"open","api_key":"k","model":"omni-moderation-latest"}"#,
        );
        let call = call_out(&c, &["hi", "there"]);
        assert!(call
            .headers
            .contains(&(":path".into(), "/v1/moderations".into())));
        assert!(call.headers.contains(&(":authority".into(), "mod".into())));
        assert!(call
            .headers
            .contains(&("authorization".into(), "Bearer k".into())));
        let body: Value = serde_json::from_slice(&call.body).unwrap();
        assert_eq!(
            body,
            json!({"input":["hi","there"],"model":"omni-moderation-latest"})
        );

        let flagged = br#"{"results":[{"flagged":true,"categories":{"hate":false,"violence":true},"category_scores":{"violence":0.9}}]}"#;
        assert_eq!(verdict(&c, 200, flagged), Verdict::Block("violence".into()));
        let clean = br#"{"results":[{"flagged":false,"categories":{},"category_scores":{}}]}"#;
        assert_eq!(verdict(&c, 200, clean), Verdict::Pass);

        let t = config(
            r#"{"kind":"openai","cluster":"m","failure_mode":"closed","thresholds":{"violence":0.95}}"#,
        );
        assert_eq!(verdict(&t, 200, flagged), Verdict::Pass);
        let t = config(
            r#"{"kind":"openai","cluster":"m","failure_mode":"closed","thresholds":{"violence":0.5}}"#,
        );
        assert_eq!(verdict(&t, 200, flagged), Verdict::Block("violence".into()));
    }

    #[test]
    fn failures_and_policy() {
        let open = config(r#"{"kind":"openai","cluster":"m","failure_mode":"open"}"#);
        let closed = config(r#"{"kind":"openai","cluster":"m","failure_mode":"closed"}"#);
        for (status, body) in [
            (0, &b""[..]),
            (500, br#"{"results":[]}"#),
            (200, b"<html>"),
            (200, br#"{"results":[]}"#),
            (200, br#"{"what":1}"#),
            (200, br#"{"results":[{"categories":{}}]}"#),
        ] {
            let v = verdict(&open, status, body);
            assert!(matches!(v, Verdict::Failed(_)), "{status} {v:?}");
            assert_eq!(decide(&open, &v), Decision::PassFailedOpen);
            let Decision::Refuse(err, None) = decide(&closed, &v) else {
                panic!("closed must refuse");
            };
            assert_eq!(err.status(), 503);
        }
        let Decision::Refuse(err, Some(cause)) = decide(&open, &Verdict::Block("hate".into()))
        else {
            panic!("a block refuses");
        };
        assert_eq!(
            (err.status(), cause.id()),
            (400, "external:hate".to_owned())
        );
    }

    #[test]
    fn azure_call_and_verdicts() {
        let c = config(
            r#"{"kind":"azure_content_safety","cluster":"cs","failure_mode":"open","api_key":"k"}"#,
        );
        let call = call_out(&c, &["x"]);
        assert!(call.headers.contains(&(
            ":path".into(),
            "/contentsafety/text:analyze?api-version=2024-09-01".into()
        )));
        assert!(call
            .headers
            .contains(&("ocp-apim-subscription-key".into(), "k".into())));
        let high = br#"{"blocklistsMatch":[],"categoriesAnalysis":[{"category":"Hate","severity":0},{"category":"Violence","severity":4}]}"#;
        assert_eq!(verdict(&c, 200, high), Verdict::Block("Violence".into()));
        let low =
            br#"{"blocklistsMatch":[],"categoriesAnalysis":[{"category":"Hate","severity":2}]}"#;
        assert_eq!(verdict(&c, 200, low), Verdict::Pass);
        let t = config(
            r#"{"kind":"azure_content_safety","cluster":"cs","failure_mode":"open","thresholds":{"Hate":2}}"#,
        );
        assert_eq!(verdict(&t, 200, low), Verdict::Block("Hate".into()));
        assert!(matches!(verdict(&c, 200, br#"{}"#), Verdict::Failed(_)));
    }
}
