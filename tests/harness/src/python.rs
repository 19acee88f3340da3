//! Runs the official SDK clients in `tests/clients/` with the `.venv` Python.

use std::process::Command;

use crate::paths;

/// Runs `tests/clients/<script>` with `args`; returns its stdout parsed as JSON.
pub fn run_client(script: &str, args: &[&str]) -> crate::Result<serde_json::Value> {
    let path = paths::repo().join("tests/clients").join(script);
    let out = Command::new(paths::python())
        .arg(&path)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {} (run `make setup`): {e}", path.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "{script} failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_str(stdout.trim())
        .map_err(|e| format!("{script} printed non-JSON ({e}): {stdout}"))
}
