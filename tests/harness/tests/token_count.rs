//! token-count through a real Envoy: counts that match Python tiktoken, headers, filter state in
//! the access log, metrics in /stats/prometheus, prompt limits.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluice_core::key_injection::key_digest_hex;
use sluice_harness::envoy::{render_template, template_vars, Envoy};
use sluice_harness::render::{self, only_filters};
use sluice_harness::{http, python, ChainOptions, Gateway, MockProvider, DEMO_AUTH, DEMO_KEY};

fn post(gw: &Gateway, path: &str, body: &Value, extra: &[(&str, &str)]) -> http::Response {
    let mut headers = vec![DEMO_AUTH];
    headers.extend_from_slice(extra);
    http::post(&gw.url(path), body.to_string().as_bytes(), &headers).unwrap()
}

fn upstream_header(gw: &Gateway, name: &str) -> Option<String> {
    gw.mock.last_header(name).unwrap()
}

#[test]
fn prompt_counts_equal_python_tiktoken_through_the_openai_sdk() {
    let gw = Gateway::start().unwrap();
    let requests = [
        json!({"model": "gpt-4o-mini", "messages": [
            {"role": "system", "content": "You are terse. Answer in 日本語 if asked 🦀."},
            {"role": "user", "name": "ann", "content": "Count   these\n\n tokens: don't, won't, 3.14159!"}]}),
        json!({"model": "gpt-4", "messages": [
            {"role": "user", "content": "def f(x):\n    return x ** 2  # cl100k this time"}]}),
        json!({"model": "gpt-4o", "messages": [
            {"role": "system", "content": "You are a helpful assistant that can answer to questions about the weather."},
            {"role": "user", "content": "What's the weather like in San Francisco?"}],
            "tools": [{"type": "function", "function": {
                "name": "get_current_weather", "description": "Get the current weather in a given location",
                "parameters": {"type": "object", "properties": {
                    "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                    "unit": {"type": "string", "description": "The unit of temperature to return", "enum": ["celsius", "fahrenheit"]}},
                    "required": ["location"]}}}]}),
    ];
    for req in requests {
        let out = python::run_client("count_chat.py", &[&gw.url(""), DEMO_KEY, &req.to_string()])
            .unwrap();
        let expected = out["expected"].as_u64().unwrap();
        // The count went upstream with the request.
        assert_eq!(
            upstream_header(&gw, "x-sluice-prompt-tokens"),
            Some(expected.to_string()),
            "{req}\n{out}"
        );
        // The answer says the provider's own number (the mock leaves tools out of its usage).
        assert_eq!(
            out["prompt_header"],
            out["usage"]["prompt_tokens"].to_string(),
            "{out}"
        );
        // Non-streaming answers also say the completion tokens (the provider's usage).
        assert_eq!(
            out["completion_header"],
            out["usage"]["completion_tokens"].to_string(),
            "{out}"
        );
    }
}

/// Legacy completions and embeddings: every input form is counted before the request leaves,
/// and equals the mock provider's own tiktoken-rs count of what arrived. An Anthropic Messages
/// answer's `usage` gives its completion count.
#[test]
fn completions_embeddings_and_anthropic_messages_are_counted() {
    let gw = Gateway::start().unwrap();
    let cases = [
        (
            "/v1/embeddings",
            json!({"model": "text-embedding-3-small", "input": "The food was delicious 🍝 and the waiter…"}),
        ),
        (
            "/v1/embeddings",
            json!({"model": "text-embedding-3-small",
                   "input": ["first  text", "日本語のテキスト", [9906, 1917], ""]}),
        ),
        (
            "/v1/completions",
            json!({"model": "gpt-3.5-turbo-instruct", "prompt": "Say this is a test.\n\n   Twice!", "max_tokens": 7}),
        ),
        (
            "/v1/completions",
            json!({"model": "gpt-3.5-turbo-instruct", "prompt": ["one", "two three", [1, 2, 3, 4]]}),
        ),
    ];
    for (path, body) in cases {
        let resp = post(&gw, path, &body, &[]);
        assert_eq!(resp.status, 200, "{path} {body}: {}", resp.text());
        let usage = &resp.json().unwrap()["usage"];
        let provider = usage["prompt_tokens"].to_string();
        assert_eq!(
            upstream_header(&gw, "x-sluice-prompt-tokens"),
            Some(provider.clone()),
            "{path} {body}"
        );
        assert_eq!(
            resp.header("x-sluice-prompt-tokens"),
            Some(provider.as_str())
        );
        if path == "/v1/completions" {
            assert_eq!(
                resp.header("x-sluice-completion-tokens"),
                Some(usage["completion_tokens"].to_string().as_str())
            );
        }
    }
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 50,
                      "messages": [{"role": "user", "content": "one two three four five"}]});
    let resp = post(&gw, "/v1/messages", &body, &[]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let usage = &resp.json().unwrap()["usage"];
    assert!(resp.header("x-sluice-prompt-tokens").is_some());
    assert_eq!(
        resp.header("x-sluice-completion-tokens"),
        Some(usage["output_tokens"].to_string().as_str())
    );
}

