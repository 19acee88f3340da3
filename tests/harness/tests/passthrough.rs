//! The whole chain, loaded in a real Envoy, in front of the mock provider: nothing is lost on
//! the way. (Each filter is pass-through at this stage; these tests guard the chain itself.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use sluice_core::SseParser;
use sluice_harness::{http, python, Gateway, DEMO_AUTH, DEMO_KEY};

const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"Ünïcödé 🦀 says hello, world"}],"temperature":0.5}"#;
const CHAT_STREAM: &str = r#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Ünïcödé 🦀 says hello, world"}]}"#;
const MESSAGES_STREAM: &str = r#"{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Ünïcödé 🦀 says hello"}]}"#;

/// Same request straight to the mock and through Envoy: status, content type and body bytes.
fn assert_same_through_envoy(
    gw: &Gateway,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> http::Response {
    let direct = http::post(&gw.mock.url(path), body.as_bytes(), headers).unwrap();
    let mut with_key = headers.to_vec();
    with_key.push(DEMO_AUTH);
    let via = http::post(&gw.url(path), body.as_bytes(), &with_key).unwrap();
    assert_eq!(via.status, direct.status, "{}", via.text());
    assert_eq!(via.header("content-type"), direct.header("content-type"));
    assert_eq!(via.text(), direct.text());
    via
}

fn events(body: &[u8]) -> Vec<sluice_core::SseEvent> {
    let mut p = SseParser::new();
    let mut events = p.feed(body);
    events.extend(p.finish());
    events
}

#[test]
fn chat_json_and_request_body_pass_unchanged() {
    let gw = Gateway::start().unwrap();
    let via = assert_same_through_envoy(&gw, "/v1/chat/completions", CHAT, &[]);
    assert_eq!(via.status, 200);
    let v = via.json().unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Ünïcödé 🦀 says hello, world"
    );
    // The mock saw exactly the bytes the caller sent.
    let last = gw.mock.last_request().unwrap();
    assert_eq!(last["body"], CHAT);
    assert_eq!(last["path"], "/v1/chat/completions");
}

#[test]
fn chat_stream_keeps_every_event_in_order_with_done() {
    let gw = Gateway::start().unwrap();
    let via = assert_same_through_envoy(&gw, "/v1/chat/completions", CHAT_STREAM, &[]);
    assert_eq!(via.header("content-type"), Some("text/event-stream"));
    let evs = events(&via.body);
    assert!(evs.len() >= 5, "{}", via.text());
    assert!(evs.iter().all(|e| e.complete));
    assert!(evs.last().unwrap().is_done_marker(), "[DONE] kept");
    let text: String = evs
        .iter()
        .filter(|e| !e.is_done_marker())
        .filter_map(|e| serde_json::from_str::<serde_json::Value>(e.data.as_deref()?).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "Ünïcödé 🦀 says hello, world");
}

#[test]
fn stream_cut_at_odd_byte_boundaries_arrives_whole() {
    let gw = Gateway::start().unwrap();
    // 7-byte pieces cut events mid-field and mid-UTF-8 sequence on the wire.
    for chunk in ["1", "7", "13"] {
        let headers = [
            ("x-mock-chunk-bytes", chunk),
            ("x-mock-chunk-delay-ms", "1"),
        ];
        let via = assert_same_through_envoy(&gw, "/v1/chat/completions", CHAT_STREAM, &headers);
        assert!(events(&via.body).last().unwrap().is_done_marker());
        let via = assert_same_through_envoy(&gw, "/v1/messages", MESSAGES_STREAM, &headers);
        assert!(via
            .text()
            .ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
    }
}

#[test]
fn anthropic_messages_pass_unchanged() {
    let gw = Gateway::start().unwrap();
    let body = r#"{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}"#;
    let via = assert_same_through_envoy(&gw, "/v1/messages", body, &[]);
    assert_eq!(via.json().unwrap()["content"][0]["text"], "hi");
    let via = assert_same_through_envoy(&gw, "/v1/messages", MESSAGES_STREAM, &[]);
    let names: Vec<String> = events(&via.body)
        .iter()
        .filter_map(|e| e.event.clone())
        .collect();
    assert_eq!(names.first().map(String::as_str), Some("message_start"));
    assert_eq!(names.last().map(String::as_str), Some("message_stop"));
}

#[test]
fn upstream_errors_pass_with_status_and_headers() {
    let gw = Gateway::start().unwrap();
    for status in ["429", "500", "503"] {
        let via = assert_same_through_envoy(
            &gw,
            "/v1/chat/completions",
            CHAT,
            &[("x-mock-status", status)],
        );
        assert_eq!(via.status.to_string(), status);
        if status != "500" {
            assert_eq!(via.header("retry-after"), Some("1"));
        }
    }
}

#[test]
fn openai_sdk_sees_the_same_through_envoy() {
    let gw = Gateway::start().unwrap();
    let prompt = "Ünïcödé 🦀 says hello, world";
    let direct = python::run_client(
        "openai_chat.py",
        &[&gw.mock.url("/v1"), "gpt-4o-mini", prompt],
    )
    .unwrap();
    let via = python::run_client(
        "openai_chat.py",
        &[&gw.url("/v1"), "gpt-4o-mini", prompt, "--api-key", DEMO_KEY],
    )
    .unwrap();
    assert!(via.get("error").is_none(), "{via}");
    assert_eq!(via, direct);
    assert_eq!(via["plain"]["choices"][0]["message"]["content"], prompt);
    let chunks = via["stream"].as_array().unwrap();
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(streamed, prompt);
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage, &via["plain"]["usage"], "final usage chunk arrives");
}
