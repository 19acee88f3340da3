//! moderation: deny/allow rules, PII masking with restore, injection heuristics, an external
//! check, and the same rules on the answer, streamed or not.
//!
//! Host glue only; the logic is `sluice_core::moderation`. The request body is read whole and
//! moderated (`Engine::moderate_request`): a block answers 400 `content_filter` in the caller's
//! dialect; masked values are written back into the body. With an external service configured,
//! the (masked) texts go to it as a call-out and the request waits for the verdict under the
//! configured timeout and failure policy. On the answer, placeholders are restored and the rules
//! run on the assistant's text: a JSON answer is held until whole, a stream passes event by
//! event (`AnswerStream`).

use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use serde_json::Value;
use sluice_core::endpoint::Endpoint;
use sluice_core::metrics::stat_name;
use sluice_core::moderation::answer::{answer_texts, moderate_json, withhold_json, AnswerStream};
use sluice_core::moderation::config::{ExternalConfig, ModerationConfig};
use sluice_core::moderation::engine::{Cause, Engine, Hit};
use sluice_core::moderation::external::{self, Decision};
use sluice_core::moderation::mask::Restorer;
use sluice_core::moderation::rules::{RequestInfo, Selection};
use sluice_core::{hold, ApiError, ConfigError, Dialect, StateKey};
use sluice_host::metrics::Metrics;
use sluice_host::{http, reply, state};

pub struct Moderation;

pub struct Runtime {
    engine: Engine,
    max_body_bytes: u64,
    metrics: Metrics,
}

impl sluice_host::Filter for Moderation {
    const NAME: &'static str = "moderation";
    type Config = ModerationConfig;
    type Runtime = Runtime;

    fn prepare(config: ModerationConfig) -> Result<Runtime, ConfigError> {
        Ok(Runtime {
            engine: Engine::new(&config)?,
            max_body_bytes: config.max_body_bytes,
            metrics: Metrics::batched(500),
        })
    }

    /// Counters add up in the VM and go to Envoy once a second.
    const TICK: Option<Duration> = Some(Duration::from_secs(1));

    fn on_tick(runtime: &Runtime) {
        runtime.metrics.flush();
    }

    fn http_context(runtime: Rc<Runtime>, _context_id: u32) -> Box<dyn HttpContext> {
        Box::new(ModerationStream {
            runtime,
            phase: Phase::Idle,
            dialect: Dialect::OpenAi,
            endpoint: None,
            body_size: 0,
            restorer: None,
            reads_answer: false,
            streaming: false,
            answer: Answer::AsIs,
            route: None,
            host: String::new(),
            path: String::new(),
            selection: Selection::all(),
            held_answer: None,
        })
    }
}

/// Where the request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing to do, or done.
    Idle,
    /// Waiting for the whole body.
    Reading,
    /// Waiting for the external check's verdict on the request.
    Checking,
    /// Waiting for the external check's verdict on a JSON answer, held whole.
    CheckingAnswer,
}

enum Answer {
    AsIs,
    /// Held until whole; `head_read`: its head has been judged (`Verdict::Hold`);
    /// `declared`: its length was declared there (and is within `max_body_bytes`).
    Json {
        head_read: bool,
        declared: bool,
    },
    Stream(Box<AnswerStream>),
    /// Replaced by an error: the rest of its body is dropped.
    Dropped,
}

struct ModerationStream {
    runtime: Rc<Runtime>,
    phase: Phase,
    dialect: Dialect,
    endpoint: Option<Endpoint>,
    body_size: usize,
    restorer: Option<Restorer>,
    reads_answer: bool,
    /// The request asked for a streamed answer (`"stream": true`).
    streaming: bool,
    answer: Answer,
    /// What rules' `when` match on, read once per request.
    route: Option<String>,
    host: String,
    path: String,
    /// The rules of this request, for its answer.
    selection: Selection,
    /// A held JSON answer waiting for the external verdict: its size in Envoy's buffer, and
    /// the restored body to send when it passes (None: as it came).
    held_answer: Option<(usize, Option<Vec<u8>>)>,
}

const BASE: &str = "sluice_moderation";

impl ModerationStream {
    fn refuse(&self, err: &ApiError) -> Action {
        reply::send_error(err, self.dialect);
        Action::Pause
    }

    fn count(&self, what: &str, labels: &[(&str, &str)]) {
        let base = format!("{BASE}_{what}");
        self.runtime
            .metrics
            .count(&base, &stat_name(&base, labels), 1);
    }

