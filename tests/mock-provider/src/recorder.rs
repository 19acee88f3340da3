//! Remembers the last request that reached the mock, for tests to inspect at `GET /__last`.

use std::sync::Mutex;

use serde::Serialize;

#[derive(Debug, Clone, Serialize, Default)]
pub struct Recorded {
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Header names lower-case, in arrival order.
    pub headers: Vec<(String, String)>,
    /// Body as text (invalid UTF-8 replaced).
    pub body: String,
    /// How many requests the mock has received (including this one), `/__last` excluded.
    pub count: u64,
}

#[derive(Default)]
pub struct Recorder {
    last: Mutex<Recorded>,
}

impl Recorder {
    pub fn record(&self, mut request: Recorded) {
        if let Ok(mut last) = self.last.lock() {
            request.count = last.count + 1;
            *last = request;
        }
    }

    pub fn last(&self) -> Recorded {
        self.last.lock().map(|l| l.clone()).unwrap_or_default()
    }
}
