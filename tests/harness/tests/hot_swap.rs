//! Hot swap through ECDS (envoy/sluice-ecds.yaml, `make swap`), through a real Envoy under load.
//!
//! The two builds: token-count as built, and the same module with one string of its data
//! changed, the name of the answer header that says where the token numbers come from
//! (`x-sluice-token-source` in build A, `x-sluice-swap-build-b` in build B, same length). Two
//! different .wasm files (different bytes and digests, so V8 compiles each and Envoy runs each
//! in its own VMs), the same code otherwise, and every answer says which one made it: exactly
//! one of the two headers. token-count is the chain's largest module (its tokenizer tables),
//! so the swap pays the most compiling and VM set-up any filter would.
//!
//! Under load (plain and streaming chat on keep-alive connections) the build is swapped back
//! and forth with `ecds::swap` (what `make swap` runs); then a truncated module, a module that
//! traps in `proxy_on_configure` and a config the filter refuses are pushed, each rejected by
//! Envoy (its ECDS counters) while the previous build keeps serving.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_harness::ecds::{self, Swap};
use sluice_harness::{http, paths, Envoy, MockProvider, DEMO_AUTH};

const HEADER_A: &str = "x-sluice-token-source";
const HEADER_B: &str = "x-sluice-swap-build-b";
/// The ECDS resource swapped, and its stats prefix.
const RESOURCE: &str = "sluice.token_count";
const SWAPS: usize = 12;
/// The longest a new build may take to answer after its resource file is renamed in.
const LIVE_BOUND: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Build {
    A,
    B,
}

/// One answer seen by the load.
struct Seen {
    started: Instant,
    build: Build,
}

#[derive(Default)]
struct Tally {
    seen: Vec<Seen>,
    plain: u64,
    streamed: u64,
    errors: Vec<String>,
}

/// Build B: token_count.wasm with its source header's name changed in the data section.
fn build_b(dir: &Path) -> PathBuf {
    let a = std::fs::read(paths::wasm_dir().join("token_count.wasm")).unwrap();
    assert_eq!(HEADER_A.len(), HEADER_B.len());
    let at = a
        .windows(HEADER_A.len())
        .position(|w| w == HEADER_A.as_bytes())
        .expect("token_count.wasm holds its header name");
    let mut b = a.clone();
    b[at..at + HEADER_B.len()].copy_from_slice(HEADER_B.as_bytes());
    assert!(!b.windows(HEADER_A.len()).any(|w| w == HEADER_A.as_bytes()));
    let path = dir.join("token_count_b.wasm");
    std::fs::write(&path, b).unwrap();
    path
}

