//! `SLUICE_PROVIDERS=1`: the real provider clusters and their credentials added to the chain.

use crate::{paths, render};

/// A real provider's credential, as key-injection's inject role wants it.
struct RealProvider {
    name: &'static str,
    cluster: &'static str,
    key_var: &'static str,
    header: &'static str,
    value: &'static str,
    extra_headers: &'static [(&'static str, &'static str)],
}

const REAL_PROVIDERS: [RealProvider; 3] = [
    RealProvider {
        name: "openai",
        cluster: "openai",
        key_var: "OPENAI_API_KEY",
        header: "authorization",
        value: "Bearer {key}",
        extra_headers: &[],
    },
    RealProvider {
        name: "anthropic",
        cluster: "anthropic",
        key_var: "ANTHROPIC_API_KEY",
        header: "x-api-key",
        value: "{key}",
        extra_headers: &[("anthropic-version", "2023-06-01")],
    },
    RealProvider {
        name: "azure_openai",
        cluster: "azure_openai",
        key_var: "AZURE_OPENAI_API_KEY",
        header: "api-key",
        value: "{key}",
        extra_headers: &[],
    },
];

/// Adds envoy/providers.yaml's clusters, and to key-injection's inject config a provider for
/// each one whose key variable is set (Envoy passes it to the VM through `host_env_keys`).
pub fn with_real_providers(
    mut config: String,
    env: impl Fn(&str) -> Option<String>,
) -> crate::Result<(String, Vec<String>)> {
    let mut notes = Vec::new();
    let providers = std::fs::read_to_string(paths::repo().join("envoy/providers.yaml"))
        .map_err(|e| format!("cannot read envoy/providers.yaml: {e}"))?;
    let azure = env("AZURE_OPENAI_HOST").unwrap_or_else(|| "example.openai.azure.com".to_owned());
    config.push_str(&providers.replace("${AZURE_OPENAI_HOST}", &azure));
    let inject = render::plugin_config(&config, "key_injection_inject")
        .ok_or("no key_injection_inject config in envoy/sluice.yaml")?;
    let mut inject: serde_json::Value =
        serde_json::from_str(&inject).map_err(|e| format!("inject config: {e}"))?;
    for p in REAL_PROVIDERS {
        let (name, cluster, var) = (p.name, p.cluster, p.key_var);
        if env(var).is_none_or(|v| v.is_empty()) {
            notes.push(format!(
                "{name}: {var} not set, its cluster gets no credential"
            ));
            continue;
        }
        let headers: serde_json::Map<String, serde_json::Value> = p
            .extra_headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
            .collect();
        inject["providers"][name] = serde_json::json!({
            "clusters": [cluster], "header": p.header, "value": p.value,
            "headers": headers, "keys": [{"env": var}]
        });
        notes.push(format!(
            "{name}: key from {var}; send `x-sluice-cluster: {cluster}` to use it"
        ));
    }
    let config = render::set_plugin_config(&config, "key_injection_inject", &inject.to_string())?;
    Ok((config, notes))
}
