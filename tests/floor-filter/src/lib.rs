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
//!   written, metrics) is counted in;
//! - `count-calls`: exactly the host calls token-count makes on a plain 1 KB chat request (its
//!   headers read whole, the body, the prompt count and its source set as headers and the count
//!   in filter state, the answer held and read, the provider's counts and their source set on
//!   it, the consumer read, the usage written (the prompt number too, as the bench's provider
//!   reports another) and two values recorded in a histogram at the end): 17 calls, with
//!   nothing counted: the most any filter doing token-count's job can reach;
//! - `route-calls`: likewise, model-router's host calls when it only routes (headers, body,
//!   the cluster header set, the route cache cleared, four filter-state values written);
//! - `path-read`: prompt-template's host call on a request no rule of its route could change
//!   (`:path` read alone; the body is not read);
//! - `template-calls`: prompt-template's host calls on a templated request (`:path`, the
//!   body, the new body and its `content-length` set, the template in filter state): the body
//!   is written back as it came;
//! - `moderation-calls`: moderation's host calls on a clean 1 KB chat with the demo config
//!   (`:path` read, the body, `sluice.moderation` written, the answer held and read without
//!   its head: the request asked for no stream): `hold-answer` plus two calls;
//! - `trap`: the VM traps on every request's headers, as a filter that crashed would (for the
//!   test of Envoy's `failure_policy`, `tests/failure_policy.rs`).
//!
//! Used by `make bench` (`sluice_harness::bench`) and, in `trap` mode, by that test; nothing is
//! counted or parsed, and the headers and filter state the call modes set carry fixed values.
//!
//! This module keeps every callback the SDK exports: the floor rows measure the stock SDK.
//! `make wasm` also makes `floor_filter_lean.wasm`, a copy without the `on_log` and `on_done`
//! exports (tools/sluice-trim, as for the filters, which leave those two to the SDK): the rows
//! standing for one filter's own calls run it, so that they make that filter's Wasm entries
//! too, not only its host calls.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Pass,
    ReadBody,
    HoldAnswer,
    TenCalls,
    CountCalls,
    RouteCalls,
    PathRead,
    TemplateCalls,
    ModerationCalls,
    Trap,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Pass => "pass",
            Mode::ReadBody => "read-body",
            Mode::HoldAnswer => "hold-answer",
            Mode::TenCalls => "ten-calls",
            Mode::CountCalls => "count-calls",
            Mode::RouteCalls => "route-calls",
            Mode::PathRead => "path-read",
            Mode::TemplateCalls => "template-calls",
            Mode::ModerationCalls => "moderation-calls",
            Mode::Trap => "trap",
        }
    }

    fn parse(text: &str) -> Option<Mode> {
        match text.trim() {
            "" | "pass" => Some(Mode::Pass),
            "read-body" => Some(Mode::ReadBody),
            "hold-answer" => Some(Mode::HoldAnswer),
            "ten-calls" => Some(Mode::TenCalls),
            "count-calls" => Some(Mode::CountCalls),
            "route-calls" => Some(Mode::RouteCalls),
            "path-read" => Some(Mode::PathRead),
            "template-calls" => Some(Mode::TemplateCalls),
            "moderation-calls" => Some(Mode::ModerationCalls),
            "trap" => Some(Mode::Trap),
            _ => None,
        }
    }
}