/// An unsigned LEB128 number.
fn leb(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn section(id: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![id];
    out.extend(leb(content.len()));
    out.extend_from_slice(content);
    out
}

/// The smallest proxy-wasm (ABI 0.2.1) module Envoy loads, whose `proxy_on_configure` executes
/// `unreachable`: it traps when Envoy configures it.
fn trapping_module() -> Vec<u8> {
    const I32: u8 = 0x7f;
    // Types: 0 (i32,i32)->i32, 1 (i32)->i32, 2 (i32,i32)->(), 3 ()->().
    let types = [
        vec![0x60, 2, I32, I32, 1, I32],
        vec![0x60, 1, I32, 1, I32],
        vec![0x60, 2, I32, I32, 0],
        vec![0x60, 0, 0],
    ];
    let mut type_sec = leb(types.len());
    types.iter().for_each(|t| type_sec.extend(t));
    // Functions (type index each) and their bodies (no locals).
    let funcs: [(u8, &[u8]); 5] = [
        (3, &[0x0b]),                   // 0 proxy_abi_version_0_2_1
        (2, &[0x0b]),                   // 1 proxy_on_context_create
        (0, &[0x41, 1, 0x0b]),          // 2 proxy_on_vm_start: i32.const 1
        (0, &[0x00, 0x0b]),             // 3 proxy_on_configure: unreachable
        (1, &[0x41, 0x80, 0x08, 0x0b]), // 4 malloc: i32.const 1024
    ];
    let mut func_sec = leb(funcs.len());
    funcs.iter().for_each(|(t, _)| func_sec.push(*t));
    let mut code_sec = leb(funcs.len());
    for (_, body) in funcs {
        let mut b = vec![0]; // no locals
        b.extend_from_slice(body);
        code_sec.extend(leb(b.len()));
        code_sec.extend(b);
    }
    let memory_sec = [1, 0, 1]; // one memory, at least one page
    let exports: [(&str, u8, u8); 7] = [
        ("memory", 2, 0),
        ("proxy_abi_version_0_2_1", 0, 0),
        ("proxy_on_context_create", 0, 1),
        ("proxy_on_vm_start", 0, 2),
        ("proxy_on_configure", 0, 3),
        ("proxy_on_memory_allocate", 0, 4),
        ("malloc", 0, 4),
    ];
    let mut export_sec = leb(exports.len());
    for (name, kind, index) in exports {
        export_sec.extend(leb(name.len()));
        export_sec.extend_from_slice(name.as_bytes());
        export_sec.extend([kind, index]);
    }
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    module.extend(section(1, &type_sec));
    module.extend(section(3, &func_sec));
    module.extend(section(5, &memory_sec));
    module.extend(section(7, &export_sec));
    module.extend(section(10, &code_sec));
    module
}

fn chat_body(stream: bool) -> Vec<u8> {
    serde_json::json!({
        "model": "gpt-4o-mini",
        "stream": stream,
        "messages": [{"role": "user", "content": "Hello, Sluice! Swap me."}],
    })
    .to_string()
    .into_bytes()
}

const REPLY: &str = "Hello, Sluice! Swap me.";

/// One request on `agent` (keep-alive); the build that answered, or what was wrong with it.
fn one_request(agent: &ureq::Agent, url: &str, stream: bool) -> Result<Build, String> {
    let mut resp = agent
        .post(url)
        .header("content-type", "application/json")
        .header(DEMO_AUTH.0, DEMO_AUTH.1)
        .send(&chat_body(stream)[..])
        .map_err(|e| format!("request failed: {e}"))?;
    let status = resp.status().as_u16();
    let has = |name: &str| resp.headers().contains_key(name);
    let build = match (has(HEADER_A), has(HEADER_B)) {
        (true, false) => Ok(Build::A),
        (false, true) => Ok(Build::B),
        (a, b) => Err(format!("headers of build A: {a}, of build B: {b}")),
    };
    let body = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("status {status}, body cut: {e}"))?;
    if status != 200 {
        return Err(format!("status {status}: {body}"));
    }
    let build = build.map_err(|e| format!("{e}: {body}"))?;
    let text = if stream {
        // Whole: every event is JSON up to `[DONE]`, the last.
        let events: Vec<&str> = body
            .split("\n\n")
            .filter(|e| !e.trim().is_empty())
            .collect();
        if events.last().map(|e| e.trim()) != Some("data: [DONE]") {
            return Err(format!("stream without [DONE]: {body}"));
        }
        let mut text = String::new();
        for event in events.iter().take(events.len() - 1) {
            let data = event
                .strip_prefix("data: ")
                .ok_or_else(|| format!("not an SSE data event: {event:?}"))?;
            let chunk: Value =
                serde_json::from_str(data).map_err(|e| format!("event not JSON ({e}): {data}"))?;
            text.push_str(
                chunk["choices"][0]["delta"]["content"]
                    .as_str()
                    .unwrap_or(""),
            );
        }
        text
    } else {
        let v: Value =
            serde_json::from_str(&body).map_err(|e| format!("not JSON ({e}): {body}"))?;
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    if text != REPLY {
        return Err(format!("answer text {text:?}, wanted {REPLY:?}"));
    }
    Ok(build)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// `extension_config_discovery.http_filter.<RESOURCE>.<stat>` from the admin `/stats`.
fn ecds_stats(envoy: &Envoy) -> BTreeMap<String, String> {
    let prefix = format!("extension_config_discovery.http_filter.{RESOURCE}.");
    let text = http::get(&envoy.admin_url("/stats?filter=extension_config_discovery"))
        .unwrap()
        .text();
    text.lines()
        .filter_map(|l| {
            let (name, value) = l.split_once(": ")?;
            let stat = name.strip_prefix(&prefix)?;
            Some((stat.to_owned(), value.trim().to_owned()))
        })
        .collect()
}

fn counter(stats: &BTreeMap<String, String>, name: &str) -> u64 {
    stats
        .get(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no counter {name} in {stats:?}"))
}

fn push(dir: &Path, swap: Swap) -> Vec<String> {
    let report = ecds::swap(dir, &swap).unwrap();
    for line in &report {
        println!("  swap: {line}");
    }
    report
}

/// Pushes something Envoy must refuse; returns once its ECDS counters say so, checking that
/// nothing was applied.
fn push_rejected(envoy: &Envoy, dir: &Path, what: &str, swap: Swap) {
    let before = ecds_stats(envoy);
    push(dir, swap);
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let now = ecds_stats(envoy);
        if counter(&now, "update_rejected") > counter(&before, "update_rejected") {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not rejected: {now:?}\n{}",
            envoy.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    println!(
        "{what}: update_rejected {} -> {}, config_fail {} -> {}, update_success {} -> {}, \
         config_reload {} -> {}, version_text {}",
        before["update_rejected"],
        after["update_rejected"],
        before["config_fail"],
        after["config_fail"],
        before["update_success"],
        after["update_success"],
        before["config_reload"],
        after["config_reload"],
        after["version_text"],
    );
    assert_eq!(
        counter(&after, "update_rejected"),
        counter(&before, "update_rejected") + 1,
        "{what}"
    );
    assert_eq!(
        counter(&after, "config_fail"),
        counter(&before, "config_fail") + 1,
        "{what}"
    );
    assert_eq!(
        counter(&after, "update_success"),
        counter(&before, "update_success"),
        "{what}: taken"
    );
    assert_eq!(after["version_text"], before["version_text"], "{what}");
}

/// The tests of this file one at a time: the load test's timings are its results.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn builds_swap_under_load_and_bad_ones_are_refused_while_the_last_good_one_serves() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = tempfile::tempdir().unwrap();
    let layout = scratch.path().join("ecds");
    ecds::init(&layout, &paths::wasm_dir()).unwrap();
    let wasm_a = paths::wasm_dir().join("token_count.wasm");
    let wasm_b = build_b(scratch.path());

    let mock = MockProvider::start().unwrap();
    let mut vars = BTreeMap::new();
    vars.insert("ECDS_DIR", layout.display().to_string());
    let envoy = Envoy::start_template_with(
        "envoy/sluice-ecds.yaml",
        mock.port,
        &BTreeMap::new(),
        &[],
        &vars,
    )
    .unwrap();
    let url = envoy.url("/v1/chat/completions");
    assert_eq!(one_request(&agent(), &url, false), Ok(Build::A));
    assert_eq!(one_request(&agent(), &url, true), Ok(Build::A));
    let start_stats = ecds_stats(&envoy);

    // ---- load: two plain and two streaming connections, each on its own thread ----
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let workers: Vec<_> = [false, false, true, true]
        .into_iter()
        .map(|stream| {
            let (stop, tally, url) = (stop.clone(), tally.clone(), url.clone());
            std::thread::spawn(move || {
                let agent = agent();
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let result = one_request(&agent, &url, stream);
                    let mut t = tally.lock().unwrap();
                    match result {
                        Ok(build) => {
                            t.seen.push(Seen { started, build });
                            if stream {
                                t.streamed += 1;
                            } else {
                                t.plain += 1;
                            }
                        }
                        Err(e) => t.errors.push(e),
                    }
                }
            })
        })
        .collect();

    // ---- the swaps: B, A, B, … each measured until a fresh connection sees it ----
    let load_started = Instant::now();
    let probe = agent();
    let mut swaps: Vec<(Instant, Build, Duration)> = Vec::new();
    for i in 0..SWAPS {
        std::thread::sleep(Duration::from_millis(700));
        let (wasm, want) = if i % 2 == 0 {
            (&wasm_b, Build::B)
        } else {
            (&wasm_a, Build::A)
        };
        let at = Instant::now();
        push(
            &layout,
            Swap {
                filter: "token-count".into(),
                wasm: Some(wasm.clone()),
                ..Swap::default()
            },
        );
        loop {
            match one_request(&probe, &url, false) {
                Ok(b) if b == want => break,
                Ok(_) => {}
                Err(e) => panic!("probe failed: {e}"),
            }
            assert!(
                at.elapsed() < LIVE_BOUND,
                "swap {i}: build {want:?} not live after {LIVE_BOUND:?}\n{}",
                envoy.log_tail(20)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        swaps.push((at, want, at.elapsed()));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let last_good = swaps.last().unwrap().1;
    assert_eq!(last_good, Build::A);

    // ---- refused while the load runs on: each leaves build A serving ----
    let refused_from = Instant::now();
    let truncated = scratch.path().join("token_count_truncated.wasm");
    let a_bytes = std::fs::read(&wasm_a).unwrap();
    std::fs::write(&truncated, &a_bytes[..a_bytes.len() / 2]).unwrap();
    push_rejected(
        &envoy,
        &layout,
        "truncated module",
        Swap {
            filter: "token-count".into(),
            wasm: Some(truncated),
            ..Swap::default()
        },
    );
    assert!(envoy.log().contains("Failed to load Wasm code"));

    let trapping = scratch.path().join("traps_on_configure.wasm");
    std::fs::write(&trapping, trapping_module()).unwrap();
    push_rejected(
        &envoy,
        &layout,
        "module trapping in proxy_on_configure",
        Swap {
            filter: "token-count".into(),
            wasm: Some(trapping),
            ..Swap::default()
        },
    );
    let log = envoy.log();
    assert!(
        log.contains("proxy_on_configure") && log.contains("unreachable"),
        "{}",
        envoy.log_tail(20)
    );

    // The build is the good one again (A: the same file, already installed), with a config
    // token-count refuses: `make swap` itself would refuse it, so the check is skipped here.
    let refused = scratch.path().join("refused.json");
    let refused_config = r#"{"default_encoding":"no_such_encoding"}"#;
    std::fs::write(&refused, refused_config).unwrap();
    let own_check = ecds::check_config("token_count", refused_config).unwrap_err();
    assert!(own_check.contains("default_encoding"), "{own_check}");
    push_rejected(
        &envoy,
        &layout,
        "config the filter refuses",
        Swap {
            filter: "token-count".into(),
            wasm: Some(wasm_a.clone()),
            config: Some(refused.clone()),
            unchecked: true,
        },
    );
    assert!(
        envoy.log().contains("no_such_encoding"),
        "{}",
        envoy.log_tail(20)
    );
    // Without the skip, make swap refuses it before Envoy sees it.
    let err = ecds::swap(
        &layout,
        &Swap {
            filter: "token-count".into(),
            config: Some(refused),
            ..Swap::default()
        },
    )
    .unwrap_err();
    assert!(err.contains("refuse"), "{err}");
    std::thread::sleep(Duration::from_millis(1000));

    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let load_time = load_started.elapsed();
    let tally = tally.lock().unwrap();
    let end_stats = ecds_stats(&envoy);

    // ---- what the load saw ----
    let total = tally.seen.len();
    let count = |b: Build| tally.seen.iter().filter(|s| s.build == b).count();
    println!(
        "load: {total} answers in {load_time:.1?} ({} plain, {} streamed) on 4 connections; \
         build A {}, build B {}; {} errors",
        tally.plain,
        tally.streamed,
        count(Build::A),
        count(Build::B),
        tally.errors.len()
    );
    // After a swap, when did the last load request still start on the old build?
    let mut live: Vec<Duration> = Vec::new();
    let mut all_live: Vec<Duration> = Vec::new();
    for (i, (at, want, to_live)) in swaps.iter().enumerate() {
        let next = swaps.get(i + 1).map(|s| s.0).unwrap_or(refused_from);
        let last_old = tally
            .seen
            .iter()
            .filter(|s| s.started >= *at && s.started < next && s.build != *want)
            .map(|s| s.started - *at)
            .max()
            .unwrap_or_default();
        live.push(*to_live);
        all_live.push(last_old);
        println!(
            "swap {:2} to build {want:?}: live {} ms after the rename (a fresh request's \
             answer); the last request to start on the old build started at {} ms",
            i + 1,
            to_live.as_millis(),
            last_old.as_millis()
        );
    }
    live.sort();
    println!(
        "swap-to-live: min {} ms, median {} ms, max {} ms; every connection on the new build \
         within {} ms",
        live[0].as_millis(),
        live[live.len() / 2].as_millis(),
        live[live.len() - 1].as_millis(),
        all_live.iter().max().unwrap().as_millis()
    );
    for line in envoy.log().lines().filter(|l| {
        l.contains("update rejected")
            || l.contains("proxy_on_configure")
            || l.contains("[critical]")
    }) {
        println!("envoy: {}", line.get(..line.len().min(300)).unwrap_or(line));
    }
    println!("ECDS stats of {RESOURCE} at start: {start_stats:?}");
    println!("ECDS stats of {RESOURCE} at end: {end_stats:?}");

    assert!(
        tally.errors.is_empty(),
        "{} failed or truncated requests, e.g. {:?}",
        tally.errors.len(),
        &tally.errors[..tally.errors.len().min(5)]
    );
    assert!(tally.plain > 100 && tally.streamed > 100, "too little load");
    assert!(count(Build::A) > 0 && count(Build::B) > 0);
    for d in &all_live {
        assert!(*d < LIVE_BOUND, "{all_live:?}");
    }
    // While the refused pushes came in, only build A answered.
    assert!(tally
        .seen
        .iter()
        .filter(|s| s.started >= refused_from)
        .all(|s| s.build == Build::A));
    // Every good swap taken, every bad push rejected.
    assert_eq!(
        counter(&end_stats, "update_success") - counter(&start_stats, "update_success"),
        SWAPS as u64
    );
    assert_eq!(
        counter(&end_stats, "update_rejected") - counter(&start_stats, "update_rejected"),
        3
    );

    // A good push after the refused ones is taken again.
    push(
        &layout,
        Swap {
            filter: "token-count".into(),
            wasm: Some(wasm_b.clone()),
            config: Some(write_config(scratch.path())),
            unchecked: false,
        },
    );
    let at = Instant::now();
    while one_request(&probe, &url, false) != Ok(Build::B) {
        assert!(at.elapsed() < LIVE_BOUND, "{}", envoy.log_tail(20));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(one_request(&probe, &url, true), Ok(Build::B));
}

/// token-count's shipped config (envoy/sluice.yaml's), as a file for `make swap CONFIG=`.
fn write_config(dir: &Path) -> PathBuf {
    let chain = std::fs::read_to_string(paths::repo().join("envoy/sluice.yaml")).unwrap();
    let config = sluice_harness::render::plugin_config(&chain, "token_count").unwrap();
    let path = dir.join("token_count.json");
    std::fs::write(&path, config).unwrap();
    path
}

/// No default_config: a resource missing at start stops Envoy; one refused at start leaves the
/// listener answering 500 until a good one is renamed in (envoy/sluice-ecds.yaml's header).
#[test]
fn a_filter_missing_or_refused_at_start_fails_closed() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let scratch = tempfile::tempdir().unwrap();
    let layout = scratch.path().join("ecds");
    ecds::init(&layout, &paths::wasm_dir()).unwrap();
    let mock = MockProvider::start().unwrap();
    let mut vars = BTreeMap::new();
    vars.insert("ECDS_DIR", layout.display().to_string());
    let start = || {
        Envoy::start_template_with(
            "envoy/sluice-ecds.yaml",
            mock.port,
            &BTreeMap::new(),
            &[],
            &vars,
        )
    };

    let file = layout.join("prompt-template.json");
    let kept = std::fs::read_to_string(&file).unwrap();
    std::fs::remove_file(&file).unwrap();
    let err = start()
        .err()
        .expect("Envoy started without prompt-template's resource");
    assert!(
        err.contains("paths must refer to an existing path"),
        "{err}"
    );

    // Refused at start: the module is cut short.
    std::fs::write(&file, kept).unwrap();
    let good = paths::wasm_dir().join("prompt_template.wasm");
    let bytes = std::fs::read(&good).unwrap();
    let truncated = scratch.path().join("prompt_template_truncated.wasm");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let bad = Swap {
        filter: "prompt-template".into(),
        wasm: Some(truncated),
        ..Swap::default()
    };
    ecds::swap(&layout, &bad).unwrap();
    let envoy = start().unwrap();
    let url = envoy.url("/v1/chat/completions");
    let resp = http::post(&url, &chat_body(false), &[DEMO_AUTH]).unwrap();
    assert_eq!(resp.status, 500, "{}", resp.text());
    assert_eq!(resp.json().unwrap()["error"]["code"], "gateway_error");
    let stats = http::get(&envoy.admin_url("/stats?filter=prompt_template"))
        .unwrap()
        .text();
    assert!(
        stats.contains(
            "extension_config_discovery.http_filter.sluice.prompt_template.update_rejected: 1"
        ),
        "{stats}"
    );

    // A good resource heals it.
    let fix = Swap {
        filter: "prompt-template".into(),
        wasm: Some(good),
        ..Swap::default()
    };
    ecds::swap(&layout, &fix).unwrap();
    let deadline = Instant::now() + LIVE_BOUND;
    loop {
        match one_request(&agent(), &url, false) {
            Ok(Build::A) => break,
            other => assert!(Instant::now() < deadline, "{other:?}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
