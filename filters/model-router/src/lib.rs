//! model-router: route by the body's `model` to an Envoy cluster.
//!
//! Host glue only; the logic is `sluice_core::model_router`. The request body is read whole,
//! its model (or the `x-sluice-model` override header) picks a target; the request is made
//! ready for it (translation, alias, Azure path), the filter names the target's cluster in
//! `x-sluice-cluster` (which the route table matches) and has Envoy pick the route again. The
//! answer is translated back to the caller's dialect when needed, a stream event by event.
//!
//! Fallback: when the target answers one of `fallback_on` before any byte reached the caller,
//! the filter holds that answer and sends the request, prepared for the next fallback target,
//! as a call-out through Envoy's internal listener (which runs key-injection's inject role, so
//! the provider credential is added there); the first answer that is not a failure, or the
//! last one, goes to the caller in its dialect. It takes the place of the held answer (its
//! status, headers and body), so it passes the filters above this one like any answer:
//! moderation restores and checks it, prompt-template reduces a REST call's answer. Only a
//! failed first answer without a body (nothing to hold) is replaced by a local reply.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use sluice_core::body::{self, Head};
use sluice_core::endpoint::Endpoint;
use sluice_core::metrics::stat_name;
use sluice_core::model_router::config::{Kind, ModelRouterConfig, Sticky, Target};
use sluice_core::model_router::origin::Origin;
use sluice_core::model_router::prepare::{
    prepare, stream_translator, translate_answer, Direction, Prepared,
};
use sluice_core::model_router::route::{
    fallback_answered, fallback_passes_header, fallback_unanswered, model_missing, model_not_found,
    upstream_model, Router,
};
use sluice_core::token_count::budget::Standing;
use sluice_core::token_count::usage::Delivered;
use sluice_core::token_count::{COMPLETION_HEADER, PROMPT_HEADER, SOURCE_HEADER};
use sluice_core::translate::{RequestFacts, StreamTranslator};
use sluice_core::{hold, ApiError, ConfigError, Dialect, StateKey};
use sluice_host::held::{HeldAnswer, Piece};
use sluice_host::metrics::Metrics;
use sluice_host::{http, reply, state};

pub struct ModelRouter;

pub struct Runtime {
    router: Router,
    config: ModelRouterConfig,
    /// Spreads requests without a sticky key over a rule's weights (per VM).
    turn: Cell<u64>,
    metrics: Metrics,
}

impl sluice_host::Filter for ModelRouter {
    const NAME: &'static str = "model-router";
    type Config = ModelRouterConfig;
    type Runtime = Runtime;

    fn prepare(config: ModelRouterConfig) -> Result<Runtime, ConfigError> {
        Ok(Runtime {
            router: Router::new(&config),
            config,
            turn: Cell::new(0),
            metrics: Metrics::batched(500),
        })
    }

    /// Counters add up in the VM and go to Envoy once a second: a host call per request less.
    const TICK: Option<Duration> = Some(Duration::from_secs(1));

    fn on_tick(runtime: &Runtime) {
        runtime.metrics.flush();
    }

    fn http_context(runtime: Rc<Runtime>, _context_id: u32) -> Box<dyn HttpContext> {
        Box::new(RouteStream {
            runtime,
            routing: false,
            path_recorded: false,
            dialect: Dialect::OpenAi,
            endpoint: None,
            body_size: 0,
            path: String::new(),
            override_model: None,
            headers: http::Headers::default(),
            translation: None,
            answer: Answer::AsIs,
            retry: None,
        })
    }
}

pub const ROUTE_HEADER: &str = "x-sluice-cluster";
pub const MODEL_HEADER: &str = "x-sluice-model";
pub const FALLBACK_HEADER: &str = "x-sluice-fallback";
/// The caller's path when the filter changed it (Envoy's own name for it, as its path
/// rewrites set it): access logs show both, `%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%`.
pub const ORIGINAL_PATH_HEADER: &str = "x-envoy-original-path";

