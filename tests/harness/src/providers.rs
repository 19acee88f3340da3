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
    /// model-router rule sending these models to this provider, and its dialect.
    models: &'static [&'static str],
    kind: &'static str,
}

const REAL_PROVIDERS: [RealProvider; 3] = [
    RealProvider {
        name: "openai",
        cluster: "openai",
        key_var: "OPENAI_API_KEY",
        header: "authorization",
        value: "Bearer {key}",
        extra_headers: &[],
        models: &[
            "gpt-*",
            "o1*",
            "o3*",
            "o4*",
            "chatgpt-*",
            "text-embedding-*",
        ],
        kind: "openai",
    },
    RealProvider {
        name: "anthropic",
        cluster: "anthropic",
        key_var: "ANTHROPIC_API_KEY",
        header: "x-api-key",
        value: "{key}",
        extra_headers: &[("anthropic-version", "2023-06-01")],
        models: &["claude-*"],
        kind: "anthropic",
    },
    RealProvider {
        name: "azure_openai",
        cluster: "azure_openai",
        key_var: "AZURE_OPENAI_API_KEY",
        header: "api-key",
        value: "{key}",
        extra_headers: &[],
        // Azure routes name deployments: add a rule for yours (kind azure_openai).
        models: &[],
        kind: "azure_openai",
    },
];

/// Adds envoy/providers.yaml's clusters; for each provider whose key variable is set, a
/// credential in key-injection's inject config (Envoy passes the variable to the VM through
/// `host_env_keys`) and a model-router rule ahead of the mock's.
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
    let router = render::plugin_config(&config, "model_router")
        .ok_or("no model_router config in envoy/sluice.yaml")?;
    let mut router: serde_json::Value =
        serde_json::from_str(&router).map_err(|e| format!("model_router config: {e}"))?;
    let mut rules = Vec::new();
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
        if p.models.is_empty() {
            notes.push(format!(
                "{name}: key from {var}; add a model-router rule for your deployments"
            ));
        } else {
            rules.push(serde_json::json!({"models": p.models, "targets": [
                {"provider": name, "kind": p.kind, "cluster": cluster}]}));
            notes.push(format!(
                "{name}: key from {var}; models {:?} go there",
                p.models
            ));
        }
    }
    if let Some(existing) = router["routes"].as_array() {
        rules.extend(existing.iter().cloned());
    }
    router["routes"] = serde_json::Value::Array(rules);
    let config =
        render::set_plugin_config_everywhere(&config, "key_injection_inject", &inject.to_string())?;
    let config = render::set_plugin_config(&config, "model_router", &router.to_string())?;
    Ok((config, notes))
}
