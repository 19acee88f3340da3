//! Every Envoy config we ship is accepted by the pinned Envoy, and a bad filter config is refused
//! at load with a message naming the field.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;

use sluice_harness::envoy::{render_template, template_vars, validate, validate_env};
use sluice_harness::{alone, configs, ecds, paths, providers, Gateway};

/// The hot-swap layout envoy/sluice-ecds.yaml points at, filled once per test run (Envoy checks
/// that its files exist, even in validate mode).
fn ecds_layout() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("configs-ecds-layout");
        ecds::init(&dir, &paths::wasm_dir()).unwrap();
        dir
    })
}

fn rendered(template: &str) -> String {
    let mut vars = template_vars(10000, 9901, 18000);
    vars.insert("ECDS_DIR", ecds_layout().display().to_string());
    vars.insert("RATELIMIT_PORT", "18081".to_owned());
    render_template(template, &vars, &BTreeMap::new()).unwrap()
}

/// Every Envoy config in envoy/ a user may start (providers.yaml is a fragment sluice.yaml's
/// renderer appends), each filter alone (envoy/alone/) included.
const SHIPPED: [&str; 10] = [
    "envoy/sluice.yaml",
    "envoy/bare.yaml",
    "envoy/own-envoy.yaml",
    "envoy/sluice-ecds.yaml",
    "envoy/sluice-ratelimit.yaml",
    "envoy/alone/key-injection.yaml",
    "envoy/alone/prompt-template.yaml",
    "envoy/alone/moderation.yaml",
    "envoy/alone/model-router.yaml",
    "envoy/alone/token-count.yaml",
];