/// What a fallback needs: the caller's request as it came, and where to go next.
struct Retry {
    body: Vec<u8>,
    body_model: Option<String>,
    model: String,
    next: Vec<Target>,
    /// Clusters tried so far, in order.
    tried: Vec<String>,
    /// A call-out is under way or its answer waits for the held one to end; the first
    /// target's answer is held meanwhile.
    holding: bool,
    /// The held answer came without a body: a local reply replaces it.
    held_bodyless: bool,
    /// The held answer's body has ended (none of it is left in Envoy's buffer: it is dropped
    /// as it comes).
    held_ended: bool,
    /// The fallback's answer, ready before the held answer's body ended.
    ready: Option<FallbackAnswer>,
    translation: Option<(Direction, RequestFacts)>,
    /// The dialect of the target tried last (how its answer reports usage).
    upstream: Dialect,
    /// The caller's dialect, and the most an answer written in the held one's place may
    /// hold (more is answered 502 `answer_too_large`).
    caller: Dialect,
    max_body_bytes: u64,
}

struct RouteStream {
    runtime: Rc<Runtime>,
    routing: bool,
    /// `x-envoy-original-path` came from prompt-template (a REST call): kept as it is.
    path_recorded: bool,
    dialect: Dialect,
    endpoint: Option<Endpoint>,
    /// The request body Envoy has buffered, as the last body callback said (for trailers).
    body_size: usize,
    path: String,
    override_model: Option<String>,
    /// Request headers, kept for a rule that is sticky by header.
    headers: http::Headers,
    /// Set when the request was translated to the target's dialect: the answer goes back.
    translation: Option<(Direction, RequestFacts)>,
    answer: Answer,
    retry: Option<Retry>,
}

