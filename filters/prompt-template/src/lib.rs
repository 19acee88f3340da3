//! prompt-template: named templates with variables, system-message decoration, prompts as REST
//! endpoints.
//!
//! Host glue only; the logic is `sluice_core::prompt_template`. On the request headers the
//! engine decides from the path (one header read), and only when that does not settle it the
//! method (a REST endpoint), the host or the route name (a rule matching on them), one call
//! each, whether anything could apply (`Engine::plan`): when nothing could, the request passes
//! without its body being read. Otherwise the body is read once: a template is expanded and the
//! rule's decoration applied (`Engine::apply`), or a REST call is turned into a chat request
//! (`Engine::rest_request`) whose path replaces the caller's (the route is picked again). A
//! REST answer in `result` or `json` mode is held whole and reduced (`reduce_answer`); a stream
//! passes as it comes.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use sluice_core::prompt_template::config::PromptTemplateConfig;
use sluice_core::prompt_template::{holds_answer, reduce_answer, Engine, Head, Plan, RestRequest};
use sluice_core::{ApiError, ConfigError, Dialect, StateKey};
use sluice_host::held::{HeldAnswer, Piece};
use sluice_host::{http, reply, state};

pub struct PromptTemplate;

pub struct Runtime {
    engine: Engine,
}

impl sluice_host::Filter for PromptTemplate {
    const NAME: &'static str = "prompt-template";
    type Config = PromptTemplateConfig;
    type Runtime = Runtime;

    fn prepare(config: PromptTemplateConfig) -> Result<Runtime, ConfigError> {
        Ok(Runtime {
            engine: Engine::new(config)?,
        })
    }

    fn http_context(runtime: Rc<Runtime>, _context_id: u32) -> Box<dyn HttpContext> {
        Box::new(TemplateStream {
            runtime,
            phase: Phase::Idle,
            dialect: Dialect::OpenAi,
            body_size: 0,
            caller_path: String::new(),
            rest: None,
            held: None,
        })
    }
}

/// What the request is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing to do, or done.
    Idle,
    /// The whole body, to apply rule `rule`.
    Template { rule: usize },
    /// The whole body of a call to REST endpoint `endpoint`.
    Rest { endpoint: usize },
}

/// The header to record a rewritten path under (Envoy's name for it): the access log shows it
/// as the caller's path.
const ORIGINAL_PATH_HEADER: &str = "x-envoy-original-path";

struct TemplateStream {
    runtime: Rc<Runtime>,
    phase: Phase,
    dialect: Dialect,
    /// The request body Envoy has buffered, as the last body callback said (for trailers).
    body_size: usize,
    caller_path: String,
    /// The REST call this request became (its body taken out): how to answer it.
    rest: Option<RestRequest>,
    /// A REST answer held until whole, to be reduced.
    held: Option<HeldAnswer>,
}

impl TemplateStream {
    fn refuse(&mut self, err: &ApiError) -> Action {
        self.phase = Phase::Idle;
        reply::send_error(err, self.dialect);
        Action::Pause
    }

    fn write_body(&self, body: &[u8]) -> Result<(), ApiError> {
        let max = self.runtime.engine.config.max_body_bytes;
        http::replace_request_body(self.body_size, body, max, "expanded")
    }

    /// The whole request body is here.
    fn handle(&mut self, body: &[u8]) -> Action {
        let rt = self.runtime.clone();
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Idle => Action::Continue,
            Phase::Template { rule } => match rt.engine.apply(rule, self.dialect, body) {
                Err(err) => self.refuse(&err),
                Ok(outcome) => {
                    if let Some(new_body) = &outcome.body {
                        if let Err(err) = self.write_body(new_body) {
                            return self.refuse(&err);
                        }
                    }
                    if let Some(template) = &outcome.template {
                        state::set(StateKey::Template, template);
                    }
                    Action::Continue
                }
            },
            Phase::Rest { endpoint } => {
                let Some(ep) = rt.engine.endpoint(endpoint) else {
                    return Action::Continue;
                };
                let mut rest = match rt.engine.rest_request(ep, body) {
                    Ok(r) => r,
                    Err(err) => return self.refuse(&err),
                };
                if let Err(err) = self.write_body(&rest.body) {
                    return self.refuse(&err);
                }
                rest.body = Vec::new();
                http::set_request_header(":method", Some("POST"));
                http::set_request_header(":path", Some(&rest.path));
                http::set_request_header(ORIGINAL_PATH_HEADER, Some(&self.caller_path));
                http::clear_route_cache();
                state::set(StateKey::Template, &rest.template);
                // Tells model-router the original path is this filter's, not a caller's.
                state::set(StateKey::RestPath, &self.caller_path);
                self.rest = Some(rest);
                Action::Continue
            }
        }
    }
}

