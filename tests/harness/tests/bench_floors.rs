//! The bench's floor rows measure a Wasm entry that does only what its mode says: here each one
//! loads in Envoy and gives the caller exactly what bare Envoy gives, so a floor is never
//! cheap because it dropped or cut something.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use sluice_harness::{bench, http, Envoy, MockProvider, DEMO_AUTH};

#[test]
fn every_floor_answers_as_bare_envoy_does() {
    let mock = MockProvider::start().unwrap();
    let bare = bench::start_scenario("bare", mock.port).unwrap();
    let body = bench::chat_body(32 * 1024);
    let chat = |envoy: &Envoy| {
        http::post(
            &envoy.url("/v1/chat/completions"),
            body.as_bytes(),
            &[DEMO_AUTH],
        )
        .unwrap()
    };
    let want = chat(&bare);
    assert_eq!(want.status, 200, "{}", want.text());
    // The bench's heap columns read Envoy's admin `/memory`: it must still answer in that form.
    let heap = bare
        .allocator()
        .expect("admin /memory as the bench reads it");
    assert!(heap.allocated > 1 << 20, "{heap:?}");
    // Each floor row, its mode, and whether it runs the floor filter's lean copy (without the
    // `on_log` and `on_done` exports, as the filters: the rows standing for one filter's own
    // calls, but token-count's, whose mode needs `on_log`).
    for (key, mode, lean) in [
        ("floor", "pass", false),
        ("floor-body", "read-body", false),
        ("floor-hold", "hold-answer", false),
        ("floor-calls", "ten-calls", false),
        ("floor-count", "count-calls", false),
        ("floor-route", "route-calls", true),
        ("floor-moderation", "moderation-calls", true),
        ("floor-path", "path-read", true),
        ("floor-template", "template-calls", true),
    ] {
        let envoy = bench::start_scenario(key, mock.port).unwrap();
        let dump = http::get(&envoy.admin_url("/config_dump")).unwrap().text();
        assert_eq!(
            dump.contains("/floor_filter_lean.wasm"),
            lean,
            "{key}: the lean copy or the stock floor filter"
        );
        let got = chat(&envoy);
        assert_eq!(got.status, 200, "{key}: {}", got.text());
        assert_eq!(got.text(), want.text(), "{key}");
        assert_eq!(
            got.header("content-length"),
            want.header("content-length"),
            "{key}"
        );
        let log = envoy.log();
        assert!(
            log.contains(&format!("floor-filter: mode {mode}")),
            "{key}: {log}"
        );
        assert!(!log.contains("][error][wasm]"), "{key}: {log}");
        // token-count's calls set its two answer headers (fixed values): they were made.
        let counted = got.header("x-sluice-completion-tokens").is_some()
            && got.header("x-sluice-prompt-tokens").is_some();
        assert_eq!(counted, key == "floor-count", "{key}");
    }
}
