//! Every file in `examples/clients/` runs against the shipped chain (what `make run` starts)
//! with the demo key, exits 0 and prints the mock's answers; a wrong `SLUICE_KEY` makes it
//! fail. A new example needs no new test, only a way to run it (`command_for`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sluice_harness::{paths, Gateway};

/// How to run an example, by its file name.
fn command_for(example: &Path) -> Command {
    let name = example.file_name().unwrap().to_string_lossy().into_owned();
    let mut cmd = if name.ends_with(".py") {
        Command::new(paths::python())
    } else if name.ends_with(".sh") {
        Command::new("bash")
    } else {
        panic!(
            "{name}: no rule to run this kind of example; teach tests/harness/tests/examples.rs"
        );
    };
    cmd.arg(example).current_dir(paths::repo());
    cmd
}

fn run(example: &Path, port: u16, key: Option<&str>) -> Output {
    let mut cmd = command_for(example);
    cmd.env("SLUICE_PORT", port.to_string())
        .env_remove("SLUICE_KEY")
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("ANTHROPIC_BASE_URL");
    if let Some(key) = key {
        cmd.env("SLUICE_KEY", key);
    }
    cmd.output().unwrap()
}

fn examples() -> Vec<PathBuf> {
    let dir = paths::repo().join("examples/clients");
    let mut all: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    all.sort();
    all
}

/// The access log once Envoy has written what it holds (it flushes every 100 ms): read until
/// two reads 300 ms apart agree (at most 10 s).
fn settled_access_log(gw: &Gateway) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut last = gw.access_log();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let now = gw.access_log();
        if now.len() == last.len() || std::time::Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

#[test]
fn every_client_example_works_against_the_shipped_chain() {
    let all = examples();
    assert!(all.len() >= 3, "{all:?}");
    let gw = Gateway::start().unwrap();
    for example in &all {
        let name = example.file_name().unwrap().to_string_lossy().into_owned();
        let before = settled_access_log(&gw).len();
        let out = run(example, gw.envoy.port, None);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{name} failed ({}):\n{stdout}\n{stderr}",
            out.status
        );
        // The mock echoes the prompt: the plain answer, and the streamed one (assembled by an
        // SDK, or raw SSE to its end).
        assert!(stdout.contains("Hello, Sluice!"), "{name}:\n{stdout}");
        assert!(
            stdout.contains("Stream me, Sluice!") || stdout.contains("data: [DONE]"),
            "{name}: no whole stream:\n{stdout}"
        );
        assert!(
            !stderr.to_lowercase().contains("deprecat"),
            "{name} warns:\n{stderr}"
        );
        // Two requests or more, each answered 200, by the demo consumer.
        let log = settled_access_log(&gw);
        let lines = &log[before..];
        assert!(lines.len() >= 2, "{name}: {lines:?}");
        for line in lines {
            assert_eq!(line["status"], 200, "{name}: {line}");
            assert_eq!(line["consumer"], "demo", "{name}: {line}");
        }

        // SLUICE_KEY is what it sends: a key the gateway does not know fails the example.
        let out = run(example, gw.envoy.port, Some("sk-not-a-sluice-key"));
        assert!(
            !out.status.success(),
            "{name} ignored SLUICE_KEY:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let all_output = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(all_output.contains("401"), "{name}:\n{all_output}");
    }
}