/// The request head beyond its path, read when the engine asks: each part one host call (a
/// request needs at most one of the method, for a REST endpoint, and the host, for a rule on
/// hosts: a single header read is cheaper than the whole map).
struct HostHead;

impl Head for HostHead {
    fn method(&mut self) -> String {
        http::request_header(":method").unwrap_or_default()
    }

    fn host(&mut self) -> String {
        http::request_header(":authority").unwrap_or_default()
    }

    fn route_name(&mut self) -> Option<String> {
        http::property(&["xds", "route_name"])
    }
}

impl Context for TemplateStream {}

impl HttpContext for TemplateStream {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        let rt = self.runtime.clone();
        if rt.engine.idle() {
            return Action::Continue; // no host call at all
        }
        // The path first, alone: it settles most requests; the rest of the head only when
        // the engine asks.
        let path = http::request_header(":path").unwrap_or_default();
        let plan = rt.engine.plan(&path, &mut HostHead);
        self.phase = match plan {
            Plan::Pass => return Action::Continue,
            Plan::Refuse(err) => {
                self.dialect = Dialect::from_path(&path);
                return self.refuse(&err);
            }
            Plan::Template { rule, dialect } => {
                if end_of_stream {
                    return Action::Continue; // no body: the next filters refuse it
                }
                self.dialect = dialect;
                Phase::Template { rule }
            }
            Plan::Rest(endpoint) => Phase::Rest { endpoint },
        };
        // A caller's `x-envoy-original-path` is not looked at: this filter writes one only
        // when it changes the path (a REST call), and then its own replaces the caller's. On
        // any other request it passes as it came, like every header this filter does not
        // change (key-injection's authenticate role, first in the chain, drops a caller's).
        self.caller_path = path;
        if end_of_stream {
            // A REST call without a body: the engine names the fields it takes.
            return self.handle(&[]);
        }
        Action::Pause // the template, variables and messages are in the body
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.body_size = body_size;
        if self.phase == Phase::Idle {
            return Action::Continue;
        }
        let max = self.runtime.engine.config.max_body_bytes;
        let body = match http::whole_request_body(body_size, end_of_stream, max) {
            http::BodyRead::Partial => return Action::Pause,
            http::BodyRead::TooLarge(err) => return self.refuse(&err),
            http::BodyRead::Whole(body) => body,
        };
        self.handle(&body)
    }

    /// A body that ends with trailers is whole now: read it as if its last piece had come.
    fn on_http_request_trailers(&mut self, _: usize) -> Action {
        if self.phase == Phase::Idle {
            return Action::Continue;
        }
        self.on_http_request_body(self.body_size, true)
    }

    fn on_http_response_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        let Some(rest) = &self.rest else {
            return Action::Continue; // not a REST call: nothing to do on the answer
        };
        if end_of_stream {
            return Action::Continue;
        }
        let headers = http::response_headers();
        let content_type = headers.get("content-type").unwrap_or_default();
        if !holds_answer(rest, headers.status(), content_type) {
            return Action::Continue;
        }
        // Held with its headers until whole: the reduced body gets its own content-length.
        // One too long for Envoy to hold is answered 502 `answer_too_large` (held, it would
        // end in Envoy's own 500).
        let max = self.runtime.engine.config.max_body_bytes;
        let held = HeldAnswer::start(headers.content_length(), max, Dialect::OpenAi);
        let action = held.head_action();
        self.held = Some(held);
        action
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(held) = self.held.as_mut() else {
            return Action::Continue;
        };
        let max = self.runtime.engine.config.max_body_bytes;
        match held.on_body(body_size, end_of_stream, max, Dialect::OpenAi) {
            Piece::Done(action) => return action,
            Piece::Whole => self.held = None,
        }
        let Some(rest) = &self.rest else {
            return Action::Continue;
        };
        let body = http::response_body(body_size).unwrap_or_default();
        let out = match reduce_answer(rest.answer, &body) {
            Ok(out) => out,
            Err(err) => {
                // The caller gets a clear error, in place of an answer it cannot use.
                http::set_response_header(":status", Some(&err.status().to_string()));
                err.body(Dialect::OpenAi)
            }
        };
        http::set_response_header("content-type", Some("application/json"));
        http::replace_held_answer(body_size, &out, max, Dialect::OpenAi);
        Action::Continue
    }
}

// Left to the SDK (no `on_log`, no `on_done`): Envoy need not enter the module for them (`make wasm`
// drops their exports, see `sluice_host::callbacks`).
sluice_host::unused_callbacks!(b"proxy_on_log proxy_on_done");

proxy_wasm::main! {{
    sluice_host::install::<PromptTemplate>();
}}
