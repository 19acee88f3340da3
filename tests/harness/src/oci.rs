//! Reading back the images `make oci` builds, in the tests of the images and of the Istio
//! manifests.

use std::path::Path;
use std::process::Command;

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