/// The files under `dir` (relative to the repo), subfolders walked, as repo-relative paths.
fn files_under(dir: &str) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(paths::repo().join(dir)).unwrap() {
        let entry = entry.unwrap();
        let path = format!("{dir}/{}", entry.file_name().to_string_lossy());
        if entry.file_type().unwrap().is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn every_config_in_envoy_dir_is_checked() {
    let mut found: Vec<String> = files_under("envoy")
        .into_iter()
        .filter(|name| name != "envoy/providers.yaml")
        .collect();
    found.sort();
    let mut shipped = SHIPPED.map(str::to_owned).to_vec();
    shipped.sort();
    assert_eq!(found, shipped);
    // The filters alone are the ones the generator writes.
    let mut generated: Vec<String> = alone::CONFIGS.iter().map(|a| a.path()).collect();
    generated.sort();
    let mut listed: Vec<String> = shipped
        .into_iter()
        .filter(|p| p.starts_with("envoy/alone/"))
        .collect();
    listed.sort();
    assert_eq!(listed, generated);
}

/// The configs made from envoy/sluice.yaml are what `make configs` writes from it: each filter
/// alone, the hot-swap layout and the global-limit layout (sluice-ratelimit.yaml) below their
/// header comments, and the local-reply mappers of bare.yaml and own-envoy.yaml (the Istio
/// patch's: istio_examples.rs). They cannot drift from the chain.
#[test]
fn configs_made_from_the_chain_are_current() {
    let stale: Vec<String> = configs::generated()
        .iter()
        .filter(|g| g.path.starts_with("envoy/"))
        .filter_map(|g| configs::stale(g).unwrap())
        .collect();
    assert!(
        stale.is_empty(),
        "{}\nthese are made from envoy/sluice.yaml: change that file, then rewrite them with \
         `{}` (what is each file's own stays: header comments, and all but the mappers in \
         bare.yaml and own-envoy.yaml; sluice-ratelimit.yaml's own parts are kept in \
         tests/harness/src/global_limits.rs)",
        stale.join("\n"),
        configs::REGENERATE
    );
    // Every shipped config but the chain itself is made from it, at least its mappers (each has
    // a local_reply_config): a new one must be added to the generator.
    let mut made: Vec<String> = configs::generated()
        .into_iter()
        .map(|g| g.path)
        .filter(|p| p.starts_with("envoy/"))
        .chain([configs::CHAIN.to_owned()])
        .collect();
    made.sort();
    let mut shipped = SHIPPED.map(str::to_owned).to_vec();
    shipped.sort();
    assert_eq!(made, shipped);
}

/// envoy/sluice-ratelimit.yaml is envoy/sluice.yaml plus Envoy's global rate limit and nothing
/// else (made so by `make configs`: configs_made_from_the_chain_are_current): parsed, with the
/// runtime flag, the token charges on the virtual host llm, the rate-limit filter right after
/// token-count and the rate-limit service's cluster taken out, it is the chain.
#[test]
fn global_limit_layout_is_the_shipped_chain_plus_the_limit() {
    let parse = |t: &str| -> serde_json::Value { serde_norway::from_str(&rendered(t)).unwrap() };
    let chain = parse("envoy/sluice.yaml");
    let mut limited = parse("envoy/sluice-ratelimit.yaml");
    let runtime = limited
        .as_object_mut()
        .unwrap()
        .remove("layered_runtime")
        .unwrap();
    assert_eq!(
        runtime["layers"][0]["static_layer"]
            ["envoy.reloadable_features.enable_formatter_for_ratelimit_action_descriptor_value"],
        true
    );
    let hcm = &mut limited["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"];
    // The charges stand on the virtual host: every route of it, none of the fallback listener.
    let host = &mut hcm["route_config"]["virtual_hosts"][0];
    assert_eq!(host["name"], "llm");
    let charges = host
        .as_object_mut()
        .unwrap()
        .remove("typed_per_filter_config")
        .unwrap();
    let limits = &charges["envoy.filters.http.ratelimit"]["rate_limits"];
    assert_eq!(charges.as_object().unwrap().len(), 1, "{charges}");
    assert_eq!(limits.as_array().unwrap().len(), 2, "{limits}");
    assert_eq!(limits[1]["apply_on_stream_done"], true);
    let filters = hcm["http_filters"].as_array_mut().unwrap();
    let at = filters
        .iter()
        .position(|f| f["name"] == "envoy.filters.http.ratelimit")
        .unwrap();
    assert_eq!(filters[at - 1]["name"], "sluice.token_count");
    let filter = filters.remove(at);
    assert_eq!(filter["typed_config"]["domain"], "sluice");
    let clusters = limited["static_resources"]["clusters"]
        .as_array_mut()
        .unwrap();
    let at = clusters
        .iter()
        .position(|c| c["name"] == "sluice_ratelimit")
        .unwrap();
    let cluster = clusters.remove(at);
    assert!(
        cluster.to_string().contains("\"port_value\":18081"),
        "{cluster}"
    );
    assert!(
        limited == chain,
        "envoy/sluice-ratelimit.yaml less its additions is not envoy/sluice.yaml; first \
         difference (its value, then the chain's): {}",
        first_difference(&limited, &chain, "")
    );
}

/// Where two JSON values first differ: a path and the two values there.
fn first_difference(a: &serde_json::Value, b: &serde_json::Value, at: &str) -> String {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for key in keys {
                let (p, q) = (x.get(key), y.get(key));
                if p != q {
                    let path = format!("{at}.{key}");
                    return match (p, q) {
                        (Some(p), Some(q)) => first_difference(p, q, &path),
                        _ => {
                            let show =
                                |v: Option<&Value>| v.map_or("absent".to_owned(), Value::to_string);
                            format!("{path}: {} against {}", show(p), show(q))
                        }
                    };
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                if p != q {
                    return first_difference(p, q, &format!("{at}[{i}]"));
                }
            }
        }
        _ => {}
    }
    format!("{at}: {a} against {b}")
}

/// Each config in envoy/alone/ is envoy/sluice.yaml with only one filter's entries (plus Envoy's
/// decompressor and router), below its own header comment.
#[test]
fn each_filter_alone_is_the_shipped_chain_with_only_that_filter() {
    let chain = std::fs::read_to_string(paths::repo().join("envoy/sluice.yaml")).unwrap();
    for a in &alone::CONFIGS {
        let text = std::fs::read_to_string(paths::repo().join(a.path())).unwrap();
        let (header, body) = configs::split_header(&text).unwrap();
        // A header that says what it is, how to regenerate it and how to run it.
        assert!(header.starts_with("# "), "{}", a.path());
        assert!(header.contains(configs::REGENERATE), "{}", a.path());
        assert!(
            header.contains(&format!("run --config {}", a.path())),
            "{}",
            a.path()
        );
        // Exactly its own Sluice entries: key-injection's inject entry on the fallback listener
        // goes with that listener (left out without model-router) or with key-injection.
        let sluice_entries: Vec<&str> = body
            .lines()
            .filter_map(|l| l.strip_prefix("          - name: sluice."))
            .collect();
        let own: Vec<&str> = a
            .entries
            .iter()
            .map(|e| e.strip_prefix("sluice.").unwrap())
            .collect();
        assert_eq!(sluice_entries, own, "{}", a.path());
        let router = a.entries.contains(&"sluice.model_router");
        // Each keeps the chain's config of its filter.
        for entry in a.entries {
            let plugin = entry
                .strip_prefix("sluice.")
                .unwrap()
                .replace("key_injection.", "key_injection_");
            assert_eq!(
                sluice_harness::render::plugin_config(body, &plugin),
                sluice_harness::render::plugin_config(&chain, &plugin),
                "{} {plugin}",
                a.path()
            );
        }
        // Only model-router sends requests to its fallback listener.
        assert_eq!(body.contains("sluice_internal"), router, "{}", a.path());
        assert_eq!(body.contains("sluice_loopback"), router, "{}", a.path());
        assert_eq!(
            body.contains("envoy.bootstrap.internal_listener"),
            router,
            "{}",
            a.path()
        );
    }
}

