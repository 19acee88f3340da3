//! The real-Envoy test harness.
//!
//! Builds nothing: the Makefile builds the `.wasm` files, the mock provider and the Envoy venv
//! first. A test calls [`Gateway::start`] (mock provider + Envoy with the whole chain, on free
//! 127.0.0.1 ports, `--concurrency 2`, a dynamic base id) and gets a base URL and an admin URL;
//! both processes are stopped when the value is dropped, pass or fail. Tests run in parallel.

pub mod alone;
mod announced;
pub mod bench;
pub mod configs;
pub mod ecds;
pub mod envoy;
pub mod global_limits;
pub mod http;
pub mod mock;
pub mod oci;
pub mod paths;
pub mod providers;
pub mod python;
pub mod ratelimit;
pub mod render;
pub mod stream;

pub use envoy::Envoy;
pub use mock::MockProvider;

use std::collections::BTreeMap;

/// Errors of the harness: what failed to start and why, with the log tail when there is one.
pub type Result<T> = std::result::Result<T, String>;

/// The demo consumer's key in `envoy/sluice.yaml` (what `make run` prints).
pub const DEMO_KEY: &str = "sk-sluice-demo";

/// `Authorization: Bearer <demo key>`.
pub const DEMO_AUTH: (&str, &str) = ("authorization", "Bearer sk-sluice-demo");

/// A mock provider with an Envoy in front of it.
pub struct Gateway {
    pub envoy: Envoy,
    pub mock: MockProvider,
    logs: tempfile::TempDir,
}

/// What to change in the shipped chain config before starting it.
#[derive(Default, Clone)]
pub struct ChainOptions {
    /// Replace a filter's JSON config: key is the filter's plugin `name` in envoy/sluice.yaml
    /// (e.g. `token_count`), value the JSON to use instead.
    pub plugin_configs: BTreeMap<String, String>,
    /// Config template to use instead of `envoy/sluice.yaml` (a path relative to the repo).
    pub template: Option<String>,
    /// Environment of the Envoy process (what `host_env_keys` pass on to the VMs).
    pub env: Vec<(String, String)>,
    /// More clusters `(name, port)` on 127.0.0.1, appended to the config's `clusters:` list.
    pub extra_clusters: Vec<(String, u16)>,
    /// A last edit of the rendered config text.
    pub edit: Option<fn(String) -> String>,
}

/// A STATIC cluster to 127.0.0.1:`port`, as an item of the shipped configs' `clusters:` list.
pub fn static_cluster(name: &str, port: u16) -> String {
    format!(
        "  - name: {name}\n    type: STATIC\n    connect_timeout: 1s\n    load_assignment:\n      \
         cluster_name: {name}\n      endpoints:\n      - lb_endpoints:\n        - endpoint: \
         {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }}\n"
    )
}

impl Gateway {
    /// The shipped chain (`envoy/sluice.yaml`) in front of a fresh mock provider.
    pub fn start() -> Result<Gateway> {
        Self::start_with(&ChainOptions::default())
    }

    pub fn start_with(options: &ChainOptions) -> Result<Gateway> {
        let mock = MockProvider::start()?;
        let template = options.template.as_deref().unwrap_or("envoy/sluice.yaml");
        let logs = tempfile::tempdir().map_err(|e| format!("no temp dir: {e}"))?;
        let mut vars = std::collections::BTreeMap::new();
        vars.insert(
            "ACCESS_LOG",
            logs.path().join("access.log").display().to_string(),
        );
        let envoy = Envoy::start_config_env(
            |port, admin| {
                let mut all = envoy::template_vars(port, admin, mock.port);
                all.extend(vars.iter().map(|(k, v)| (*k, v.clone())));
                let mut config = envoy::render_template(template, &all, &options.plugin_configs)?;
                for (name, cluster_port) in &options.extra_clusters {
                    config.push_str(&static_cluster(name, *cluster_port));
                }
                Ok(match options.edit {
                    Some(edit) => edit(config),
                    None => config,
                })
            },
            &options.env,
        )?;
        Ok(Gateway { envoy, mock, logs })
    }

    /// The access log's JSON lines so far.
    pub fn access_log(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.logs.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The access log's first `n` lines, once Envoy has written them (waits up to 10 s; panics
    /// with the lines so far if they do not come: for tests).
    pub fn access_log_lines(&self, n: usize) -> Vec<serde_json::Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let lines = self.access_log();
            if lines.len() >= n {
                return lines;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no access log line {n}: {lines:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// The access log's `n`th line (1-based), once Envoy has written it.
    pub fn access_line(&self, n: usize) -> serde_json::Value {
        self.access_log_lines(n).swap_remove(n - 1)
    }

    /// `http://127.0.0.1:<listener port>`.
    pub fn url(&self, path: &str) -> String {
        self.envoy.url(path)
    }
}

/// The curl `make run` prints (the integration tests run exactly what it prints).
pub fn demo_curl(port: u16) -> String {
    format!(
        "curl -s http://127.0.0.1:{port}/v1/chat/completions -H 'content-type: application/json' \
         -H 'authorization: Bearer sk-sluice-demo' \
         -d '{{\"model\":\"gpt-4o-mini\",\"messages\":[{{\"role\":\"user\",\"content\":\"Hello, Sluice!\"}}]}}'"
    )
}
