//! The hot-swap layout (`envoy/sluice-ecds.yaml`): every Sluice filter of the chain reaches
//! Envoy through ECDS from one resource file per filter entry in a watched directory, and
//! `make swap` (`sluice-dev swap`) replaces a filter's build or config there atomically.
//!
//! The directory:
//! ```text
//! <dir>/<file>.json            one per filter entry (RESOURCES): an xDS DiscoveryResponse holding
//!                              one TypedExtensionConfig named like the entry, its typed_config the
//!                              Wasm filter config (module path, plugin config)
//! <dir>/modules/<module>-<sha256, 16 hex>.wasm
//!                              the builds, content-addressed: a new build goes in beside the old
//!                              ones, never over them
//! ```
//! A file is never written in place: the new text goes to a temp file in the same directory,
//! which is then renamed over the old (Envoy watches the directory for renames and reads the
//! whole file, old or new, never half of one). The resource files are JSON (Envoy parses a
//! path config source by its extension), so reading and rewriting them needs only serde_json.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sluice_core::key_injection::config::KeyInjectionConfig;
use sluice_core::model_router::config::ModelRouterConfig;
use sluice_core::moderation::config::ModerationConfig;
use sluice_core::parse_config;
use sluice_core::prompt_template::config::PromptTemplateConfig;
use sluice_core::token_count::config::TokenCountConfig;

/// One filter entry of the chain delivered through ECDS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    /// The `http_filters` entry's name, which is the ECDS resource name.
    pub name: &'static str,
    /// What `make swap FILTER=…` calls it: the filter, and the role for key-injection.
    pub filter: &'static str,
    /// Its file in the directory.
    pub file: &'static str,
    /// The module (`<module>.wasm` in the build folder).
    pub module: &'static str,
    /// The plugin's `config.name` (as in envoy/sluice.yaml, where its config comes from).
    pub plugin: &'static str,
    /// The VM id (key-injection's two roles share one VM).
    pub vm_id: &'static str,
}

/// The chain's Wasm entries, in chain order (envoy/sluice.yaml).
pub const RESOURCES: [Resource; 6] = [
    Resource {
        name: "sluice.key_injection.authenticate",
        filter: "key-injection.authenticate",
        file: "key-injection.authenticate.json",
        module: "key_injection",
        plugin: "key_injection_authenticate",
        vm_id: "key_injection",
    },
    Resource {
        name: "sluice.prompt_template",
        filter: "prompt-template",
        file: "prompt-template.json",
        module: "prompt_template",
        plugin: "prompt_template",
        vm_id: "prompt_template",
    },
    Resource {
        name: "sluice.moderation",
        filter: "moderation",
        file: "moderation.json",
        module: "moderation",
        plugin: "moderation",
        vm_id: "moderation",
    },
    Resource {
        name: "sluice.model_router",
        filter: "model-router",
        file: "model-router.json",
        module: "model_router",
        plugin: "model_router",
        vm_id: "model_router",
    },
    Resource {
        name: "sluice.token_count",
        filter: "token-count",
        file: "token-count.json",
        module: "token_count",
        plugin: "token_count",
        vm_id: "token_count",
    },
    Resource {
        name: "sluice.key_injection.inject",
        filter: "key-injection.inject",
        file: "key-injection.inject.json",
        module: "key_injection",
        plugin: "key_injection_inject",
        vm_id: "key_injection",
    },
];

/// The environment variables key-injection's VM may read (as in envoy/sluice.yaml).
pub const KEY_INJECTION_ENV: [&str; 4] = [
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "AZURE_OPENAI_API_KEY",
    "SLUICE_MOCK_PROVIDER_KEY",
];

const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
const EXTENSION_TYPE: &str = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig";

/// An `http_filters` entry of the shipped configs.
const ENTRY: &str = "          - name: ";
/// A line inside such an entry.
const IN_ENTRY: &str = "            ";