/// A fallback call-out's answer, as the caller gets it.
struct FallbackAnswer {
    status: u16,
    /// Headers true of whatever the caller gets in the held answer's place, a 502
    /// `answer_too_large` included: `x-sluice-fallback` and the gateway's token budget.
    kept: Vec<(String, String)>,
    /// Headers true of this answer only: its type and length, the provider's `retry-after` and
    /// `x-ratelimit-*`, the token counts of its usage.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl FallbackAnswer {
    /// Its headers: all of them, or only those kept on an error in its place.
    fn header_pairs(&self, all: bool) -> impl Iterator<Item = (&str, &str)> {
        let own = if all { self.headers.as_slice() } else { &[] };
        self.kept
            .iter()
            .chain(own)
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// How the answer is passed back.
enum Answer {
    AsIs,
    /// A JSON body held whole with its head to be translated (one too long to hold becomes
    /// 502 `answer_too_large`), with its status.
    Json {
        status: u16,
        held: HeldAnswer,
    },
    /// A stream told in the caller's dialect, event by event.
    Stream(Box<dyn StreamTranslator>),
}

impl RouteStream {
    fn refuse(&self, err: &ApiError) -> Action {
        reply::send_error(err, self.dialect);
        Action::Pause
    }

    fn sticky_value(&self, sticky: &Sticky) -> Option<String> {
        match sticky {
            Sticky::Consumer => state::get(StateKey::Consumer),
            Sticky::Header(name) => self.headers.get(name).map(str::to_owned),
        }
    }

    fn count(&self, what: &str, labels: &[(&str, &str)]) {
        let base = format!("sluice_model_router_{what}");
        self.runtime
            .metrics
            .count(&base, &stat_name(&base, labels), 1);
    }

    /// Sends the request to the next fallback target through the internal listener. False
    /// when there is none left or the call-out could not start.
    fn try_next_fallback(&mut self) -> bool {
        let rt = self.runtime.clone();
        let Some(retry) = self.retry.as_mut() else {
            return false;
        };
        while !retry.next.is_empty() {
            let target = retry.next.remove(0);
            let upstream = upstream_model(&target, &retry.model);
            let prepared = match prepare(
                self.dialect,
                &self.path,
                &retry.body,
                retry.body_model.as_deref(),
                &target,
                &upstream,
                rt.config.default_max_tokens,
            ) {
                Ok(p) => p,
                Err(err) => {
                    log::info!(
                        "sluice model-router: fallback {} skipped: {err}",
                        target.cluster
                    );
                    continue;
                }
            };
            let body = prepared.body.clone().unwrap_or_else(|| retry.body.clone());
            let mut headers = vec![
                (":method", "POST"),
                (":path", prepared.path.as_str()),
                (":authority", "sluice.internal"),
                ("content-type", "application/json"),
                (ROUTE_HEADER, target.cluster.as_str()),
            ];
            if target.kind == Kind::Anthropic {
                headers.push(("anthropic-version", "2023-06-01"));
            }
            let timeout = Duration::from_millis(rt.config.fallback_timeout_ms);
            match hostcalls::dispatch_http_call(
                &rt.config.fallback_cluster,
                headers,
                Some(&body),
                Vec::new(),
                timeout,
            ) {
                Ok(_) => {
                    retry.tried.push(target.cluster.clone());
                    retry.translation = prepared.translation;
                    retry.holding = true;
                    retry.upstream = match target.kind {
                        Kind::Anthropic => Dialect::Anthropic,
                        _ => Dialect::OpenAi,
                    };
                    state::set(StateKey::Provider, &target.provider);
                    state::set(StateKey::Cluster, &target.cluster);
                    state::set(StateKey::UpstreamModel, &upstream);
                    return true;
                }
                Err(status) => {
                    log::warn!(
                        "sluice model-router: cannot call {} for a fallback: {status:?}",
                        rt.config.fallback_cluster
                    );
                    return false;
                }
            }
        }
        false
    }

    fn fallback_summary(&self) -> String {
        match &self.retry {
            Some(r) => format!(
                "attempts={}; answered={}",
                r.tried.len(),
                r.tried.last().map(String::as_str).unwrap_or("none")
            ),
            None => String::new(),
        }
    }

    /// The answer of a fallback call-out, in the caller's dialect.
    fn fallback_answer(&mut self, body_size: usize) -> FallbackAnswer {
        let headers = http::call_response_headers();
        // No answer a caller can read (none, or Envoy's plain-text 504 when the call-out's
        // timeout ran out): a clear error in the caller's dialect instead.
        let unanswered = !fallback_answered(headers.status(), headers.get("content-type"));
        let (status, body) = if unanswered {
            let timeout = self.runtime.config.fallback_timeout_ms;
            let err = fallback_unanswered(timeout, headers.status());
            (err.status(), err.body(self.dialect))
        } else {
            let body = http::call_response_body(body_size).unwrap_or_default();
            (headers.status(), body)
        };
        let content_type = match headers.get("content-type") {
            Some(t) if !unanswered => t,
            _ => "application/json",
        };
        let event_stream = content_type.starts_with("text/event-stream");
        let translation = match &self.retry {
            Some(r) if !unanswered => r.translation.clone(),
            _ => None,
        };
        // token-count, below this filter, saw the held answer, not this one: the usage goes to
        // it through filter state, and on the answer as token-count would put it.
        let upstream = self.retry.as_ref().map_or(Dialect::OpenAi, |r| r.upstream);
        let delivered = Delivered::of_answer(upstream, status, event_stream, &body);
        state::set(StateKey::AnswerUsage, &delivered.encode());
        let body = match &translation {
            Some((direction, facts)) => translate_answer(
                *direction,
                facts,
                status,
                event_stream,
                &body,
                http::now_secs(),
            )
            .unwrap_or(body),
            None => body,
        };
        let summary = self.fallback_summary();
        state::set(StateKey::Fallback, &summary);
        let answered = self
            .retry
            .as_ref()
            .and_then(|r| r.tried.last().cloned())
            .unwrap_or_default();
        let result = if (200..300).contains(&status) {
            "answered"
        } else {
            "failed"
        };
        self.count(
            "fallback_total",
            &[("cluster", &answered), ("result", result)],
        );
        let mut kept = vec![(FALLBACK_HEADER.to_owned(), summary)];
        // token-count put its budget's headers on the held answer, which this one replaces: they
        // go on this one instead of the provider's (read here only, on the fallback path).
        let budget = state::get(StateKey::Budget).and_then(|t| Standing::decode(&t));
        if let Some(standing) = &budget {
            kept.extend(standing.headers().map(|(k, v)| (k.to_owned(), v)));
        }
        let mut out_headers = vec![("content-type".to_owned(), content_type.to_owned())];
        for (k, v) in &headers.0 {
            if fallback_passes_header(k, budget.is_some()) {
                out_headers.push((k.clone(), v.clone()));
            }
        }
        if let Some(usage) = &delivered.usage {
            if let Some(p) = usage.prompt {
                out_headers.push((PROMPT_HEADER.to_owned(), p.to_string()));
            }
            if let Some(c) = usage.completion.filter(|_| !event_stream) {
                out_headers.push((COMPLETION_HEADER.to_owned(), c.to_string()));
            }
            out_headers.push((SOURCE_HEADER.to_owned(), "provider".to_owned()));
        }
        if !event_stream {
            out_headers.push(("content-length".to_owned(), body.len().to_string()));
        }
        FallbackAnswer {
            status,
            kept,
            headers: out_headers,
            body,
        }
    }

    /// The fallback's answer takes the held answer's place: its status and headers (the held
    /// ones all go: they were the failed target's) and its body, `held` bytes in Envoy's buffer.
    /// A body over `max_body_bytes` is not written: the caller gets 502 `answer_too_large`
    /// (`replace_held_answer`), with only the headers true of that error: `x-sluice-fallback`
    /// (still true: the target it names answered, the gateway could not pass the answer on)
    /// and the budget's, not the type, rate limits and token counts of an answer not sent.
    fn replace_held(retry: &Retry, answer: &FallbackAnswer) {
        let status = answer.status.to_string();
        let mut headers: Vec<(&str, &str)> = vec![(":status", status.as_str())];
        let fits = hold::fits(answer.body.len(), retry.max_body_bytes);
        headers.extend(answer.header_pairs(fits));
        http::set_response_headers(&headers);
        http::replace_held_answer(
            0, // the held answer's body was dropped as it came
            &answer.body,
            retry.max_body_bytes,
            retry.caller,
        );
    }

    /// The held answer has ended (its last body piece, or its trailers): replaced now when the
    /// fallback's answer is here, else held until it is.
    fn held_ended(retry: &mut Retry) -> Action {
        retry.held_ended = true;
        let Some(answer) = retry.ready.take() else {
            return Action::Pause; // the call-out has not answered yet
        };
        retry.holding = false;
        Self::replace_held(retry, &answer);
        Action::Continue
    }

    /// The fallback's answer goes to the caller: in the held answer's place once that has
    /// ended, or as a local reply when it had no body to replace.
    fn deliver(&mut self, answer: FallbackAnswer) {
        let Some(retry) = self.retry.as_mut() else {
            return;
        };
        if retry.held_bodyless {
            retry.holding = false;
            // Held or not, a fallback's answer over max_body_bytes is the same 502.
            let fits = hold::fits(answer.body.len(), retry.max_body_bytes);
            let mut headers: Vec<(&str, &str)> = answer
                .header_pairs(fits)
                .filter(|(k, _)| *k != "content-length")
                .collect();
            let error = (!fits).then(|| ApiError::answer_too_large(retry.max_body_bytes));
            let (status, body) = match &error {
                None => (u32::from(answer.status), answer.body.clone()),
                Some(err) => {
                    headers.push(("content-type", "application/json"));
                    (u32::from(err.status()), err.body(retry.caller))
                }
            };
            if let Err(s) = hostcalls::send_http_response(status, headers, Some(&body)) {
                log::error!("sluice model-router: cannot send the fallback answer: {s:?}");
            }
            return;
        }
        if !retry.held_ended {
            retry.ready = Some(answer); // sent when the held body ends
            return;
        }
        retry.holding = false;
        Self::replace_held(retry, &answer);
        if let Err(s) = hostcalls::resume_http_response() {
            log::error!("sluice model-router: cannot resume the answer: {s:?}");
        }
    }
}

impl Context for RouteStream {
    fn on_http_call_response(&mut self, _token: u32, _: usize, body_size: usize, _: usize) {
        let status = http::call_response_headers().status();
        let failed = status == 0 || self.runtime.config.fallback_on.contains(&status);
        if failed && self.try_next_fallback() {
            return; // the next attempt is under way
        }
        let answer = self.fallback_answer(body_size);
        self.deliver(answer);
    }
}

impl HttpContext for RouteStream {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        let headers = http::request_headers();
        // A caller must not pick the cluster itself, whatever the request.
        if headers.contains(ROUTE_HEADER) {
            http::set_request_header(ROUTE_HEADER, None);
        }
        // Nor write the path the access log shows as theirs. prompt-template records the path
        // of a REST call it turned into a chat request (its own replacing a caller's, and named
        // in filter state `sluice.rest_path`): that one stays, as the caller's.
        self.path_recorded =
            headers.contains(ORIGINAL_PATH_HEADER) && state::get(StateKey::RestPath).is_some();
        if headers.contains(ORIGINAL_PATH_HEADER) && !self.path_recorded {
            http::set_request_header(ORIGINAL_PATH_HEADER, None);
        }
        let path = headers.get(":path").unwrap_or_default().to_owned();
        let endpoint = Endpoint::from_path(&path);
        if endpoint.is_none() || headers.get(":method") != Some("POST") {
            return Action::Continue;
        }
        self.dialect = Dialect::from_path(&path);
        if end_of_stream {
            return self.refuse(&body::missing_body());
        }
        self.endpoint = endpoint;
        self.path = path;
        self.override_model = headers.get(MODEL_HEADER).map(str::to_owned);
        self.headers = headers;
        self.routing = true;
        Action::Pause // the model is in the body
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.body_size = body_size;
        if !self.routing {
            return Action::Continue;
        }
        let rt = self.runtime.clone();
        let body =
            match http::whole_request_body(body_size, end_of_stream, rt.config.max_body_bytes) {
                http::BodyRead::Partial => return Action::Pause,
                http::BodyRead::TooLarge(err) => {
                    self.routing = false;
                    return self.refuse(&err);
                }
                http::BodyRead::Whole(body) => body,
            };
        self.routing = false;
        let head = match Head::of(&body) {
            Ok(head) => head,
            Err(err) => return self.refuse(&err),
        };
        if let Some(endpoint) = self.endpoint {
            if let Err(err) = head.check_messages(endpoint) {
                return self.refuse(&err);
            }
        }
        let body_model = head.model;
        let Some(model) = self.override_model.clone().or(body_model.clone()) else {
            return self.refuse(&model_missing());
        };
        let turn = rt.turn.get();
        rt.turn.set(turn.wrapping_add(1));
        let Some(choice) = rt.router.route(&model, |s| self.sticky_value(s), turn) else {
            return self.refuse(&model_not_found(&model));
        };
        let target = choice.target;
        let prepared: Prepared = match prepare(
            self.dialect,
            &self.path,
            &body,
            body_model.as_deref(),
            target,
            &choice.upstream_model,
            rt.config.default_max_tokens,
        ) {
            Ok(p) => p,
            Err(err) => return self.refuse(&err),
        };
        if let Some(new_body) = &prepared.body {
            let how = "rewritten for its target";
            let max = rt.config.max_body_bytes;
            if let Err(err) = http::replace_request_body(body_size, new_body, max, how) {
                return self.refuse(&err);
            }
        }
        if prepared.path != self.path {
            http::set_request_header(":path", Some(&prepared.path));
            if !self.path_recorded {
                http::set_request_header(ORIGINAL_PATH_HEADER, Some(&self.path));
            }
        }
        if target.kind == Kind::Anthropic && !self.headers.contains("anthropic-version") {
            http::set_request_header("anthropic-version", Some("2023-06-01"));
        }
        self.translation = prepared.translation;
        if !choice.fallback.is_empty() {
            self.retry = Some(Retry {
                body,
                body_model,
                model: model.clone(),
                next: choice.fallback.to_vec(),
                tried: vec![target.cluster.clone()],
                holding: false,
                held_bodyless: false,
                held_ended: false,
                ready: None,
                translation: None,
                upstream: Dialect::OpenAi,
                caller: self.dialect,
                max_body_bytes: rt.config.max_body_bytes,
            });
        }
        http::set_request_header(ROUTE_HEADER, Some(&target.cluster));
        if self.override_model.is_some() {
            http::set_request_header(MODEL_HEADER, None);
        }
        http::clear_route_cache();
        state::set(StateKey::Model, &model);
        state::set(StateKey::Provider, &target.provider);
        state::set(StateKey::Cluster, &target.cluster);
        state::set(StateKey::UpstreamModel, &choice.upstream_model);
        self.count("requests_total", &[("cluster", &target.cluster)]);
        Action::Continue
    }

    /// A body that ends with trailers is whole now: read it as if its last piece had come.
    fn on_http_request_trailers(&mut self, _: usize) -> Action {
        if !self.routing {
            return Action::Continue;
        }
        self.on_http_request_body(self.body_size, true)
    }

    fn on_http_response_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        if self.retry.is_none() && self.translation.is_none() {
            return Action::Continue; // nothing to do on this answer: spare the host calls
        }
        let details = http::property(&["response", "code_details"]).unwrap_or_default();
        let origin = Origin::from_details(&details);
        if origin == Origin::Refusal {
            return Action::Continue; // a later filter's refusal: already in the caller's dialect
        }
        // One read of the answer's head: its status, type and length.
        let head = http::response_headers();
        let status = head.status();
        if self.retry.is_some() && self.runtime.config.fallback_on.contains(&status) {
            if self.try_next_fallback() {
                if let Some(retry) = self.retry.as_mut() {
                    retry.held_bodyless = end_of_stream;
                }
                return Action::Pause; // hold this answer; the fallback's replaces it
            }
        } else if self.retry.is_some() {
            // The first target answered: no fallback happened.
            http::set_response_header(FALLBACK_HEADER, Some("attempts=1; answered=first"));
        }
        let Some((direction, facts)) = self.translation.clone() else {
            return Action::Continue;
        };
        if origin == Origin::ProviderFailure {
            return Action::Continue; // Envoy's own reply, in the caller's dialect already
        }
        let content_type = head.get("content-type").unwrap_or_default();
        if end_of_stream {
            return Action::Continue;
        }
        let ok = (200..300).contains(&status);
        if ok && content_type.starts_with("text/event-stream") {
            http::set_response_header("content-length", None);
            self.answer = Answer::Stream(stream_translator(direction, facts, http::now_secs()));
            return Action::Continue;
        }
        if !content_type.starts_with("application/json") {
            return Action::Continue;
        }
        // Held with its headers until whole: the translation gets its own content-length,
        // and one too long to hold or to write back can still become an error.
        let max = self.runtime.config.max_body_bytes;
        let held = HeldAnswer::start(head.content_length(), max, self.dialect);
        let action = held.head_action();
        self.answer = Answer::Json { status, held };
        action
    }

