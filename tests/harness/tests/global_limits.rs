//! Token limits across many Envoys (envoy/sluice-ratelimit.yaml): two Envoys in front of one
//! mock provider charge one budget kept by tools/sluice-ratelimit in a real Redis. The prompt
//! tokens are charged (and checked) before the request leaves, the completion tokens when the
//! stream is done; what Redis holds equals the token counts, and once the budget is spent either
//! Envoy answers 429 as an OpenAI JSON error.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluice_harness::ratelimit::{RateLimitService, Redis};
use sluice_harness::{http, Envoy, MockProvider, DEMO_AUTH};

/// The shared budget of the demo consumer per model in these tests.
const BUDGET: u64 = 400;

struct Fleet {
    envoys: Vec<Envoy>,
    logs: tempfile::TempDir,
    redis: Redis,
    _service: RateLimitService,
    _mock: MockProvider,
}

fn start_fleet(n: usize) -> Fleet {
    let redis = Redis::start().unwrap();
    let config = json!({"domain": "sluice", "limits": [
        {"name": "tokens", "keys": ["consumer", "model"], "max_tokens": BUDGET, "window_seconds": 3600}]});
    let service = RateLimitService::start(&config.to_string(), &redis.url()).unwrap();
    let mock = MockProvider::start().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let envoys = (0..n)
        .map(|i| {
            let mut vars = BTreeMap::new();
            vars.insert("RATELIMIT_PORT", service.port.to_string());
            vars.insert(
                "ACCESS_LOG",
                logs.path()
                    .join(format!("access-{i}.log"))
                    .display()
                    .to_string(),
            );
            Envoy::start_template_with(
                "envoy/sluice-ratelimit.yaml",
                mock.port,
                &BTreeMap::new(),
                &[],
                &vars,
            )
            .unwrap()
        })
        .collect();
    Fleet {
        envoys,
        logs,
        redis,
        _service: service,
        _mock: mock,
    }
}

impl Fleet {
    /// The tokens Redis holds for the demo consumer and `model`: the sum of the counters of
    /// that (consumer, model) descriptor (limitador names a counter by its limit and values).
    fn charged(&self, model: &str) -> u64 {
        let keys = self
            .redis
            .cli(&["--scan", "--pattern", "namespace:{sluice},*,counter:*"])
            .unwrap();
        keys.lines()
            .filter(|k| k.contains(&format!("\"model\":\"{model}\"")))
            .map(|k| {
                assert!(k.contains("\"consumer\":\"demo\""), "{k}");
                self.redis
                    .cli(&["GET", k])
                    .unwrap()
                    .trim()
                    .parse::<u64>()
                    .unwrap()
            })
            .sum()
    }

