//! model-router through a real Envoy: the route Envoy takes follows the body's model.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluice_core::key_injection::key_digest_hex;
use sluice_harness::{http, stream, ChainOptions, Gateway, MockProvider, DEMO_AUTH};

/// Puts a copy of key-injection's inject entry before model-router. Without a routing header
/// it asks Envoy for the route's cluster (`xds.cluster_name`), so Envoy has chosen and cached a
/// route before model-router sets `x-sluice-cluster`: only clearing the route cache makes the
/// new header count.
fn route_resolved_early(config: String) -> String {
    let start = config
        .find("          - name: sluice.key_injection.inject\n")
        .unwrap();
    let end = config[start..]
        .find("          - name: envoy.filters.http.router")
        .unwrap()
        + start;
    let copy =
        config[start..end].replace("sluice.key_injection.inject", "sluice.key_injection.early");
    config.replacen(
        "          - name: sluice.model_router\n",
        &format!("{copy}          - name: sluice.model_router\n"),
        1,
    )
}

/// The chain with a second mock provider behind cluster `mock_b`, and these routes.
fn gateway(routes: Value) -> (Gateway, MockProvider) {
    let mut plugin_configs = BTreeMap::new();
    plugin_configs.insert("model_router".to_owned(), routes.to_string());
    gateway_with(plugin_configs)
}

/// The same with these plugin configs (by plugin name).
fn gateway_with(plugin_configs: BTreeMap<String, String>) -> (Gateway, MockProvider) {
    let second = MockProvider::start().unwrap();
    let gw = Gateway::start_with(&ChainOptions {
        plugin_configs,
        extra_clusters: vec![("mock_b".to_owned(), second.port)],
        edit: Some(route_resolved_early),
        ..ChainOptions::default()
    })
    .unwrap();
    (gw, second)
}

fn routes() -> Value {
    json!({"routes": [
        {"models": ["gpt-4o"], "targets": [{"provider": "mock", "cluster": "mock_b"}]},
        {"models": ["fast"], "targets": [
            {"provider": "mock", "cluster": "mock", "model": "gpt-4o-mini", "weight": 3},
            {"provider": "mock", "cluster": "mock_b", "model": "gpt-4.1-nano", "weight": 1}]},
        {"models": ["azure-*"], "targets": [{"provider": "mock", "kind": "azure_openai",
            "cluster": "mock_b", "model": "my-deployment", "api_version": "2024-10-21"}]},
        {"models": ["gpt-*"], "targets": [{"provider": "mock", "cluster": "mock"}]},
        {"models": ["claude-?-*"], "targets": [{"provider": "mock", "kind": "anthropic", "cluster": "mock_b"}]}
    ]})
}

fn chat(gw: &Gateway, model: &str, extra: &[(&str, &str)]) -> http::Response {
    let body = json!({"model": model, "messages": [{"role": "user", "content": "route me"}]});
    let mut headers = vec![DEMO_AUTH];
    headers.extend_from_slice(extra);
    http::post(
        &gw.url("/v1/chat/completions"),
        body.to_string().as_bytes(),
        &headers,
    )
    .unwrap()
}

fn count(mock: &MockProvider) -> u64 {
    mock.last_request().unwrap()["count"].as_u64().unwrap_or(0)
}