    fn count_hits(&self, hits: &[Hit]) {
        for hit in hits {
            let label = match hit.kind {
                "rule" => "rule",
                "pii" => "detector",
                _ => "heuristic",
            };
            self.count(
                &format!("{}_total", hit.kind),
                &[(label, &hit.id), ("action", hit.action)],
            );
        }
    }

    fn finish_request(&mut self, outcome: &str) {
        state::set(StateKey::Moderation, outcome);
        let kind = outcome.split(':').next().unwrap_or(outcome);
        self.count("requests_total", &[("outcome", kind)]);
    }

    fn block(&mut self, cause: &Cause, err: &ApiError) -> Action {
        self.finish_request(&format!("blocked:{}", cause.id()));
        self.refuse(err)
    }

    /// The whole request body is here: moderate it.
    fn moderate(&mut self, body: &[u8]) -> Action {
        let rt = self.runtime.clone();
        let Some(endpoint) = self.endpoint else {
            return Action::Continue;
        };
        let request = RequestInfo {
            route: self.route.as_deref(),
            host: &self.host,
            path: &self.path,
        };
        // Most bodies hold nothing any module could find: told from the raw bytes, and the
        // body is only checked to be JSON, not built into a tree.
        if let Some(report) = rt.engine.moderate_raw(body, &request) {
            match sluice_core::body::check_streaming(body) {
                Ok(streaming) => self.streaming = streaming,
                Err(err) => return self.refuse(&err),
            }
            self.selection = report.selection.clone();
            self.reads_answer = rt.engine.reads_answers(&report);
            self.finish_request(&report.outcome());
            return Action::Continue;
        }
        let mut value: Value = match sluice_core::body::parse(body) {
            Ok(v) => v,
            Err(err) => return self.refuse(&err),
        };
        self.streaming = value.get("stream") == Some(&Value::Bool(true));
        let report = rt.engine.moderate_request(&mut value, endpoint, &request);
        self.selection = report.selection.clone();
        self.count_hits(&report.hits);
        if let Some(cause) = &report.blocked {
            return self.block(cause, &cause.error());
        }
        if report.changed {
            match serde_json::to_vec(&value) {
                Ok(new_body) => {
                    let max = rt.max_body_bytes;
                    if let Err(err) =
                        http::replace_request_body(self.body_size, &new_body, max, "masked")
                    {
                        return self.refuse(&err);
                    }
                }
                Err(e) => log::error!("sluice moderation: cannot write the masked body: {e}"),
            }
        }
        self.reads_answer = rt.engine.reads_answers(&report);
        if rt.engine.restores() {
            self.restorer = report.masker.restorer();
        }
        let outcome = report.outcome();
        let Some(ext) = rt.engine.external() else {
            self.finish_request(&outcome);
            return Action::Continue;
        };
        let inputs = rt.engine.external_inputs(&mut value, endpoint);
        if inputs.is_empty() {
            self.finish_request(&outcome);
            return Action::Continue;
        }
        // The outcome so far waits for the verdict.
        state::set(StateKey::Moderation, &outcome);
        match call_external(ext, &inputs) {
            Ok(()) => {
                self.phase = Phase::Checking;
                Action::Pause
            }
            Err(()) => match self.apply_verdict(&external::Verdict::Failed("dispatch"), &outcome) {
                Some(err) => self.refuse(&err),
                None => Action::Continue,
            },
        }
    }

    /// Applies the external verdict; the error to send when the request is refused.
    fn apply_verdict(&mut self, verdict: &external::Verdict, outcome: &str) -> Option<ApiError> {
        let rt = self.runtime.clone();
        let ext = rt.engine.external()?;
        self.count(
            "external_total",
            &[("result", external::result_label(ext, verdict))],
        );
        match external::decide(ext, verdict) {
            Decision::Pass | Decision::PassFailedOpen => {
                self.finish_request(outcome);
                None
            }
            Decision::Refuse(err, Some(cause)) => {
                self.finish_request(&format!("blocked:{}", cause.id()));
                Some(err)
            }
            Decision::Refuse(err, None) => {
                self.finish_request("blocked:external_unavailable");
                Some(err)
            }
        }
    }
}

