//! `make run` starts `sluice-dev run`: it must serve the curl it prints; Ctrl-C (SIGINT) and
//! SIGTERM must stop everything it started, leave no temp files, and keep the access log it
//! pointed the user to.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sluice_harness::envoy::free_port;

/// The pids whose parent is `pid` (from `/proc/*/stat`).
fn children_of(pid: u32) -> Vec<u32> {
    let mut kids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // After the command name (which may hold spaces): state, then the parent's pid.
        let rest = &stat[stat.rfind(')').unwrap() + 1..];
        if rest.split_whitespace().nth(1) == Some(&pid.to_string()) {
            kids.push(child);
        }
    }
    kids
}

/// `sluice-dev run` and what it started, killed if the test ends early (a failed assert must
/// not leave them running).
struct Run {
    child: Child,
    kids: Vec<u32>,
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for kid in self.kids.iter().filter(|&&k| is_running(k)) {
            let _ = Command::new("kill")
                .args(["-KILL", &kid.to_string()])
                .status();
        }
    }
}

/// A process that is gone or a zombie no longer runs.
fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let rest = &stat[stat.rfind(')').unwrap() + 1..];
            rest.split_whitespace().next() != Some("Z")
        }
        Err(_) => false,
    }
}

/// `sluice-dev run` on free ports, its TMPDIR `tmp`; waits for the curl it prints and runs it.
/// Returns the child, its output lines up to the curl, and the curl's answer.
fn start_and_call(tmp: &Path, run_dir: Option<&Path>) -> (Run, u16, Vec<String>) {
    start_and_call_with(tmp, run_dir, None)
}

/// Same; with `ecds`, `sluice-dev run --ecds` (make run-ecds) with its layout there.
fn start_and_call_with(
    tmp: &Path,
    run_dir: Option<&Path>,
    ecds: Option<&Path>,
) -> (Run, u16, Vec<String>) {
    let (port, admin) = (free_port().unwrap(), free_port().unwrap());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice-dev"));
    cmd.arg("run")
        .env("SLUICE_PORT", port.to_string())
        .env("SLUICE_ADMIN_PORT", admin.to_string())
        .env("TMPDIR", tmp)
        .env_remove("SLUICE_RUN_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(dir) = run_dir {
        cmd.env("SLUICE_RUN_DIR", dir);
    }
    if let Some(dir) = ecds {
        cmd.arg("--ecds").env("SLUICE_ECDS_DIR", dir);
    }
    let mut run = Run {
        child: cmd.spawn().unwrap(),
        kids: Vec::new(),
    };
    let stdout = run.child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut printed = Vec::new();
    let curl = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("sluice-dev run printed no curl");
        printed.push(line.clone());
        if line.starts_with("curl ") {
            break line;
        }
    };
    assert!(curl.contains(&format!("127.0.0.1:{port}/")), "{curl}");

    let out = Command::new("sh").arg("-c").arg(&curl).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"], "Hello, Sluice!",
        "{v}"
    );
    run.kids = children_of(run.child.id());
    (run, port, printed)
}

/// Sends `signal`, then checks: sluice-dev, Envoy and the mock all stopped, the port is free,
/// nothing is left in TMPDIR, and the access log printed holds the curl's request.
fn stop_and_check(
    mut run: Run,
    port: u16,
    printed: &[String],
    signal: &str,
    tmp: &Path,
    run_dir: &Path,
) {
    let kids = run.kids.clone();
    assert_eq!(kids.len(), 2, "Envoy and the mock provider: {kids:?}");
    Command::new("kill")
        .args([signal, &run.child.id().to_string()])
        .status()
        .unwrap();
    let stop_deadline = Instant::now() + Duration::from_secs(20);
    while run.child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < stop_deadline,
            "sluice-dev run did not stop on {signal}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    while kids.iter().any(|&k| is_running(k)) {
        assert!(
            Instant::now() < stop_deadline,
            "still running after {signal}: {kids:?} (Envoy, mock)"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "Envoy still holds {port}"
    );
    let left: Vec<PathBuf> = std::fs::read_dir(tmp)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "left in TMPDIR after {signal}: {left:?}");

    // The logs it printed are where it said, and kept.
    let run_dir = run_dir.canonicalize().unwrap();
    let access_log = run_dir.join("access.log");
    let envoy_log = run_dir.join("envoy.log");
    for (what, path) in [("Access log", &access_log), ("Envoy log", &envoy_log)] {
        let shown = format!("{}", path.display());
        assert!(
            printed
                .iter()
                .any(|l| l.starts_with(what) && l.ends_with(&shown)),
            "{what} {shown} not printed: {printed:#?}"
        );
    }
    let log = std::fs::read_to_string(&access_log).unwrap();
    let line: serde_json::Value = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .find(|v: &serde_json::Value| v["path"] == "/v1/chat/completions")
        .unwrap_or_else(|| panic!("no request line in {}: {log:?}", access_log.display()));
    assert_eq!(line["status"], 200, "{line}");
    assert_eq!(line["consumer"], "demo", "{line}");
    assert!(std::fs::metadata(&envoy_log).unwrap().len() > 0);
}

/// Ctrl-C, with the default `.sluice/run/` (gitignored).
#[test]
fn run_serves_the_curl_it_prints_and_stops_on_ctrl_c() {
    let tmp = tempfile::tempdir().unwrap();
    let (child, port, printed) = start_and_call(tmp.path(), None);
    let run_dir = sluice_harness::paths::repo().join(".sluice/run");
    stop_and_check(child, port, &printed, "-INT", tmp.path(), &run_dir);
    let ignored = Command::new("git")
        .args(["check-ignore", "-q", ".sluice/run/access.log"])
        .current_dir(sluice_harness::paths::repo())
        .status()
        .unwrap();
    assert!(ignored.success(), ".sluice/run/ is not gitignored");
}

/// SIGTERM (e.g. from a process manager), with `SLUICE_RUN_DIR` elsewhere.
#[test]
fn run_stops_on_sigterm_and_keeps_its_logs() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tempfile::tempdir().unwrap();
    let (child, port, printed) = start_and_call(tmp.path(), Some(run_dir.path()));
    stop_and_check(child, port, &printed, "-TERM", tmp.path(), run_dir.path());
}

/// `make run-ecds`: the same chain in the hot-swap layout serves the same curl; `make swap`'s
/// command puts a build in while it runs (here token-count's current build: unchanged, and the
/// resource's version moves on); SIGINT stops it the same way.
#[test]
fn run_ecds_serves_the_curl_takes_a_swap_and_stops_on_ctrl_c() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tempfile::tempdir().unwrap();
    let ecds = tempfile::tempdir().unwrap();
    let (child, port, printed) =
        start_and_call_with(tmp.path(), Some(run_dir.path()), Some(ecds.path()));
    assert!(
        printed.iter().any(|l| l.starts_with("Hot-swap layout in")),
        "{printed:#?}"
    );
    let swap = Command::new(env!("CARGO_BIN_EXE_sluice-dev"))
        .args(["swap", "--filter", "token-count", "--dir"])
        .arg(ecds.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&swap.stdout);
    assert!(
        swap.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&swap.stderr)
    );
    assert!(
        said.contains("(unchanged)") && said.contains(r#"version "1" -> "2 token_count-"#),
        "{said}"
    );
    let resource = std::fs::read_to_string(ecds.path().join("token-count.json")).unwrap();
    assert!(
        resource.contains(r#""version_info": "2 token_count-"#),
        "{resource}"
    );
    stop_and_check(child, port, &printed, "-INT", tmp.path(), run_dir.path());
}
