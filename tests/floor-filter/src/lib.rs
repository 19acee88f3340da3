//! The floor: what Envoy charges a Wasm filter for each step, before the filter does any work.
//!
//! Plugin configuration (a plain string) picks how far it goes; each mode adds one step that
//! Sluice's filters take on every request:
//! - `pass`: every callback returns at once, no host call (the cost of one Wasm entry);
//! - `read-body`: the request is paused until its body is whole, which is then copied into the
//!   VM (what a filter pays to look at the body before it leaves);
//! - `hold-answer`: `read-body`, and the answer is held until its body is whole and copied in
//!   (what a filter pays to change the answer's headers after reading its body);
//! - `ten-calls`: `hold-answer`, and ten more host calls per request (one header read each):
//!   what a filter pays per host call, the unit its other work (headers set, filter state
//!   written, metrics) is counted in.
//!
//! Used by `make bench` only (`sluice_harness::bench`); nothing is counted, parsed or changed.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Pass,
    ReadBody,
    HoldAnswer,
    TenCalls,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Pass => "pass",
            Mode::ReadBody => "read-body",
            Mode::HoldAnswer => "hold-answer",
            Mode::TenCalls => "ten-calls",
        }
    }

    fn parse(text: &str) -> Option<Mode> {
        match text.trim() {
            "" | "pass" => Some(Mode::Pass),
            "read-body" => Some(Mode::ReadBody),
            "hold-answer" => Some(Mode::HoldAnswer),
            "ten-calls" => Some(Mode::TenCalls),
            _ => None,
        }
    }
}

struct Root {
    mode: Mode,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _: usize) -> bool {
        let config = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        match Mode::parse(&String::from_utf8_lossy(&config)) {
            Some(mode) => {
                self.mode = mode;
                log::info!("floor-filter: mode {}", mode.name());
                true
            }
            None => {
                log::error!("floor-filter: mode must be pass, read-body, hold-answer or ten-calls");
                false
            }
        }
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream { mode: self.mode }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Stream {
    mode: Mode,
}

impl Stream {
    fn holds_answer(&self) -> bool {
        matches!(self.mode, Mode::HoldAnswer | Mode::TenCalls)
    }
}

impl Context for Stream {}

/// Pauses until the body is whole, then copies it into the VM.
fn whole_body(kind: BufferType, size: usize, end_of_stream: bool) -> Action {
    if !end_of_stream {
        return Action::Pause;
    }
    let _ = hostcalls::get_buffer(kind, 0, size);
    Action::Continue
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        if self.mode == Mode::TenCalls {
            for _ in 0..10 {
                let _ = hostcalls::get_map_value(MapType::HttpRequestHeaders, ":path");
            }
        }
        if self.mode == Mode::Pass || end_of_stream {
            Action::Continue
        } else {
            Action::Pause
        }
    }

    fn on_http_request_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        if self.mode == Mode::Pass {
            return Action::Continue;
        }
        whole_body(BufferType::HttpRequestBody, size, end_of_stream)
    }

    fn on_http_response_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        if self.holds_answer() && !end_of_stream {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn on_http_response_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        if !self.holds_answer() {
            return Action::Continue;
        }
        whole_body(BufferType::HttpResponseBody, size, end_of_stream)
    }
}

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { mode: Mode::Pass }) });
}}