impl Context for ModerationStream {
    fn on_http_call_response(&mut self, _token: u32, _: usize, body_size: usize, _: usize) {
        let phase = self.phase;
        if phase != Phase::Checking && phase != Phase::CheckingAnswer {
            return;
        }
        self.phase = Phase::Idle;
        let rt = self.runtime.clone();
        let Some(ext) = rt.engine.external() else {
            return;
        };
        let status = http::call_response_headers().status();
        let body = http::call_response_body(body_size).unwrap_or_default();
        let verdict = external::verdict(ext, status, &body);
        if phase == Phase::CheckingAnswer {
            self.release_answer(&verdict);
            return;
        }
        let outcome = state::get(StateKey::Moderation).unwrap_or_else(|| "pass".to_owned());
        match self.apply_verdict(&verdict, &outcome) {
            Some(err) => {
                reply::send_error(&err, self.dialect);
            }
            None => {
                if let Err(s) = hostcalls::resume_http_request() {
                    log::error!("sluice moderation: cannot resume the request: {s:?}");
                }
            }
        }
    }
}

impl HttpContext for ModerationStream {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        if !self.runtime.engine.reads_requests() || end_of_stream {
            return Action::Continue;
        }
        // Single headers, not the whole map, and as few as the decision needs: each read is a
        // host call (about 2 µs of the VM's time under load, measured). The method is not
        // read: a request with a body to an API path is moderated whatever its method (the
        // route table answers a method other than POST with 405 after the chain).
        let path = http::request_header(":path").unwrap_or_default();
        let endpoint = Endpoint::from_path(&path);
        if endpoint.is_none() {
            return Action::Continue;
        }
        self.dialect = Dialect::from_path(&path);
        self.endpoint = endpoint;
        self.path = path;
        if self.runtime.engine.needs_host() {
            self.host = http::request_header(":authority").unwrap_or_default();
        }
        if self.runtime.engine.needs_route_name() {
            self.route = http::property(&["xds", "route_name"]);
        }
        self.phase = Phase::Reading;
        Action::Pause // the texts are in the body
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.body_size = body_size;
        match self.phase {
            Phase::Idle => return Action::Continue,
            Phase::Checking | Phase::CheckingAnswer => return Action::Pause,
            Phase::Reading => {}
        }
        let body =
            match http::whole_request_body(body_size, end_of_stream, self.runtime.max_body_bytes) {
                http::BodyRead::Partial => return Action::Pause,
                http::BodyRead::TooLarge(err) => {
                    self.phase = Phase::Idle;
                    return self.refuse(&err);
                }
                http::BodyRead::Whole(body) => body,
            };
        self.phase = Phase::Idle;
        self.moderate(&body)
    }

    /// A body that ends with trailers is whole now.
    fn on_http_request_trailers(&mut self, _: usize) -> Action {
        match self.phase {
            Phase::Reading => self.on_http_request_body(self.body_size, true),
            Phase::Checking | Phase::CheckingAnswer => Action::Pause,
            Phase::Idle => Action::Continue,
        }
    }

    fn on_http_response_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        if !self.reads_answer || end_of_stream {
            return Action::Continue;
        }
        if !self.streaming {
            // A JSON answer was asked for: held with its headers, its head not read (one host
            // call fewer). What it is, is told from its body once whole: an error answer
            // carries no assistant text and passes as it came, as does a body that is no JSON
            // answer, and a stream sent anyway is read as one. An answer that grows past
            // `UNJUDGED_HOLD_BYTES` has its head read then (`Self::judge_head`).
            self.answer = Answer::Json {
                head_read: false,
                declared: false,
            };
            return Action::Pause;
        }
        let head = http::response_headers();
        match self.judge_head(&head) {
            Verdict::Pass => Action::Continue,
            Verdict::Stream => {
                self.start_stream();
                Action::Continue
            }
            Verdict::Hold => {
                self.answer = Answer::Json {
                    head_read: true,
                    declared: head.contains("content-length"),
                };
                Action::Pause
            }
        }
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let rt = self.runtime.clone();
        match &mut self.answer {
            Answer::AsIs => Action::Continue,
            Answer::Dropped => {
                http::set_response_body(body_size, &[]);
                Action::Continue
            }
            Answer::Stream(_) => self.pass_events(body_size, end_of_stream),
            Answer::Json {
                head_read,
                declared,
            } => {
                if !end_of_stream {
                    let mut declared = *declared;
                    if !*head_read && body_size as u64 > UNJUDGED_HOLD_BYTES.min(rt.max_body_bytes)
                    {
                        // Longer than most answers: its head tells what it is before Envoy's
                        // buffer could fill.
                        let head = http::response_headers();
                        declared = head.contains("content-length");
                        match self.judge_head(&head) {
                            Verdict::Pass => {
                                self.answer = Answer::AsIs;
                                return Action::Continue;
                            }
                            Verdict::Stream => {
                                self.start_stream();
                                return self.pass_events_from(body_size, false, true);
                            }
                            Verdict::Hold => {
                                self.answer = Answer::Json {
                                    head_read: true,
                                    declared,
                                }
                            }
                        }
                    }
                    if hold::past_undeclared(declared, body_size, rt.max_body_bytes) {
                        // No length declared, and nearly as long as Envoy holds: it goes on
                        // unchecked, counted, before Envoy's buffer fills.
                        self.count("answers_unchecked_total", &[]);
                        self.answer = Answer::AsIs;
                        return Action::Continue;
                    }
                    return Action::Pause; // held until whole
                }
                let head_read = *head_read;
                self.answer = Answer::AsIs;
                let body = http::response_body(body_size).unwrap_or_default();
                if !head_read && may_not_be_json(&body) {
                    // Perhaps a stream sent anyway to a request that asked for none, held
                    // whole: its head says.
                    if self.judge_head(&http::response_headers()) == Verdict::Stream {
                        self.start_stream();
                        return self.pass_events_from(body_size, true, true);
                    }
                    return Action::Continue;
                }
                let report = moderate_json(
                    &rt.engine,
                    self.restorer.as_ref(),
                    &self.selection,
                    self.dialect,
                    &body,
                );
                if report.blocked.is_none() {
                    if let Some(ext) = rt.engine.external_on_answers() {
                        let texts = answer_texts(self.dialect, &body);
                        if !texts.is_empty() {
                            return self.check_answer(ext, &texts, body_size, report.body);
                        }
                    }
                }
                // A rule that cut the answer is recorded even when what replaces it is then
                // too long to hold (a 502 in its place).
                if let Some(cause) = &report.blocked {
                    self.answer_cut(&cause.id());
                }
                if let Some(new_body) = &report.body {
                    if !http::replace_held_answer(
                        body_size,
                        new_body,
                        rt.max_body_bytes,
                        self.dialect,
                    ) {
                        self.count("answers_too_large_total", &[]);
                    }
                }
                Action::Continue
            }
        }
    }
}