#[test]
fn filter_state_reaches_the_access_log_and_metrics_reach_prometheus() {
    let gw = Gateway::start().unwrap();
    let body =
        json!({"model": "gpt-4.1", "messages": [{"role": "user", "content": "hello world"}]});
    let resp = post(&gw, "/v1/chat/completions", &body, &[]);
    assert_eq!(resp.status, 200);
    let usage = &resp.json().unwrap()["usage"];
    // Held for its usage, the JSON answer still goes out as it came: framed by its length.
    assert_eq!(
        resp.header("content-length"),
        Some(resp.body.len().to_string().as_str())
    );
    assert!(resp.header("x-sluice-completion-tokens").is_some());
    let line = gw.access_line(1);
    assert_eq!(line["consumer"], "demo");
    assert_eq!(line["tenant"], "demo");
    assert_eq!(line["model"], "gpt-4.1");
    assert_eq!(
        line["prompt_tokens"],
        resp.header("x-sluice-prompt-tokens").unwrap()
    );
    assert_eq!(
        line["completion_tokens"],
        usage["completion_tokens"].to_string()
    );
    assert_eq!(line["token_source"], "provider");

    let labels = r#"{token_type="input",model="gpt-4_1",consumer="demo"}"#;
    let prompt = usage["prompt_tokens"].as_f64().unwrap();
    let input = gw
        .envoy
        .metric_reaching(&format!("sluice_token_count_tokens_total{labels}"), prompt);
    assert_eq!(input, Some(prompt));
    let completion = usage["completion_tokens"].as_f64().unwrap();
    let output = gw.envoy.metric_reaching(
        r#"sluice_token_count_tokens_total{token_type="output",model="gpt-4_1",consumer="demo"}"#,
        completion,
    );
    assert_eq!(output, Some(completion));
    assert_eq!(
        gw.envoy.metric_reaching(
            r#"sluice_token_count_requests_total{model="gpt-4_1",consumer="demo"}"#,
            1.0
        ),
        Some(1.0)
    );
    let count = gw.envoy.metric_reaching(r#"gen_ai_client_token_usage_count{consumer="demo",gen_ai_token_type="input",gen_ai_request_model="gpt-4_1"}"#,
        1.0,
    );
    assert_eq!(count, Some(1.0));
    // A second request of the same model and consumer (its series already named) adds to the
    // same series, and the price table (envoy/sluice.yaml: gpt-4.1 at $2 in, $8 out per 1M
    // tokens) turns both answers' usage into micro-dollars.
    let again = post(&gw, "/v1/chat/completions", &body, &[]);
    assert_eq!(again.status, 200);
    let cost = |u: &Value| {
        assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 0, "{u}");
        u["prompt_tokens"].as_f64().unwrap() * 2.0 + u["completion_tokens"].as_f64().unwrap() * 8.0
    };
    let spent = cost(usage) + cost(&again.json().unwrap()["usage"]);
    assert_eq!(
        gw.envoy.metric_reaching(
            r#"sluice_token_count_requests_total{model="gpt-4_1",consumer="demo"}"#,
            2.0
        ),
        Some(2.0)
    );
    assert_eq!(
        gw.envoy.metric_reaching(
            r#"sluice_token_count_cost_microdollars_total{model="gpt-4_1",consumer="demo"}"#,
            spent
        ),
        Some(spent)
    );
    // A model name longer than a label keeps (64 characters) is counted under its first 64.
    let long_model = format!("gpt-4o-{}", "x".repeat(100));
    let long = json!({"model": long_model, "messages": [{"role": "user", "content": "hi"}]});
    for _ in 0..2 {
        assert_eq!(post(&gw, "/v1/chat/completions", &long, &[]).status, 200);
    }
    let cut: String = long_model.chars().take(64).collect();
    assert_eq!(
        gw.envoy.metric_reaching(
            &format!(r#"sluice_token_count_requests_total{{model="{cut}",consumer="demo"}}"#),
            2.0
        ),
        Some(2.0)
    );
    // Ordinary traffic leaves no Wasm warning or error in Envoy's log.
    let log = gw.envoy.log();
    let noisy: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("][warning][wasm]") || l.contains("][error][wasm]"))
        .collect();
    assert!(noisy.is_empty(), "{noisy:#?}");
}

