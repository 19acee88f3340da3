//! `sluice-trim FILE.wasm…`: drops from each module, in place, the callback exports it names
//! as unused (see the library). `make wasm` runs it on every filter it builds.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut failed = false;
    for path in std::env::args().skip(1) {
        match trim_file(&path) {
            Ok(Some(dropped)) => println!("sluice-trim: {path}: dropped {}", dropped.join(", ")),
            Ok(None) => println!("sluice-trim: {path}: nothing to drop"),
            Err(e) => {
                eprintln!("sluice-trim: {path}: {e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Writes the trimmed module beside the file (with its permissions), then renames it over the
/// file: a write that fails leaves the file as it was, and cargo's copy under `deps/` (a hard
/// link to the same bytes until then) is never written. Cargo links that copy to the file
/// again on its next build, and `make wasm` trims it again.
fn trim_file(path: &str) -> Result<Option<Vec<String>>, String> {
    let wasm = std::fs::read(path).map_err(|e| e.to_string())?;
    match sluice_trim::trim(&wasm)? {
        sluice_trim::Trimmed::Unchanged => Ok(None),
        sluice_trim::Trimmed::Dropped(out, dropped) => {
            let tmp = format!("{path}.trim.tmp");
            std::fs::write(&tmp, out).map_err(|e| format!("{tmp}: {e}"))?;
            let mode = std::fs::metadata(path).map_err(|e| e.to_string())?;
            std::fs::set_permissions(&tmp, mode.permissions()).map_err(|e| e.to_string())?;
            std::fs::rename(&tmp, path).map_err(|e| format!("{tmp} to {path}: {e}"))?;
            Ok(Some(dropped))
        }
    }
}
