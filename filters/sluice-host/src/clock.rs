//! Host time, cached.
//!
//! Every host call costs about as much as a filter callback (a V8 boundary crossing); a filter
//! that needs only second resolution reads the time once per tick instead of once per request.

use std::cell::Cell;

use crate::http;

/// Unix seconds as of the last [`Clock::refresh`].
#[derive(Debug)]
pub struct Clock(Cell<u64>);

impl Clock {
    /// Reads the host time now.
    pub fn new() -> Self {
        Clock(Cell::new(http::now_secs()))
    }

    /// Reads the host time again (call it from `on_tick`).
    pub fn refresh(&self) {
        self.0.set(http::now_secs());
    }

    pub fn now(&self) -> u64 {
        self.0.get()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}
