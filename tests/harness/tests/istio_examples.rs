//! The Istio manifests in examples/istio/, rendered from a fresh build of the images as
//! `make istio-manifests` renders them: every document passes Istio's own CRD schema (the npm
//! package `@kubernetes-models/istio`, run by tests/istio-schema/validate.mjs), every
//! `pluginConfig` passes its filter's own config validation, every `sha256` is the digest of the
//! image that holds the built `.wasm`, and the WasmPlugins' phases and priorities give
//! envoy/sluice.yaml's chain order. Bad manifests are shown to fail each check.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use sluice_core::key_injection::config::KeyInjectionConfig;
use sluice_core::model_router::config::ModelRouterConfig;
use sluice_core::moderation::config::ModerationConfig;
use sluice_core::parse_config;
use sluice_core::prompt_template::config::PromptTemplateConfig;
use sluice_core::token_count::config::TokenCountConfig;
use sluice_harness::{oci, paths};

const REGISTRY: &str = "registry.example.com/sluice";
const TAG: &str = env!("CARGO_PKG_VERSION");

/// Images built from the `.wasm` files into a temp folder, and the manifests rendered from
/// them (what `make oci` and `make istio-manifests` do).
struct Rendered {
    _dir: tempfile::TempDir,
    oci: PathBuf,
    built: Vec<sluice_oci::Built>,
    /// (file name, its documents)
    files: Vec<(String, Vec<Value>)>,
}

fn render() -> Rendered {
    let dir = tempfile::tempdir().unwrap();
    let layouts = dir.path().join("oci");
    std::fs::create_dir_all(&layouts).unwrap();
    let built = sluice_oci::build_all(&paths::wasm_dir(), &layouts, TAG).unwrap();
    let files = oci::istio_manifests(&layouts, REGISTRY, TAG, &dir.path().join("istio")).unwrap();
    Rendered {
        _dir: dir,
        oci: layouts,
        built,
        files,
    }
}

fn wasm_plugins(r: &Rendered) -> Vec<(&str, &Value)> {
    r.files
        .iter()
        .flat_map(|(f, docs)| docs.iter().map(move |d| (f.as_str(), d)))
        .filter(|(_, d)| d["kind"] == "WasmPlugin")
        .collect()
}

/// Feeds a pluginConfig to its filter's own config validation.
fn filter_accepts(filter: &str, config: &Value) -> Result<(), String> {
    let config = serde_json::to_vec(config).unwrap();
    let result = match filter {
        "key-injection" => parse_config::<KeyInjectionConfig>(&config).map(|_| ()),
        "prompt-template" => parse_config::<PromptTemplateConfig>(&config).map(|_| ()),
        "moderation" => parse_config::<ModerationConfig>(&config).map(|_| ()),
        "token-count" => parse_config::<TokenCountConfig>(&config).map(|_| ()),
        "model-router" => parse_config::<ModelRouterConfig>(&config).map(|_| ()),
        other => panic!("unknown filter image {other}"),
    };
    result.map_err(|e| e.to_string())
}

/// Runs tests/istio-schema/validate.mjs on documents: one `ok …` or `error …` line each, and
/// whether all passed.
fn istio_schema(docs: &[Value]) -> (bool, Vec<String>) {
    let dir = paths::repo().join("tests/istio-schema");
    assert!(
        dir.join("node_modules/@kubernetes-models/istio").exists(),
        "Istio's schema package is not installed: run `make setup` (npm ci in {})",
        dir.display()
    );
    let mut child = Command::new("node")
        .arg("validate.mjs")
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node (Node 20) is needed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(docs).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<String> = stdout.lines().map(str::to_owned).collect();
    let code = out.status.code();
    assert!(
        code == Some(0) || code == Some(1),
        "validate.mjs failed to run ({code:?}): {}{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines.len(), docs.len(), "one line per document: {stdout}");
    (code == Some(0), lines)
}

/// Every document of every file passes Istio's own schema.
#[test]
fn every_manifest_passes_istios_own_schema() {
    let r = render();
    let names: Vec<&str> = r.files.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        names,
        [
            "sluice-local-replies.yaml",
            "sluice-wasmplugins-sidecars.yaml",
            "sluice-wasmplugins.yaml"
        ]
    );
    for (file, docs) in &r.files {
        let (ok, lines) = istio_schema(docs);
        assert!(ok, "{file}: {lines:#?}");
        assert!(lines.iter().all(|l| l.starts_with("ok ")), "{lines:?}");
    }
}

