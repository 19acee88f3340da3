//! One truth for token counts through the shipped chain: token-count counts the request the
//! provider receives (after model-router's translation and alias), and once the provider reports
//! usage every output carries the provider's numbers — the answer's headers, filter state (the
//! access log), metrics — with their source said truthfully. Metrics only count what went
//! upstream, under model labels callers cannot mint.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sluice_harness::{http, ChainOptions, Gateway, MockProvider, DEMO_AUTH};

fn post(gw: &Gateway, path: &str, body: &Value, extra: &[(&str, &str)]) -> http::Response {
    let mut headers = vec![DEMO_AUTH];
    headers.extend_from_slice(extra);
    http::post(&gw.url(path), body.to_string().as_bytes(), &headers).unwrap()
}

fn input_series(model: &str) -> String {
    format!(
        r#"sluice_token_count_tokens_total{{token_type="input",model="{model}",consumer="demo"}}"#
    )
}

/// The Anthropic SDK's request shape asking for an OpenAI model: model-router translates it,
/// and token-count counts the translated chat request exactly, as the provider bills it.
#[test]
fn an_anthropic_caller_of_an_openai_model_is_counted_as_the_provider_receives_it() {
    let gw = Gateway::start().unwrap();
    let body = json!({"model": "gpt-4o", "max_tokens": 20, "system": "You are terse.",
        "messages": [{"role": "user", "content": "Count the tokens of this sentence, please."},
                     {"role": "assistant", "content": "Sure."},
                     {"role": "user", "content": [{"type": "text", "text": "Now, 日本語 🦀!"}]}]});
    let resp = post(&gw, "/v1/messages", &body, &[]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let billed = resp.json().unwrap()["usage"]["input_tokens"]
        .as_u64()
        .unwrap();
    // What went upstream (an OpenAI chat request) was counted exactly: the count the filter sent
    // with it equals what the provider billed.
    assert_eq!(
        gw.mock.last_request().unwrap()["path"],
        "/v1/chat/completions"
    );
    assert_eq!(
        gw.mock.last_header("x-sluice-prompt-tokens").unwrap(),
        Some(billed.to_string())
    );
    assert_eq!(
        resp.header("x-sluice-prompt-tokens"),
        Some(billed.to_string().as_str())
    );
    assert_eq!(resp.header("x-sluice-token-source"), Some("provider"));
    let line = gw.access_line(1);
    assert_eq!(line["prompt_tokens"], billed.to_string());
    assert_eq!(line["token_source"], "provider");
    // Streamed, the answer's header goes out before any usage: the count, counted here.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let resp = post(&gw, "/v1/messages", &streamed, &[]);
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("x-sluice-prompt-tokens"),
        Some(billed.to_string().as_str())
    );
    assert_eq!(resp.header("x-sluice-token-source"), Some("local"));
}

