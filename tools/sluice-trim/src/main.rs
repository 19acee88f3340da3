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

/// Rewrites the file in place (the same inode: cargo's copy of it under `deps/` is a hard link
/// to the same bytes, and stays trimmed with it).
fn trim_file(path: &str) -> Result<Option<Vec<String>>, String> {
    let wasm = std::fs::read(path).map_err(|e| e.to_string())?;
    match sluice_trim::trim(&wasm)? {
        sluice_trim::Trimmed::Unchanged => Ok(None),
        sluice_trim::Trimmed::Dropped(out, dropped) => {
            std::fs::write(path, out).map_err(|e| e.to_string())?;
            Ok(Some(dropped))
        }
    }
}
