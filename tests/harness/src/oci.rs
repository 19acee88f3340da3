//! Reading back the images `make oci` builds and the Istio manifests `make istio-manifests`
//! renders from them, in the tests of the images and of the manifests.

use std::path::Path;
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

/// `plugin.wasm` out of a compat image's tar+gzip layer, by the system's `tar` (not the crate
/// that wrote it).
pub fn plugin_wasm_from_layer(layer: &Path) -> crate::Result<Vec<u8>> {
    let out = Command::new("tar")
        .arg("-xzOf")
        .arg(layer)
        .arg("plugin.wasm")
        .output()
        .map_err(|e| format!("cannot run tar: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "tar {}: {}",
            layer.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out.stdout)
}

/// The manifests of `examples/istio/` rendered into `out` as `make istio-manifests` renders
/// them (`sluice-oci render`): for the images built in `oci` (their digests), pushed to
/// `registry` at `tag`. Each file's name, in order, and its YAML documents.
pub fn istio_manifests(
    oci: &Path,
    registry: &str,
    tag: &str,
    out: &Path,
) -> crate::Result<Vec<(String, Vec<Value>)>> {
    let vars = sluice_oci::manifest_vars(oci, registry, tag)?;
    let written = sluice_oci::render_dir(&crate::paths::repo().join("examples/istio"), out, &vars)?;
    written
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let docs = serde_norway::Deserializer::from_str(&text)
                .map(|doc| Value::deserialize(doc).map_err(|e| format!("{}: {e}", path.display())))
                .collect::<crate::Result<Vec<Value>>>()?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok((name, docs))
        })
        .collect()
}

/// The filter an `oci://…/<filter>:<tag>` url names (the image's name).
pub fn image_filter(url: &str) -> &str {
    let image = url.rsplit('/').next().unwrap_or(url);
    image.split(':').next().unwrap_or(image)
}

/// Where Istio puts a WasmPlugin in the filter chain, as a sort key: its phase (AUTHN, AUTHZ,
/// STATS, then none), then higher `priority` first (none is 0).
pub fn istio_order(plugin: &Value) -> crate::Result<(usize, i64)> {
    let spec = plugin.get("spec");
    let phase = spec
        .and_then(|s| s.get("phase"))
        .and_then(Value::as_str)
        .unwrap_or("UNSPECIFIED_PHASE");
    let rank = ["AUTHN", "AUTHZ", "STATS", "UNSPECIFIED_PHASE"]
        .iter()
        .position(|p| *p == phase)
        .ok_or_else(|| format!("not an Istio phase: {phase}"))?;
    let priority = spec
        .and_then(|s| s.get("priority"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    Ok((rank, -priority))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn istio_orders_by_phase_then_priority() {
        let p = |spec: Value| istio_order(&json!({ "spec": spec })).unwrap();
        assert!(p(json!({"phase": "AUTHN"})) < p(json!({"phase": "AUTHZ", "priority": 99})));
        assert!(p(json!({"phase": "STATS", "priority": 10})) < p(json!({"phase": "STATS"})));
        assert!(p(json!({"phase": "STATS", "priority": -1})) < p(json!({})));
        assert!(istio_order(&json!({"spec": {"phase": "LAST"}})).is_err());
        assert_eq!(
            image_filter("oci://registry.example.com/sluice/key-injection:0.1.0"),
            "key-injection"
        );
    }
}