/// The schema check is not a rubber stamp: each of these breaks one document, and exactly
/// that document is refused, naming the reason.
#[test]
fn a_manifest_istio_would_refuse_fails_the_schema_check() {
    let r = render();
    let (_, docs) = r
        .files
        .iter()
        .find(|(f, _)| f == "sluice-wasmplugins.yaml")
        .unwrap();
    let doc = &docs[0];
    type Breakage = fn(&mut Value);
    let cases: [(&str, Breakage, &str); 7] = [
        (
            "wrong phase",
            |d| d["spec"]["phase"] = json!("AUTHENTICATE"),
            "/spec/phase must be equal to one of the allowed values",
        ),
        (
            "unknown field in spec",
            |d| d["spec"]["priorty"] = json!(10),
            "unknown field /spec/priorty",
        ),
        (
            "unknown field deeper down",
            |d| d["spec"]["selector"]["matchLabel"] = json!({"istio": "ingressgateway"}),
            "unknown field /spec/selector/matchLabel",
        ),
        (
            "wrong failStrategy",
            |d| d["spec"]["failStrategy"] = json!("FAIL_CLOSED"),
            "/spec/failStrategy must be equal to one of the allowed values",
        ),
        (
            "sha256 that is not a digest",
            |d| d["spec"]["sha256"] = json!("sha256:abc"),
            "/spec/sha256 must match pattern",
        ),
        (
            "priority as a string",
            |d| d["spec"]["priority"] = json!("100"),
            "/spec/priority must be integer",
        ),
        (
            "no url",
            |d| {
                d["spec"].as_object_mut().unwrap().remove("url");
            },
            "must have required property url",
        ),
    ];
    for (what, break_it, want) in cases {
        let mut bad = doc.clone();
        break_it(&mut bad);
        let (ok, lines) = istio_schema(&[doc.clone(), bad]);
        assert!(!ok, "{what}: accepted: {lines:?}");
        assert!(lines[0].starts_with("ok "), "{what}: {lines:?}");
        assert!(
            lines[1].starts_with("error ") && lines[1].contains(want),
            "{what}: want {want:?} in {:?}",
            lines[1]
        );
    }
    // A kind the package has no schema for is refused too, not passed.
    let (ok, lines) = istio_schema(&[json!({"apiVersion": "extensions.istio.io/v1alpha1",
        "kind": "WasmPlugins", "metadata": {"name": "x"}, "spec": {}})]);
    assert!(!ok && lines[0].contains("no Istio schema"), "{lines:?}");
}

/// Every pluginConfig passes its filter's own validation; one the filter refuses fails.
#[test]
fn every_wasm_plugin_config_is_accepted_by_its_filter() {
    let r = render();
    let plugins = wasm_plugins(&r);
    assert_eq!(plugins.len(), 10);
    for (file, p) in &plugins {
        let url = p["spec"]["url"].as_str().unwrap();
        filter_accepts(oci::image_filter(url), &p["spec"]["pluginConfig"])
            .unwrap_or_else(|e| panic!("{file}: {}: {e}", p["metadata"]["name"]));
    }
    // The same check refuses a config the filter would refuse at load.
    let (_, p) = plugins
        .iter()
        .find(|(_, p)| p["metadata"]["name"] == "sluice-key-injection-inject")
        .unwrap();
    let mut config = p["spec"]["pluginConfig"].clone();
    config["role"] = json!("injector");
    let err = filter_accepts("key-injection", &config).unwrap_err();
    assert!(err.contains("$.role"), "{err}");
}