struct Root {
    mode: Mode,
    /// `count-calls`' histogram (token-count's tokens-per-request histogram).
    histogram: u32,
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
                if mode == Mode::CountCalls {
                    self.histogram =
                        hostcalls::define_metric(MetricType::Histogram, "floor_token_usage")
                            .unwrap_or_default();
                }
                log::info!("floor-filter: mode {}", mode.name());
                true
            }
            None => {
                log::error!(
                    "floor-filter: mode must be pass, read-body, hold-answer, ten-calls, \
                     count-calls, route-calls, path-read, template-calls, moderation-calls or trap"
                );
                false
            }
        }
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream {
            mode: self.mode,
            histogram: self.histogram,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Stream {
    mode: Mode,
    histogram: u32,
}

impl Stream {
    fn holds_answer(&self) -> bool {
        matches!(
            self.mode,
            Mode::HoldAnswer | Mode::TenCalls | Mode::CountCalls | Mode::ModerationCalls
        )
    }
}

/// The values written are fixed: only the calls are measured.
fn set_header(map: MapType, name: &str, value: &str) {
    let _ = hostcalls::set_map_value(map, name, Some(value));
}

fn set_state(name: &str, value: &str) {
    let _ = hostcalls::set_property(vec![name], Some(value.as_bytes()));
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
        #[cfg(target_arch = "wasm32")]
        if self.mode == Mode::Trap {
            core::arch::wasm32::unreachable();
        }
        if self.mode == Mode::TenCalls {
            for _ in 0..10 {
                let _ = hostcalls::get_map_value(MapType::HttpRequestHeaders, ":path");
            }
        }
        if matches!(self.mode, Mode::PathRead | Mode::TemplateCalls) {
            let _ = hostcalls::get_map_value(MapType::HttpRequestHeaders, ":path");
        }
        if matches!(self.mode, Mode::CountCalls | Mode::RouteCalls) {
            let _ = hostcalls::get_map(MapType::HttpRequestHeaders);
        }
        if self.mode == Mode::ModerationCalls {
            let _ = hostcalls::get_map_value(MapType::HttpRequestHeaders, ":path");
        }
        if matches!(self.mode, Mode::Pass | Mode::PathRead) || end_of_stream {
            Action::Continue
        } else {
            Action::Pause
        }
    }

    fn on_http_request_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        if matches!(self.mode, Mode::Pass | Mode::PathRead) {
            return Action::Continue;
        }
        if self.mode == Mode::TemplateCalls {
            if !end_of_stream {
                return Action::Pause;
            }
            let body = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size)
                .ok()
                .flatten()
                .unwrap_or_default();
            let _ = hostcalls::set_buffer(BufferType::HttpRequestBody, 0, size, &body);
            set_header(
                MapType::HttpRequestHeaders,
                "content-length",
                &body.len().to_string(),
            );
            set_state("sluice.template", "bench@1");
            return Action::Continue;
        }
        let action = whole_body(BufferType::HttpRequestBody, size, end_of_stream);
        if end_of_stream {
            match self.mode {
                Mode::CountCalls => {
                    set_header(MapType::HttpRequestHeaders, "x-sluice-prompt-tokens", "1");
                    set_header(
                        MapType::HttpRequestHeaders,
                        "x-sluice-token-source",
                        "local",
                    );
                    set_state("sluice.prompt_tokens", "1");
                    set_state("sluice.model", "gpt-4o-mini");
                }
                Mode::RouteCalls => {
                    set_header(MapType::HttpRequestHeaders, "x-sluice-cluster", "mock");
                    let _ = hostcalls::call_foreign_function("clear_route_cache", None);
                    set_state("sluice.model", "gpt-4o-mini");
                    set_state("sluice.provider", "mock");
                    set_state("sluice.cluster", "mock");
                    set_state("sluice.upstream_model", "gpt-4o-mini");
                }
                Mode::ModerationCalls => set_state("sluice.moderation", "pass"),
                _ => {}
            }
        }
        action
    }

    fn on_http_response_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        if self.mode == Mode::CountCalls {
            let _ = hostcalls::get_map(MapType::HttpResponseHeaders);
        }
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
        let action = whole_body(BufferType::HttpResponseBody, size, end_of_stream);
        if end_of_stream && self.mode == Mode::CountCalls {
            // The provider's numbers go on the held answer's headers.
            set_header(MapType::HttpResponseHeaders, "x-sluice-prompt-tokens", "1");
            set_header(
                MapType::HttpResponseHeaders,
                "x-sluice-completion-tokens",
                "1",
            );
            set_header(
                MapType::HttpResponseHeaders,
                "x-sluice-token-source",
                "provider",
            );
        }
        action
    }

    fn on_log(&mut self) {
        if self.mode == Mode::CountCalls {
            let _ = hostcalls::get_property(vec!["sluice.consumer"]);
            // The bench's mock counts usage by words, so the provider's prompt number differs
            // from the count and is written over it, as token-count does.
            set_state("sluice.prompt_tokens", "1");
            set_state("sluice.completion_tokens", "1");
            set_state("sluice.token_source", "provider");
            let _ = hostcalls::record_metric(self.histogram, 250);
            let _ = hostcalls::record_metric(self.histogram, 1);
        }
    }
}

// What `floor_filter_lean.wasm` lacks (see the module's doc); this module keeps them.
#[used]
#[link_section = "sluice.unused_callbacks"]
static UNUSED_IN_LEAN_COPY: [u8; 26] = *b"proxy_on_log proxy_on_done";

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { mode: Mode::Pass, histogram: 0 }) });
}}
