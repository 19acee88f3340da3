//! key-injection through a real Envoy, the mock provider showing what reached it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluice_core::key_injection::key_digest_hex;
use sluice_harness::envoy::{template_vars, Envoy};
use sluice_harness::{http, paths, python, render, ChainOptions, Gateway, MockProvider};

const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
const UPSTREAM_KEYS: [&str; 2] = ["sk-mock-upstream-1", "sk-mock-upstream-2"];

fn consumers_config() -> String {
    json!({
        "role": "authenticate",
        "consumers": [
            {"id": "alice", "tenant": "acme", "key_sha256": key_digest_hex("sk-alice")},
            {"id": "bob", "key_sha256": key_digest_hex("sk-bob"), "enabled": false},
            {"id": "carol", "key_sha256": key_digest_hex("sk-carol"), "expires_at": "2020-01-01T00:00:00Z"},
            {"id": "dave", "key_sha256": key_digest_hex("sk-dave"), "models": ["gpt-4o*"], "paths": ["/v1/chat/*"]}
        ]
    })
    .to_string()
}

fn gateway_with(plugin: &str, json: String, env: Vec<(String, String)>) -> Gateway {
    let mut plugin_configs = BTreeMap::new();
    plugin_configs.insert(plugin.to_owned(), json);
    Gateway::start_with(&ChainOptions {
        plugin_configs,
        env,
        ..ChainOptions::default()
    })
    .unwrap()
}

