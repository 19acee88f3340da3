//! token-count: exact prompt tokens before the request leaves, completion tokens after.
//!
//! Host glue only; the logic is `sluice_core::token_count`. The request body is read whole
//! (Envoy buffers it while the filter pauses), counted, checked against the prompt limit, and
//! the count goes upstream as `x-sluice-prompt-tokens`. The answer is followed: a JSON answer is
//! held until its `usage` is read (to add `x-sluice-completion-tokens`), a stream passes event
//! by event and is only watched.

mod usage_metrics;

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use sluice_core::body;
use sluice_core::token_count::budget::{
    self, reset_text, BudgetConfig, Decision, Reservation, Standing, Who,
};
use sluice_core::token_count::config::TokenCountConfig;
use sluice_core::token_count::cost::Prices;
use sluice_core::token_count::counter::Counter;
use sluice_core::token_count::recipe::{azure_deployment, count_request, Endpoint, PromptCount};
use sluice_core::token_count::settle::{is_success as ok, model_label, settle, token_source};
use sluice_core::token_count::usage::{self, AnswerTail, Delivered, Source, StreamUsage, Usage};
use sluice_core::token_count::{COMPLETION_HEADER, PROMPT_HEADER, SOURCE_HEADER};
use sluice_core::{hold, ApiError, ConfigError, Dialect, ErrorKind, StateKey};
use sluice_host::clock::Clock;
use sluice_host::{http, reply, state};
use usage_metrics::{UsageMetrics, Used};

pub struct TokenCount;

pub struct Runtime {
    counter: Counter,
    max_body_bytes: u64,
    consumer_header: Option<String>,
    metrics: UsageMetrics,
    budgets: Vec<BudgetConfig>,
    default_max_completion: u64,
    clock: Clock,
    prices: Prices,
    /// Models a provider has answered with a success in this VM: the label set an error answer
    /// may use (any other model in an error is `other`, so callers cannot mint series).
    served: RefCell<HashSet<String>>,
}

/// Models kept in [`Runtime::served`] at most.
const MAX_SERVED: usize = 256;

/// Budget counters in Envoy shared data (one store for every worker of this VM id).
struct SharedData;

impl budget::Store for SharedData {
    fn get(&self, key: &str) -> (Option<String>, Option<u32>) {
        http::shared_get_cas(key)
    }

    fn set(&self, key: &str, value: &str, cas: Option<u32>) -> bool {
        http::shared_set(key, value, cas)
    }
}

impl sluice_host::Filter for TokenCount {
    const NAME: &'static str = "token-count";
    type Config = TokenCountConfig;
    type Runtime = Runtime;

    fn prepare(config: TokenCountConfig) -> Result<Runtime, ConfigError> {
        let counter = Counter::new(&config)?;
        log::info!(
            "sluice token-count: encodings loaded: {:?} ({} KB of tables in this VM)",
            counter
                .loaded()
                .iter()
                .map(|e| e.name())
                .collect::<Vec<_>>(),
            counter.table_bytes() / 1024
        );
        Ok(Runtime {
            counter,
            max_body_bytes: config.max_body_bytes,
            consumer_header: config.consumer_header,
            metrics: UsageMetrics::batched(),
            budgets: config.budgets,
            default_max_completion: config.default_max_completion_tokens,
            clock: Clock::new(),
            prices: Prices::new(&config.prices),
            served: RefCell::new(HashSet::new()),
        })
    }

    /// Budget windows need second resolution; the clock is read once a second per worker, and
    /// the counters, added up in the VM, go to Envoy then.
    const TICK: Option<Duration> = Some(Duration::from_secs(1));

    fn on_tick(runtime: &Runtime) {
        runtime.clock.refresh();
        runtime.metrics.flush();
    }

    fn http_context(runtime: Rc<Runtime>, _context_id: u32) -> Box<dyn HttpContext> {
        Box::new(TokenCountStream {
            runtime,
            endpoint: None,
            dialect: Dialect::OpenAi,
            caller: Dialect::OpenAi,
            routed: false,
            body_size: 0,
            path_model: None,
            consumer: None,
            charged: None,
            prompt: None,
            answer: Answer::Untracked,
            usage: None,
            accounted: false,
            reservations: Vec::new(),
            standing: None,
            status: 0,
            completion_estimated: false,
        })
    }
}

