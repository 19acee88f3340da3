//! The OCI images `make oci` builds: reproducible (two builds, the same bytes and digests), and
//! what a registry gives back is what was built. A real registry (Debian's `docker-registry`
//! on 127.0.0.1, a free port, a temp storage folder) receives every image of every filter
//! through `skopeo`, both forms (compat and artifact); each is pulled back into a new layout,
//! its `plugin.wasm` extracted (the system's tar for the compat layer) and compared byte for
//! byte with the build; and the pulled-back modules, configured as the rendered Istio
//! manifests configure them, run the whole chain in a real Envoy in front of the mock.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluice_harness::{envoy, http, oci, paths, Envoy, MockProvider, DEMO_AUTH};

const TAG: &str = env!("CARGO_PKG_VERSION");

fn build(dir: &Path) -> Vec<sluice_oci::Built> {
    sluice_oci::build_all(&paths::wasm_dir(), dir, TAG).unwrap()
}

/// Every file under `dir` (relative path, bytes), sorted.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.push((p.strip_prefix(dir).unwrap().to_path_buf(), bytes));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn two_builds_give_the_same_images() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (first, second) = (build(a.path()), build(b.path()));
    let digests = |built: &[sluice_oci::Built]| -> Vec<(String, String, String)> {
        built
            .iter()
            .flat_map(|x| {
                x.images
                    .iter()
                    .map(|i| (x.filter.clone(), i.tag.clone(), i.digest.clone()))
            })
            .collect()
    };
    assert_eq!(digests(&first), digests(&second));
    assert_eq!(first.len(), 5);
    assert!(first.iter().all(|b| b.images.len() == 2));
    // Not only the digests: every file of every layout, byte for byte (images.json names the
    // folder it was written to, so it differs by that alone).
    let files = |d: &Path| -> Vec<(PathBuf, Vec<u8>)> {
        tree(d)
            .into_iter()
            .filter(|(p, _)| p != Path::new("images.json"))
            .collect()
    };
    let (fa, fb) = (files(a.path()), files(b.path()));
    assert!(fa.len() > 20, "{}", fa.len());
    assert!(fa == fb, "the two builds differ");
    // And a different module gives a different digest (the digest is of the content).
    let c = tempfile::tempdir().unwrap();
    let other = sluice_oci::build_layout(
        b"\0asm\x01\0\0\0",
        "token-count",
        "token_count",
        TAG,
        c.path(),
    )
    .unwrap();
    let token_count = first.iter().find(|b| b.filter == "token-count").unwrap();
    assert_ne!(other.images[0].digest, token_count.images[0].digest);
}

