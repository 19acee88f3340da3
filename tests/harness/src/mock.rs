//! The mock provider as a child process.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::paths;

pub struct MockProvider {
    child: Child,
    pub port: u16,
}

impl MockProvider {
    /// Starts the mock on a free port and waits until it accepts connections.
    pub fn start() -> crate::Result<MockProvider> {
        Self::start_with_args(&[])
    }

    pub fn start_with_args(args: &[&str]) -> crate::Result<MockProvider> {
        let bin = paths::mock_provider();
        let mut child = Command::new(&bin)
            .args(["--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {} (run `make build`): {e}", bin.display()))?;
        let stdout = child.stdout.take().ok_or("mock provider has no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {} // keep the pipe drained
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("mock provider did not announce its port within 30 s".to_owned());
            }
        };
        let port = line
            .rsplit(':')
            .next()
            .and_then(|p| p.trim().parse().ok())
            .ok_or_else(|| format!("unexpected mock provider banner {line:?}"))?;
        Ok(MockProvider { child, port })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// The last request the mock received, as JSON (`method`, `path`, `headers`, `body`, `count`).
    pub fn last_request(&self) -> crate::Result<serde_json::Value> {
        let resp = crate::http::get(&self.url("/__last"))?;
        serde_json::from_slice(&resp.body).map_err(|e| format!("bad /__last answer: {e}"))
    }
}

impl MockProvider {
    /// A header of the last request the mock received (names are lower-case).
    pub fn last_header(&self, name: &str) -> crate::Result<Option<String>> {
        let last = self.last_request()?;
        Ok(last["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|h| h[0] == name)
            .and_then(|h| h[1].as_str().map(str::to_owned)))
    }
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
