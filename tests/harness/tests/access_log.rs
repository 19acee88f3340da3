//! The shipped access log tells the caller's path from the path sent upstream, and names an
//! upstream cluster only for a request that went upstream.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use serde_json::Value;
use sluice_harness::{http, Gateway, DEMO_AUTH};

#[test]
fn the_access_log_shows_the_callers_path_the_upstream_path_and_only_a_real_upstream() {
    let gw = Gateway::start().unwrap();
    let chat = br#"{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}]}"#;
    // Refused before upstream (no key), with a forged original path.
    let forged = ("x-envoy-original-path", "/admin/delete-everything");
    let resp = http::post(&gw.url("/v1/chat/completions"), chat, &[forged]).unwrap();
    assert_eq!(resp.status, 401);
    // An OpenAI caller of an Anthropic model: translated, sent to /v1/messages.
    let resp = http::post(&gw.url("/v1/chat/completions"), chat, &[DEMO_AUTH]).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    // A caller cannot write the path the log shows as theirs.
    let resp = http::get_with(
        &gw.url("/v1/models"),
        &[DEMO_AUTH, ("x-envoy-original-path", "/not/what/i/called")],
    )
    .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let log = gw.access_log_lines(3);
    let fields = |l: &Value| {
        (
            l["status"].as_u64().unwrap(),
            l["path"].as_str().unwrap().to_owned(),
            l["upstream_path"].as_str().unwrap_or("-").to_owned(),
            l["upstream_cluster"].as_str().unwrap_or("-").to_owned(),
        )
    };
    let s = |x: &str| x.to_owned();
    assert_eq!(
        fields(&log[0]),
        (
            401,
            s("/v1/chat/completions"),
            s("/v1/chat/completions"),
            s("-")
        )
    );
    assert_eq!(
        fields(&log[1]),
        (200, s("/v1/chat/completions"), s("/v1/messages"), s("mock"))
    );
    assert_eq!(
        fields(&log[2]),
        (200, s("/v1/models"), s("/v1/models"), s("mock"))
    );
}