/// Debian's docker-registry on 127.0.0.1, storing into a temp folder; killed when dropped.
struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        for tool in ["docker-registry", "skopeo"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .unwrap()
                .status
                .success();
            assert!(
                found,
                "{tool} is not installed: run `make setup` (it installs it with apt)"
            );
        }
        let mut last = String::new();
        for _attempt in 0..4 {
            let dir = tempfile::tempdir().unwrap();
            let port = envoy::free_port().unwrap();
            let config = format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    \
                 rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("storage").display()
            );
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config).unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            let mut registry = Registry { child, port, dir };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = registry.child.try_wait() {
                    break; // e.g. the port was taken meanwhile: try another
                }
                if http::get(&format!("http://127.0.0.1:{port}/v2/")).is_ok_and(|r| r.status == 200)
                {
                    return registry;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            last = std::fs::read_to_string(registry.dir.path().join("registry.log")).unwrap();
        }
        panic!("docker-registry did not start: {last}");
    }

    fn image(&self, filter: &str, tag: &str) -> String {
        format!("127.0.0.1:{}/sluice/{filter}:{tag}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The one image of a layout `skopeo` pulled: its manifest.
fn only_manifest(layout: &Path) -> (String, Value) {
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{index}");
    let digest = entries[0]["digest"].as_str().unwrap().to_owned();
    let manifest =
        serde_json::from_slice(&std::fs::read(sluice_oci::blob_path(layout, &digest)).unwrap())
            .unwrap();
    (digest, manifest)
}

/// The module a pulled-back image carries, in either form.
fn module_of(layout: &Path, manifest: &Value) -> Vec<u8> {
    let layers = manifest["layers"].as_array().unwrap();
    match layers.len() {
        1 => {
            assert_eq!(
                layers[0]["mediaType"],
                "application/vnd.oci.image.layer.v1.tar+gzip"
            );
            oci::plugin_wasm_from_layer(&sluice_oci::blob_path(
                layout,
                layers[0]["digest"].as_str().unwrap(),
            ))
            .unwrap()
        }
        2 => {
            let types: Vec<&str> = layers
                .iter()
                .map(|l| l["mediaType"].as_str().unwrap())
                .collect();
            assert_eq!(
                types,
                [
                    "application/vnd.module.wasm.config.v1+json",
                    "application/vnd.module.wasm.content.layer.v1+wasm"
                ]
            );
            std::fs::read(sluice_oci::blob_path(
                layout,
                layers[1]["digest"].as_str().unwrap(),
            ))
            .unwrap()
        }
        n => panic!("{n} layers"),
    }
}

#[test]
fn every_image_survives_a_registry_and_its_modules_run_the_chain_in_envoy() {
    let work = tempfile::tempdir().unwrap();
    let layouts = work.path().join("oci");
    std::fs::create_dir_all(&layouts).unwrap();
    let built = build(&layouts);
    let registry = Registry::start();
    let mut pulled_modules: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut pushed = 0;
    for b in &built {
        let original =
            std::fs::read(paths::wasm_dir().join(format!("{}.wasm", b.filter.replace('-', "_"))))
                .unwrap();
        for image in &b.images {
            let src = format!("oci:{}:{}", b.layout.display(), image.tag);
            let remote = registry.image(&b.filter, &image.tag);
            skopeo(&[
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
                &src,
                &format!("docker://{remote}"),
            ]);
            pushed += 1;
            // The registry serves the very manifest that was built (same digest).
            let raw = skopeo(&[
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!("docker://{remote}"),
            ]);
            assert_eq!(
                format!("sha256:{}", sluice_oci::sha256_hex(&raw)),
                image.digest,
                "{remote}"
            );
            // Pulled back into a new layout: the same digest, and the same module.
            let back = work
                .path()
                .join(format!("pulled-{}-{}", b.filter, image.tag));
            skopeo(&[
                "copy",
                "--quiet",
                "--src-tls-verify=false",
                &format!("docker://{remote}"),
                &format!("oci:{}:{}", back.display(), image.tag),
            ]);
            let (digest, manifest) = only_manifest(&back);
            assert_eq!(digest, image.digest, "{remote}");
            let module = module_of(&back, &manifest);
            assert!(
                module == original,
                "{remote}: plugin.wasm differs from the build"
            );
            if image.form == "compat" {
                let path = work.path().join(format!("{}.wasm", b.filter));
                std::fs::write(&path, &module).unwrap();
                pulled_modules.insert(b.filter.clone(), path);
            }
        }
    }
    assert_eq!(pushed, 10);

    // The manifests rendered for this registry (as `make istio-manifests` renders them): the
    // gateway's urls name the images just pushed.
    let manifests = oci::istio_manifests(
        &layouts,
        &format!("127.0.0.1:{}/sluice", registry.port),
        TAG,
        &work.path().join("istio"),
    )
    .unwrap();
    let (_, mut plugins) = manifests
        .into_iter()
        .find(|(file, _)| file == "sluice-wasmplugins.yaml")
        .unwrap();
    plugins.sort_by_key(|p| oci::istio_order(p).unwrap());
    for p in &plugins {
        let url = p["spec"]["url"].as_str().unwrap();
        let remote = url.strip_prefix("oci://").unwrap();
        let raw = skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{remote}"),
        ]);
        assert_eq!(sluice_oci::sha256_hex(&raw), p["spec"]["sha256"], "{url}");
    }

    // The chain as Istio would build it from those manifests, modules from the pulled images.
    let mock = MockProvider::start().unwrap();
    let env = vec![
        ("OPENAI_API_KEY".to_owned(), "sk-test-openai".to_owned()),
        (
            "ANTHROPIC_API_KEY".to_owned(),
            "sk-test-anthropic".to_owned(),
        ),
    ];
    let gw = Envoy::start_config_env(
        |port, admin| {
            Ok(chain_config(
                &plugins,
                &pulled_modules,
                port,
                admin,
                mock.port,
            ))
        },
        &env,
    )
    .unwrap();
    let body = br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello from the registry"}]}"#;
    let headers = [("content-type", "application/json")];
    // key-injection (authenticate) refuses a caller without a key: the modules run.
    let refused = http::post(&gw.url("/v1/chat/completions"), body, &headers).unwrap();
    assert_eq!(refused.status, 401, "{}", refused.text());
    // With the demo key the whole chain serves it: routed by model-router to the OpenAI
    // cluster, counted by token-count, the provider key injected from the VM's environment.
    let answer = http::post(
        &gw.url("/v1/chat/completions"),
        body,
        &[headers[0], DEMO_AUTH],
    )
    .unwrap();
    assert_eq!(answer.status, 200, "{}\n{}", answer.text(), gw.log_tail(30));
    assert!(
        answer.header("x-sluice-prompt-tokens").is_some(),
        "{:?}",
        answer.headers
    );
    assert_eq!(
        mock.last_header("authorization").unwrap().as_deref(),
        Some("Bearer sk-test-openai")
    );
    assert!(mock
        .last_header("x-sluice-prompt-tokens")
        .unwrap()
        .is_some());
}