/// How the answer is followed.
enum Answer {
    Untracked,
    /// JSON: held whole until `usage` is read; `declared`: its length was declared (and fits).
    Json {
        declared: bool,
    },
    /// JSON too long to hold whole: passed on, its end kept to read its `usage` from.
    Tail(Box<AnswerTail>),
    /// SSE: watched event by event.
    Stream(Box<StreamUsage>),
}

struct TokenCountStream {
    runtime: Rc<Runtime>,
    endpoint: Option<Endpoint>,
    /// The dialect of the request as it goes upstream (after model-router), which is how the
    /// provider reports usage.
    dialect: Dialect,
    /// The caller's dialect, for refusals.
    caller: Dialect,
    /// model-router routed the request (and recorded its model in filter state).
    routed: bool,
    /// The request body Envoy has buffered, as the last body callback said (for trailers).
    body_size: usize,
    path_model: Option<String>,
    /// The configured consumer header's value.
    consumer: Option<String>,
    /// Who the request is charged to, once looked up.
    charged: Option<String>,
    prompt: Option<PromptCount>,
    answer: Answer,
    /// Completion usage once known, and where it came from.
    usage: Option<(Usage, Source)>,
    accounted: bool,
    /// Budget tokens held for this request until it is settled.
    reservations: Vec<Reservation>,
    /// The tightest budget after the reservation, for the `x-ratelimit-*` headers.
    standing: Option<Standing>,
    status: u16,
    /// The completion is an estimate (an answer too long to hold that reported no usage).
    completion_estimated: bool,
}

impl TokenCountStream {
    /// The answer goes on with the prompt's count on it (the completion unread: an error, a
    /// stream, or an answer too long to hold).
    fn release_uncounted(&self) {
        let Some(prompt) = &self.prompt else {
            return;
        };
        http::set_response_header(PROMPT_HEADER, Some(&prompt.tokens.to_string()));
        http::set_response_header(SOURCE_HEADER, Some(token_source(prompt.exact, None)));
    }

    /// Settles the usage of an answer too long to hold ([`Answer::Tail`]) from its end: the
    /// provider's numbers there, else an estimate from its length.
    fn finish_tail(&mut self) {
        let Answer::Tail(tail) = std::mem::replace(&mut self.answer, Answer::Untracked) else {
            return;
        };
        let (usage, estimated) = tail.finish(self.dialect);
        self.completion_estimated = estimated;
        let source = if estimated {
            Source::Local
        } else {
            Source::Provider
        };
        self.usage = Some((usage, source));
    }

    fn refuse(&self, err: &ApiError) -> Action {
        reply::send_error(err, self.caller);
        Action::Pause
    }

    /// Who the request is charged to: the consumer key-injection authenticated, else the
    /// configured consumer header's value (a caller's header never overrides an authenticated
    /// consumer, or it could pick whose budget it spends), else `anonymous`.
    /// Looked up once per request (a host call), for the reservation and again at the end.
    fn consumer(&mut self) -> String {
        if let Some(charged) = &self.charged {
            return charged.clone();
        }
        let charged = state::get(StateKey::Consumer)
            .or_else(|| self.consumer.clone())
            .unwrap_or_else(|| "anonymous".to_owned());
        self.charged = Some(charged.clone());
        charged
    }