/// envoy/sluice-ecds.yaml below its header comment (`make configs` writes it): `chain`, the
/// text of envoy/sluice.yaml from `node:` on, with the body of each Sluice filter entry (its
/// `typed_config`, comments in it too) replaced by `config_discovery` from its resource file in
/// `${ECDS_DIR}`. Every other line is the chain's.
pub fn layout_body(chain: &str) -> crate::Result<String> {
    let mut out = String::with_capacity(chain.len());
    let mut in_entry = false;
    let mut seen: Vec<&str> = Vec::new();
    // Blank lines after an entry's body: the entry's if more of its body follows.
    let mut blank = String::new();
    for line in chain.split_inclusive('\n') {
        if in_entry && line.trim().is_empty() {
            blank.push_str(line);
            continue;
        }
        if in_entry && line.starts_with(IN_ENTRY) {
            blank.clear();
            continue;
        }
        in_entry = false;
        out.push_str(&blank);
        blank.clear();
        out.push_str(line);
        let Some(name) = line.strip_prefix(ENTRY).map(str::trim) else {
            continue;
        };
        if !name.starts_with("sluice.") {
            continue;
        }
        let r = RESOURCES
            .iter()
            .find(|r| r.name == name)
            .ok_or_else(|| format!("envoy/sluice.yaml: no ECDS resource for the entry {name}"))?;
        out.push_str(&format!(
            "{IN_ENTRY}config_discovery:
{IN_ENTRY}  config_source:
{IN_ENTRY}    path_config_source:
{IN_ENTRY}      path: ${{ECDS_DIR}}/{file}
{IN_ENTRY}      watched_directory: {{ path: ${{ECDS_DIR}} }}
{IN_ENTRY}  type_urls: [{WASM_TYPE}]
",
            file = r.file
        ));
        seen.push(r.name);
        in_entry = true;
    }
    out.push_str(&blank);
    match RESOURCES.iter().find(|r| !seen.contains(&r.name)) {
        Some(r) => Err(format!("envoy/sluice.yaml has no entry {}", r.name)),
        None => Ok(out),
    }
}

/// The entries `FILTER` names: a filter (`token-count`; `key-injection` is both its roles) or
/// one role (`key-injection.inject`); `_` and `-` alike.
pub fn resources_of(filter: &str) -> crate::Result<Vec<Resource>> {
    let wanted = filter.replace('_', "-");
    let found: Vec<Resource> = RESOURCES
        .iter()
        .filter(|r| r.filter == wanted || r.filter.split('.').next() == Some(wanted.as_str()))
        .copied()
        .collect();
    if found.is_empty() {
        let names: Vec<&str> = RESOURCES.iter().map(|r| r.filter).collect();
        return Err(format!(
            "no filter {filter:?}: one of key-injection, {}",
            names.join(", ")
        ));
    }
    Ok(found)
}

/// The SHA-256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes `bytes` to `path` atomically: a temp file beside it, synced, renamed over it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> crate::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Unique per process and call: two writers never share a temp file.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.tmp-{}-{call}", std::process::id()));
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })
}

/// Copies a build into `<dir>/modules/` under its content-addressed name (unless that file is
/// there already) and returns that path and whether it was new.
pub fn install_module(dir: &Path, module: &str, wasm: &Path) -> crate::Result<(PathBuf, bool)> {
    let bytes = fs::read(wasm).map_err(|e| format!("cannot read {}: {e}", wasm.display()))?;
    if bytes.get(..4) != Some(b"\0asm".as_slice()) {
        return Err(format!("{} is not a Wasm module", wasm.display()));
    }
    let modules = dir.join("modules");
    fs::create_dir_all(&modules)
        .map_err(|e| format!("cannot create {}: {e}", modules.display()))?;
    let digest = sha256_hex(&bytes);
    let short = digest.get(..16).unwrap_or(&digest);
    let path = modules.join(format!("{module}-{short}.wasm"));
    if path.exists() {
        return Ok((path, false));
    }
    write_atomic(&path, &bytes)?;
    Ok((path, true))
}

/// Parses and validates a plugin config as the filter would at load (Envoy would refuse it).
pub fn check_config(module: &str, json: &str) -> crate::Result<()> {
    let bytes = json.as_bytes();
    let result = match module {
        "key_injection" => parse_config::<KeyInjectionConfig>(bytes).map(|_| ()),
        "prompt_template" => parse_config::<PromptTemplateConfig>(bytes).map(|_| ()),
        "moderation" => parse_config::<ModerationConfig>(bytes).map(|_| ()),
        "token_count" => parse_config::<TokenCountConfig>(bytes).map(|_| ()),
        "model_router" => parse_config::<ModelRouterConfig>(bytes).map(|_| ()),
        other => return Err(format!("unknown module {other}")),
    };
    result.map_err(|e| format!("the {module} filter would refuse this config: {e}"))
}