/// An Envoy config running `plugins` (rendered WasmPlugins, in Istio's order) as Istio's
/// control plane would: each one's pluginConfig as the Wasm configuration, its `vmConfig.env`
/// HOST variables passed to the VM, its module from `modules`; the provider clusters the
/// manifests name lead to the mock.
fn chain_config(
    plugins: &[Value],
    modules: &BTreeMap<String, PathBuf>,
    port: u16,
    admin: u16,
    mock_port: u16,
) -> String {
    let mut filters = String::new();
    for p in plugins {
        let name = p["metadata"]["name"].as_str().unwrap();
        let url = p["spec"]["url"].as_str().unwrap();
        let filter = oci::image_filter(url);
        let root_id = filter.replace('-', "_");
        let host_env: Vec<&str> = p["spec"]["vmConfig"]["env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["valueFrom"] == "HOST")
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        let config = serde_json::to_string(&p["spec"]["pluginConfig"]).unwrap();
        filters.push_str(&format!(
            r#"          - name: {name}
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: {name}
                root_id: {root_id}
                allow_on_headers_stop_iteration: true
                vm_config:
                  vm_id: {name}
                  runtime: envoy.wasm.runtime.v8
                  environment_variables: {{ host_env_keys: {host_env} }}
                  code: {{ local: {{ filename: {module} }} }}
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: {value}
"#,
            host_env = json!(host_env),
            module = json!(modules[filter].display().to_string()),
            value = json!(config),
        ));
    }
    let cluster = |name: &str| {
        format!(
            r#"  - name: "{name}"
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: "{name}"
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {mock_port} }} }} }}
"#
        )
    };
    format!(
        r#"admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}
static_resources:
  listeners:
  - name: gateway
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    per_connection_buffer_limit_bytes: 4194304
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: gateway
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match:
                  prefix: "/"
                  headers: [{{ name: x-sluice-cluster, present_match: true }}]
                route: {{ cluster_header: x-sluice-cluster, timeout: 60s }}
              - match: {{ prefix: "/" }}
                route: {{ cluster: "outbound|443||api.openai.com", timeout: 60s }}
          http_filters:
{filters}          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
{openai}{anthropic}"#,
        openai = cluster("outbound|443||api.openai.com"),
        anthropic = cluster("outbound|443||api.anthropic.com"),
    )
}
