//! The Istio WasmPlugins in examples/ carry configs each filter accepts, in the chain's order.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use serde::Deserialize;
use sluice_core::key_injection::config::KeyInjectionConfig;
use sluice_core::model_router::config::ModelRouterConfig;
use sluice_core::moderation::config::ModerationConfig;
use sluice_core::parse_config;
use sluice_core::prompt_template::config::PromptTemplateConfig;
use sluice_core::token_count::config::TokenCountConfig;
use sluice_harness::paths;

#[test]
fn every_wasm_plugin_config_is_accepted_by_its_filter() {
    let text =
        std::fs::read_to_string(paths::repo().join("examples/istio/sluice-wasmplugins.yaml"))
            .unwrap();
    let mut seen = Vec::new();
    for doc in serde_norway::Deserializer::from_str(&text) {
        let v = serde_json::Value::deserialize(doc).unwrap();
        assert_eq!(v["kind"], "WasmPlugin");
        let url = v["spec"]["url"].as_str().unwrap();
        let config = serde_json::to_vec(&v["spec"]["pluginConfig"]).unwrap();
        let filter = url.rsplit('/').next().unwrap().split(':').next().unwrap();
        let result = match filter {
            "key-injection" => parse_config::<KeyInjectionConfig>(&config).map(|_| ()),
            "prompt-template" => parse_config::<PromptTemplateConfig>(&config).map(|_| ()),
            "moderation" => parse_config::<ModerationConfig>(&config).map(|_| ()),
            "token-count" => parse_config::<TokenCountConfig>(&config).map(|_| ()),
            "model-router" => parse_config::<ModelRouterConfig>(&config).map(|_| ()),
            other => panic!("unknown filter image {other}"),
        };
        result.unwrap_or_else(|e| panic!("{}: {e}", v["metadata"]["name"]));
        let phase = v["spec"]["phase"].as_str().unwrap_or("UNSPECIFIED_PHASE");
        let priority = v["spec"]["priority"].as_i64().unwrap_or(0);
        seen.push((
            v["metadata"]["name"].as_str().unwrap().to_owned(),
            phase.to_owned(),
            priority,
        ));
    }
    // Istio orders AUTHN, AUTHZ, STATS, then higher priority first within a phase: the same
    // order as envoy/sluice.yaml's chain.
    let rank = |p: &str| {
        ["AUTHN", "AUTHZ", "STATS", "UNSPECIFIED_PHASE"]
            .iter()
            .position(|x| *x == p)
            .unwrap()
    };
    seen.sort_by_key(|(_, phase, priority)| (rank(phase), -priority));
    let order: Vec<&str> = seen.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(
        order,
        [
            "sluice-key-injection-authenticate",
            "sluice-prompt-template",
            "sluice-moderation",
            "sluice-model-router",
            "sluice-token-count",
            "sluice-key-injection-inject"
        ]
    );
}

/// The Istio EnvoyFilter carries exactly envoy/sluice.yaml's local-reply mappers.
#[test]
fn the_istio_local_reply_patch_equals_the_shipped_mappers() {
    let read = |p: &str| std::fs::read_to_string(paths::repo().join(p)).unwrap();
    let rendered = sluice_harness::envoy::render_template(
        "envoy/sluice.yaml",
        &sluice_harness::envoy::template_vars(10000, 9901, 18000),
        &std::collections::BTreeMap::new(),
    )
    .unwrap();
    let shipped: serde_json::Value = serde_norway::from_str(&rendered).unwrap();
    let ours = &shipped["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"]["local_reply_config"];
    assert!(ours["mappers"].as_array().is_some_and(|m| m.len() > 10));
    let patch: serde_json::Value =
        serde_norway::from_str(&read("examples/istio/sluice-local-replies.yaml")).unwrap();
    assert_eq!(patch["kind"], "EnvoyFilter");
    let theirs =
        &patch["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]["local_reply_config"];
    assert_eq!(theirs, ours);
}