/// An alias is counted with the encoding of the model it stands for (here gpt-4: cl100k_base,
/// where the caller's made-up name would get o200k_base), and the access log keeps the model
/// the caller asked for beside the one sent upstream.
#[test]
fn an_alias_is_counted_with_the_aliased_models_encoding() {
    let mut plugin_configs = BTreeMap::new();
    plugin_configs.insert(
        "model_router".to_owned(),
        json!({"routes": [{"models": ["house-model"],
            "targets": [{"provider": "mock", "cluster": "mock", "model": "gpt-4"}]}]})
        .to_string(),
    );
    let gw = Gateway::start_with(&ChainOptions {
        plugin_configs,
        ..ChainOptions::default()
    })
    .unwrap();
    let text = "Ünïcödé façade — naïve café 🦀 日本語のテキスト";
    let body = json!({"model": "house-model", "messages": [{"role": "user", "content": text}]});
    let resp = post(&gw, "/v1/chat/completions", &body, &[]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let billed = resp.json().unwrap()["usage"]["prompt_tokens"]
        .as_u64()
        .unwrap();
    let recipe = |bpe: tiktoken_rs::CoreBPE| {
        (6 + bpe.encode_with_special_tokens("user").len()
            + bpe.encode_with_special_tokens(text).len()) as u64
    };
    let cl100k = recipe(tiktoken_rs::cl100k_base().unwrap());
    assert_ne!(cl100k, recipe(tiktoken_rs::o200k_base().unwrap()));
    assert_eq!(billed, cl100k, "the mock bills gpt-4 with cl100k_base");
    assert_eq!(
        gw.mock.last_header("x-sluice-prompt-tokens").unwrap(),
        Some(cl100k.to_string())
    );
    let line = gw.access_line(1);
    assert_eq!(line["model"], "house-model");
    assert_eq!(line["upstream_model"], "gpt-4");
}

/// An Anthropic target: the prompt can only be estimated before it leaves. Once Anthropic's
/// usage arrives, the answer's header, the access log and the metrics all say Anthropic's
/// number, and say it is the provider's.
#[test]
fn once_the_provider_reports_usage_every_output_carries_its_numbers() {
    let gw = Gateway::start().unwrap();
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 50, "system": "Be brief.",
        "messages": [{"role": "user", "content": "one two three four five"},
                     {"role": "assistant", "content": "six"},
                     {"role": "user", "content": "seven eight"}]});
    let resp = post(&gw, "/v1/messages", &body, &[]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let usage = resp.json().unwrap()["usage"].clone();
    let billed = usage["input_tokens"].as_u64().unwrap();
    let estimate: u64 = gw
        .mock
        .last_header("x-sluice-prompt-tokens")
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(estimate, billed, "the case needs an estimate that is off");
    assert_eq!(
        resp.header("x-sluice-prompt-tokens"),
        Some(billed.to_string().as_str())
    );
    assert_eq!(
        resp.header("x-sluice-completion-tokens"),
        Some(usage["output_tokens"].to_string().as_str())
    );
    assert_eq!(resp.header("x-sluice-token-source"), Some("provider"));
    let line = gw.access_line(1);
    assert_eq!(line["prompt_tokens"], billed.to_string(), "{line}");
    assert_eq!(
        line["completion_tokens"],
        usage["output_tokens"].to_string()
    );
    assert_eq!(line["token_source"], "provider");
    let series = input_series("claude-sonnet-4-5");
    assert_eq!(
        gw.envoy.metric_reaching(&series, billed as f64),
        Some(billed as f64)
    );
    // Streamed: the header before the answer is the estimate, and says so.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let resp = post(&gw, "/v1/messages", &streamed, &[]);
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("x-sluice-prompt-tokens"),
        Some(estimate.to_string().as_str())
    );
    assert_eq!(resp.header("x-sluice-token-source"), Some("estimate"));
    let line = gw.access_line(2);
    assert_eq!(line["prompt_tokens"], billed.to_string(), "{line}");
    assert_eq!(line["token_source"], "provider");
}

/// A fallback's answer reaches the caller past token-count (Envoy sends it straight out); it is
/// counted all the same, from the fallback provider's usage, under the model that served it.
#[test]
fn a_fallback_answer_is_counted_from_its_own_usage() {
    let second = MockProvider::start().unwrap();
    let mut plugin_configs = BTreeMap::new();
    plugin_configs.insert(
        "model_router".to_owned(),
        json!({"routes": [
            {"models": ["fb-*"], "targets": [{"provider": "mock", "cluster": "mock", "model": "gpt-4o-mini"}],
             "fallback": [{"provider": "mock", "kind": "anthropic", "cluster": "mock_b", "model": "claude-fallback"}]}
        ]})
        .to_string(),
    );
    let gw = Gateway::start_with(&ChainOptions {
        plugin_configs,
        extra_clusters: vec![("mock_b".to_owned(), second.port)],
        ..ChainOptions::default()
    })
    .unwrap();
    let body = json!({"model": "fb-1", "messages": [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "route me, and count me as the fallback bills me"}]});
    let resp = post(
        &gw,
        "/v1/chat/completions",
        &body,
        &[("x-mock-status", "429")],
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.header("x-sluice-fallback"),
        Some("attempts=2; answered=mock_b")
    );
    let usage = resp.json().unwrap()["usage"].clone();
    let (prompt, completion) = (
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["completion_tokens"].as_u64().unwrap(),
    );
    assert_eq!(
        resp.header("x-sluice-prompt-tokens"),
        Some(prompt.to_string().as_str())
    );
    assert_eq!(
        resp.header("x-sluice-completion-tokens"),
        Some(completion.to_string().as_str())
    );
    assert_eq!(resp.header("x-sluice-token-source"), Some("provider"));
    let line = gw.access_line(1);
    assert_eq!(line["prompt_tokens"], prompt.to_string(), "{line}");
    assert_eq!(line["completion_tokens"], completion.to_string(), "{line}");
    assert_eq!(line["token_source"], "provider");
    assert_eq!(line["upstream_model"], "claude-fallback");
    assert_eq!(
        gw.envoy
            .metric_reaching(&input_series("claude-fallback"), prompt as f64),
        Some(prompt as f64)
    );
    let stats = gw.envoy.prometheus().unwrap();
    assert!(
        !stats.contains(r#"model="gpt-4o-mini""#),
        "the failed attempt was counted: {stats}"
    );
}

