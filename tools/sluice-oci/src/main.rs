//! `sluice-oci build [--wasm-dir DIR] [--out DIR] [--tag TAG]`: every filter's OCI image
//! layout (compat image at TAG, two-layer artifact at TAG-artifact) and `images.json`.
//!
//! `sluice-oci render --registry HOST/PATH [--oci DIR] [--tag TAG] [--templates DIR]
//! [--out DIR]`: the Istio manifest templates with `${REGISTRY}`, `${TAG}` and each filter's
//! `${SHA256_<FILTER>}` (the manifest digest of the images built in `--oci`, read from there
//! again so the digests are the ones on disk).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use sluice_oci::{build_all, manifest_vars, render_dir, Result};

const USAGE: &str = "usage: sluice-oci build [--wasm-dir DIR] [--out DIR] [--tag TAG]\n       \
                     sluice-oci render --registry HOST/PATH [--oci DIR] [--tag TAG] \
                     [--templates DIR] [--out DIR]";

fn flags(args: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let name = flag
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {flag:?}\n{USAGE}"))?;
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        out.insert(name.to_owned(), value.clone());
    }
    Ok(out)
}

fn run(args: &[String]) -> Result<()> {
    let (command, rest) = args.split_first().ok_or(USAGE)?;
    let mut f = flags(rest)?;
    let mut take = |name: &str, default: &str| f.remove(name).unwrap_or_else(|| default.to_owned());
    let tag = take("tag", env!("CARGO_PKG_VERSION"));
    let oci = PathBuf::from(take("oci", "target/oci"));
    match command.as_str() {
        "build" => {
            let wasm_dir = PathBuf::from(take("wasm-dir", "target/wasm32-wasip1/release"));
            let out = PathBuf::from(take("out", &oci.display().to_string()));
            refuse_unknown(&f)?;
            std::fs::create_dir_all(&out)
                .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
            for b in build_all(&wasm_dir, &out, &tag)? {
                for i in &b.images {
                    println!(
                        "oci:{}:{}  {}  {} bytes ({}, plugin.wasm {} bytes, sha256 {})",
                        b.layout.display(),
                        i.tag,
                        i.digest,
                        i.size,
                        i.form,
                        b.wasm_size,
                        b.wasm_sha256
                    );
                }
            }
            Ok(())
        }
        "render" => {
            let registry = f
                .remove("registry")
                .ok_or_else(|| format!("render needs --registry\n{USAGE}"))?;
            let mut take =
                |name: &str, default: &str| f.remove(name).unwrap_or_else(|| default.to_owned());
            let templates = PathBuf::from(take("templates", "examples/istio"));
            let out = PathBuf::from(take("out", "target/istio"));
            refuse_unknown(&f)?;
            let vars = manifest_vars(&oci, &registry, &tag)?;
            for path in render_dir(&templates, &out, &vars)? {
                println!("{}", path.display());
            }
            Ok(())
        }
        other => Err(format!("unknown command {other:?}\n{USAGE}")),
    }
}

fn refuse_unknown(f: &BTreeMap<String, String>) -> Result<()> {
    match f.keys().next() {
        Some(k) => Err(format!("unknown flag --{k}\n{USAGE}")),
        None => Ok(()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice-oci: {e}");
            ExitCode::FAILURE
        }
    }
}
