//! The mock provider as a child process.

use std::process::{Child, Command};

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
        let mut command = Command::new(&bin);
        command.args(["--port", "0"]).args(args);
        let (child, port) =
            crate::announced::spawn(command, &format!("the mock provider ({})", bin.display()))?;
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