fn upstream_model(mock: &MockProvider) -> String {
    let body = mock.last_request().unwrap()["body"]
        .as_str()
        .unwrap()
        .to_owned();
    serde_json::from_str::<Value>(&body).unwrap()["model"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn exact_prefix_and_glob_rules_pick_the_cluster_envoy_uses() {
    let (gw, b) = gateway(routes());
    // Exact: gpt-4o goes to the second mock (the route cache was cleared after the header).
    let before = (count(&gw.mock), count(&b));
    assert_eq!(chat(&gw, "gpt-4o", &[]).status, 200);
    assert_eq!((count(&gw.mock), count(&b)), (before.0, before.1 + 1));
    // Prefix: gpt-4o-mini is not the exact rule's, it falls to gpt-*.
    assert_eq!(chat(&gw, "gpt-4o-mini", &[]).status, 200);
    assert_eq!(count(&gw.mock), before.0 + 1);
    // Glob: claude-3-haiku matches claude-?-* (an Anthropic target: Anthropic callers only).
    let body = json!({"model": "claude-3-haiku", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]});
    let resp = http::post(
        &gw.url("/v1/messages"),
        body.to_string().as_bytes(),
        &[DEMO_AUTH],
    )
    .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(count(&b), before.1 + 2);
    // The access log records the decision and the cluster Envoy really used.
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        let lines = gw.access_log();
        if lines.len() >= 3 {
            break lines[0].clone();
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(line["cluster"], "mock_b");
    assert_eq!(line["upstream_cluster"], "mock_b");
    assert_eq!(line["provider"], "mock");
    assert_eq!(line["upstream_model"], "gpt-4o");
}

#[test]
fn aliases_weights_and_the_override_header() {
    let (gw, b) = gateway(routes());
    let mut models = BTreeMap::new();
    for _ in 0..80 {
        let before_b = count(&b);
        assert_eq!(chat(&gw, "fast", &[]).status, 200);
        let model = if count(&b) > before_b {
            upstream_model(&b)
        } else {
            upstream_model(&gw.mock)
        };
        *models.entry(model).or_insert(0u32) += 1;
    }
    // 3:1 split (each worker keeps its own turn, so allow some slack).
    let mini = models.get("gpt-4o-mini").copied().unwrap_or(0);
    let nano = models.get("gpt-4.1-nano").copied().unwrap_or(0);
    assert_eq!(mini + nano, 80, "{models:?}");
    assert!((50..=70).contains(&mini), "{models:?}");
    // The caller's x-sluice-model overrides the body's model; the header does not go upstream.
    assert_eq!(
        chat(&gw, "gpt-4o-mini", &[("x-sluice-model", "gpt-4o")]).status,
        200
    );
    let last = b.last_request().unwrap();
    assert_eq!(upstream_model(&b), "gpt-4o");
    assert!(!last["headers"].to_string().contains("x-sluice-model"));
    // A caller cannot pick the cluster itself.
    let before = count(&b);
    assert_eq!(
        chat(&gw, "gpt-4o-mini", &[("x-sluice-cluster", "mock_b")]).status,
        200
    );
    assert_eq!(count(&b), before);
}

#[test]
fn azure_targets_get_the_deployment_path() {
    let (gw, b) = gateway(routes());
    assert_eq!(chat(&gw, "azure-gpt", &[]).status, 200);
    let last = b.last_request().unwrap();
    assert_eq!(
        last["path"],
        "/openai/deployments/my-deployment/chat/completions?api-version=2024-10-21"
    );
}

#[test]
fn unknown_and_missing_models_are_refused_before_upstream() {
    let (gw, b) = gateway(routes());
    let before = (count(&gw.mock), count(&b));
    let resp = chat(&gw, "llama-3", &[]);
    assert_eq!(resp.status, 404, "{}", resp.text());
    let v = resp.json().unwrap();
    assert_eq!(v["error"]["code"], "model_not_found");
    assert_eq!(v["error"]["param"], "model");
    let resp = http::post(
        &gw.url("/v1/chat/completions"),
        br#"{"messages":[{"role":"user","content":"x"}]}"#,
        &[DEMO_AUTH],
    )
    .unwrap();
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json().unwrap()["error"]["code"], "missing_model");
    // Anthropic callers get Anthropic's error shape.
    let resp = http::post(
        &gw.url("/v1/messages"),
        br#"{"model":"nope","max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#,
        &[DEMO_AUTH],
    )
    .unwrap();
    assert_eq!(resp.status, 404);
    assert_eq!(resp.json().unwrap()["error"]["type"], "not_found_error");
    assert_eq!((count(&gw.mock), count(&b)), before);
}

/// Runs an official-SDK client (`tests/clients/<script>`) against the gateway at `base` with the
/// demo key; returns its output (which must hold no error), and the path and JSON body the
/// provider received.
fn sdk_call(
    gw: &Gateway,
    script: &str,
    base: &str,
    model: &str,
    prompt: &str,
) -> (Value, String, Value) {
    let out = sluice_harness::python::run_client(
        script,
        &[
            &gw.url(base),
            model,
            prompt,
            "--api-key",
            sluice_harness::DEMO_KEY,
        ],
    )
    .unwrap();
    assert!(out.get("error").is_none(), "{out}");
    let last = gw.mock.last_request().unwrap();
    let sent: Value = serde_json::from_str(last["body"].as_str().unwrap()).unwrap();
    (out, last["path"].as_str().unwrap().to_owned(), sent)
}

/// The shipped chain: claude-* goes to the mock's Anthropic endpoint through translation.
#[test]
fn openai_sdk_talks_to_an_anthropic_target_plain_and_streaming() {
    let gw = Gateway::start().unwrap();
    let prompt = "Ünïcödé 🦀 translated, both ways";
    let (out, path, sent) = sdk_call(&gw, "openai_chat.py", "/v1", "claude-sonnet-4-5", prompt);
    // What reached the provider was an Anthropic Messages request.
    assert_eq!(path, "/v1/messages");
    assert_eq!(sent["max_tokens"], 4096);
    assert_eq!(sent["messages"][0]["content"][0]["text"], prompt);
    // The SDK got OpenAI objects back.
    let plain = &out["plain"];
    assert_eq!(plain["object"], "chat.completion");
    assert_eq!(plain["model"], "claude-sonnet-4-5");
    assert_eq!(plain["choices"][0]["message"]["content"], prompt);
    assert_eq!(plain["choices"][0]["finish_reason"], "stop");
    assert!(plain["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    let chunks = out["stream"].as_array().unwrap();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, prompt);
    let last_chunk = chunks.last().unwrap();
    assert_eq!(
        last_chunk["usage"]["completion_tokens"],
        plain["usage"]["completion_tokens"]
    );
}

#[test]
fn a_translated_stream_split_at_odd_bytes_arrives_whole_and_errors_keep_their_status() {
    let gw = Gateway::start().unwrap();
    let body = json!({"model": "claude-sonnet-4-5", "stream": true,
                      "messages": [{"role": "user", "content": "one two 🦀 three"}]});
    for chunk in ["1", "7", "13"] {
        let resp = http::post(
            &gw.url("/v1/chat/completions"),
            body.to_string().as_bytes(),
            &[
                DEMO_AUTH,
                ("x-mock-chunk-bytes", chunk),
                ("x-mock-chunk-delay-ms", "1"),
            ],
        )
        .unwrap();
        assert_eq!(resp.status, 200);
        let text = resp.text();
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        let mut parser = sluice_core::SseParser::new();
        let streamed: String = parser
            .feed(&resp.body)
            .iter()
            .filter_map(|e| e.data.as_deref())
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str::<Value>(d).unwrap())
            .filter_map(|v| {
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(streamed, "one two 🦀 three", "chunk {chunk}");
    }
    let resp = http::post(
        &gw.url("/v1/chat/completions"),
        body.to_string().as_bytes(),
        &[DEMO_AUTH, ("x-mock-status", "429")],
    )
    .unwrap();
    assert_eq!(resp.status, 429);
    let v = resp.json().unwrap();
    // Anthropic's rate_limit_error, said as OpenAI says it (the caller's SDK reads these).
    assert_eq!(v["error"]["type"], "requests");
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    assert_eq!(resp.header("retry-after"), Some("1"));
}

/// The shipped chain: an Anthropic caller (the official SDK) asking for gpt-* is served by the
/// mock's OpenAI endpoint through translation.
#[test]
fn anthropic_sdk_talks_to_an_openai_target_plain_and_streaming() {
    let gw = Gateway::start().unwrap();
    let prompt = "Ünïcödé 🦀 the other way";
    let (out, path, sent) = sdk_call(&gw, "anthropic_chat.py", "", "gpt-4o-mini", prompt);
    assert_eq!(path, "/v1/chat/completions");
    assert_eq!(sent["messages"][0]["content"], prompt);
    assert_eq!(sent["stream_options"]["include_usage"], true);
    let plain = &out["plain"];
    assert_eq!(plain["type"], "message");
    assert_eq!(plain["model"], "gpt-4o-mini");
    assert_eq!(plain["content"][0]["text"], prompt);
    assert_eq!(plain["stop_reason"], "end_turn");
    assert!(plain["usage"]["input_tokens"].as_u64().unwrap() > 0);
    let final_message = &out["stream"]["final"];
    assert_eq!(final_message["content"][0]["text"], prompt);
    assert_eq!(
        final_message["usage"]["output_tokens"],
        plain["usage"]["output_tokens"]
    );
    let events: Vec<&str> = out["stream"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(events.first(), Some(&"message_start"));
    assert_eq!(events.last(), Some(&"message_stop"));
    // Errors come back in Anthropic's shape with their status.
    let resp = http::post(
        &gw.url("/v1/messages"),
        json!({"model": "gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}).to_string().as_bytes(),
        &[DEMO_AUTH, ("x-mock-status", "503")],
    )
    .unwrap();
    assert_eq!(resp.status, 503);
    assert_eq!(resp.json().unwrap()["error"]["type"], "overloaded_error");
}

fn fallback_gateway() -> (Gateway, MockProvider) {
    fallback_gateway_with(None)
}

fn fallback_gateway_with(edit: Option<fn(String) -> String>) -> (Gateway, MockProvider) {
    fallback_gateway_configs(edit, BTreeMap::new())
}

/// The fallback routes: `fb-*` falls back to an Anthropic target on `mock_b`, `dead-*` to a
/// cluster nothing listens on.
fn fallback_routes() -> Value {
    json!({"routes": [
        {"models": ["fb-*"], "targets": [{"provider": "mock", "cluster": "mock", "model": "gpt-4o-mini"}],
         "fallback": [{"provider": "mock", "kind": "anthropic", "cluster": "mock_b", "model": "claude-fallback"}]},
        {"models": ["dead-*"], "targets": [{"provider": "mock", "cluster": "mock"}],
         "fallback": [{"provider": "mock", "cluster": "dead"}]}
    ]})
}

/// The fallback routes, with other filters' configs replaced by `plugin_configs`.
fn fallback_gateway_configs(
    edit: Option<fn(String) -> String>,
    plugin_configs: BTreeMap<String, String>,
) -> (Gateway, MockProvider) {
    fallback_gateway_full(edit, plugin_configs, &[])
}

/// The same with `mock_b` started with `mock_b_args`; a `model_router` config in
/// `plugin_configs` is kept (else the fallback routes).
fn fallback_gateway_full(
    edit: Option<fn(String) -> String>,
    mut plugin_configs: BTreeMap<String, String>,
    mock_b_args: &[&str],
) -> (Gateway, MockProvider) {
    let second = MockProvider::start_with_args(mock_b_args).unwrap();
    let dead = sluice_harness::envoy::free_port().unwrap(); // nothing listens there
    plugin_configs
        .entry("model_router".to_owned())
        .or_insert_with(|| fallback_routes().to_string());
    let gw = Gateway::start_with(&ChainOptions {
        plugin_configs,
        extra_clusters: vec![
            ("mock_b".to_owned(), second.port),
            ("dead".to_owned(), dead),
        ],
        edit,
        ..ChainOptions::default()
    })
    .unwrap();
    (gw, second)
}

#[test]
fn fallback_on_429_and_503_answers_from_the_next_target_in_the_callers_dialect() {
    let (gw, b) = fallback_gateway();
    // No failure: the first target answers.
    let resp = chat(&gw, "fb-1", &[]);
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("x-sluice-fallback"),
        Some("attempts=1; answered=first")
    );
    for status in ["429", "503"] {
        let resp = chat(&gw, "fb-1", &[("x-mock-status", status)]);
        assert_eq!(resp.status, 200, "{status}: {}", resp.text());
        assert_eq!(
            resp.header("x-sluice-fallback"),
            Some("attempts=2; answered=mock_b")
        );
        let v = resp.json().unwrap();
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["choices"][0]["message"]["content"], "route me");
        // The fallback was an Anthropic request, with its own model name.
        let last = b.last_request().unwrap();
        assert_eq!(last["path"], "/v1/messages");
        assert_eq!(upstream_model(&b), "claude-fallback");
    }
    // Streaming callers get the fallback's stream in their dialect, ending with [DONE].
    let body = json!({"model": "fb-1", "stream": true, "messages": [{"role": "user", "content": "route me"}]});
    let resp = http::post(
        &gw.url("/v1/chat/completions"),
        body.to_string().as_bytes(),
        &[DEMO_AUTH, ("x-mock-status", "429")],
    )
    .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    assert!(resp.text().ends_with("data: [DONE]\n\n"), "{}", resp.text());
    assert_eq!(stream::read(&resp.body).text, "route me");
    let answered = gw.envoy.metric_reaching(
        r#"sluice_model_router_fallback_total{cluster="mock_b",result="answered"}"#,
        3.0,
    );
    assert_eq!(answered, Some(3.0), "{}", gw.envoy.prometheus().unwrap());
}

/// A fallback's answer passes the filters above model-router like any answer: moderation
/// restores the values it masked (JSON and streamed) and applies its rules on answers to it.
#[test]
fn a_fallback_answer_passes_the_filters_above_like_any_answer() {
    let mut configs = BTreeMap::new();
    configs.insert(
        "moderation".to_owned(),
        json!({"rules": [{"id": "answer-deny", "keywords": ["secret plan"], "scope": "tool"}],
               "pii": {"detectors": {"email": "mask"}}})
        .to_string(),
    );
    configs.insert(
        "prompt_template".to_owned(),
        json!({"templates": {"echo": {"model": "fb-1",
                                      "messages": [{"role": "user", "content": "{{text}}"}]}},
               "endpoints": [{"path": "/apis/echo", "template": "echo", "answer": "result"}]})
        .to_string(),
    );
    let (gw, b) = fallback_gateway_configs(None, configs);
    // A chat request whose first target answers `status`.
    let failing = |body: &Value, status: &str| {
        http::post(
            &gw.url("/v1/chat/completions"),
            body.to_string().as_bytes(),
            &[DEMO_AUTH, ("x-mock-status", status)],
        )
        .unwrap()
    };
    let text = "write to ann@example.com please";
    for stream in [false, true] {
        let body = json!({"model": "fb-1", "stream": stream,
                          "messages": [{"role": "user", "content": text}]});
        let resp = failing(&body, "429");
        assert_eq!(resp.status, 200, "stream {stream}: {}", resp.text());
        assert_eq!(
            resp.header("x-sluice-fallback"),
            Some("attempts=2; answered=mock_b")
        );
        // The fallback target got the placeholder, the caller the value.
        let last = b.last_request().unwrap();
        assert!(
            last["body"].to_string().contains("[EMAIL_1]"),
            "{}",
            last["body"]
        );
        let answer = if stream {
            assert!(resp.text().ends_with("data: [DONE]\n\n"), "{}", resp.text());
            stream::read(&resp.body).text
        } else {
            resp.json().unwrap()["choices"][0]["message"]["content"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(answer, text, "stream {stream}");
        assert!(!resp.text().contains("[EMAIL_1]"), "{}", resp.text());
    }
    // A rule on answers cuts the fallback's answer (the request's user text is out of the
    // rule's scope; the mock echoes it as the answer).
    let body = json!({"model": "fb-1",
                      "messages": [{"role": "user", "content": "the secret plan is here"}]});
    let resp = failing(&body, "503");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(!resp.text().contains("secret plan"), "{}", resp.text());
    let v = resp.json().unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "content_filter", "{v}");
    let cut = gw.envoy.metric_reaching(
        r#"sluice_moderation_answers_cut_total{rule="answer-deny"}"#,
        1.0,
    );
    assert_eq!(cut, Some(1.0), "{}", gw.envoy.prometheus().unwrap());
    // prompt-template reduces a REST call's fallback answer as any other.
    let resp = http::post(
        &gw.url("/apis/echo"),
        json!({"text": "fall back to me"}).to_string().as_bytes(),
        &[DEMO_AUTH, ("x-mock-status", "429")],
    )
    .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.header("x-sluice-fallback"),
        Some("attempts=2; answered=mock_b")
    );
    assert_eq!(
        resp.json().unwrap()["result"],
        "fall back to me",
        "{}",
        resp.text()
    );
    // A failed answer without a body leaves nothing to hold: the fallback's answer comes as a
    // local reply (past the filters above; README).
    let resp = chat(
        &gw,
        "fb-1",
        &[("x-mock-status", "429"), ("x-mock-error-body", "")],
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.header("x-sluice-fallback"),
        Some("attempts=2; answered=mock_b")
    );
    assert_eq!(
        resp.json().unwrap()["choices"][0]["message"]["content"],
        "route me"
    );
}

/// What the mock provider started with `--ratelimit-headers` puts on every answer (its
/// `reply::RATELIMIT_HEADERS`): a provider's own limits, far from the budgets tests set.
const PROVIDER_RATE_LIMITS: [(&str, &str); 6] = [
    ("x-ratelimit-limit-requests", "10000"),
    ("x-ratelimit-remaining-requests", "9999"),
    ("x-ratelimit-reset-requests", "6ms"),
    ("x-ratelimit-limit-tokens", "30000000"),
    ("x-ratelimit-remaining-tokens", "29999000"),
    ("x-ratelimit-reset-tokens", "2ms"),
];

/// The daily token budget of each consumer in [`budgeted_fallback_gateway`].
const BUDGET: u64 = 100_000;
const BUDGET_WINDOW: u64 = 86_400;

/// The fallback gateway with a token budget for each consumer (token-count), the fallback
/// provider (`mock_b`) sending its own rate limits, and `model_router` for the routes if given.
/// Returns once the budget's window has more than a minute left, so a test stays in it.
fn budgeted_fallback_gateway(model_router: Option<Value>) -> (Gateway, MockProvider) {
    let mut plugin_configs = BTreeMap::new();
    plugin_configs.insert(
        "token_count".to_owned(),
        json!({"budgets": [{"name": "daily", "scope": "consumer",
                            "window_seconds": BUDGET_WINDOW, "tokens": BUDGET}]})
        .to_string(),
    );
    if let Some(routes) = model_router {
        plugin_configs.insert("model_router".to_owned(), routes.to_string());
    }
    let started = fallback_gateway_full(None, plugin_configs, &["--ratelimit-headers"]);
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        if now % BUDGET_WINDOW < BUDGET_WINDOW - 60 {
            return started;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// token-count's `x-ratelimit-reset-tokens` (`1h2m3s`, `6m0s`, `1s`) in seconds; `None` for
/// another form (the mock provider's `2ms`).
fn reset_secs(text: &str) -> Option<u64> {
    let mut secs = 0;
    let mut number = String::new();
    for c in text.chars() {
        match c {
            '0'..='9' => number.push(c),
            'h' | 'm' | 's' => {
                let unit = match c {
                    'h' => 3600,
                    'm' => 60,
                    _ => 1,
                };
                secs += number.parse::<u64>().ok()? * unit;
                number.clear();
            }
            _ => return None,
        }
    }
    (number.is_empty() && text.ends_with('s')).then_some(secs)
}

/// An answer's one header `name` (a second one fails the test).
fn single<'a>(resp: &'a http::Response, name: &str) -> Option<&'a str> {
    let mut values = resp.headers.iter().filter(|(k, _)| k == name);
    let first = values.next().map(|(_, v)| v.as_str());
    assert!(values.next().is_none(), "{name} twice: {:?}", resp.headers);
    first
}

/// Tokens an answer reports (its `x-sluice-prompt-tokens` and `-completion-tokens`): what
/// token-count settles its request's budget to.
fn tokens_used(resp: &http::Response) -> u64 {
    ["x-sluice-prompt-tokens", "x-sluice-completion-tokens"]
        .iter()
        .map(|h| resp.header(h).unwrap().parse::<u64>().unwrap())
        .sum()
}

/// A budgeted caller answered by a fallback sees the gateway's budget in its
/// `x-ratelimit-*-tokens`, as token-count wrote them on the failed answer the fallback's
/// replaced (in place, or as a local reply when the failed answer had no body), not the
/// fallback provider's; the provider's other rate limits pass, as on an answer without
/// fallback.
#[test]
fn a_budgeted_callers_fallback_answer_carries_the_gateways_budget_headers() {
    let (gw, _b) = budgeted_fallback_gateway(None);
    // What token-count reserved for the last request: the count it sent upstream with it
    // (to the first target, which saw every request) plus 4096, the default completion limit.
    let reserved = || -> u64 {
        let count = gw.mock.last_header("x-sluice-prompt-tokens").unwrap();
        count.unwrap().parse::<u64>().unwrap() + 4096
    };
    let budget = |resp: &http::Response| {
        let header = |name| single(resp, name).unwrap_or_else(|| panic!("{:?}", resp.headers));
        (
            header("x-ratelimit-limit-tokens").to_owned(),
            header("x-ratelimit-remaining-tokens")
                .parse::<u64>()
                .unwrap(),
            reset_secs(header("x-ratelimit-reset-tokens"))
                .filter(|s| (1..=BUDGET_WINDOW).contains(s)),
        )
    };
    // No fallback: token-count's headers on the first target's answer.
    let first = chat(&gw, "fb-1", &[]);
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(
        first.header("x-sluice-fallback"),
        Some("attempts=1; answered=first")
    );
    let (limit, remaining, reset) = budget(&first);
    assert_eq!(limit, "100000");
    assert_eq!(remaining, BUDGET - reserved());
    assert!(reset.is_some(), "{:?}", first.headers);
    let mut used = tokens_used(&first);
    let failures: [&[(&str, &str)]; 3] = [
        &[("x-mock-status", "429")],
        &[("x-mock-status", "503")],
        // No body to hold: the fallback's answer goes as a local reply.
        &[("x-mock-status", "429"), ("x-mock-error-body", "")],
    ];
    for failure in failures {
        // The last request was settled at its end (its reservation down to its usage).
        std::thread::sleep(Duration::from_millis(300));
        let resp = chat(&gw, "fb-1", failure);
        assert_eq!(resp.status, 200, "{failure:?}: {}", resp.text());
        assert_eq!(
            resp.header("x-sluice-fallback"),
            Some("attempts=2; answered=mock_b"),
            "{failure:?}"
        );
        let (limit, remaining, reset) = budget(&resp);
        assert_eq!(limit, "100000", "{failure:?}");
        assert_eq!(remaining, BUDGET - used - reserved(), "{failure:?}");
        assert!(reset.is_some(), "{failure:?}: {:?}", resp.headers);
        // The provider's limits on requests pass, as they would without a fallback.
        for (name, value) in &PROVIDER_RATE_LIMITS[..3] {
            assert_eq!(single(&resp, name), Some(*value), "{failure:?}: {name}");
        }
        used += tokens_used(&resp);
    }
}

/// Without a budget the fallback provider's own rate-limit headers reach the caller, in place
/// or in a local reply.
#[test]
fn without_a_budget_a_fallback_answer_carries_the_providers_rate_limits() {
    let (gw, _b) = fallback_gateway_full(None, BTreeMap::new(), &["--ratelimit-headers"]);
    let failures: [&[(&str, &str)]; 2] = [
        &[("x-mock-status", "429")],
        &[("x-mock-status", "429"), ("x-mock-error-body", "")],
    ];
    for failure in failures {
        let resp = chat(&gw, "fb-1", failure);
        assert_eq!(resp.status, 200, "{failure:?}: {}", resp.text());
        assert_eq!(
            resp.header("x-sluice-fallback"),
            Some("attempts=2; answered=mock_b")
        );
        for (name, value) in PROVIDER_RATE_LIMITS {
            assert_eq!(single(&resp, name), Some(value), "{failure:?}: {name}");
        }
    }
}

/// A fallback's answer longer than model-router's `max_body_bytes` is not written in the held
/// answer's place: the caller gets 502 `answer_too_large` with only the headers true of that
/// error (`x-sluice-fallback`, the gateway's budget), none that told of the answer it does
/// not get (its token counts, its provider's rate limits).
#[test]
fn a_fallback_answer_too_long_to_pass_is_a_502_with_an_errors_headers() {
    const MAX: usize = 16 << 10;
    let mut routes = fallback_routes();
    routes["max_body_bytes"] = json!(MAX);
    let (gw, _b) = budgeted_fallback_gateway(Some(routes));
    // A request within the limit whose echo, framed as a chat.completion, is over it.
    let body = |text: &str| {
        json!({"model": "fb-1", "messages": [{"role": "user", "content": text}]}).to_string()
    };
    let text = "lorem ".repeat((MAX - body("").len() - 16) / 6);
    let long = body(&text);
    assert!(long.len() <= MAX && long.len() > MAX - 32, "{}", long.len());
    let resp = http::post(
        &gw.url("/v1/chat/completions"),
        long.as_bytes(),
        &[DEMO_AUTH, ("x-mock-status", "503")],
    )
    .unwrap();
    assert_eq!(resp.status, 502, "{}", resp.text());
    assert_eq!(resp.json().unwrap()["error"]["code"], "answer_too_large");
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let length: usize = resp.header("content-length").unwrap().parse().unwrap();
    assert_eq!(length, resp.body.len());
    // Still true: the fallback target answered (the gateway could not pass it on).
    assert_eq!(
        resp.header("x-sluice-fallback"),
        Some("attempts=2; answered=mock_b")
    );
    assert_eq!(single(&resp, "x-ratelimit-limit-tokens"), Some("100000"));
    for gone in [
        "x-sluice-prompt-tokens",
        "x-sluice-completion-tokens",
        "x-sluice-token-source",
        "x-ratelimit-limit-requests",
    ] {
        assert_eq!(resp.header(gone), None, "{gone}: {:?}", resp.headers);
    }
    // The provider answered and billed: token-count settled the fallback's usage all the same.
    let lines = gw.access_log_lines(1);
    let line = lines.iter().find(|l| l["status"] == 502).unwrap();
    assert_eq!(line["token_source"], "provider", "{line}");
    let completion = line["completion_tokens"].as_str().unwrap_or_default();
    assert!(completion.parse::<u64>().unwrap_or(0) > 1000, "{line}");
    // The same when the failed answer had no body (the fallback's goes out as a local reply).
    let resp = http::post(
        &gw.url("/v1/chat/completions"),
        long.as_bytes(),
        &[
            DEMO_AUTH,
            ("x-mock-status", "429"),
            ("x-mock-error-body", ""),
        ],
    )
    .unwrap();
    assert_eq!(resp.status, 502, "{}", resp.text());
    assert_eq!(resp.json().unwrap()["error"]["code"], "answer_too_large");
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.header("x-sluice-prompt-tokens"), None);
    assert_eq!(single(&resp, "x-ratelimit-limit-tokens"), Some("100000"));
    // A short one's fallback answer passes whole, with its own headers.
    let resp = chat(&gw, "fb-1", &[("x-mock-status", "503")]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.header("x-sluice-completion-tokens").is_some());
    assert_eq!(resp.header("x-ratelimit-limit-requests"), Some("10000"));
}

/// The failed answer held while the fallback is asked is dropped as it comes, not buffered: a
/// long one (over the 4 MiB Envoy holds, in pieces without a length) is replaced by the
/// fallback's answer like a short one (held whole, it ended in Envoy's own 500). model-router
/// alone: in the chain key-injection cuts such an error short first.
#[test]
fn a_long_failed_answer_is_replaced_by_the_fallbacks_all_the_same() {
    let second = MockProvider::start().unwrap();
    let mut plugin_configs = BTreeMap::new();
    plugin_configs.insert("model_router".to_owned(), fallback_routes().to_string());
    let gw = Gateway::start_with(&ChainOptions {
        template: Some("envoy/alone/model-router.yaml".to_owned()),
        plugin_configs,
        extra_clusters: vec![("mock_b".to_owned(), second.port)],
        ..ChainOptions::default()
    })
    .unwrap();
    let piece = "x".repeat(32 << 10);
    let resp = chat(
        &gw,
        "fb-1",
        &[
            ("x-mock-status", "503"),
            ("x-mock-error-body", &piece),
            ("x-mock-reply-repeat", "140"),
            ("x-mock-chunked", "1"),
        ],
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.header("x-sluice-fallback"),
        Some("attempts=2; answered=mock_b")
    );
    assert_eq!(resp.json().unwrap()["object"], "chat.completion");
}

#[test]
fn sticky_by_header_keeps_each_user_on_one_target() {
    let (gw, b) = gateway(
        json!({"routes": [{"models": ["split"], "sticky": {"header": "x-user"}, "targets": [
        {"provider": "mock", "cluster": "mock", "model": "gpt-4o-mini"},
        {"provider": "mock", "cluster": "mock_b", "model": "gpt-4o-mini"}]}]}),
    );
    let mut seen = std::collections::BTreeSet::new();
    for user in ["ann", "bob", "cy", "di", "ed", "flo", "gus", "hal"] {
        let mut targets = std::collections::BTreeSet::new();
        for _ in 0..4 {
            let before = count(&b);
            assert_eq!(chat(&gw, "split", &[("x-user", user)]).status, 200);
            targets.insert(count(&b) > before);
        }
        assert_eq!(targets.len(), 1, "{user} moved between targets");
        seen.extend(targets);
    }
    assert_eq!(seen.len(), 2, "users spread over both targets");
}

#[test]
fn sticky_by_consumer_keeps_each_authenticated_consumer_on_one_target() {
    let users = ["ann", "bob", "cy", "di", "ed", "flo", "gus", "hal"];
    let consumers: Vec<Value> = users
        .iter()
        .map(|u| json!({"id": u, "key_sha256": key_digest_hex(&format!("sk-{u}"))}))
        .collect();
    let mut plugin_configs = BTreeMap::new();
    plugin_configs.insert(
        "key_injection_authenticate".to_owned(),
        json!({"role": "authenticate", "consumers": consumers}).to_string(),
    );
    plugin_configs.insert(
        "model_router".to_owned(),
        json!({"routes": [{"models": ["split"], "sticky": "consumer", "targets": [
            {"provider": "mock", "cluster": "mock", "model": "gpt-4o-mini"},
            {"provider": "mock", "cluster": "mock_b", "model": "gpt-4o-mini"}]}]})
        .to_string(),
    );
    let (gw, second) = gateway_with(plugin_configs);
    let body =
        json!({"model": "split", "messages": [{"role": "user", "content": "hi"}]}).to_string();
    let mut seen = std::collections::BTreeSet::new();
    for user in users {
        let auth = format!("Bearer sk-{user}");
        let mut targets = std::collections::BTreeSet::new();
        for _ in 0..4 {
            let before = count(&second);
            let resp = http::post(
                &gw.url("/v1/chat/completions"),
                body.as_bytes(),
                &[("authorization", auth.as_str())],
            )
            .unwrap();
            assert_eq!(resp.status, 200, "{user}: {}", resp.text());
            targets.insert(count(&second) > before);
        }
        assert_eq!(targets.len(), 1, "{user} moved between targets");
        seen.extend(targets);
    }
    assert_eq!(seen.len(), 2, "consumers spread over both targets");
}

#[test]
fn when_every_target_fails_the_caller_gets_the_last_failure() {
    let (gw, _b) = fallback_gateway();
    let resp = chat(&gw, "dead-1", &[("x-mock-status", "503")]);
    assert_eq!(resp.status, 503, "{}", resp.text());
    assert_eq!(
        resp.header("x-sluice-fallback"),
        Some("attempts=2; answered=dead")
    );
}

/// The routed request's timeout cut to 1 s (the shipped config gives an LLM 300 s).
fn routed_timeout_1s(config: String) -> String {
    let (from, to) = (
        "auto_host_rewrite: true\n                  timeout: 300s",
        "auto_host_rewrite: true\n                  timeout: 1s",
    );
    assert!(
        config.contains(from),
        "the routed route's timeout moved in envoy/sluice.yaml"
    );
    config.replacen(from, to, 1)
}

#[test]
fn a_target_that_times_out_is_answered_by_the_fallback() {
    let (gw, b) = fallback_gateway_with(Some(routed_timeout_1s));
    let started = Instant::now();
    let resp = chat(&gw, "fb-1", &[("x-mock-latency-ms", "2500")]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.header("x-sluice-fallback"),
        Some("attempts=2; answered=mock_b")
    );
    assert_eq!(resp.json().unwrap()["object"], "chat.completion");
    assert_eq!(b.last_request().unwrap()["path"], "/v1/messages");
    // Envoy gave up on the first target at 1 s (its 504), not when the mock would have answered.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// A fallback target that accepts connections and never answers: the call-out's own timeout
/// ends the wait, and the caller gets a clear JSON error, not an empty body.
#[test]
fn a_fallback_that_never_answers_gets_a_json_error() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in silent.incoming().flatten() {
            held.push(conn); // kept open, never answered
        }
    });
    let mut plugin_configs = BTreeMap::new();
    plugin_configs.insert(
        "model_router".to_owned(),
        json!({"fallback_timeout_ms": 500, "routes": [
            {"models": ["slow-*"], "targets": [{"provider": "mock", "cluster": "mock", "model": "gpt-4o-mini"}],
             "fallback": [{"provider": "mock", "cluster": "silent"}]}
        ]})
        .to_string(),
    );
    let gw = Gateway::start_with(&ChainOptions {
        plugin_configs,
        extra_clusters: vec![("silent".to_owned(), port)],
        ..ChainOptions::default()
    })
    .unwrap();
    let started = Instant::now();
    let resp = chat(&gw, "slow-1", &[("x-mock-status", "503")]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(resp.status, 502, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(
        resp.header("x-sluice-fallback"),
        Some("attempts=2; answered=silent")
    );
    let v = resp.json().unwrap();
    assert_eq!(v["error"]["code"], "fallback_unanswered", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("500 ms"),
        "{v}"
    );
}

/// An answer model-router cannot hold whole to translate (its declared length is over the
/// 4 MiB Envoy holds), or whose translation would be over it, is answered 502
/// `answer_too_large` in the caller's dialect. (Written back, a translation over the limit
/// took the whole Envoy down; held, an answer over it ended the stream.) The gateway serves on.
#[test]
fn an_answer_too_long_to_translate_is_a_clear_error_not_a_crash() {
    const LIMIT: usize = 4 << 20;
    let gw = Gateway::start_with(&ChainOptions {
        template: Some("envoy/alone/model-router.yaml".to_owned()),
        ..ChainOptions::default()
    })
    .unwrap();
    let cheap = ("x-mock-count", "words");
    // The mock's Anthropic answer is its echoed text plus a frame, measured at about the
    // sizes asked (its numbers may grow with the text); each answer's length is checked.
    let anthropic = |text: &str| {
        json!({"model": "claude-sonnet-4-5", "max_tokens": 64,
               "messages": [{"role": "user", "content": text}]})
        .to_string()
    };
    let direct_len = |text: &str| {
        http::post(
            &gw.mock.url("/v1/messages"),
            anthropic(text).as_bytes(),
            &[cheap],
        )
        .unwrap()
        .body
        .len()
    };
    let probe = "x".repeat(LIMIT - 8192);
    let frame = direct_len(&probe) - probe.len();
    let ask_with = |answer_bytes: usize, chunked: bool| {
        let text = "x".repeat(answer_bytes - frame);
        assert_eq!(direct_len(&text), answer_bytes, "the mock's answer");
        let body = json!({"model": "claude-sonnet-4-5",
                          "messages": [{"role": "user", "content": text}]});
        let mut headers = vec![DEMO_AUTH, cheap];
        if chunked {
            headers.push(("x-mock-chunked", "1"));
        }
        http::post(
            &gw.url("/v1/chat/completions"),
            body.to_string().as_bytes(),
            &headers,
        )
        .unwrap()
    };
    let ask = |answer_bytes: usize| ask_with(answer_bytes, false);
    // Translated, it would be over (the answer itself fits); declared over the limit; over
    // it with no length declared (told once that much has come).
    for (answer_bytes, chunked) in [(LIMIT - 1, false), (LIMIT + 64, false), (LIMIT + 64, true)] {
        let resp = ask_with(answer_bytes, chunked);
        assert_eq!(
            resp.status,
            502,
            "{answer_bytes}: {} bytes",
            resp.body.len()
        );
        let v = resp.json().unwrap();
        assert_eq!(v["error"]["code"], "answer_too_large", "{answer_bytes}");
        let length: usize = resp.header("content-length").unwrap().parse().unwrap();
        assert_eq!(length, resp.body.len());
    }
    // One that fits translated goes out whole, and the gateway still serves.
    let resp = ask(LIMIT - 4096);
    assert_eq!(resp.status, 200);
    let v = resp.json().unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert!(
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .len()
            > LIMIT - 8192
    );
}

/// A request that translation would make longer than Envoy holds is refused 413 saying so,
/// in the caller's dialect, and nothing goes upstream (Envoy's own 413 named its limit as if
/// the caller had sent that much).
#[test]
fn a_request_translation_would_take_past_the_limit_is_refused_saying_so() {
    let gw = Gateway::start_with(&ChainOptions {
        template: Some("envoy/alone/model-router.yaml".to_owned()),
        ..ChainOptions::default()
    })
    .unwrap();
    let messages: Vec<Value> = (0..100_000)
        .map(|i| {
            let role = if i % 2 == 0 { "user" } else { "assistant" };
            json!({"role": role, "content": format!("m{i}")})
        })
        .collect();
    let body = json!({"model": "claude-sonnet-4-5", "messages": messages}).to_string();
    assert!(body.len() < 4 << 20, "{}", body.len());
    let resp = http::post(
        &gw.url("/v1/chat/completions"),
        body.as_bytes(),
        &[DEMO_AUTH],
    )
    .unwrap();
    assert_eq!(resp.status, 413, "{} bytes", resp.body.len());
    let v = resp.json().unwrap();
    assert_eq!(v["error"]["code"], "request_too_large");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("once rewritten"), "{message}");
    // Nothing reached the provider.
    assert_eq!(
        gw.mock.last_request().unwrap()["count"]
            .as_u64()
            .unwrap_or(0),
        0
    );
}