/// Rendering replaces placeholders everywhere, comments included: a comment must not name one
/// (it would read "10000  listener port"), and the repo stands alone.
/// Every listener buffers what the filters hold whole (bodies, error answers to scrub) up to
/// the filters' default max_body_bytes (4 MiB): an internal listener left at Envoy's default
/// (1 MiB) overflowed on a fallback's error answer of 1-3 MiB.
#[test]
fn every_listener_buffers_what_the_filters_hold() {
    for template in SHIPPED {
        let config: serde_json::Value = serde_norway::from_str(&rendered(template)).unwrap();
        for listener in config["static_resources"]["listeners"].as_array().unwrap() {
            assert_eq!(
                listener["per_connection_buffer_limit_bytes"], 4194304,
                "{template}: listener {}",
                listener["name"]
            );
        }
    }
}

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
    // Two Envoys at a time (each compiles its modules: about 2 s of CPU).
    let rendered: Vec<(&str, String)> = SHIPPED.iter().map(|t| (*t, rendered(t))).collect();
    std::thread::scope(|scope| {
        for half in rendered.chunks(rendered.len().div_ceil(2)) {
            scope.spawn(move || {
                for (template, config) in half {
                    let log = validate(config).unwrap_or_else(|log| panic!("{template}:\n{log}"));
                    assert!(log.contains("OK"), "{template}: {log}");
                }
            });
        }
    });
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

/// envoy/sluice-ecds.yaml is envoy/sluice.yaml with each Sluice filter's inline config replaced
/// by config discovery (made so by `make configs`: configs_made_from_the_chain_are_current), and
/// the resources `make run-ecds` writes carry what sluice.yaml has inline: the chain cannot
/// drift apart between the two layouts.
#[test]
fn hot_swap_layout_is_the_shipped_chain() {
    let read = |t: &str| std::fs::read_to_string(paths::repo().join(t)).unwrap();
    let (inline, ecds_text) = (read("envoy/sluice.yaml"), read("envoy/sluice-ecds.yaml"));
    let entries = ecds_text.matches("            config_discovery:").count();
    assert_eq!(
        entries, 7,
        "six entries, key-injection's inject on both listeners"
    );
    for r in ecds::RESOURCES {
        assert!(ecds_text.contains(&format!(
            "          - name: {}\n            config_discovery:\n              config_source:\n                path_config_source:\n                  path: ${{ECDS_DIR}}/{}\n",
            r.name, r.file
        )), "{}", r.name);
        let file = std::fs::read_to_string(ecds_layout().join(r.file)).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&file).unwrap();
        let res = &doc["resources"][0];
        assert_eq!(res["name"], r.name);
        let plugin = &res["typed_config"]["config"];
        assert_eq!(plugin["name"], r.plugin);
        assert_eq!(plugin["vm_config"]["vm_id"], r.vm_id);
        assert_eq!(plugin["allow_on_headers_stop_iteration"], true);
        assert_eq!(
            plugin["configuration"]["value"].as_str(),
            sluice_harness::render::plugin_config(&inline, r.plugin).as_deref()
        );
        // The module is the current build, under its content-addressed name.
        let module = plugin["vm_config"]["code"]["local"]["filename"]
            .as_str()
            .unwrap();
        let build = std::fs::read(paths::wasm_dir().join(format!("{}.wasm", r.module))).unwrap();
        assert_eq!(std::fs::read(module).unwrap(), build);
        assert!(module.ends_with(&format!(
            "{}-{}.wasm",
            r.module,
            &ecds::sha256_hex(&build)[..16]
        )));
        if r.module == "key_injection" {
            let env = plugin["vm_config"]["environment_variables"]["host_env_keys"].clone();
            let keys: Vec<String> = serde_json::from_value(env).unwrap();
            assert!(inline.contains(&format!("host_env_keys: [{}]", keys.join(", "))));
        }
    }
}