/// Requests refused before upstream are not counted, and an error answer is labelled with a
/// model a provider has served here, else `other`: a caller cannot mint label series. An
/// error answer costs nothing: no tokens, no cost (providers do not bill failed requests).
#[test]
fn metrics_count_only_what_went_upstream_under_labels_callers_cannot_mint() {
    let gw = Gateway::start().unwrap();
    let msgs = json!([{"role": "user", "content": "hello there"}]);
    // Refused before upstream: an unknown model, a missing model.
    let resp = post(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "llama-9000", "messages": msgs}),
        &[],
    );
    assert_eq!(resp.status, 404);
    let resp = post(&gw, "/v1/chat/completions", &json!({"messages": msgs}), &[]);
    assert_eq!(resp.status, 400);
    // Upstream errors: a made-up model nobody served, and a real one after it was served.
    let made_up = json!({"model": "gpt-made-up-1", "messages": msgs});
    let resp = post(
        &gw,
        "/v1/chat/completions",
        &made_up,
        &[("x-mock-status", "500")],
    );
    assert_eq!(resp.status, 500);
    let real = json!({"model": "gpt-4.1", "messages": msgs});
    let ok = post(&gw, "/v1/chat/completions", &real, &[]);
    assert_eq!(ok.status, 200);
    let billed = ok.json().unwrap()["usage"].clone();
    let resp = post(
        &gw,
        "/v1/chat/completions",
        &real,
        &[("x-mock-status", "500")],
    );
    assert_eq!(resp.status, 500);

    let requests = |model: &str| {
        format!(r#"sluice_token_count_requests_total{{model="{model}",consumer="demo"}}"#)
    };
    assert_eq!(gw.envoy.metric_reaching(&requests("other"), 1.0), Some(1.0));
    assert_eq!(
        gw.envoy.metric_reaching(&requests("gpt-4_1"), 2.0),
        Some(2.0)
    );
    assert_eq!(gw.envoy.metric(&input_series("other")), Some(0.0));
    let input = billed["prompt_tokens"].as_f64().unwrap();
    assert_eq!(gw.envoy.metric(&input_series("gpt-4_1")), Some(input));
    // envoy/sluice.yaml prices gpt-4.1 at $2 in and $8 out per 1M tokens: the 500 added nothing.
    let cost = input * 2.0 + billed["completion_tokens"].as_f64().unwrap() * 8.0;
    assert_eq!(
        gw.envoy.metric(
            r#"sluice_token_count_cost_microdollars_total{model="gpt-4_1",consumer="demo"}"#
        ),
        Some(cost)
    );
    let stats = gw.envoy.prometheus().unwrap();
    for minted in [
        "llama-9000",
        "gpt-made-up",
        "model=\"unknown\"",
        "model=\"none\"",
    ] {
        assert!(!stats.contains(minted), "{minted} in {stats}");
    }
}