/// Cached-prompt and reasoning tokens, where the provider reports them, reach the token
/// counters, and cached tokens are priced at the cached rate.
#[test]
fn provider_usage_details_reach_metrics_and_cost() {
    let gw = Gateway::start().unwrap();
    let body = json!({"model": "gpt-4.1", "messages": [
        {"role": "system", "content": "You are a careful assistant."},
        {"role": "user", "content": "Think about it, then answer in one word."}]});
    let resp = post(
        &gw,
        "/v1/chat/completions",
        &body,
        &[
            ("x-mock-cached-tokens", "4"),
            ("x-mock-reasoning-tokens", "6"),
        ],
    );
    assert_eq!(resp.status, 200);
    let usage = &resp.json().unwrap()["usage"];
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 4);
    let (prompt, completion) = (
        usage["prompt_tokens"].as_f64().unwrap(),
        usage["completion_tokens"].as_f64().unwrap(),
    );
    let series = |kind: &str| {
        format!(
            r#"sluice_token_count_tokens_total{{token_type="{kind}",model="gpt-4_1",consumer="demo"}}"#
        )
    };
    for (kind, want) in [
        ("input", prompt),
        ("output", completion),
        ("cached_input", 4.0),
        ("reasoning", 6.0),
    ] {
        assert_eq!(
            gw.envoy.metric_reaching(&series(kind), want),
            Some(want),
            "{kind}"
        );
    }
    // envoy/sluice.yaml prices gpt-4.1 at $2 in, $0.5 cached in, $8 out per 1M tokens.
    let spent = (prompt - 4.0) * 2.0 + 4.0 * 0.5 + completion * 8.0;
    assert_eq!(
        gw.envoy.metric_reaching(
            r#"sluice_token_count_cost_microdollars_total{model="gpt-4_1",consumer="demo"}"#,
            spent
        ),
        Some(spent)
    );
}