/// How much of an answer to a request that asked for no stream is held before its head is
/// read: most answers are whole before this, and Envoy's buffer (1 MiB by default) cannot fill
/// before it (an answer too long to hold, or a stream sent anyway, is then let go or read event
/// by event).
const UNJUDGED_HOLD_BYTES: u64 = 64 * 1024;

/// What an answer's head says to do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Let it pass as it comes.
    Pass,
    /// Read it event by event.
    Stream,
    /// Hold it until whole, then check it.
    Hold,
}

impl ModerationStream {
    /// What to do with an answer, from its head: its status, type and length.
    fn judge_head(&self, head: &http::Headers) -> Verdict {
        // Error answers (the provider's, a later filter's refusal, or this filter's own)
        // carry no assistant text.
        if !(200..300).contains(&head.status()) {
            return Verdict::Pass;
        }
        let content_type = head.get("content-type").unwrap_or_default();
        if content_type.starts_with("text/event-stream") {
            return Verdict::Stream;
        }
        if !content_type.starts_with("application/json") {
            return Verdict::Pass;
        }
        // An answer Envoy could not hold whole passes on unread (holding it would end in
        // Envoy's 500); counted, so an operator sees it.
        let fits = head
            .content_length()
            .is_none_or(|n| n <= self.runtime.max_body_bytes);
        if !fits {
            self.count("answers_unchecked_total", &[]);
            return Verdict::Pass;
        }
        // Held with its headers until whole: no byte reaches the caller before the check, and
        // content-length is set to the body that goes out.
        Verdict::Hold
    }

    /// From here the answer is read event by event.
    fn start_stream(&mut self) {
        self.answer = Answer::Stream(Box::new(AnswerStream::new(
            &self.runtime.engine,
            self.dialect,
            self.restorer.take(),
            self.selection.clone(),
        )));
        // Events may change length.
        http::set_response_header("content-length", None);
    }

    /// The events of a streamed answer that have come (`body_size` bytes), passed on.
    fn pass_events(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.pass_events_from(body_size, end_of_stream, false)
    }

