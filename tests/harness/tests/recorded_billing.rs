//! token-count against OpenAI's bill, through the shipped chain: every request recorded from
//! live OpenAI traffic (`filters/sluice-core/testdata/billing/openai_recorded.json`) is sent
//! through Envoy; where the rules call the count exact (`x-sluice-token-source: local` on the
//! request upstream) it must equal the prompt tokens OpenAI billed for it, and every other
//! request must go upstream marked `estimate`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sluice_harness::{http, paths, ChainOptions, Gateway, DEMO_AUTH};

#[test]
fn recorded_requests_are_counted_as_openai_billed_them_or_marked_estimates() {
    let text = std::fs::read_to_string(
        paths::repo().join("filters/sluice-core/testdata/billing/openai_recorded.json"),
    )
    .unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    // Every model goes to the mock as it is named (no alias), whatever its family.
    let mut plugin_configs = BTreeMap::new();
    plugin_configs.insert(
        "model_router".to_owned(),
        json!({"routes": [{"models": ["*"], "targets": [{"provider": "mock", "cluster": "mock"}]}]})
            .to_string(),
    );
    let gw = Gateway::start_with(&ChainOptions {
        plugin_configs,
        ..ChainOptions::default()
    })
    .unwrap();
    let (mut exact, mut estimates, mut wrong) = (0, 0, Vec::new());
    for r in doc["requests"].as_array().unwrap() {
        let mut req = r["request"].clone();
        req["model"] = r["model"].clone();
        // The mock need not stream; the count is of the request.
        req.as_object_mut().unwrap().remove("stream");
        req.as_object_mut().unwrap().remove("stream_options");
        let path = r["endpoint"].as_str().unwrap();
        let before = gw.mock.last_request().unwrap()["count"]
            .as_u64()
            .unwrap_or(0);
        let resp = http::post(&gw.url(path), req.to_string().as_bytes(), &[DEMO_AUTH]).unwrap();
        assert_eq!(resp.status, 200, "{path} {}: {}", r["source"], resp.text());
        let after = gw.mock.last_request().unwrap()["count"]
            .as_u64()
            .unwrap_or(0);
        assert_eq!(
            after,
            before + 1,
            "{} did not reach the provider",
            r["source"]
        );
        let counted: u64 = gw
            .mock
            .last_header("x-sluice-prompt-tokens")
            .unwrap()
            .unwrap_or_else(|| panic!("not counted: {}", r["source"]))
            .parse()
            .unwrap();
        let source = gw
            .mock
            .last_header("x-sluice-token-source")
            .unwrap()
            .unwrap();
        let billed = r["billed_prompt_tokens"].as_u64().unwrap();
        match source.as_str() {
            "local" if r.get("doubtful").is_some() => {}
            "local" if counted == billed => exact += 1,
            "local" => wrong.push(format!(
                "{} {}: counted {counted}, billed {billed} ({})",
                r["model"], r["features"], r["source"]
            )),
            "estimate" => estimates += 1,
            other => panic!("token source {other}"),
        }
    }
    println!("through Envoy: {exact} counted as billed, {estimates} marked estimates");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(exact >= 755, "only {exact} counted exactly");
}