/// Behind key-injection, the authenticated consumer is charged, whatever consumer header the
/// caller sends.
#[test]
fn an_authenticated_consumer_wins_over_the_consumer_header() {
    let gw = budget_gateway(r#"{"consumer_header":"x-team"}"#);
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hello world"}]});
    let resp = post(&gw, "/v1/chat/completions", &body, &[("x-team", "blue")]);
    assert_eq!(resp.status, 200);
    assert_eq!(
        gw.envoy.metric_reaching(
            r#"sluice_token_count_requests_total{model="gpt-4o",consumer="demo"}"#,
            1.0
        ),
        Some(1.0)
    );
    let stats = gw.envoy.prometheus().unwrap();
    assert!(!stats.contains(r#"consumer="blue""#), "{stats}");
}

/// token-count alone in an Envoy (no key-injection before it): it counts, takes the consumer
/// from the header its config names, and counts a model its config maps to an encoding with
/// that encoding.
#[test]
fn alone_it_counts_and_takes_the_consumer_from_a_header() {
    let mock = MockProvider::start().unwrap();
    let envoy = Envoy::start_config(|port, admin| {
        let config = render_template(
            "envoy/sluice.yaml",
            &template_vars(port, admin, mock.port),
            &BTreeMap::new(),
        )?;
        let config = only_filters(&config, &["sluice.token_count"]);
        render::set_plugin_config(
            &config,
            "token_count",
            r#"{"consumer_header":"x-team","encodings":[{"models":["my-finetune-*"],"encoding":"cl100k_base"}]}"#,
        )
    })
    .unwrap();
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hello world"}]});
    let resp = http::post(
        &envoy.url("/v1/chat/completions"),
        body.to_string().as_bytes(),
        &[("x-team", "blue")],
    )
    .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let prompt = resp.json().unwrap()["usage"]["prompt_tokens"]
        .as_f64()
        .unwrap();
    assert_eq!(
        resp.header("x-sluice-prompt-tokens"),
        Some(prompt.to_string().as_str())
    );
    assert_eq!(
        envoy.metric_reaching(
            r#"sluice_token_count_tokens_total{token_type="input",model="gpt-4o",consumer="blue"}"#,
            prompt
        ),
        Some(prompt)
    );
    // A fine-tune the config maps to cl100k_base (unknown to OpenAI's rules, which would count
    // it with o200k_base): OpenAI's recipe for one user message is 3 + 3 + role + content.
    let text = "def f(x):\n    return x ** 2  # 日本語 🦀";
    let body = json!({"model": "my-finetune-1", "messages": [{"role": "user", "content": text}]});
    let resp = http::post(
        &envoy.url("/v1/chat/completions"),
        body.to_string().as_bytes(),
        &[],
    )
    .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let recipe = |bpe: tiktoken_rs::CoreBPE| {
        6 + bpe.encode_with_special_tokens("user").len()
            + bpe.encode_with_special_tokens(text).len()
    };
    let cl100k = recipe(tiktoken_rs::cl100k_base().unwrap());
    assert_ne!(cl100k, recipe(tiktoken_rs::o200k_base().unwrap()));
    assert_eq!(
        mock.last_header("x-sluice-prompt-tokens").unwrap(),
        Some(cl100k.to_string())
    );
}

#[test]
fn streamed_completions_are_counted_from_usage_or_locally() {
    let gw = Gateway::start().unwrap();
    let body = json!({"model": "gpt-4o", "stream": true, "stream_options": {"include_usage": true},
                      "messages": [{"role": "user", "content": "one two three four five"}]});
    // With the provider's usage chunk, cut into 5-byte pieces on the wire.
    let resp = post(
        &gw,
        "/v1/chat/completions",
        &body,
        &[("x-mock-chunk-bytes", "5")],
    );
    assert_eq!(resp.status, 200);
    assert!(resp.text().ends_with("data: [DONE]\n\n"));
    assert!(
        resp.header("x-sluice-completion-tokens").is_none(),
        "streams get no completion header"
    );
    let line = gw.access_line(1);
    assert_eq!(
        (
            line["completion_tokens"].as_str(),
            line["token_source"].as_str()
        ),
        (Some("5"), Some("provider"))
    );

    // Without it: counted locally from the deltas, same number.
    let resp = post(
        &gw,
        "/v1/chat/completions",
        &body,
        &[("x-mock-no-usage", "1"), ("x-mock-chunk-bytes", "3")],
    );
    assert_eq!(resp.status, 200);
    let line = gw.access_line(2);
    assert_eq!(
        (
            line["completion_tokens"].as_str(),
            line["token_source"].as_str()
        ),
        (Some("5"), Some("local"))
    );

    // Anthropic streams: message_delta's output count.
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 50, "stream": true,
                      "messages": [{"role": "user", "content": "one two three four five"}]});
    let resp = post(&gw, "/v1/messages", &body, &[("x-mock-chunk-bytes", "7")]);
    assert_eq!(resp.status, 200);
    assert!(resp.header("x-sluice-prompt-tokens").is_some());
    let line = gw.access_line(3);
    assert_eq!(
        (
            line["completion_tokens"].as_str(),
            line["token_source"].as_str()
        ),
        (Some("5"), Some("provider"))
    );
}

#[test]
fn prompt_limits_and_bad_bodies_are_refused_before_upstream() {
    let mut plugin_configs = BTreeMap::new();
    plugin_configs.insert(
        "token_count".to_owned(),
        r#"{"max_body_bytes":2000,"max_prompt_tokens":100,"model_limits":[{"models":["gpt-4o-mini*"],"max_prompt_tokens":10}]}"#.to_owned(),
    );
    let gw = Gateway::start_with(&ChainOptions {
        plugin_configs,
        ..ChainOptions::default()
    })
    .unwrap();
    let ok = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "one two three four five six seven"}]});
    assert_eq!(post(&gw, "/v1/chat/completions", &ok, &[]).status, 200);
    let before = gw.mock.last_request().unwrap()["count"].as_u64().unwrap();

    let mini = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "one two three four five six seven"}]});
    let resp = post(&gw, "/v1/chat/completions", &mini, &[]);
    assert_eq!(resp.status, 400, "{}", resp.text());
    let v = resp.json().unwrap();
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("maximum context length is 10 tokens"));

    let long =
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "word ".repeat(150)}]});
    let resp = post(&gw, "/v1/chat/completions", &long, &[]);
    assert_eq!(
        resp.json().unwrap()["error"]["code"],
        "context_length_exceeded"
    );

    let huge =
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x".repeat(3000)}]});
    let resp = post(&gw, "/v1/chat/completions", &huge, &[]);
    assert_eq!(resp.status, 413, "{}", resp.text());
    assert_eq!(resp.json().unwrap()["error"]["code"], "request_too_large");

    let resp = http::post(
        &gw.url("/v1/chat/completions"),
        b"{\"model\": ",
        &[DEMO_AUTH],
    )
    .unwrap();
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json().unwrap()["error"]["code"], "invalid_json");

    // Anthropic callers get Anthropic's error shape.
    let resp = http::post(&gw.url("/v1/messages"), b"not json", &[DEMO_AUTH]).unwrap();
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json().unwrap()["type"], "error");

    assert_eq!(
        gw.mock.last_request().unwrap()["count"].as_u64().unwrap(),
        before,
        "a refused request reached the provider"
    );
}

