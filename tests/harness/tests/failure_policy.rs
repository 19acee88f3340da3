//! What a caller gets when a filter's VM has crashed, under each of Envoy's `failure_policy`
//! values for a Wasm filter (the README's own-Envoy guide): envoy/own-envoy.yaml with its
//! filter replaced by one that traps on every request (the floor filter's `trap` mode).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;

use serde_json::Value;
use sluice_harness::envoy::{render_template, template_vars, Envoy};
use sluice_harness::http;
use sluice_harness::mock::MockProvider;

const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;

/// own-envoy.yaml with the trapping filter and `policy` (None: Envoy's default).
fn gateway(mock: &MockProvider, policy: Option<&str>) -> Envoy {
    Envoy::start_config(|port, admin| {
        let config = render_template(
            "envoy/own-envoy.yaml",
            &template_vars(port, admin, mock.port),
            &BTreeMap::new(),
        )?;
        let filter = r#"value: '{"default_encoding":"o200k_base","consumer_header":"x-consumer-id"}'"#;
        assert!(config.contains(filter) && config.contains("/token_count.wasm"));
        let mut config = config
            .replace(filter, "value: 'trap'")
            .replace("/token_count.wasm", "/floor_filter.wasm");
        if let Some(policy) = policy {
            config = config.replacen(
                "allow_on_headers_stop_iteration: true",
                &format!("allow_on_headers_stop_iteration: true\n                failure_policy: {policy}"),
                1,
            );
            assert!(config.contains(policy));
        }
        Ok(config)
    })
    .unwrap()
}

fn chat(envoy: &Envoy, path: &str) -> http::Response {
    http::post(
        &envoy.url(path),
        CHAT.as_bytes(),
        &[("content-type", "application/json")],
    )
    .unwrap()
}

fn mock_requests(mock: &MockProvider) -> u64 {
    mock.last_request().unwrap()["count"].as_u64().unwrap_or(0)
}

#[test]
fn a_crashed_filter_fails_closed_with_json_503_by_default_and_passes_requests_only_under_fail_open()
{
    let mock = MockProvider::start().unwrap();
    for policy in [None, Some("FAIL_CLOSED"), Some("FAIL_RELOAD")] {
        let envoy = gateway(&mock, policy);
        let before = mock_requests(&mock);
        for path in [
            "/v1/chat/completions",
            "/v1/chat/completions",
            "/v1/messages",
        ] {
            let a = chat(&envoy, path);
            assert_eq!(a.status, 503, "{policy:?} {path}: {}", a.text());
            assert!(
                a.header("content-type")
                    .is_some_and(|t| t.starts_with("application/json")),
                "{policy:?}: {:?}",
                a.header("content-type")
            );
            let body: Value = serde_json::from_slice(&a.body).unwrap();
            if path == "/v1/messages" {
                assert_eq!(body["type"], "error", "{body}");
            } else {
                assert!(body["error"]["message"].is_string(), "{body}");
            }
        }
        assert_eq!(
            mock_requests(&mock),
            before,
            "{policy:?}: nothing reached the provider"
        );
    }
    // FAIL_OPEN: the request that crashes a worker's VM still gets the 503; after that the
    // worker's requests go on as if the filter were not there (unchecked, uncounted).
    let envoy = gateway(&mock, Some("FAIL_OPEN"));
    let before = mock_requests(&mock);
    let statuses: Vec<u16> = (0..6)
        .map(|_| chat(&envoy, "/v1/chat/completions").status)
        .collect();
    let failed = statuses.iter().filter(|s| **s == 503).count();
    let passed = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(statuses.first(), Some(&503), "{statuses:?}");
    assert!(
        failed <= 2,
        "one crash per worker (--concurrency 2): {statuses:?}"
    );
    assert_eq!(failed + passed, statuses.len(), "{statuses:?}");
    assert_eq!(mock_requests(&mock), before + passed as u64);
}