    /// Reserves the request's tokens in every budget; `Err` is the 429 to send.
    fn reserve(&mut self, prompt: &PromptCount) -> Result<(), ApiError> {
        let rt = self.runtime.clone();
        if rt.budgets.is_empty() {
            return Ok(());
        }
        let consumer = self.consumer();
        let tenant = state::get(StateKey::Tenant).unwrap_or_else(|| "default".to_owned());
        let amount = prompt
            .tokens
            .saturating_add(prompt.max_completion.unwrap_or(rt.default_max_completion));
        let who = Who {
            consumer: &consumer,
            tenant: &tenant,
        };
        match budget::reserve(&rt.budgets, &SharedData, &who, amount, rt.clock.now()) {
            Decision::Allowed {
                reservations,
                standing,
            } => {
                // Recorded for model-router: a fallback's answer replaces the one this filter
                // puts the standing's headers on, and carries them in its place.
                if let Some(standing) = &standing {
                    state::set(StateKey::Budget, &standing.encode());
                }
                self.reservations = reservations;
                self.standing = standing;
                Ok(())
            }
            Decision::Denied {
                budget,
                standing,
                retry_after_secs,
            } => {
                let mut err = ApiError::new(
                    ErrorKind::RateLimit,
                    format!(
                        "Token budget `{budget}` exceeded: this request needs {amount} tokens \
                         (prompt + completion limit), {} of {} remain. Try again in {}.",
                        standing.remaining,
                        standing.limit,
                        reset_text(retry_after_secs)
                    ),
                )
                .with_code("rate_limit_exceeded")
                .with_header("retry-after", retry_after_secs.to_string());
                for (k, v) in standing.headers() {
                    err = err.with_header(k, v);
                }
                Err(err)
            }
        }
    }

    /// Settles the request once: budgets, filter state and metrics. A stream still open (the
    /// client went away) is settled with what it streamed so far. An answer that model-router
    /// replaced with a fallback's (sent to the caller past this filter) is settled with what
    /// model-router reported of it.
    fn account(&mut self) {
        if self.accounted {
            return;
        }
        self.accounted = true;
        if let (Answer::Stream(watch), Some(prompt)) = (&mut self.answer, &self.prompt) {
            self.usage = Some(watch.finish(&self.runtime.counter, prompt.encoding));
        }
        // An answer too long to hold: settled from its end here, whether it ended with its
        // last piece, with trailers, or not at all (the caller went away: estimated).
        self.finish_tail();
        if self.prompt.is_none() {
            return; // not counted: nothing to settle or record
        }
        let mut model = self.prompt.as_ref().and_then(|p| p.model.clone());
        let mut fallback_unreported = false;
        if !ok(self.status) {
            if let Some(delivered) =
                state::get(StateKey::AnswerUsage).and_then(|t| Delivered::decode(&t))
            {
                self.status = delivered.status;
                // A fallback answer that reported no usage: its text never passed here, so
                // only the prompt count stands, and only as an estimate.
                fallback_unreported = delivered.usage.is_none();
                self.usage = delivered.usage.map(|u| (u, Source::Provider));
                model = state::get(StateKey::UpstreamModel).or(model);
            }
        }
        let consumer = self.consumer();
        let Some(prompt) = &self.prompt else { return };
        let done = settle(prompt, self.status, self.usage.as_ref());
        if !self.reservations.is_empty() {
            budget::settle(&SharedData, &self.reservations, done.budget_used);
        }
        if let Some(p) = done.prompt_correction {
            state::set(StateKey::PromptTokens, &p.to_string());
        }
        if let Some(c) = done.completion {
            state::set(StateKey::CompletionTokens, &c.to_string());
        }
        let source = if (fallback_unreported || self.completion_estimated) && done.succeeded {
            "estimate"
        } else {
            done.source
        };
        state::set(StateKey::TokenSource, source);
        let rt = &self.runtime;
        let label = rt.model_label(model.as_deref(), done.succeeded);
        let cost_micros = if done.succeeded {
            rt.prices.cost_of(label, &done.billed, prompt.tokens)
        } else {
            None
        };
        rt.metrics.add(&Used {
            model: label,
            consumer: &consumer,
            input: done.billed.prompt.unwrap_or(0),
            output: done.billed.completion,
            cached: done.billed.cached,
            reasoning: done.billed.reasoning,
            cost_micros,
        });
    }
}

