//! Every Envoy config we ship is accepted by the pinned Envoy, and a bad filter config is refused
//! at load with a message naming the field.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;

use sluice_harness::envoy::{render_template, template_vars, validate, validate_env};
use sluice_harness::{providers, Gateway};

fn rendered(template: &str) -> String {
    render_template(
        template,
        &template_vars(10000, 9901, 18000),
        &BTreeMap::new(),
    )
    .unwrap()
}

/// Every Envoy config in envoy/ a user may start (providers.yaml is a fragment sluice.yaml's
/// renderer appends).
const SHIPPED: [&str; 3] = [
    "envoy/sluice.yaml",
    "envoy/bare.yaml",
    "envoy/own-envoy.yaml",
];

#[test]
fn every_config_in_envoy_dir_is_checked() {
    let mut found: Vec<String> = std::fs::read_dir(sluice_harness::paths::repo().join("envoy"))
        .unwrap()
        .map(|e| format!("envoy/{}", e.unwrap().file_name().to_string_lossy()))
        .filter(|name| name != "envoy/providers.yaml")
        .collect();
    found.sort();
    let mut shipped = SHIPPED.map(str::to_owned).to_vec();
    shipped.sort();
    assert_eq!(found, shipped);
}

/// The three configs map Envoy's own local replies to JSON with the same mappers.
#[test]
fn shipped_configs_share_one_local_reply_mapping() {
    let block = |template: &str| {
        let text = std::fs::read_to_string(sluice_harness::paths::repo().join(template)).unwrap();
        let start = text
            .find("          local_reply_config:")
            .unwrap_or_else(|| panic!("{template}: no local_reply_config"));
        let rest = &text[start..];
        let end = rest.find("\n          route_config:").unwrap();
        rest[..end]
            .replacen("local_reply_config: &local_reply", "local_reply_config:", 1)
            .to_owned()
    };
    let sluice = block("envoy/sluice.yaml");
    assert!(sluice.contains("request_too_large"));
    assert_eq!(block("envoy/bare.yaml"), sluice);
    assert_eq!(block("envoy/own-envoy.yaml"), sluice);
}

/// Rendering replaces placeholders everywhere, comments included: a comment must not name one
/// (it would read "10000  listener port"), and the repo stands alone.
#[test]
fn header_comments_survive_rendering() {
    for template in SHIPPED {
        let text = std::fs::read_to_string(sluice_harness::paths::repo().join(template)).unwrap();
        for line in text.lines().filter(|l| l.trim_start().starts_with('#')) {
            assert!(!line.contains("${"), "{template}: {line}");
            assert!(!line.contains("DESIGN.md"), "{template}: {line}");
        }
        let rendered = rendered(template);
        assert!(!rendered.contains("10000  listener port"), "{template}");
    }
}

#[test]
fn shipped_configs_validate() {
    for template in SHIPPED {
        let log = validate(&rendered(template)).unwrap_or_else(|log| panic!("{template}:\n{log}"));
        assert!(log.contains("OK"), "{template}: {log}");
    }
}

#[test]
fn chain_with_real_providers_validates() {
    // What `SLUICE_PROVIDERS=1 make run` starts, with all three provider keys set.
    let keys = [
        ("OPENAI_API_KEY", "sk-test-openai"),
        ("ANTHROPIC_API_KEY", "sk-test-anthropic"),
        ("AZURE_OPENAI_API_KEY", "test-azure"),
    ];
    let env = |name: &str| {
        keys.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    };
    let (config, notes) =
        providers::with_real_providers(rendered("envoy/sluice.yaml"), env).unwrap();
    assert_eq!(notes.len(), 3, "{notes:?}");
    assert!(config.contains("name: azure_openai"));
    assert!(
        config.contains(r#""provider":"anthropic","cluster":"anthropic""#)
            || config.contains(r#""cluster":"anthropic""#)
    );
    assert_eq!(
        config
            .matches(r#""keys":[{"env":"OPENAI_API_KEY"}]"#)
            .count(),
        2,
        "main chain and fallback listener"
    );
    let log = validate_env(&config, &keys).unwrap_or_else(|log| panic!("{log}"));
    assert!(log.contains("OK"));
    // Without the keys in the VM environment the inject config is refused, naming the variable.
    let log = validate(&config).expect_err("keys missing");
    assert!(
        log.contains("environment variable ANTHROPIC_API_KEY is not set"),
        "{log}"
    );
}

#[test]
fn every_filter_refuses_a_bad_config_naming_the_field() {
    let cases = [
        (
            "token_count",
            r#"{"default_encoding":"p50k"}"#,
            "sluice token-count: config refused: $.default_encoding",
        ),
        (
            "prompt_template",
            r#"{"templates":{"t":{"messages":[]}}}"#,
            r#"sluice prompt-template: config refused: $.templates["t"].messages"#,
        ),
        (
            "prompt_template",
            r#"{"templates":{"t":{"messages":[{"role":"user","content":"{{q}}"}]}},"endpoints":[{"path":"/apis/t","template":"t"}]}"#,
            "sluice prompt-template: config refused: $.endpoints[0].template",
        ),
        (
            "moderation",
            r#"{"rules":[{"id":"ok","patterns":["fine"]},{"id":"bad","patterns":["x","(unclosed"]}]}"#,
            "sluice moderation: config refused: $.rules[1].patterns[1]",
        ),
        (
            "key_injection_authenticate",
            r#"{"role":"nobody"}"#,
            "sluice key-injection: config refused: $.role",
        ),
        (
            "model_router",
            r#"{"routes":[{"models":["a"],"targets":[{"provider":"p","cluster":""}]}]}"#,
            "sluice model-router: config refused: $.routes[0].targets[0].cluster",
        ),
    ];
    for (plugin, json, expected) in cases {
        let mut overrides = BTreeMap::new();
        overrides.insert(plugin.to_owned(), json.to_owned());
        let config = render_template(
            "envoy/sluice.yaml",
            &template_vars(10000, 9901, 18000),
            &overrides,
        )
        .unwrap();
        let log = validate(&config).expect_err(plugin);
        assert!(
            log.contains(expected),
            "{plugin}: expected {expected:?} in:\n{log}"
        );
        assert!(
            log.contains(&format!("Unable to create Wasm plugin {plugin}")),
            "{log}"
        );
    }
}

#[test]
fn chain_loads_every_filter_once_per_plugin() {
    let gw = Gateway::start().unwrap();
    let log = gw.envoy.log();
    for filter in [
        "token-count",
        "prompt-template",
        "moderation",
        "model-router",
    ] {
        assert!(
            log.contains(&format!("sluice {filter}: config loaded")),
            "{filter}:\n{log}"
        );
    }
    // Listed twice (authenticate, inject) with one VM.
    assert!(
        log.matches("sluice key-injection: config loaded").count() >= 2,
        "{log}"
    );
    let stats = gw.envoy.prometheus().unwrap();
    let active = stats
        .lines()
        .find(|l| l.starts_with("envoy_wasm_envoy_wasm_runtime_v8_active"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no v8 active gauge in:\n{stats}"));
    // Five modules, each on the main thread and two workers.
    assert!(active >= 15, "active VMs {active}");
}