/// The ECDS resource file's content (a DiscoveryResponse with one TypedExtensionConfig).
pub fn resource_document(r: &Resource, version: &str, wasm: &Path, config: &str) -> Value {
    let mut vm_config = json!({
        "vm_id": r.vm_id,
        "runtime": "envoy.wasm.runtime.v8",
        "code": {"local": {"filename": wasm.display().to_string()}},
    });
    if r.module == "key_injection" {
        vm_config["environment_variables"] = json!({"host_env_keys": KEY_INJECTION_ENV});
    }
    json!({
        "version_info": version,
        "resources": [{
            "@type": EXTENSION_TYPE,
            "name": r.name,
            "typed_config": {
                "@type": WASM_TYPE,
                "config": {
                    "name": r.plugin,
                    "root_id": r.module,
                    "allow_on_headers_stop_iteration": true,
                    "vm_config": vm_config,
                    "configuration": {
                        "@type": "type.googleapis.com/google.protobuf.StringValue",
                        "value": config,
                    },
                },
            },
        }],
    })
}

fn to_text(doc: &Value) -> crate::Result<Vec<u8>> {
    let mut text = serde_json::to_vec_pretty(doc).map_err(|e| format!("cannot render: {e}"))?;
    text.push(b'\n');
    Ok(text)
}

/// Fills `dir` with the whole chain of envoy/sluice.yaml: the builds of `wasm_dir` installed
/// under their content-addressed names and one resource file per entry (version 1), each
/// plugin config as envoy/sluice.yaml has it. Overwrites the resource files that are there.
pub fn init(dir: &Path, wasm_dir: &Path) -> crate::Result<Vec<String>> {
    let chain_path = crate::paths::repo().join("envoy/sluice.yaml");
    let chain = fs::read_to_string(&chain_path)
        .map_err(|e| format!("cannot read {}: {e}", chain_path.display()))?;
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // Absolute module paths in the resources: Envoy need not run where this does.
    let dir = &absolute(dir)?;
    let mut report = Vec::new();
    for r in &RESOURCES {
        let config = crate::render::plugin_config(&chain, r.plugin)
            .ok_or_else(|| format!("envoy/sluice.yaml has no plugin {}", r.plugin))?;
        let (wasm, _) =
            install_module(dir, r.module, &wasm_dir.join(format!("{}.wasm", r.module)))?;
        let doc = resource_document(r, "1", &wasm, &config);
        write_atomic(&dir.join(r.file), &to_text(&doc)?)?;
        report.push(format!("{} -> {}", r.file, display_module(&wasm)));
    }
    Ok(report)
}

fn absolute(dir: &Path) -> crate::Result<PathBuf> {
    dir.canonicalize()
        .map_err(|e| format!("no directory {}: {e}", dir.display()))
}

/// Sets the string at a JSON pointer that must exist in a resource file.
fn set(doc: &mut Value, pointer: &str, to: String) -> crate::Result<()> {
    match doc.pointer_mut(pointer) {
        Some(slot) => {
            *slot = Value::String(to);
            Ok(())
        }
        None => Err(format!("the resource has no {pointer}")),
    }
}

fn display_module(path: &Path) -> String {
    path.file_name()
        .map(|n| format!("modules/{}", n.to_string_lossy()))
        .unwrap_or_default()
}

/// What `make swap` is asked to do.
#[derive(Debug, Clone, Default)]
pub struct Swap {
    /// `FILTER`: see [`resources_of`].
    pub filter: String,
    /// `WASM`: the new build.
    pub wasm: Option<PathBuf>,
    /// `CONFIG`: a file holding the new plugin config (JSON).
    pub config: Option<PathBuf>,
    /// Skip the filter's own validation of `config` (JSON syntax is still checked): for showing
    /// what Envoy does with a config the filter refuses.
    pub unchecked: bool,
}