impl Runtime {
    /// The `model` label (`settle::model_label`). A model's first success in this VM is marked
    /// in Envoy shared data, so that an error answer on any worker can tell a model a provider
    /// has served; only such an error reads the mark (a host call), and only for a model this
    /// VM has not seen served.
    fn model_label<'a>(&self, model: Option<&'a str>, succeeded: bool) -> &'a str {
        let mut served = self.served.borrow_mut();
        let label = model_label(model, succeeded, |m| {
            served.contains(m) || http::shared_get(&served_mark(m)).is_some()
        });
        if let Some(m) = model.filter(|_| succeeded) {
            if !served.contains(m) && served.len() < MAX_SERVED {
                served.insert(m.to_owned());
                http::shared_set(&served_mark(m), "1", None);
            }
        }
        label
    }
}

/// The shared-data key marking a model as served by a provider.
fn served_mark(model: &str) -> String {
    format!("sluice.token_count.served.{model}")
}

impl Context for TokenCountStream {}

impl HttpContext for TokenCountStream {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        let headers = http::request_headers();
        let path = headers.get(":path").unwrap_or_default();
        self.dialect = Dialect::from_path(path);
        // model-router names the caller's path when it changed it.
        self.caller = headers
            .get("x-envoy-original-path")
            .map_or(self.dialect, Dialect::from_path);
        self.endpoint = Endpoint::from_path(path);
        self.path_model = azure_deployment(path).map(str::to_owned);
        // model-router, ahead in the chain, has routed the request and recorded the model the
        // caller asked for; the one counted here may be its alias.
        self.routed = headers.contains("x-sluice-cluster");
        if let Some(h) = &self.runtime.consumer_header {
            self.consumer = headers.get(h).map(str::to_owned);
        }
        if self.endpoint.is_none() || headers.get(":method") != Some("POST") {
            self.endpoint = None;
            return Action::Continue;
        }
        if end_of_stream {
            self.endpoint = None;
            return self.refuse(&body::missing_body());
        }
        Action::Pause // read the body first
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.body_size = body_size;
        let Some(endpoint) = self.endpoint else {
            return Action::Continue;
        };
        let rt = self.runtime.clone();
        let body = match http::whole_request_body(body_size, end_of_stream, rt.max_body_bytes) {
            http::BodyRead::Partial => return Action::Pause,
            http::BodyRead::TooLarge(err) => {
                self.endpoint = None;
                return self.refuse(&err);
            }
            http::BodyRead::Whole(body) => body,
        };
        self.endpoint = None;
        let prompt = match count_request(&rt.counter, endpoint, &body, self.path_model.as_deref()) {
            Ok(p) => p,
            Err(err) => return self.refuse(&err),
        };
        if let Some(limit) = rt.counter.limit_for(prompt.model.as_deref()) {
            if prompt.tokens > limit {
                let err = ApiError::invalid_request(format!(
                    "This model's maximum context length is {limit} tokens. However, your messages resulted in {} tokens. Please reduce the length of the messages.",
                    prompt.tokens
                ))
                .with_code("context_length_exceeded")
                .with_param("messages");
                return self.refuse(&err);
            }
        }
        if let Err(err) = self.reserve(&prompt) {
            return self.refuse(&err);
        }
        let tokens = prompt.tokens.to_string();
        http::set_request_header(PROMPT_HEADER, Some(&tokens));
        http::set_request_header(SOURCE_HEADER, Some(token_source(prompt.exact, None)));
        state::set(StateKey::PromptTokens, &tokens);
        if let Some(model) = prompt.model.as_deref().filter(|_| !self.routed) {
            state::set(StateKey::Model, model);
        }
        self.prompt = Some(prompt);
        Action::Continue
    }

    /// A body that ends with trailers is whole now: read it as if its last piece had come.
    fn on_http_request_trailers(&mut self, _: usize) -> Action {
        if self.endpoint.is_none() {
            return Action::Continue;
        }
        self.on_http_request_body(self.body_size, true)
    }

    fn on_http_response_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        if self.prompt.is_none() {
            return Action::Continue;
        }
        if let Some(standing) = &self.standing {
            for (k, v) in standing.headers() {
                http::set_response_header(k, Some(&v));
            }
        }
        let headers = http::response_headers();
        let status = headers.status();
        self.status = status;
        let content_type = headers.get("content-type").unwrap_or_default();
        // An answer Envoy could not hold whole (over the buffer limit, which max_body_bytes
        // matches) passes on, followed for nothing: holding it would end in Envoy's 500.
        let declared = headers.content_length();
        let fits = declared.is_none_or(|n| n <= self.runtime.max_body_bytes);
        if ok(status) && !end_of_stream && fits && content_type.starts_with("application/json") {
            // Hold the headers until the body's usage gives the provider's numbers (they go on
            // the answer then). The body passes unchanged, so its content-length stays true.
            self.answer = Answer::Json {
                declared: declared.is_some(),
            };
            return Action::Pause;
        }
        self.release_uncounted();
        if ok(status) && !end_of_stream && content_type.starts_with("text/event-stream") {
            self.answer = Answer::Stream(Box::new(StreamUsage::new(self.dialect)));
        } else if ok(status) && !end_of_stream && content_type.starts_with("application/json") {
            // Too long to hold (declared over the limit): its usage is read from its end.
            self.answer = Answer::Tail(Box::default());
        }
        Action::Continue // an error answer has no usage to read
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match &mut self.answer {
            Answer::Untracked => Action::Continue,
            Answer::Stream(watch) => {
                if body_size > 0 {
                    if let Some(chunk) = http::response_body(body_size) {
                        watch.feed(&chunk);
                    }
                }
                if end_of_stream {
                    if let Some(prompt) = &self.prompt {
                        self.usage = Some(watch.finish(&self.runtime.counter, prompt.encoding));
                    }
                    self.answer = Answer::Untracked;
                }
                Action::Continue
            }
            Answer::Tail(tail) => {
                if body_size > 0 {
                    if let Some(piece) = http::response_body(body_size) {
                        tail.feed(&piece);
                    }
                }
                if end_of_stream {
                    self.finish_tail();
                }
                Action::Continue
            }
            Answer::Json { declared } => {
                if !end_of_stream {
                    let max = self.runtime.max_body_bytes;
                    if hold::past_undeclared(*declared, body_size, max) {
                        // Longer than its head could tell (no length declared): let go before
                        // Envoy's buffer fills (that ends in Envoy's own 500), its usage read
                        // from its end, as for an answer declared too long.
                        let held = http::response_body(body_size).unwrap_or_default();
                        let tail = AnswerTail::new(held, body_size as u64);
                        self.answer = Answer::Tail(Box::new(tail));
                        self.release_uncounted();
                        return Action::Continue;
                    }
                    return Action::Pause;
                }
                self.answer = Answer::Untracked;
                let body = http::response_body(body_size).unwrap_or_default();
                let found =
                    usage::from_json(self.dialect, &body).filter(|u| u.completion.is_some());
                let (u, source) = match (found, &self.prompt) {
                    (Some(u), _) => (u, Source::Provider),
                    (None, Some(prompt)) => {
                        let c = usage::local_from_json(
                            &self.runtime.counter,
                            prompt.encoding,
                            self.dialect,
                            &body,
                        );
                        (
                            Usage {
                                completion: Some(c),
                                ..Usage::default()
                            },
                            Source::Local,
                        )
                    }
                    (None, None) => return Action::Continue,
                };
                let prompt = self.prompt.as_ref();
                let tokens = u.prompt.or(prompt.map(|p| p.tokens)).unwrap_or(0);
                http::set_response_header(PROMPT_HEADER, Some(&tokens.to_string()));
                if let Some(c) = u.completion {
                    http::set_response_header(COMPLETION_HEADER, Some(&c.to_string()));
                }
                let exact = prompt.is_none_or(|p| p.exact);
                http::set_response_header(SOURCE_HEADER, Some(token_source(exact, Some(source))));
                self.usage = Some((u, source));
                Action::Continue
            }
        }
    }

    fn on_log(&mut self) {
        // Runs once at the end of every stream, a client that went away included.
        self.account();
    }
}

// Left to the SDK (`on_log` settles usage; no `on_done`): Envoy need not enter the module for them (`make wasm`
// drops their exports, see `sluice_host::callbacks`).
sluice_host::unused_callbacks!(b"proxy_on_done");

proxy_wasm::main! {{
    sluice_host::install::<TokenCount>();
}}