    /// [`Self::pass_events`]; `held`: the bytes are a held answer's, its headers not sent
    /// yet, so restored they may not grow past what Envoy holds (502 `answer_too_large`).
    fn pass_events_from(&mut self, body_size: usize, end_of_stream: bool, held: bool) -> Action {
        let rt = self.runtime.clone();
        let Answer::Stream(stream) = &mut self.answer else {
            return Action::Continue;
        };
        let was_stopped = stream.stopped().is_some();
        let chunk = http::response_body(body_size).unwrap_or_default();
        let mut out = Vec::with_capacity(chunk.len());
        stream.feed(&rt.engine, &chunk, end_of_stream, &mut out);
        let cut = (!was_stopped)
            .then(|| stream.stopped().map(Cause::id))
            .flatten();
        if let Some(id) = cut {
            self.answer_cut(&id);
        }
        if held && !hold::fits(out.len(), rt.max_body_bytes) {
            http::replace_held_answer(body_size, &out, rt.max_body_bytes, self.dialect);
            self.count("answers_too_large_total", &[]);
            // What comes after the error is dropped.
            self.answer = Answer::Dropped;
            return Action::Continue;
        }
        if out != chunk {
            http::set_response_body(body_size, &out);
        }
        Action::Continue
    }

    /// Sends a held JSON answer's texts (placeholders kept) to the external service; the answer
    /// stays held until [`Self::release_answer`].
    fn check_answer(
        &mut self,
        ext: &ExternalConfig,
        texts: &[String],
        body_size: usize,
        restored: Option<Vec<u8>>,
    ) -> Action {
        self.held_answer = Some((body_size, restored));
        match call_external(ext, texts) {
            Ok(()) => {
                self.phase = Phase::CheckingAnswer;
                Action::Pause
            }
            Err(()) => {
                self.apply_answer_verdict(&external::Verdict::Failed("dispatch"));
                Action::Continue
            }
        }
    }

    /// The external verdict on a held JSON answer: it goes on as it came (restored), or with
    /// its text withheld.
    fn release_answer(&mut self, verdict: &external::Verdict) {
        self.apply_answer_verdict(verdict);
        if let Err(s) = hostcalls::resume_http_response() {
            log::error!("sluice moderation: cannot resume the answer: {s:?}");
        }
    }

    fn apply_answer_verdict(&mut self, verdict: &external::Verdict) {
        let rt = self.runtime.clone();
        let Some(ext) = rt.engine.external_on_answers() else {
            return;
        };
        let Some((body_size, restored)) = self.held_answer.take() else {
            return;
        };
        self.count(
            "external_total",
            &[("result", external::result_label(ext, verdict))],
        );
        let cause = match external::decide(ext, verdict) {
            Decision::Pass | Decision::PassFailedOpen => None,
            Decision::Refuse(_, Some(cause)) => Some(cause.id()),
            Decision::Refuse(_, None) => Some("external_unavailable".to_owned()),
        };
        let out = match &cause {
            None => restored,
            Some(_) => {
                let original = http::response_body(body_size).unwrap_or_default();
                withhold_json(self.dialect, restored.as_deref().unwrap_or(&original))
            }
        };
        if let Some(id) = &cause {
            self.answer_cut(id);
        }
        if let Some(new_body) = &out {
            if !http::replace_held_answer(body_size, new_body, rt.max_body_bytes, self.dialect) {
                self.count("answers_too_large_total", &[]);
            }
        }
    }

    fn answer_cut(&self, rule: &str) {
        state::set(StateKey::Moderation, &format!("blocked:{rule}"));
        self.count("answers_cut_total", &[("rule", rule)]);
    }
}

/// Whether a held body may be something other than JSON (an event stream, text): it does not
/// start with `{` or `[` (after whitespace and a byte-order mark). Its head then says what it is.
fn may_not_be_json(body: &[u8]) -> bool {
    let start = body.trim_ascii_start();
    let start = start.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(start);
    !matches!(start.trim_ascii_start().first(), Some(b'{' | b'['))
}

/// Sends `texts` to the external service as a call-out under its timeout; Err when Envoy would
/// not dispatch it (logged), which counts as the service failing.
fn call_external(ext: &ExternalConfig, texts: &[String]) -> Result<(), ()> {
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let call = external::call_out(ext, &texts);
    let headers: Vec<(&str, &str)> = call
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    hostcalls::dispatch_http_call(
        &ext.cluster,
        headers,
        Some(&call.body),
        Vec::new(),
        Duration::from_millis(ext.timeout_ms),
    )
    .map(|_| ())
    .map_err(|status| log::warn!("sluice moderation: cannot call {}: {status:?}", ext.cluster))
}

// Left to the SDK (no `on_log`, no `on_done`): Envoy need not enter the module for them (`make wasm`
// drops their exports, see `sluice_host::callbacks`).
sluice_host::unused_callbacks!(b"proxy_on_log proxy_on_done");

proxy_wasm::main! {{
    sluice_host::install::<Moderation>();
}}