/// An answer too long for Envoy to hold whole passes on with the prompt's count on it, whether
/// its length is declared or not (held with no length declared, it ended in Envoy's own 500),
/// and its completion is settled from the `usage` at its end (read as it passes); one that fits
/// is held and its usage put on its headers as usual.
#[test]
fn an_answer_too_long_to_hold_passes_on_and_is_settled_from_its_end() {
    const LIMIT: usize = 4 << 20;
    let gw = Gateway::start_with(&ChainOptions {
        template: Some("envoy/alone/token-count.yaml".to_owned()),
        ..ChainOptions::default()
    })
    .unwrap();
    // Four words in 16 bytes: the mock counts the completion by words.
    let piece = "abc defg hijk l ";
    let ask = |answer_bytes: usize, chunked: bool| {
        let repeat = answer_bytes / piece.len();
        let repeat_text = repeat.to_string();
        let mut headers = vec![
            ("x-mock-reply-repeat", repeat_text.as_str()),
            ("x-mock-count", "words"),
        ];
        if chunked {
            headers.push(("x-mock-chunked", "1"));
        }
        let body = json!({"model": "gpt-4o-mini",
                          "messages": [{"role": "user", "content": piece}]});
        (
            post(&gw, "/v1/chat/completions", &body, &headers),
            4 * repeat as u64,
        )
    };
    for (i, chunked) in [false, true].into_iter().enumerate() {
        let (resp, words) = ask(LIMIT + 4096, chunked);
        assert_eq!(
            resp.status,
            200,
            "chunked {chunked}: {} bytes",
            resp.body.len()
        );
        assert!(resp.body.len() > LIMIT, "chunked {chunked}");
        assert!(
            resp.header("x-sluice-prompt-tokens").is_some(),
            "chunked {chunked}"
        );
        // Its headers left before its usage came.
        assert_eq!(
            resp.header("x-sluice-completion-tokens"),
            None,
            "chunked {chunked}"
        );
        let line = gw.access_line(i + 1);
        assert_eq!(
            line["completion_tokens"],
            words.to_string(),
            "chunked {chunked}: {line}"
        );
        assert_eq!(line["token_source"], "provider", "chunked {chunked}");
    }
    let (resp, words) = ask(LIMIT / 2, true);
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("x-sluice-completion-tokens"),
        Some(words.to_string().as_str())
    );
}

