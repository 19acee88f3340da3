//! `mock-provider --help` is real help: exit 0, every flag and every test-control header.
//! The command line the harness uses (`--port 0`, `--flag-word W`) keeps working.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn mock() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mock-provider"))
}

/// Every `x-mock-…` header `Controls::from_headers` reads.
fn control_headers() -> Vec<String> {
    let src = include_str!("../src/controls.rs");
    let code = &src[src.find("pub fn from_headers").unwrap()..];
    let code = &code[..code.find("#[cfg(test)]").unwrap()];
    let mut names: Vec<String> = code
        .split('"')
        .filter(|s| s.starts_with("x-mock-"))
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn help_exits_0_and_describes_flags_endpoints_and_controls() {
    let headers = control_headers();
    assert!(headers.len() >= 12, "{headers:?}");
    for flag in ["--help", "-h"] {
        let out = mock().arg(flag).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{flag}: {out:?}");
        let help = String::from_utf8(out.stdout).unwrap();
        for want in [
            "--port <N>",
            "--flag-word <WORD>",
            "[default: forbidden]",
            "Environment",
            "/v1/chat/completions",
            "/v1/messages",
            "/__last",
            "listening on 127.0.0.1:PORT",
        ] {
            assert!(help.contains(want), "{flag} lacks {want:?}:\n{help}");
        }
        for header in &headers {
            assert!(help.contains(header), "{flag} lacks {header}:\n{help}");
        }
    }
}

#[test]
fn bad_arguments_exit_2_naming_the_problem() {
    for args in [&["--bogus"][..], &["--port", "x"], &["--port"]] {
        let out = mock().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--help"), "{args:?}: {err}");
    }
}

#[test]
fn the_harness_command_line_still_starts_it() {
    let mut child = mock()
        .args(["--port", "0", "--flag-word", "zebra"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.starts_with("mock-provider listening on 127.0.0.1:"),
        "{line:?}"
    );
    let port: u16 = line.trim().rsplit(':').next().unwrap().parse().unwrap();
    assert_ne!(port, 0);
}
