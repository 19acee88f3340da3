//! `make run` starts `sluice-dev run`: it must serve the curl it prints, and Ctrl-C must stop
//! everything it started.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sluice_harness::envoy::free_port;

#[test]
fn run_serves_the_curl_it_prints_and_stops_on_ctrl_c() {
    let (port, admin) = (free_port().unwrap(), free_port().unwrap());
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice-dev"))
        .arg("run")
        .env("SLUICE_PORT", port.to_string())
        .env("SLUICE_ADMIN_PORT", admin.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let curl = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("sluice-dev run printed no curl");
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

    // Ctrl-C: both processes stop and the port is free again.
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let stop_deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < stop_deadline,
            "sluice-dev run did not stop on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "Envoy still holds {port}"
    );
}