    /// Waits until Redis holds `want` for `model` (the completion charge is made after the
    /// answer has left, fire and forget): up to 10 s, then the last value.
    fn charged_settles(&self, model: &str, want: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = self.charged(model);
            if now == want || Instant::now() > deadline {
                return now;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Access-log lines of Envoy `i` so far.
    fn access_log(&self, i: usize) -> Vec<Value> {
        std::fs::read_to_string(self.logs.path().join(format!("access-{i}.log")))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

fn chat(envoy: &Envoy, body: &Value) -> http::Response {
    http::post(
        &envoy.url("/v1/chat/completions"),
        body.to_string().as_bytes(),
        &[DEMO_AUTH],
    )
    .unwrap()
}

fn header_u64(resp: &http::Response, name: &str) -> u64 {
    resp.header(name)
        .unwrap_or_else(|| panic!("no {name}: {:?}", resp.headers))
        .parse()
        .unwrap()
}

/// Requests sent alternately through two Envoys: Redis holds exactly the prompt + completion
/// tokens token-count reported for the answers served; once the budget is spent, both Envoys
/// refuse with 429 and an OpenAI-style JSON error, and the refused prompts are not charged.
#[test]
fn two_envoys_share_one_token_budget() {
    let started = Instant::now();
    let fleet = start_fleet(2);
    eprintln!("two Envoys: started in {:?}", started.elapsed());
    let model = "gpt-4o-mini";
    let (mut served, mut counted) = (0usize, 0u64);
    let (mut max_prompt, mut last_completion) = (0u64, 0u64);
    let mut refused_by = Vec::new();
    for i in 0..40 {
        let envoy = &fleet.envoys[i % 2];
        let body = json!({"model": model, "messages": [{"role": "user",
            "content": format!("Request number {i}: tell me about shared token budgets, please.")}]});
        let resp = chat(envoy, &body);
        match resp.status {
            200 => {
                assert!(
                    refused_by.is_empty(),
                    "served after a refusal: {}",
                    resp.text()
                );
                let prompt = header_u64(&resp, "x-sluice-prompt-tokens");
                let completion = header_u64(&resp, "x-sluice-completion-tokens");
                let usage = &resp.json().unwrap()["usage"];
                assert_eq!(usage["prompt_tokens"], prompt);
                assert_eq!(usage["completion_tokens"], completion);
                served += 1;
                counted += prompt + completion;
                max_prompt = max_prompt.max(prompt);
                last_completion = completion;
                // Each answer's completion charge lands before the next request is checked
                // (fire and forget: wait for it, so that the sequence is deterministic).
                assert_eq!(fleet.charged_settles(model, counted), counted);
            }
            429 => {
                let err = resp.json().unwrap();
                assert_eq!(err["error"]["code"], "rate_limit_exceeded", "{err}");
                assert_eq!(err["error"]["type"], "rate_limit_exceeded", "{err}");
                assert!(err["error"]["message"].as_str().unwrap().contains("budget"));
                assert_eq!(resp.header("x-envoy-ratelimited"), Some("true"));
                refused_by.push(i % 2);
                if refused_by.len() == 2 {
                    break;
                }
            }
            other => panic!("request {i}: {other} {}", resp.text()),
        }
    }
    // The same budget refused in Anthropic's dialect: an Anthropic Messages call for the same
    // model (translated, counted and charged like the chat requests) gets Anthropic's error
    // shape. Its prompt is longer than the requests above, so it cannot fit what is left.
    let body = json!({"model": model, "max_tokens": 20, "messages": [{"role": "user",
        "content": "One more, in the other dialect. ".repeat(8)}]});
    let resp = http::post(
        &fleet.envoys[0].url("/v1/messages"),
        body.to_string().as_bytes(),
        &[DEMO_AUTH],
    )
    .unwrap();
    assert_eq!(resp.status, 429, "{}", resp.text());
    let err = resp.json().unwrap();
    assert_eq!(err["type"], "error", "{err}");
    assert_eq!(err["error"]["type"], "rate_limit_error", "{err}");
    // Both Envoys served some and both refused once the shared budget was spent.
    assert!(served >= 4, "served {served}");
    assert_eq!(refused_by, vec![served % 2, (served + 1) % 2]);
    // Redis holds exactly what token-count counted for the answers served; the refused
    // prompts were not charged. The budget was spent to within one request's prompt, and the
    // overshoot is at most the last answer's completion.
    let total = fleet.charged_settles(model, counted);
    eprintln!("two Envoys: {served} served, Redis holds {total}, token counts sum to {counted} (budget {BUDGET})");
    assert_eq!(total, counted);
    assert!(total + max_prompt > BUDGET, "{total} + {max_prompt}");
    assert!(total <= BUDGET + last_completion, "{total}");
    // The access logs of both Envoys say the same numbers.
    let deadline = Instant::now() + Duration::from_secs(10);
    let served_lines = || -> Vec<Value> {
        (0..2)
            .flat_map(|i| fleet.access_log(i))
            .filter(|l| l["status"] == 200)
            .collect()
    };
    while served_lines().len() < served && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let logged: u64 = served_lines()
        .iter()
        .map(|l| {
            l["prompt_tokens"].as_str().unwrap().parse::<u64>().unwrap()
                + l["completion_tokens"]
                    .as_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
        })
        .sum();
    assert_eq!(logged, counted);
    eprintln!("two Envoys: done in {:?}", started.elapsed());
}

/// A streamed answer: the prompt is charged before the request leaves, the completion (the
/// provider's usage, which only the stream's end reports) when the stream is done.
#[test]
fn a_stream_is_charged_its_completion_when_done() {
    let fleet = start_fleet(1);
    let model = "gpt-4o";
    let body = json!({"model": model, "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "Stream me a few words about token budgets."}]});
    let resp = chat(&fleet.envoys[0], &body);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let prompt = header_u64(&resp, "x-sluice-prompt-tokens");
    let usage: Value = resp
        .text()
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v.get("usage").filter(|u| !u.is_null()).cloned())
        .next_back()
        .expect("a usage chunk");
    let completion = usage["completion_tokens"].as_u64().unwrap();
    assert_eq!(usage["prompt_tokens"], prompt);
    assert!(completion > 0);
    let total = fleet.charged_settles(model, prompt + completion);
    eprintln!("stream: prompt {prompt} + completion {completion}, Redis holds {total}");
    assert_eq!(total, prompt + completion);
    let deadline = Instant::now() + Duration::from_secs(10);
    while fleet.access_log(0).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let line = fleet.access_log(0).pop().unwrap();
    assert_eq!(line["completion_tokens"], completion.to_string());
}
