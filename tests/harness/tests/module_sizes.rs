//! Every filter module stays under 2 MiB. Measured on the pinned Envoy (`--concurrency 2`):
//! loading a module just over 2 MiB leaves about 8 MB more in Envoy's allocator than one just
//! under it (the same filter padded from 2.03 to 2.13 MB: heap 31 → 40 MB, RSS +5.4 MB;
//! token-count at 2.16 MB against 2.07 MB: RSS +9 MB), far more than the bytes themselves cost.
//! Whatever grows a module past this line must first earn those megabytes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use sluice_harness::paths;

const LIMIT: u64 = 2 * 1024 * 1024;

#[test]
fn every_filter_module_is_under_two_mib() {
    let mut seen = 0;
    for entry in std::fs::read_dir(paths::wasm_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wasm") {
            let size = std::fs::metadata(&path).unwrap().len();
            assert!(size < LIMIT, "{}: {size} bytes", path.display());
            seen += 1;
        }
    }
    assert!(
        seen >= 5,
        "{seen} modules in {}",
        paths::wasm_dir().display()
    );
}