fn budget_gateway(json: &str) -> Gateway {
    let mut plugin_configs = BTreeMap::new();
    plugin_configs.insert("token_count".to_owned(), json.to_owned());
    Gateway::start_with(&ChainOptions {
        plugin_configs,
        ..ChainOptions::default()
    })
    .unwrap()
}

/// Waits until the wall clock is well inside a `window`-second window, so a burst of requests
/// (and the filter's clock, read once a second) stays in one window.
fn align_to_window(window: u64) {
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        let into = now.as_secs() % window;
        if (2..window - 5).contains(&into) {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn concurrent_requests_never_overshoot_the_budget_and_settling_frees_it() {
    let gw = budget_gateway(
        r#"{"budgets":[{"name":"burst","scope":"consumer","window_seconds":30,"tokens":500}]}"#,
    );
    let body = json!({"model": "gpt-4o", "max_tokens": 100,
                      "messages": [{"role": "user", "content": "hello world"}]});
    // Each request reserves its prompt (9) + max_tokens (100) = 109: 4 fit in 500.
    let burst = |n: usize| -> Vec<http::Response> {
        let url = gw.url("/v1/chat/completions");
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let (url, body) = (url.clone(), body.to_string());
                std::thread::spawn(move || {
                    http::post(
                        &url,
                        body.as_bytes(),
                        &[DEMO_AUTH, ("x-mock-latency-ms", "700")],
                    )
                    .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    };
    align_to_window(30);
    let first = burst(12);
    let admitted: Vec<&http::Response> = first.iter().filter(|r| r.status == 200).collect();
    let refused: Vec<&http::Response> = first.iter().filter(|r| r.status == 429).collect();
    assert_eq!(admitted.len() + refused.len(), 12);
    let reserved: u64 = admitted
        .iter()
        .map(|r| {
            r.header("x-sluice-prompt-tokens")
                .unwrap()
                .parse::<u64>()
                .unwrap()
                + 100
        })
        .sum();
    assert!(
        reserved <= 500,
        "admitted {} requests reserving {reserved} > 500",
        admitted.len()
    );
    assert_eq!(admitted.len(), 4, "exactly what fits");
    let r = refused[0];
    assert_eq!(r.json().unwrap()["error"]["code"], "rate_limit_exceeded");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry));
    assert_eq!(r.header("x-ratelimit-limit-tokens"), Some("500"));
    assert!(
        r.header("x-ratelimit-remaining-tokens")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            < 109
    );
    assert!(r.header("x-ratelimit-reset-tokens").unwrap().ends_with('s'));
    // Allowed answers carry the headers too.
    assert_eq!(admitted[0].header("x-ratelimit-limit-tokens"), Some("500"));

    // Settled to real usage (9 + 2 each), the unused completion reservations came back.
    let second = burst(4);
    assert!(
        second.iter().all(|r| r.status == 200),
        "{:?}",
        second.iter().map(|r| r.status).collect::<Vec<_>>()
    );
}

/// A tenant's budget is shared by its consumers and no one else's.
#[test]
fn a_tenant_budget_is_shared_by_its_consumers() {
    let mut plugin_configs = BTreeMap::new();
    plugin_configs.insert(
        "token_count".to_owned(),
        r#"{"budgets":[{"name":"team","scope":"tenant","window_seconds":30,"tokens":300}]}"#
            .to_owned(),
    );
    let consumer = |id: &str, tenant: &str| json!({"id": id, "tenant": tenant, "key_sha256": key_digest_hex(&format!("sk-{id}"))});
    plugin_configs.insert(
        "key_injection_authenticate".to_owned(),
        json!({"role": "authenticate", "consumers": [
            consumer("alice", "acme"), consumer("erin", "acme"), consumer("frank", "globex")]})
        .to_string(),
    );
    let gw = Gateway::start_with(&ChainOptions {
        plugin_configs,
        ..ChainOptions::default()
    })
    .unwrap();
    // Each request reserves its prompt (9) + max_tokens (100) = 109: two fit in 300.
    let body = json!({"model": "gpt-4o", "max_tokens": 100,
                      "messages": [{"role": "user", "content": "hello world"}]})
    .to_string();
    let ask = |id: &str| {
        let auth = format!("Bearer sk-{id}");
        let resp = http::post(
            &gw.url("/v1/chat/completions"),
            body.as_bytes(),
            &[
                ("authorization", auth.as_str()),
                ("x-mock-latency-ms", "1500"),
            ],
        );
        resp.unwrap()
    };
    align_to_window(30);
    // Held concurrently, so that no reservation is settled before the last is asked.
    std::thread::scope(|s| {
        let alice = s.spawn(|| ask("alice"));
        std::thread::sleep(Duration::from_millis(300));
        let erin = s.spawn(|| ask("erin"));
        std::thread::sleep(Duration::from_millis(300));
        let late = ask("erin");
        let frank = ask("frank");
        assert_eq!(alice.join().unwrap().status, 200);
        assert_eq!(erin.join().unwrap().status, 200);
        assert_eq!(late.status, 429, "acme's third request: {}", late.text());
        assert_eq!(late.header("x-ratelimit-limit-tokens"), Some("300"));
        assert_eq!(frank.status, 200, "another tenant: {}", frank.text());
    });
}

#[test]
fn a_client_that_disconnects_mid_stream_still_has_its_reservation_settled() {
    use std::io::{Read, Write};
    let gw = budget_gateway(
        r#"{"budgets":[{"name":"one","scope":"consumer","window_seconds":30,"tokens":1200}]}"#,
    );
    align_to_window(30);
    // Reserves 9 + 1000: the next such request does not fit while this one is held.
    let body = json!({"model": "gpt-4o", "max_tokens": 1000, "stream": true,
                      "messages": [{"role": "user", "content": "hello world"}]})
    .to_string();
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", gw.envoy.port)).unwrap();
    write!(
        conn,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {DEMO_KEY}\r\n\
         content-type: application/json\r\nx-mock-chunk-bytes: 4\r\nx-mock-chunk-delay-ms: 100\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut buf = [0u8; 256];
    let n = conn.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // While the stream is open its reservation is held.
    let held = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "gpt-4o", "max_tokens": 1000,
        "messages": [{"role": "user", "content": "hello world"}]}),
        &[],
    );
    assert_eq!(held.status, 429);
    drop(conn); // the client goes away mid-stream
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let resp = post(
            &gw,
            "/v1/chat/completions",
            &json!({"model": "gpt-4o", "max_tokens": 1000,
            "messages": [{"role": "user", "content": "hello world"}]}),
            &[],
        );
        if resp.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "reservation never settled after the disconnect"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