/// Swaps a filter's build and/or config in the layout at `dir`: the build is installed under
/// its content-addressed name, each entry's resource file is rewritten (next version) through
/// a temp file renamed over it. Returns one line per thing done.
pub fn swap(dir: &Path, swap: &Swap) -> crate::Result<Vec<String>> {
    let dir = &absolute(dir)?;
    let targets = resources_of(&swap.filter)?;
    let config = match &swap.config {
        None => None,
        Some(path) => {
            if targets.len() > 1 {
                return Err(format!(
                    "{} has {} roles, each with its own config: name one (FILTER={})",
                    swap.filter,
                    targets.len(),
                    targets
                        .iter()
                        .map(|r| r.filter)
                        .collect::<Vec<_>>()
                        .join(" or ")
                ));
            }
            let text = fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let value: Value = serde_json::from_str(&text)
                .map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
            let compact = value.to_string();
            if !swap.unchecked {
                for r in &targets {
                    check_config(r.module, &compact)?;
                }
            }
            Some(compact)
        }
    };
    if swap.wasm.is_none() && config.is_none() {
        return Err("nothing to swap: give WASM=path and/or CONFIG=path".to_owned());
    }
    let mut report = Vec::new();
    let mut installed = None;
    for r in &targets {
        let path = dir.join(r.file);
        let text = fs::read_to_string(&path).map_err(|e| {
            format!(
                "cannot read {} (is {} the hot-swap layout? `make run-ecds` makes one): {e}",
                path.display(),
                dir.display()
            )
        })?;
        let mut doc: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
        let previous = doc["version_info"].as_str().unwrap_or("0").to_owned();
        let number: u64 = previous
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let plugin = doc
            .pointer_mut("/resources/0/typed_config/config")
            .ok_or_else(|| format!("{} holds no Wasm filter config", path.display()))?;
        let old_wasm = plugin
            .pointer("/vm_config/code/local/filename")
            .and_then(Value::as_str)
            .map(PathBuf::from)
            .unwrap_or_default();
        let mut what = Vec::new();
        let wasm_now = match &swap.wasm {
            Some(new) => {
                let (to, fresh) = match &installed {
                    Some(done) => (PathBuf::clone(done), false),
                    None => install_module(dir, r.module, new)?,
                };
                if fresh {
                    report.push(format!(
                        "installed {} as {}",
                        new.display(),
                        display_module(&to)
                    ));
                }
                installed = Some(to.clone());
                set(
                    plugin,
                    "/vm_config/code/local/filename",
                    to.display().to_string(),
                )?;
                if to == old_wasm {
                    what.push(format!("build {} (unchanged)", display_module(&to)));
                } else {
                    what.push(format!(
                        "build {} -> {}",
                        display_module(&old_wasm),
                        display_module(&to)
                    ));
                }
                to
            }
            None => old_wasm,
        };
        if let Some(config) = &config {
            set(plugin, "/configuration/value", config.clone())?;
            what.push(format!(
                "config sha256 {}",
                sha256_hex(config.as_bytes()).get(..16).unwrap_or_default()
            ));
        }
        let module_tag = wasm_now
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let version = format!("{} {module_tag}", number + 1);
        doc["version_info"] = Value::String(version.clone());
        write_atomic(&path, &to_text(&doc)?)?;
        report.push(format!(
            "{} ({}): {}; version {previous:?} -> {version:?} (renamed over {})",
            r.filter,
            r.name,
            what.join(", "),
            path.display()
        ));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_the_chain_with_each_sluice_entry_through_ecds() {
        // Every resource's entry, one of them with a comment inside and a blank line after.
        let mut chain = String::from("node: {}\n          http_filters:\n");
        for r in &RESOURCES {
            chain.push_str(&format!(
                "          # {}\n{ENTRY}{}\n{IN_ENTRY}typed_config:\n{IN_ENTRY}  # inside\n{IN_ENTRY}  x: 1\n",
                r.filter, r.name
            ));
        }
        chain.push_str("\n          - name: envoy.filters.http.router\n            typed_config: {}\n  clusters: []\n");
        let out = layout_body(&chain).unwrap();
        assert!(!out.contains("inside") && !out.contains("x: 1"), "{out}");
        assert_eq!(out.matches("config_discovery:").count(), RESOURCES.len());
        assert!(out.contains(
            "          # moderation\n          - name: sluice.moderation\n            config_discovery:\n              config_source:\n                path_config_source:\n                  path: ${ECDS_DIR}/moderation.json\n                  watched_directory: { path: ${ECDS_DIR} }\n              type_urls: [type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm]\n          # model-router\n"
        ), "{out}");
        // Envoy's own entries and the blank line before the router stay.
        assert!(out.ends_with("]\n\n          - name: envoy.filters.http.router\n            typed_config: {}\n  clusters: []\n"), "{out}");
        // A Sluice entry without a resource, or a resource without its entry: refused.
        let unknown = chain.replace("sluice.moderation", "sluice.unknown");
        assert!(layout_body(&unknown)
            .unwrap_err()
            .contains("sluice.unknown"));
        let fewer = chain.replace("sluice.moderation", "envoy.moderation");
        assert!(layout_body(&fewer)
            .unwrap_err()
            .contains("no entry sluice.moderation"));
    }

    #[test]
    fn filter_names_pick_entries() {
        let names = |f: &str| -> Vec<&str> {
            resources_of(f)
                .unwrap()
                .iter()
                .map(|r| r.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(names("token-count"), ["sluice.token_count"]);
        assert_eq!(names("token_count"), ["sluice.token_count"]);
        assert_eq!(
            names("key-injection"),
            [
                "sluice.key_injection.authenticate",
                "sluice.key_injection.inject"
            ]
        );
        assert_eq!(
            names("key-injection.inject"),
            ["sluice.key_injection.inject"]
        );
        assert!(resources_of("nope").is_err());
    }

    #[test]
    fn swaps_a_build_and_a_config_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let builds = tempfile::tempdir().unwrap();
        let wasm = builds.path().join("model_router.wasm");
        fs::write(&wasm, b"\0asm\x01\0\0\0one").unwrap();
        let r = resources_of("model-router").unwrap()[0];
        let (first, fresh) = install_module(dir.path(), r.module, &wasm).unwrap();
        assert!(fresh);
        let doc = resource_document(&r, "1", &first, "{}");
        fs::write(dir.path().join(r.file), to_text(&doc).unwrap()).unwrap();

        fs::write(&wasm, b"\0asm\x01\0\0\0two").unwrap();
        let config = builds.path().join("router.json");
        fs::write(&config, r#"{"routes": []}"#).unwrap();
        let report = swap(
            dir.path(),
            &Swap {
                filter: "model-router".into(),
                wasm: Some(wasm.clone()),
                config: Some(config.clone()),
                unchecked: false,
            },
        )
        .unwrap();
        assert_eq!(report.len(), 2, "{report:?}");
        let text = fs::read_to_string(dir.path().join(r.file)).unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        let plugin = &doc["resources"][0]["typed_config"]["config"];
        let now = plugin["vm_config"]["code"]["local"]["filename"]
            .as_str()
            .unwrap();
        assert_ne!(now, first.display().to_string());
        assert!(first.exists(), "the old build stays beside the new");
        assert_eq!(fs::read(now).unwrap(), b"\0asm\x01\0\0\0two");
        assert_eq!(plugin["configuration"]["value"], r#"{"routes":[]}"#);
        assert!(doc["version_info"]
            .as_str()
            .unwrap()
            .starts_with("2 model_router-"));
        // No temp file left behind.
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains("tmp")), "{names:?}");

        // Not JSON, a config the filter refuses, not a module: refused, nothing written.
        fs::write(&config, "{").unwrap();
        let bad = Swap {
            filter: "model-router".into(),
            config: Some(config.clone()),
            ..Swap::default()
        };
        assert!(swap(dir.path(), &bad).unwrap_err().contains("not JSON"));
        fs::write(&config, r#"{"routes": 3}"#).unwrap();
        assert!(swap(dir.path(), &bad).unwrap_err().contains("refuse"));
        fs::write(&wasm, b"text").unwrap();
        let not_wasm = Swap {
            filter: "model-router".into(),
            wasm: Some(wasm),
            ..Swap::default()
        };
        assert!(swap(dir.path(), &not_wasm)
            .unwrap_err()
            .contains("not a Wasm module"));
        assert_eq!(fs::read_to_string(dir.path().join(r.file)).unwrap(), text);
        // key-injection's config names a role.
        let both = Swap {
            filter: "key-injection".into(),
            config: Some(config),
            ..Swap::default()
        };
        assert!(swap(dir.path(), &both).unwrap_err().contains("roles"));
    }
}
