//! The modules `make wasm` ships export no proxy-wasm callback their filter leaves to the SDK
//! (`sluice_host::unused_callbacks!`, tools/sluice-trim), so Envoy does not enter them for it on
//! every request; the callbacks a filter implements stay. The floor filter keeps the SDK's
//! exports (the bench's floor rows measure the stock SDK); its copy `floor_filter_lean.wasm`
//! lacks `on_log` and `on_done` as the filters do (the rows standing for one filter's calls).
//! Modules built by `cargo build` alone keep every export and fail this test: build them with
//! `make wasm`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use sluice_harness::paths;

fn exports(module: &str) -> Vec<String> {
    let path = paths::wasm_dir().join(format!("{module}.wasm"));
    let wasm = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let trimmed = !wasm
        .windows(sluice_trim::SECTION.len())
        .any(|w| w == sluice_trim::SECTION.as_bytes());
    // The floor filter keeps its section: only its lean copy is trimmed.
    assert_eq!(
        trimmed,
        module != "floor_filter",
        "{module}: its {} section: `make wasm` trims every module but the floor filter",
        sluice_trim::SECTION
    );
    sluice_trim::exports(&wasm).unwrap()
}

#[test]
fn shipped_modules_export_only_the_callbacks_their_filter_uses() {
    // Each filter: the per-request callbacks it leaves to the SDK, and those it implements.
    let filters: [(&str, &[&str], &[&str]); 5] = [
        (
            "token_count",
            &["proxy_on_done"],
            &[
                "proxy_on_log",
                "proxy_on_request_body",
                "proxy_on_response_body",
            ],
        ),
        (
            "prompt_template",
            &["proxy_on_log", "proxy_on_done"],
            &["proxy_on_request_headers", "proxy_on_response_body"],
        ),
        (
            "moderation",
            &["proxy_on_log", "proxy_on_done"],
            &["proxy_on_request_body", "proxy_on_http_call_response"],
        ),
        (
            "key_injection",
            &["proxy_on_log", "proxy_on_done"],
            &["proxy_on_request_headers", "proxy_on_response_body"],
        ),
        (
            "model_router",
            &["proxy_on_log", "proxy_on_done"],
            &["proxy_on_request_body", "proxy_on_http_call_response"],
        ),
    ];
    for (module, dropped, kept) in filters {
        let names = exports(module);
        for name in dropped {
            assert!(!names.iter().any(|n| n == name), "{module} exports {name}");
        }
        for name in kept.iter().chain(&[
            "proxy_on_context_create",
            "proxy_on_delete",
            "proxy_on_memory_allocate",
            "proxy_on_tick",
            "proxy_abi_version_0_2_1",
        ]) {
            assert!(names.iter().any(|n| n == name), "{module} lacks {name}");
        }
    }
    // The floor filter keeps them (the stock SDK); its lean copy, for the rows standing for
    // one filter's calls, lacks them as the filters do.
    let floor = exports("floor_filter");
    let lean = exports("floor_filter_lean");
    for name in ["proxy_on_log", "proxy_on_done"] {
        assert!(floor.iter().any(|n| n == name), "floor_filter lacks {name}");
        assert!(
            !lean.iter().any(|n| n == name),
            "floor_filter_lean has {name}"
        );
    }
    assert!(lean.iter().any(|n| n == "proxy_on_request_body"));
}
