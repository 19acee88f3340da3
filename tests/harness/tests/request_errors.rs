//! Bad requests through the shipped chain: each is refused before anything goes upstream, with
//! a JSON error in the caller's dialect that has a code and names the field at fault (never a
//! Rust type name).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use serde_json::Value;
use sluice_harness::{http, ChainOptions, Gateway, MockProvider, DEMO_AUTH};

/// How many requests the mock has received so far.
fn upstream_count(gw: &Gateway) -> u64 {
    gw.mock.last_request().unwrap()["count"]
        .as_u64()
        .unwrap_or(0)
}

fn refused(gw: &Gateway, path: &str, body: &str) -> (u16, Value) {
    let resp = http::post(&gw.url(path), body.as_bytes(), &[DEMO_AUTH]).unwrap();
    assert_eq!(
        resp.header("content-type"),
        Some("application/json"),
        "{path} {body}: {}",
        resp.text()
    );
    (resp.status, resp.json().unwrap())
}

#[test]
fn type_errors_duplicate_keys_and_empty_bodies_are_refused_with_a_code_naming_the_field() {
    let gw = Gateway::start().unwrap();
    let before = upstream_count(&gw);
    let chat = "/v1/chat/completions";
    let user = r#"[{"role":"user","content":"hi"}]"#;
    let cases = [
        (
            chat,
            format!(r#"{{"model":"gpt-4o","messages":{user},"max_tokens":"ten"}}"#),
            "invalid_type",
            "$.max_tokens must be a non-negative integer",
        ),
        (
            chat,
            format!(r#"{{"model":"gpt-4o","messages":{user},"max_tokens":-5}}"#),
            "invalid_value",
            "$.max_tokens must be a non-negative integer",
        ),
        (
            chat,
            r#"{"model":"gpt-4o","messages":[{"role":7,"content":"hi"}]}"#.to_owned(),
            "invalid_type",
            "$.messages[0].role must be a string",
        ),
        (
            chat,
            format!(r#"{{"model":"gpt-4o","model":"gpt-4.1","messages":{user}}}"#),
            "duplicate_key",
            "$.model appears more than once: each key may be given once",
        ),
        (
            chat,
            r#"{"model":"gpt-4o"}"#.to_owned(),
            "missing_required_parameter",
            "$.messages is required",
        ),
        (
            chat,
            r#"{"model":"gpt-4o","messages":[]}"#.to_owned(),
            "empty_array",
            "$.messages must not be empty: at least one message is required",
        ),
        (
            chat,
            r#"["gpt-4o"]"#.to_owned(),
            "invalid_type",
            "the request body must be a JSON object",
        ),
    ];
    for (path, body, code, message) in &cases {
        let (status, v) = refused(&gw, path, body);
        assert_eq!(status, 400, "{body}: {v}");
        assert_eq!(v["error"]["code"], *code, "{body}: {v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{body}: {v}");
        assert_eq!(v["error"]["message"], *message, "{body}: {v}");
    }
    // An empty POST body, in both dialects.
    let (status, v) = refused(&gw, chat, "");
    assert_eq!((status, &v["error"]["code"]), (400, &"missing_body".into()));
    let (status, v) = refused(&gw, "/v1/messages", "");
    assert_eq!(status, 400);
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    // `"messages": []` in Anthropic's dialect, for an Anthropic and an OpenAI target.
    for model in ["claude-sonnet-4-5", "gpt-4o"] {
        let body = format!(r#"{{"model":"{model}","max_tokens":5,"messages":[]}}"#);
        let (status, v) = refused(&gw, "/v1/messages", &body);
        assert_eq!(status, 400, "{v}");
        assert_eq!(v["type"], "error", "{v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("$.messages must not be empty"),
            "{v}"
        );
    }
    assert_eq!(
        upstream_count(&gw),
        before,
        "a refused request went upstream"
    );
}

/// A caller's own `x-sluice-cluster` is dropped on requests model-router does not route, too:
/// otherwise a caller would pick the cluster of `GET /v1/models` or `POST /v1/moderations`.
#[test]
fn a_callers_cluster_header_is_dropped_on_requests_the_router_does_not_route() {
    // A second provider behind cluster `elsewhere`: where the caller would like to go.
    let elsewhere = MockProvider::start().unwrap();
    let gw = Gateway::start_with(&ChainOptions {
        extra_clusters: vec![("elsewhere".to_owned(), elsewhere.port)],
        ..ChainOptions::default()
    })
    .unwrap();
    let pick = ("x-sluice-cluster", "elsewhere");
    let resp = http::get_with(&gw.url("/v1/models"), &[DEMO_AUTH, pick]).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let resp = http::post(
        &gw.url("/v1/moderations"),
        br#"{"input":"hello"}"#,
        &[DEMO_AUTH, pick],
    )
    .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let got = |m: &MockProvider| m.last_request().unwrap()["count"].as_u64().unwrap_or(0);
    assert_eq!(got(&elsewhere), 0, "the caller picked the cluster");
    assert_eq!(got(&gw.mock), 2);
    assert_eq!(gw.mock.last_request().unwrap()["path"], "/v1/moderations");
    assert_eq!(gw.mock.last_header("x-sluice-cluster").unwrap(), None);
}