    /// A held answer that ends with trailers has ended: as if its last body piece had come
    /// (continuing here would release it to the caller).
    fn on_http_response_trailers(&mut self, _: usize) -> Action {
        match self.retry.as_mut().filter(|r| r.holding) {
            Some(retry) => Self::held_ended(retry),
            None => Action::Continue,
        }
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if let Some(retry) = self.retry.as_mut().filter(|r| r.holding) {
            // The held first answer is replaced by the fallback's once it has ended. Its body
            // never goes out: dropped as it comes, so that a long one does not fill Envoy's
            // buffer (that ends in Envoy's own 500).
            if body_size > 0 {
                http::set_response_body(body_size, &[]);
            }
            if !end_of_stream {
                return Action::Pause;
            }
            return Self::held_ended(retry);
        }
        let max = self.runtime.config.max_body_bytes;
        match &mut self.answer {
            Answer::AsIs => Action::Continue,
            Answer::Stream(t) => {
                let mut out = t.feed(&http::response_body(body_size).unwrap_or_default());
                if end_of_stream {
                    out.extend(t.finish());
                    self.answer = Answer::AsIs;
                }
                http::set_response_body(body_size, &out);
                Action::Continue
            }
            Answer::Json { status, held } => {
                match held.on_body(body_size, end_of_stream, max, self.dialect) {
                    Piece::Done(action) => return action,
                    Piece::Whole => {}
                }
                let status = *status;
                self.answer = Answer::AsIs;
                let body = http::response_body(body_size).unwrap_or_default();
                let out = self.translation.as_ref().and_then(|(direction, facts)| {
                    translate_answer(*direction, facts, status, false, &body, http::now_secs())
                });
                if let Some(out) = out {
                    // A translation over the limit is not written back (that takes Envoy down).
                    http::replace_held_answer(body_size, &out, max, self.dialect);
                }
                Action::Continue
            }
        }
    }
}

// Left to the SDK (no `on_log`, no `on_done`): Envoy need not enter the module for them (`make wasm`
// drops their exports, see `sluice_host::callbacks`).
sluice_host::unused_callbacks!(b"proxy_on_log proxy_on_done");

proxy_wasm::main! {{
    sluice_host::install::<ModelRouter>();
}}