/// token-count sits after model-router and sees the provider's dialect, but its own refusals
/// (here a prompt over a `model_limits` limit) go out in the caller's: an OpenAI caller of a
/// claude-* model gets OpenAI's error shape with `context_length_exceeded`, an Anthropic caller
/// of a gpt-* model gets Anthropic's. Nothing goes upstream.
#[test]
fn a_prompt_over_its_limit_is_refused_in_the_callers_dialect_not_the_providers() {
    let mut plugin_configs = BTreeMap::new();
    plugin_configs.insert(
        "token_count".to_owned(),
        r#"{"model_limits":[{"models":["claude-*","gpt-4o*"],"max_prompt_tokens":10}]}"#.to_owned(),
    );
    let gw = Gateway::start_with(&ChainOptions {
        plugin_configs,
        ..ChainOptions::default()
    })
    .unwrap();
    let short = json!({"model": "claude-sonnet-4-5", "max_tokens": 20,
        "messages": [{"role": "user", "content": "hi"}]});
    let resp = post(&gw, "/v1/chat/completions", &short, &[]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let upstream = || gw.mock.last_request().unwrap()["count"].as_u64().unwrap();
    let before = upstream();
    let words = "one two three four five six seven eight nine ten eleven twelve";

    // An OpenAI caller, an Anthropic target: OpenAI's shape.
    let long = json!({"model": "claude-sonnet-4-5", "max_tokens": 20,
        "messages": [{"role": "user", "content": words}]});
    let resp = post(&gw, "/v1/chat/completions", &long, &[]);
    assert_eq!(resp.status, 400, "{}", resp.text());
    let v = resp.json().unwrap();
    assert!(v.get("type").is_none(), "Anthropic's shape: {v}");
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    assert_eq!(v["error"]["code"], "context_length_exceeded", "{v}");
    assert_eq!(v["error"]["param"], "messages", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("maximum context length is 10 tokens"),
        "{v}"
    );

    // An Anthropic caller, an OpenAI target: Anthropic's shape.
    let long = json!({"model": "gpt-4o", "max_tokens": 20,
        "messages": [{"role": "user", "content": words}]});
    let resp = post(&gw, "/v1/messages", &long, &[]);
    assert_eq!(resp.status, 400, "{}", resp.text());
    let v = resp.json().unwrap();
    assert_eq!(v["type"], "error", "OpenAI's shape: {v}");
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    assert!(v["error"].get("code").is_none(), "OpenAI's shape: {v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("maximum context length is 10 tokens"),
        "{v}"
    );
    assert_eq!(upstream(), before, "a refused request went upstream");
}

/// token-count's budget refusal (a 429 it sends itself, after model-router) is neither
/// translated as a provider's answer nor taken for a provider's 429: no fallback is tried.
#[test]
fn a_budget_refusal_behind_the_router_sets_off_no_fallback() {
    let second = MockProvider::start().unwrap();
    let mut plugin_configs = BTreeMap::new();
    plugin_configs.insert(
        "model_router".to_owned(),
        json!({"routes": [
            {"models": ["fb-*"], "targets": [{"provider": "mock", "kind": "anthropic", "cluster": "mock", "model": "claude-sonnet-4-5"}],
             "fallback": [{"provider": "mock", "cluster": "mock_b", "model": "gpt-4o-mini"}]}
        ]})
        .to_string(),
    );
    plugin_configs.insert(
        "token_count".to_owned(),
        json!({"budgets": [{"name": "tiny", "scope": "consumer", "window_seconds": 60, "tokens": 5}]})
            .to_string(),
    );
    let gw = Gateway::start_with(&ChainOptions {
        plugin_configs,
        extra_clusters: vec![("mock_b".to_owned(), second.port)],
        ..ChainOptions::default()
    })
    .unwrap();
    let body = json!({"model": "fb-1", "max_tokens": 50,
        "messages": [{"role": "user", "content": "this needs more than five tokens"}]});
    let resp = post(&gw, "/v1/chat/completions", &body, &[]);
    assert_eq!(resp.status, 429, "{}", resp.text());
    let v = resp.json().unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("tiny"),
        "{v}"
    );
    assert_eq!(resp.header("x-sluice-fallback"), None);
    assert_eq!(
        second.last_request().unwrap()["count"]
            .as_u64()
            .unwrap_or(0),
        0
    );
}

/// A JSON answer too large for Envoy to hold (over the 4 MiB buffer limit) is not held for its
/// usage: it reaches the caller whole, with the count's headers, not as Envoy's 500.
#[test]
fn an_answer_over_the_buffer_limit_passes_unheld() {
    let gw = Gateway::start().unwrap();
    let text = "ab ".repeat((4 << 20) / 3 - 100);
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]});
    let sent = body.to_string();
    assert!(
        sent.len() <= 4 << 20,
        "the request must fit: {}",
        sent.len()
    );
    let resp = post(&gw, "/v1/chat/completions", &body, &[]);
    assert_eq!(
        resp.status,
        200,
        "{}",
        &resp.text()[..200.min(resp.body.len())]
    );
    assert!(
        resp.body.len() > 4 << 20,
        "the answer must not fit: {}",
        resp.body.len()
    );
    let answer = resp.json().unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .len(),
        text.len()
    );
    assert_eq!(resp.header("x-sluice-token-source"), Some("local"));
    assert_eq!(
        resp.header("x-sluice-prompt-tokens"),
        gw.mock
            .last_header("x-sluice-prompt-tokens")
            .unwrap()
            .as_deref()
    );
}

/// A caller that accepts compressed answers (the official SDKs send `accept-encoding: gzip,
/// deflate`) does not pass that on: the provider's answer must stay readable to the filters.
#[test]
fn the_provider_is_not_asked_for_compressed_answers() {
    let gw = Gateway::start().unwrap();
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let resp = post(
        &gw,
        "/v1/chat/completions",
        &body,
        &[("accept-encoding", "gzip, deflate")],
    );
    assert_eq!(resp.status, 200);
    assert_eq!(gw.mock.last_header("accept-encoding").unwrap(), None);
    assert_eq!(resp.header("x-sluice-token-source"), Some("provider"));
}
