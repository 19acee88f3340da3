//! Helper processes that bind port 0 and print `…:PORT` as their first line (the mock provider,
//! the rate-limit service): started, and their port read from that line.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Spawns `command` (stdout piped, stderr inherited) and waits up to 30 s for its first line;
/// `what` names it in errors. The rest of its stdout is drained in the background.
pub fn spawn(mut command: Command, what: &str) -> crate::Result<(Child, u16)> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {what} (run `make build`): {e}"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| format!("{what} has no stdout"))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        for _ in lines {} // keep the pipe drained
    });
    let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("{what} did not announce its port within 30 s"));
    };
    let port = line
        .rsplit(':')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(|| format!("unexpected {what} banner {line:?}"))?;
    Ok((child, port))
}