/// Each WasmPlugin points at its filter's image in the registry, and its `sha256` is the
/// digest of that image's manifest (what Istio checks for an oci:// url), whose one layer's
/// tar holds `plugin.wasm` byte for byte the built `.wasm` (extracted with the system's tar).
#[test]
fn every_sha256_is_the_digest_of_the_image_holding_the_built_wasm() {
    let r = render();
    for (file, p) in wasm_plugins(&r) {
        let name = &p["metadata"]["name"];
        let url = p["spec"]["url"].as_str().unwrap();
        let filter = oci::image_filter(url);
        assert_eq!(
            url,
            format!("oci://{REGISTRY}/{filter}:{TAG}"),
            "{file}: {name}"
        );
        let sha256 = p["spec"]["sha256"].as_str().unwrap();
        let layout = r.oci.join(filter);
        assert_eq!(
            format!("sha256:{sha256}"),
            sluice_oci::layout_digest(&layout, TAG).unwrap(),
            "{file}: {name}"
        );
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(sluice_oci::blob_path(&layout, sha256)).unwrap())
                .unwrap();
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1);
        assert_eq!(
            layers[0]["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        let layer = sluice_oci::blob_path(&layout, layers[0]["digest"].as_str().unwrap());
        let wasm = oci::plugin_wasm_from_layer(&layer).unwrap();
        let stem = filter.replace('-', "_");
        let built = std::fs::read(paths::wasm_dir().join(format!("{stem}.wasm"))).unwrap();
        assert!(wasm == built, "{file}: {name}: plugin.wasm differs");
        let record = r.built.iter().find(|b| b.filter == filter).unwrap();
        assert_eq!(record.wasm_sha256, sluice_oci::sha256_hex(&built));
    }
}

/// Istio orders AUTHN, AUTHZ, STATS, then no phase; higher priority first within a phase. In
/// each file that gives envoy/sluice.yaml's chain order (of the filters the file has).
#[test]
fn phases_and_priorities_give_the_chain_order() {
    let chain = [
        "sluice-key-injection-authenticate",
        "sluice-prompt-template",
        "sluice-moderation",
        "sluice-model-router",
        "sluice-token-count",
        "sluice-key-injection-inject",
    ];
    let r = render();
    for (file, docs) in &r.files {
        let mut seen: Vec<(String, (usize, i64))> = docs
            .iter()
            .filter(|d| d["kind"] == "WasmPlugin")
            .map(|d| {
                (
                    d["metadata"]["name"].as_str().unwrap().to_owned(),
                    oci::istio_order(d).unwrap(),
                )
            })
            .collect();
        if seen.is_empty() {
            continue;
        }
        // No two plugins may tie: Istio's order between them would be unspecified.
        let mut keys: Vec<(usize, i64)> = seen.iter().map(|(_, key)| *key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), seen.len(), "{file}: two plugins tie");
        seen.sort_by_key(|(_, key)| *key);
        let order: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
        let want: Vec<&str> = chain
            .iter()
            .copied()
            .filter(|n| order.contains(n))
            .collect();
        assert_eq!(order, want, "{file}");
    }
    let gateway = &r
        .files
        .iter()
        .find(|(f, _)| f == "sluice-wasmplugins.yaml")
        .unwrap()
        .1;
    assert_eq!(
        gateway.len(),
        chain.len(),
        "the gateway runs the whole chain"
    );
}

/// The Istio EnvoyFilter carries exactly envoy/sluice.yaml's local-reply mappers: its
/// `local_reply_config` is what `make configs` writes from the chain, and the patch parses to
/// the very `local_reply_config` of the chain's listener.
#[test]
fn the_istio_local_reply_patch_is_made_from_the_shipped_mappers() {
    let file = sluice_harness::configs::generated()
        .into_iter()
        .find(|g| g.path == "examples/istio/sluice-local-replies.yaml")
        .unwrap();
    if let Some(stale) = sluice_harness::configs::stale(&file).unwrap() {
        panic!(
            "{stale}\nits mappers are made from envoy/sluice.yaml's: change them there, then \
             rewrite this file's with `{}` (the rest of it stays)",
            sluice_harness::configs::REGENERATE
        );
    }
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