fn consumers_gateway() -> Gateway {
    gateway_with("key_injection_authenticate", consumers_config(), Vec::new())
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

fn chat(gw: &Gateway, headers: &[(&str, &str)]) -> http::Response {
    http::post(&gw.url("/v1/chat/completions"), CHAT.as_bytes(), headers).unwrap()
}

/// The header values the mock received on its last request.
fn upstream_header(gw: &Gateway, name: &str) -> Option<String> {
    gw.mock.last_header(name).unwrap()
}

fn upstream_count(gw: &Gateway) -> u64 {
    gw.mock.last_request().unwrap()["count"].as_u64().unwrap()
}

#[test]
fn each_sdk_header_style_authenticates_and_only_the_provider_key_goes_upstream() {
    let gw = consumers_gateway();
    let out = python::run_client("sdk_keys.py", &[&gw.url(""), "sk-alice"]).unwrap();
    for sdk in ["openai", "azure", "anthropic"] {
        assert_eq!(out[sdk]["text"], "key check", "{sdk}: {out}");
    }
    // The last request was the Anthropic SDK's: its x-api-key is gone, the provider key is in.
    let last = gw.mock.last_request().unwrap();
    assert_eq!(last["path"], "/v1/messages");
    let headers = last["headers"].to_string();
    assert!(
        !headers.contains("sk-alice"),
        "caller key leaked upstream: {headers}"
    );
    assert!(upstream_header(&gw, "x-api-key").is_none());
    let auth = upstream_header(&gw, "authorization").unwrap();
    assert!(UPSTREAM_KEYS.iter().any(|k| auth == bearer(k)), "{auth}");

    for (name, value) in [
        ("authorization", bearer("sk-alice")),
        ("api-key", "sk-alice".to_owned()),
        ("x-api-key", "sk-alice".to_owned()),
    ] {
        let resp = chat(&gw, &[(name, &value)]);
        assert_eq!(resp.status, 200, "{name}: {}", resp.text());
        let headers = gw.mock.last_request().unwrap()["headers"].to_string();
        assert!(!headers.contains("sk-alice"), "{name}: {headers}");
        assert!(upstream_header(&gw, "api-key").is_none());
    }
}

#[test]
fn bad_keys_are_refused_before_anything_goes_upstream() {
    let gw = consumers_gateway();
    chat(&gw, &[("authorization", &bearer("sk-alice"))]);
    let before = upstream_count(&gw);
    let cases: [(Option<&str>, &str); 4] = [
        (None, "missing_api_key"),
        (Some("sk-mallory"), "invalid_api_key"),
        (Some("sk-bob"), "api_key_disabled"),
        (Some("sk-carol"), "api_key_expired"),
    ];
    for (key, code) in cases {
        let value = key.map(bearer);
        let headers: Vec<(&str, &str)> = value
            .iter()
            .map(|v| ("authorization", v.as_str()))
            .collect();
        let resp = chat(&gw, &headers);
        assert_eq!(resp.status, 401, "{key:?}: {}", resp.text());
        let v = resp.json().unwrap();
        assert_eq!(v["error"]["code"], code);
        assert_eq!(v["error"]["type"], "authentication_error");
        if let Some(k) = key {
            assert!(!resp.text().contains(k), "key echoed: {}", resp.text());
        }
    }
    // Anthropic callers get Anthropic's error shape.
    let resp = http::post(
        &gw.url("/v1/messages"),
        br#"{"model":"claude-x","max_tokens":5,"messages":[]}"#,
        &[("x-api-key", "sk-mallory")],
    )
    .unwrap();
    assert_eq!(resp.status, 401);
    assert_eq!(resp.json().unwrap()["type"], "error");
    assert_eq!(
        resp.json().unwrap()["error"]["type"],
        "authentication_error"
    );
    assert_eq!(
        upstream_count(&gw),
        before,
        "a refused request reached the provider"
    );
}

#[test]
fn models_and_paths_outside_the_consumer_grant_get_403() {
    let gw = consumers_gateway();
    let dave = bearer("sk-dave");
    let auth = [("authorization", dave.as_str())];
    let ok = chat(&gw, &auth);
    assert_eq!(ok.status, 200, "{}", ok.text());
    let before = upstream_count(&gw);

    let body = r#"{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}]}"#;
    let resp = http::post(&gw.url("/v1/chat/completions"), body.as_bytes(), &auth).unwrap();
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert_eq!(resp.json().unwrap()["error"]["code"], "model_not_allowed");
    assert_eq!(resp.json().unwrap()["error"]["param"], "model");

    let mut with_override = auth.to_vec();
    with_override.push(("x-sluice-model", "o3"));
    assert_eq!(chat(&gw, &with_override).status, 403);

    let resp = http::post(
        &gw.url("/v1/embeddings"),
        br#"{"model":"gpt-4o","input":"x"}"#,
        &auth,
    )
    .unwrap();
    assert_eq!(resp.status, 403);
    assert_eq!(resp.json().unwrap()["error"]["code"], "path_not_allowed");

    let resp = http::post(&gw.url("/v1/chat/completions"), b"{not json", &auth).unwrap();
    assert_eq!(resp.status, 400);
    assert_eq!(upstream_count(&gw), before);
}

#[test]
fn provider_keys_rotate_and_a_429_rests_the_key() {
    let gw = Gateway::start().unwrap();
    let demo = bearer(sluice_harness::DEMO_KEY);
    let auth = [("authorization", demo.as_str())];
    let mut seen = BTreeMap::new();
    for _ in 0..10 {
        assert_eq!(chat(&gw, &auth).status, 200);
        *seen
            .entry(upstream_header(&gw, "authorization").unwrap())
            .or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2, "both keys used round-robin: {seen:?}");

    // The provider says 429 to one key: that key rests (retry-after 30 s) on every worker.
    let resp = chat(
        &gw,
        &[
            auth[0],
            ("x-mock-status", "429"),
            ("x-mock-retry-after", "30"),
        ],
    );
    assert_eq!(resp.status, 429);
    let rested = upstream_header(&gw, "authorization").unwrap();
    // The worker that saw the 429 skips the key at once; the others within a tick (1 s).
    std::thread::sleep(Duration::from_millis(1200));
    for _ in 0..10 {
        assert_eq!(chat(&gw, &auth).status, 200);
        let used = upstream_header(&gw, "authorization").unwrap();
        assert_ne!(used, rested, "a resting key was used");
    }
}

#[test]
fn secret_from_the_vm_environment() {
    let inject = json!({"role": "inject", "providers": {"mock": {
        "clusters": ["mock"], "header": "authorization", "value": "Bearer {key}",
        "keys": [{"env": "SLUICE_MOCK_PROVIDER_KEY"}]}}});
    let gw = gateway_with(
        "key_injection_inject",
        inject.to_string(),
        vec![("SLUICE_MOCK_PROVIDER_KEY".into(), "sk-from-env".into())],
    );
    let demo = bearer(sluice_harness::DEMO_KEY);
    assert_eq!(chat(&gw, &[("authorization", &demo)]).status, 200);
    assert_eq!(
        upstream_header(&gw, "authorization").unwrap(),
        "Bearer sk-from-env"
    );
}

#[test]
fn an_upstream_error_echoing_the_provider_key_is_scrubbed() {
    let gw = Gateway::start().unwrap();
    let demo = bearer(sluice_harness::DEMO_KEY);
    let echo = r#"{"error":{"message":"Incorrect API key provided: sk-mock-upstream-1 / sk-mock-upstream-2","type":"invalid_request_error","code":"invalid_api_key"}}"#;
    let resp = chat(
        &gw,
        &[
            ("authorization", &demo),
            ("x-mock-status", "401"),
            ("x-mock-error-body", echo),
        ],
    );
    assert_eq!(resp.status, 401);
    let text = resp.text();
    for key in UPSTREAM_KEYS {
        assert!(!text.contains(key), "provider key leaked: {text}");
    }
    assert_eq!(
        resp.json().unwrap()["error"]["message"],
        "Incorrect API key provided: [REDACTED] / [REDACTED]"
    );
}

/// An error answer too long to hold whole and scrub (over 4 MiB, its length declared or not)
/// keeps its status, and a short JSON error takes the place of its text: no key it holds
/// passes (held on, it overflowed Envoy's buffer: Envoy's own 500).
#[test]
fn an_upstream_error_too_long_to_scrub_is_replaced_not_passed() {
    let gw = Gateway::start().unwrap();
    let demo = bearer(sluice_harness::DEMO_KEY);
    let piece = format!("{} sk-mock-upstream-1 ", "x".repeat(32 << 10));
    for chunked in ["0", "1"] {
        let resp = chat(
            &gw,
            &[
                ("authorization", &demo),
                ("x-mock-status", "503"),
                ("x-mock-error-body", &piece),
                ("x-mock-reply-repeat", "140"),
                ("x-mock-chunked", chunked),
            ],
        );
        assert_eq!(resp.status, 503, "chunked {chunked}: {}", resp.text());
        let v = resp.json().unwrap();
        assert_eq!(v["error"]["code"], "upstream_error_too_large", "{v}");
        for key in UPSTREAM_KEYS {
            assert!(!resp.text().contains(key), "provider key leaked");
        }
    }
    // A short one is scrubbed whole as before.
    let resp = chat(
        &gw,
        &[
            ("authorization", &demo),
            ("x-mock-status", "503"),
            ("x-mock-error-body", &piece),
        ],
    );
    assert_eq!(resp.status, 503);
    assert!(resp.text().contains("[REDACTED]"));
}

/// A provider key echoed in an error answer's headers is scrubbed too, not only in its body.
#[test]
fn an_upstream_error_echoing_the_provider_key_in_a_header_is_scrubbed() {
    let gw = Gateway::start().unwrap();
    let demo = bearer(sluice_harness::DEMO_KEY);
    let echoed = UPSTREAM_KEYS.join(" ");
    let resp = chat(
        &gw,
        &[
            ("authorization", &demo),
            ("x-mock-status", "429"),
            ("x-mock-retry-after", &echoed),
        ],
    );
    assert_eq!(resp.status, 429);
    let retry_after = resp.header("retry-after").unwrap();
    assert_eq!(retry_after, "[REDACTED] [REDACTED]");
    for (name, value) in &resp.headers {
        for key in UPSTREAM_KEYS {
            assert!(
                !value.contains(key),
                "provider key leaked in {name}: {value}"
            );
        }
    }
}

fn stat(envoy: &Envoy, suffix: &str) -> u64 {
    let stats = http::get(&envoy.admin_url("/stats")).unwrap().text();
    stats
        .lines()
        .filter(|l| l.starts_with("extension_config_discovery.") && l.contains(suffix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn ecds_resource(version: &str, key_source: Value) -> String {
    let config = json!({"role": "inject", "providers": {"mock": {
        "clusters": ["mock"], "header": "authorization", "value": "Bearer {key}",
        "keys": [key_source]}}});
    let wasm = paths::wasm_dir().join("key_injection.wasm");
    format!(
        r#"version_info: "{version}"
resources:
- "@type": type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig
  name: sluice.key_injection.inject
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
    config:
      name: key_injection_inject
      root_id: key_injection
      vm_config:
        vm_id: key_injection_ecds
        runtime: envoy.wasm.runtime.v8
        code: {{ local: {{ filename: "{}" }} }}
      configuration:
        "@type": type.googleapis.com/google.protobuf.StringValue
        value: '{config}'
"#,
        wasm.display()
    )
}

/// Replaces the watched file atomically (write beside it, then rename), as Envoy expects.
fn publish(dir: &std::path::Path, text: &str) {
    let tmp = dir.join("inject.yaml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join("inject.yaml")).unwrap();
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_config_with_a_missing_secret_is_refused_and_the_previous_one_keeps_serving() {
    let mock = MockProvider::start().unwrap();
    let ecds = tempfile::tempdir().unwrap();
    publish(
        ecds.path(),
        &ecds_resource("1", json!({"value": "sk-ecds-one"})),
    );
    let template = std::fs::read_to_string(
        paths::repo().join("tests/harness/configs/key-injection-ecds.yaml"),
    )
    .unwrap();
    let dir = ecds.path().display().to_string();
    let envoy = Envoy::start_config(|port, admin| {
        let mut vars = template_vars(port, admin, mock.port);
        vars.insert("ECDS_DIR", dir.clone());
        render::render(&template, &vars)
    })
    .unwrap();
    let url = envoy.url("/v1/chat/completions");
    let demo = bearer(sluice_harness::DEMO_KEY);
    let auth = [("authorization", demo.as_str())];
    let send = || http::post(&url, CHAT.as_bytes(), &auth).unwrap();
    let upstream_auth = || mock.last_header("authorization").unwrap();
    assert_eq!(send().status, 200);
    assert_eq!(upstream_auth().as_deref(), Some("Bearer sk-ecds-one"));

    // Version 2 names an environment variable the VM does not have: refused, naming it.
    let rejected_before = stat(&envoy, "update_rejected") + stat(&envoy, "config_fail");
    publish(
        ecds.path(),
        &ecds_resource("2", json!({"env": "SLUICE_NOT_SET_ANYWHERE"})),
    );
    wait_for("the bad config to be rejected", || {
        stat(&envoy, "update_rejected") + stat(&envoy, "config_fail") > rejected_before
    });
    assert!(
        envoy
            .log()
            .contains("environment variable SLUICE_NOT_SET_ANYWHERE is not set"),
        "{}",
        envoy.log_tail(30)
    );
    for _ in 0..5 {
        assert_eq!(send().status, 200);
        assert_eq!(upstream_auth().as_deref(), Some("Bearer sk-ecds-one"));
    }

    // A good version 3 is taken.
    publish(
        ecds.path(),
        &ecds_resource("3", json!({"value": "sk-ecds-three"})),
    );
    wait_for("version 3 to serve", || {
        send().status == 200 && upstream_auth().as_deref() == Some("Bearer sk-ecds-three")
    });
}

/// A consumer whose models are restricted cannot reach another model through a template or a
/// REST endpoint that names it (its request names none when the authenticate role reads it):
/// the inject role checks the model the request is routed with, in the caller's dialect.
#[test]
fn a_template_cannot_take_a_restricted_consumer_to_another_model() {
    let mut plugin_configs = BTreeMap::new();
    plugin_configs.insert(
        "key_injection_authenticate".to_owned(),
        json!({"role": "authenticate", "consumers": [
            {"id": "alice", "key_sha256": key_digest_hex("sk-alice")},
            {"id": "erin", "key_sha256": key_digest_hex("sk-erin"), "models": ["gpt-4o-mini"]}
        ]})
        .to_string(),
    );
    let messages = json!([{"role": "user", "content": "{{text}}"}]);
    plugin_configs.insert(
        "prompt_template".to_owned(),
        json!({"templates": {"mini": {"model": "gpt-4o-mini", "messages": messages},
                             "big": {"model": "gpt-4o", "messages": messages}},
               "endpoints": [{"path": "/apis/big", "template": "big", "answer": "result"}]})
        .to_string(),
    );
    let gw = Gateway::start_with(&ChainOptions {
        plugin_configs,
        ..ChainOptions::default()
    })
    .unwrap();
    let erin = bearer("sk-erin");
    let alice = bearer("sk-alice");
    let templated =
        |template: &str| json!({"template": template, "variables": {"text": "hi"}}).to_string();
    let post = |path: &str, body: &str, key: &str| {
        http::post(&gw.url(path), body.as_bytes(), &[("authorization", key)]).unwrap()
    };

    let ok = post("/v1/chat/completions", &templated("mini"), &erin);
    assert_eq!(ok.status, 200, "{}", ok.text());
    let before = upstream_count(&gw);
    for (path, body) in [
        ("/v1/chat/completions", templated("big")),
        ("/apis/big", json!({"text": "hi"}).to_string()),
    ] {
        let resp = post(path, &body, &erin);
        assert_eq!(resp.status, 403, "{path}: {}", resp.text());
        let v = resp.json().unwrap();
        assert_eq!(v["error"]["code"], "model_not_allowed", "{v}");
        assert_eq!(v["error"]["param"], "model", "{v}");
    }
    // An Anthropic caller, routed to an OpenAI model (its path rewritten): Anthropic's form.
    let resp = post(
        "/v1/messages",
        &json!({"template": "big", "variables": {"text": "hi"}, "max_tokens": 5}).to_string(),
        &erin,
    );
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert_eq!(resp.json().unwrap()["type"], "error", "{}", resp.text());
    assert_eq!(upstream_count(&gw), before, "nothing went upstream");
    // A path where no template names a model: a body without one passes as before.
    let resp = post(
        "/v1/moderations",
        &json!({"input": "hi"}).to_string(),
        &erin,
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    // A consumer without restrictions uses any template.
    let resp = post("/v1/chat/completions", &templated("big"), &alice);
    assert_eq!(resp.status, 200, "{}", resp.text());
}
