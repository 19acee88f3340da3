//! Each filter alone (envoy/alone/, the shipped chain with one filter's entries) started for
//! real in front of the mock provider, one request showing what the filter does there.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use serde_json::{json, Value};
use sluice_harness::{http, ChainOptions, Gateway, DEMO_AUTH};

const CHAT: &str = "/v1/chat/completions";

fn start(file: &str) -> Gateway {
    Gateway::start_with(&ChainOptions {
        template: Some(format!("envoy/alone/{file}")),
        ..ChainOptions::default()
    })
    .unwrap_or_else(|e| panic!("envoy/alone/{file}: {e}"))
}

fn chat(gw: &Gateway, body: &Value, headers: &[(&str, &str)]) -> http::Response {
    http::post(&gw.url(CHAT), body.to_string().as_bytes(), headers).unwrap()
}

/// The body the mock provider received last, as JSON.
fn upstream_body(gw: &Gateway) -> Value {
    let last = gw.mock.last_request().unwrap();
    serde_json::from_str(last["body"].as_str().unwrap()).unwrap()
}

#[test]
fn token_count_alone_counts_the_prompt() {
    let gw = start("token-count.yaml");
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello, Sluice!"}]});
    // No key-injection: the caller's own credential goes upstream as sent.
    let resp = chat(&gw, &body, &[("authorization", "Bearer sk-callers-own")]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let usage = &resp.json().unwrap()["usage"];
    let prompt = usage["prompt_tokens"].to_string();
    assert_eq!(resp.header("x-sluice-prompt-tokens"), Some(prompt.as_str()));
    // The answer carries the provider's own usage; the count sent upstream was the local one.
    assert_eq!(resp.header("x-sluice-token-source"), Some("provider"));
    assert_eq!(
        resp.header("x-sluice-completion-tokens"),
        Some(usage["completion_tokens"].to_string().as_str())
    );
    assert_eq!(
        gw.mock.last_header("x-sluice-prompt-tokens").unwrap(),
        Some(prompt.clone())
    );
    assert_eq!(
        gw.mock
            .last_header("x-sluice-token-source")
            .unwrap()
            .as_deref(),
        Some("local")
    );
    assert_eq!(
        gw.mock.last_header("authorization").unwrap().as_deref(),
        Some("Bearer sk-callers-own")
    );
    let line = gw.access_line(1);
    assert_eq!(line["prompt_tokens"], prompt);
    assert_eq!(line["model"], "gpt-4o-mini");
}

#[test]
fn key_injection_alone_needs_a_gateway_key_and_injects_the_provider_key() {
    let gw = start("key-injection.yaml");
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let resp = chat(&gw, &body, &[]);
    assert_eq!(resp.status, 401, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let v = resp.json().unwrap();
    assert_eq!(v["error"]["code"], "missing_api_key");
    assert_eq!(v["error"]["type"], "authentication_error");
    let resp = chat(&gw, &body, &[DEMO_AUTH]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let last = gw.mock.last_request().unwrap();
    // The refused request never reached the provider.
    assert_eq!(last["count"], 1, "{last}");
    let key = gw.mock.last_header("authorization").unwrap().unwrap();
    assert!(
        key == "Bearer sk-mock-upstream-1" || key == "Bearer sk-mock-upstream-2",
        "{key}"
    );
    let line = gw.access_line(2);
    assert_eq!(line["consumer"], "demo");
}

#[test]
fn model_router_alone_translates_for_an_anthropic_target() {
    let gw = start("model-router.yaml");
    let prompt = "one two 🦀 three";
    let body =
        json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": prompt}]});
    let resp = chat(&gw, &body, &[]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    // The provider got an Anthropic Messages request ...
    let last = gw.mock.last_request().unwrap();
    assert_eq!(last["path"], "/v1/messages");
    let sent = upstream_body(&gw);
    assert_eq!(sent["max_tokens"], 4096);
    assert_eq!(sent["messages"][0]["content"][0]["text"], prompt);
    // ... and the caller an OpenAI chat completion.
    let v = resp.json().unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "claude-sonnet-4-5");
    assert_eq!(v["choices"][0]["message"]["content"], prompt);
    let line = gw.access_line(1);
    assert_eq!(line["path"], CHAT);
    assert_eq!(line["upstream_path"], "/v1/messages");
    assert_eq!(line["cluster"], "mock");
}

#[test]
fn prompt_template_alone_expands_summarize() {
    let gw = start("prompt-template.yaml");
    let text = "Envoy runs the filters in order; each one may pause the request.";
    let body = json!({"template": "summarize", "variables": {"text": text}});
    let resp = chat(&gw, &body, &[]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let sent = upstream_body(&gw);
    assert_eq!(sent["model"], "gpt-4o-mini");
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "system", "content": "Summarize the text the user sends in at most three sentences."},
            {"role": "user", "content": text}
        ])
    );
    assert_eq!(sent["temperature"], 0.2);
    assert_eq!(sent["max_tokens"], 300);
    assert!(sent.get("template").is_none(), "{sent}");
    // The mock echoes the last user message.
    assert_eq!(
        resp.json().unwrap()["choices"][0]["message"]["content"],
        text
    );
}

#[test]
fn prompt_template_alone_records_the_rest_path_over_a_callers_own() {
    let gw = start("prompt-template.yaml");
    // A caller's `x-envoy-original-path` (the path the access log shows as the caller's):
    // alone, no key-injection runs first to drop it; the path prompt-template records for the
    // REST call it rewrote replaces it, upstream and in the log.
    let forged = ("x-envoy-original-path", "/not/what/i/called");
    let resp = http::post(
        &gw.url("/apis/sentiment"),
        json!({"text": "What a fine day."}).to_string().as_bytes(),
        &[forged],
    )
    .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let last = gw.mock.last_request().unwrap();
    assert_eq!(last["path"], CHAT);
    assert_eq!(
        gw.mock.last_header(forged.0).unwrap().as_deref(),
        Some("/apis/sentiment")
    );
    let line = gw.access_line(1);
    assert_eq!(line["path"], "/apis/sentiment");
    assert_eq!(line["template"], "sentiment@1");
}

#[test]
fn moderation_alone_masks_an_email_upstream_and_restores_it() {
    let gw = start("moderation.yaml");
    let prompt = "Write to jane.doe@example.com about the order.";
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]});
    let resp = chat(&gw, &body, &[]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        upstream_body(&gw)["messages"][0]["content"],
        "Write to [EMAIL_1] about the order."
    );
    assert_eq!(
        resp.json().unwrap()["choices"][0]["message"]["content"],
        prompt
    );
    assert_eq!(gw.access_line(1)["moderation"], "masked");
}
