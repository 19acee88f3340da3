//! key-injection: gateway keys in, provider credentials out.
//!
//! Host glue only; the logic is `sluice_core::key_injection`. One module, two plugin configs in
//! the chain (same VM): `authenticate` runs first and reads headers only (the body only for a
//! consumer whose models are restricted), `inject` runs after the router.
//!
//! A restricted consumer's request that names no model (a prompt-template template or REST
//! endpoint names it later in the chain) carries the consumer's models to the inject role in
//! filter state (`sluice.model_grant`); inject checks the model the router routed
//! (`sluice.model`) against them before the request leaves (only on the paths where a
//! template can name the model: chat, Anthropic messages, `/apis/`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use sluice_core::endpoint::Endpoint;
use sluice_core::key_injection::auth::{
    grant_allows, model_not_allowed, model_unknown, Authenticator,
};
use sluice_core::key_injection::config::{KeyInjectionConfig, Role};
use sluice_core::key_injection::inject::{cooldown_for, cooldown_slot, Cooldowns, Injector};
use sluice_core::key_injection::refusal::{wait_for_body, WAIT_FOR_BODY_MAX};
use sluice_core::key_injection::scrub::{scrub, scrub_str};
use sluice_core::{hold, ApiError, ConfigError, Dialect, StateKey};
use sluice_host::clock::Clock;
use sluice_host::{http, reply, state};

pub struct KeyInjection;

/// What one plugin config of this module runs with.
pub enum Runtime {
    Authenticate { auth: Authenticator, clock: Clock },
    Inject(InjectRuntime),
}

pub struct InjectRuntime {
    injector: Injector,
    /// Round-robin position, per VM (each worker rotates on its own).
    next: Cell<usize>,
    clock: Clock,
    /// Key cool-downs per provider index: this VM's copy of the shared data, refreshed on
    /// tick, updated at once when this VM sees a 401/429.
    cooldowns: RefCell<Vec<Cooldowns>>,
    /// The longest error answer held whole to scrub (Envoy's buffer limit).
    max_body_bytes: u64,
}

impl InjectRuntime {
    fn refresh_cooldowns(&self) {
        let fresh = self
            .injector
            .providers()
            .iter()
            .map(|p| {
                if p.key_count() > 1 {
                    Cooldowns::parse(http::shared_get(&cooldown_slot(&p.name)).as_deref())
                } else {
                    Cooldowns::default()
                }
            })
            .collect();
        *self.cooldowns.borrow_mut() = fresh;
    }
}

impl sluice_host::Filter for KeyInjection {
    const NAME: &'static str = "key-injection";
    type Config = KeyInjectionConfig;
    type Runtime = Runtime;

    /// Clock and cool-down copies are refreshed once a second on each worker.
    const TICK: Option<Duration> = Some(Duration::from_secs(1));

    fn prepare(config: KeyInjectionConfig) -> Result<Runtime, ConfigError> {
        Ok(match config.role {
            Role::Authenticate => Runtime::Authenticate {
                auth: Authenticator::new(&config)?,
                clock: Clock::new(),
            },
            Role::Inject => {
                let rt = InjectRuntime {
                    injector: Injector::new(&config, http::env)?,
                    next: Cell::new(0),
                    clock: Clock::new(),
                    cooldowns: RefCell::new(Vec::new()),
                    max_body_bytes: config.max_body_bytes,
                };
                rt.refresh_cooldowns();
                Runtime::Inject(rt)
            }
        })
    }

    fn on_tick(runtime: &Runtime) {
        match runtime {
            Runtime::Authenticate { clock, .. } => clock.refresh(),
            Runtime::Inject(rt) => {
                rt.clock.refresh();
                rt.refresh_cooldowns();
            }
        }
    }

    fn http_context(runtime: Rc<Runtime>, _context_id: u32) -> Box<dyn HttpContext> {
        match &*runtime {
            Runtime::Authenticate { .. } => Box::new(AuthenticateStream {
                runtime,
                model_check: false,
                consumer_id: None,
                dialect: Dialect::OpenAi,
                templatable: false,
                pending: None,
                body_size: 0,
            }),
            Runtime::Inject(_) => Box::new(InjectStream {
                runtime,
                used: None,
                scrub: Scrub::Off,
                upstream: Dialect::OpenAi,
            }),
        }
    }
}

/// The `authenticate` role on one request.
struct AuthenticateStream {
    runtime: Rc<Runtime>,
    /// The consumer's models are restricted: the body's `model` must be checked.
    model_check: bool,
    consumer_id: Option<String>,
    dialect: Dialect,
    /// The path is one where prompt-template may name the model (a template or REST endpoint).
    templatable: bool,
    /// A refusal decided on the headers, sent when the (small) body has ended.
    pending: Option<ApiError>,
    /// The request body Envoy has buffered, as the last body callback said (for trailers).
    body_size: usize,
}

impl AuthenticateStream {
    fn refuse(&self, err: &ApiError) -> Action {
        reply::send_error(err, self.dialect);
        Action::Pause
    }

    /// A refusal decided on the headers: at once, or once a small body has ended, so that an
    /// HTTP/1.1 client keeps its connection (`key_injection::refusal`).
    fn refuse_on_headers(
        &mut self,
        err: ApiError,
        end_of_stream: bool,
        headers: &http::Headers,
    ) -> Action {
        if wait_for_body(end_of_stream, headers.get("content-length")) {
            self.pending = Some(err);
            return Action::Pause;
        }
        self.refuse(&err)
    }
}

impl Context for AuthenticateStream {}

impl HttpContext for AuthenticateStream {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        let runtime = self.runtime.clone();
        let Runtime::Authenticate { auth, clock } = &*runtime else {
            return Action::Continue;
        };
        // One host call for all headers; single lookups would cost one call each.
        let headers = http::request_headers();
        let path = headers.get(":path").unwrap_or_default();
        self.dialect = Dialect::from_path(path);
        // Envoy's name for the caller's path once a filter rewrote it: the access log shows it
        // as the caller's, so a caller may not send it (refused requests are logged too).
        if headers.contains("x-envoy-original-path") {
            http::set_request_header("x-envoy-original-path", None);
        }
        let key = auth.presented_key(|name| headers.get(name).map(str::to_owned));
        let consumer = match auth.authenticate(key.as_deref(), path, clock.now()) {
            Ok(c) => c,
            Err(err) => return self.refuse_on_headers(err, end_of_stream, &headers),
        };
        state::set(StateKey::Consumer, &consumer.id);
        state::set(StateKey::Tenant, &consumer.tenant);
        strip_caller_headers(auth.caller_headers(), &headers);
        if !consumer.restricts_models() {
            return Action::Continue;
        }
        if let Some(model) = headers.get("x-sluice-model") {
            if !consumer.allows_model(model) {
                let err = model_not_allowed(model);
                return self.refuse_on_headers(err, end_of_stream, &headers);
            }
        }
        if end_of_stream {
            return Action::Continue; // no body, no model to check
        }
        self.model_check = true;
        self.consumer_id = Some(consumer.id.clone());
        self.templatable = path.starts_with("/apis/")
            || matches!(
                Endpoint::from_path(path),
                Some(Endpoint::Chat | Endpoint::AnthropicMessages)
            );
        Action::Pause
    }

    /// A body that ends with trailers is whole now: read it as if its last piece had come.
    fn on_http_request_trailers(&mut self, _: usize) -> Action {
        if !self.model_check && self.pending.is_none() {
            return Action::Continue;
        }
        self.on_http_request_body(self.body_size, true)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.body_size = body_size;
        if let Some(err) = &self.pending {
            // A body longer than it said is refused at once.
            if end_of_stream || body_size as u64 > WAIT_FOR_BODY_MAX {
                let err = err.clone();
                self.pending = None;
                return self.refuse(&err);
            }
            return Action::Pause;
        }
        if !self.model_check {
            return Action::Continue;
        }
        let runtime = self.runtime.clone();
        let Runtime::Authenticate { auth, .. } = &*runtime else {
            return Action::Continue;
        };
        let body = match http::whole_request_body(body_size, end_of_stream, auth.max_body_bytes) {
            http::BodyRead::Partial => return Action::Pause,
            http::BodyRead::TooLarge(err) => {
                self.model_check = false;
                return self.refuse(&err);
            }
            http::BodyRead::Whole(body) => body,
        };
        self.model_check = false;
        let model = match sluice_core::body::Head::of(&body) {
            Ok(head) => head.model,
            Err(err) => return self.refuse(&err),
        };
        let consumer = self.consumer_id.as_deref().and_then(|id| auth.consumer(id));
        let Some(model) = model else {
            // Nothing named yet: on a path where a template may name it later, the inject
            // role checks the model the request leaves with (and the router answers a missing
            // one). Elsewhere (`/v1/moderations` takes no model) nothing more is checked.
            if let Some(c) = consumer.filter(|_| self.templatable) {
                state::set(StateKey::ModelGrant, &c.model_grant());
            }
            return Action::Continue;
        };
        let allowed = consumer.is_some_and(|c| c.allows_model(&model));
        if !allowed {
            return self.refuse(&model_not_allowed(&model));
        }
        state::set(StateKey::Model, &model);
        Action::Continue
    }
}

/// The `inject` role on one request.
struct InjectStream {
    runtime: Rc<Runtime>,
    /// (provider index, key index) injected on this request.
    used: Option<(usize, usize)>,
    /// What becomes of the answer's body.
    scrub: Scrub,
    /// The dialect the request went upstream in (of the provider's error answers).
    upstream: Dialect,
}

/// An error answer's body on its way through the inject role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scrub {
    /// Not an error, or no key to scrub: passes.
    Off,
    /// An error: held whole, then provider keys are scrubbed from it; `declared`: its length
    /// was declared (within what Envoy holds); `held`: bytes held so far.
    Holding { declared: bool, held: usize },
    /// An error declared too long to hold: a short error takes the place of its first piece.
    Replacing,
    /// An error too long to hold: a short error took its place; the rest is dropped.
    Dropping,
}

/// The refusal of a request whose consumer's models are restricted and whose model, named
/// after the authenticate role read the body (by a template), is not one of them; or is
/// still unknown as it leaves. Read on every request (one host call): the two roles may run in
/// different VMs (Istio gives each `WasmPlugin` its own), so nothing here can tell that no
/// grant was written.
fn grant_refusal() -> Option<ApiError> {
    let grant = state::get(StateKey::ModelGrant)?;
    match state::get(StateKey::Model) {
        Some(model) if grant_allows(&grant, &model) => None,
        Some(model) => Some(model_not_allowed(&model)),
        None => Some(model_unknown()),
    }
}

/// Removes the caller-credential headers the request carries.
fn strip_caller_headers(names: &[String], headers: &http::Headers) {
    for name in names.iter().filter(|n| headers.contains(n)) {
        http::set_request_header(name, None);
    }
}

/// The provider for this request, by the cluster it goes to: the routing header model-router
/// sets (its decision), else the cluster of the route Envoy chose. When model-router ran, its
/// provider name in filter state settles a cluster that several providers share.
fn provider_for_request(injector: &Injector, headers: &http::Headers) -> Option<usize> {
    let Some(cluster) = headers.get("x-sluice-cluster") else {
        let cluster = http::property(&["xds", "cluster_name"])?;
        return injector.by_cluster(&cluster);
    };
    match state::get(StateKey::Provider).and_then(|name| injector.by_name(&name)) {
        Some(i) => Some(i),
        None => injector.by_cluster(cluster),
    }
}

/// Records a key's cool-down in shared data, so every worker skips it.
fn rest_key(provider: &str, key: usize, until: u64) {
    let slot = cooldown_slot(provider);
    for _ in 0..8 {
        let (text, cas) = http::shared_get_cas(&slot);
        let mut cooldowns = Cooldowns::parse(text.as_deref());
        cooldowns.rest(key, until);
        if http::shared_set(&slot, &cooldowns.encode(), cas) {
            return;
        }
    }
    log::warn!("sluice key-injection: could not record a cool-down for {provider} (contention)");
}

impl Context for InjectStream {}

impl HttpContext for InjectStream {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let runtime = self.runtime.clone();
        let Runtime::Inject(rt) = &*runtime else {
            return Action::Continue;
        };
        let injector = &rt.injector;
        let headers = http::request_headers();
        if let Some(err) = grant_refusal() {
            // In the caller's dialect: its own path, when a filter rewrote it.
            let path = headers
                .get("x-envoy-original-path")
                .or_else(|| headers.get(":path"))
                .unwrap_or_default();
            reply::send_error(&err, Dialect::from_path(path));
            return Action::Pause;
        }
        strip_caller_headers(injector.caller_headers(), &headers);
        self.upstream = Dialect::from_path(headers.get(":path").unwrap_or_default());
        let Some(pi) = provider_for_request(injector, &headers) else {
            return Action::Continue;
        };
        let Some(provider) = injector.get(pi) else {
            return Action::Continue;
        };
        let start = rt.next.get();
        rt.next.set(start.wrapping_add(1));
        let ki = {
            let cooldowns = rt.cooldowns.borrow();
            let resting = cooldowns.get(pi);
            provider.pick_key(start, rt.clock.now(), |k| resting.map_or(0, |c| c.until(k)))
        };
        if let Some(value) = provider.header_value(ki) {
            http::set_request_header(&provider.header, Some(&value));
        }
        for (name, value) in &provider.extra_headers {
            http::set_request_header(name, Some(value));
        }
        self.used = Some((pi, ki));
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        let runtime = self.runtime.clone();
        let Runtime::Inject(rt) = &*runtime else {
            return Action::Continue;
        };
        let injector = &rt.injector;
        let status = http::response_status();
        if status < 400 {
            return Action::Continue; // success answers are not scanned (see README)
        }
        if let (true, Some((pi, ki))) = (status == 401 || status == 429, self.used) {
            if let Some(provider) = injector.get(pi) {
                let rest = cooldown_for(provider, http::response_header("retry-after").as_deref());
                let until = http::now_secs().saturating_add(rest);
                rest_key(&provider.name, ki, until);
                if let Some(c) = rt.cooldowns.borrow_mut().get_mut(pi) {
                    c.rest(ki, until);
                }
                log::info!(
                    "sluice key-injection: provider {} key #{ki} answered {status}; resting {rest} s",
                    provider.name
                );
            }
        }
        let secrets = injector.secrets();
        let headers = http::response_headers();
        for (name, value) in &headers.0 {
            if let Some(clean) = scrub_str(value, &secrets) {
                http::set_response_header(name, Some(&clean));
            }
        }
        if !end_of_stream && !secrets.is_empty() {
            // The body may change length: drop content-length, Envoy re-frames it.
            http::set_response_header("content-length", None);
            let declared = headers.content_length();
            self.scrub = match declared {
                Some(n) if n > rt.max_body_bytes => {
                    // Too long to hold whole and scrub: a short JSON error in its place.
                    http::set_response_header("content-type", Some("application/json"));
                    Scrub::Replacing
                }
                _ => Scrub::Holding {
                    declared: declared.is_some(),
                    held: 0,
                },
            };
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let runtime = self.runtime.clone();
        let Runtime::Inject(rt) = &*runtime else {
            return Action::Continue;
        };
        match self.scrub {
            Scrub::Off => return Action::Continue,
            Scrub::Dropping => {
                if body_size > 0 {
                    http::set_response_body(body_size, &[]);
                }
                return Action::Continue;
            }
            Scrub::Replacing => return self.replace_error(body_size),
            Scrub::Holding { .. } if end_of_stream => self.scrub = Scrub::Off,
            Scrub::Holding { declared, .. } => {
                if hold::past_undeclared(declared, body_size, rt.max_body_bytes) {
                    // Too long to hold whole and scrub (held on, it overflows Envoy's buffer:
                    // Envoy's own 500, or the stream reset): a short error takes its place.
                    return self.replace_error(body_size);
                }
                self.scrub = Scrub::Holding {
                    declared,
                    held: body_size,
                };
                return Action::Pause;
            }
        }
        self.scrub_held(body_size, rt)
    }

    /// A held error answer that ends with trailers has ended: scrubbed as at its last piece
    /// (continuing without it would let the held body go as it came).
    fn on_http_response_trailers(&mut self, _: usize) -> Action {
        let runtime = self.runtime.clone();
        let Runtime::Inject(rt) = &*runtime else {
            return Action::Continue;
        };
        if let Scrub::Holding { held, .. } = self.scrub {
            self.scrub = Scrub::Off;
            return self.scrub_held(held, rt);
        }
        Action::Continue
    }
}

impl InjectStream {
    /// An error answer too long to hold whole and scrub: a short JSON error takes the place of
    /// what Envoy holds of it (`body_size` bytes), and the rest of it is dropped as it comes,
    /// so nothing of its text (a key it may hold) passes.
    fn replace_error(&mut self, body_size: usize) -> Action {
        let err = ApiError::error_answer_too_large();
        http::set_response_body(body_size, &err.body(self.upstream));
        self.scrub = Scrub::Dropping;
        Action::Continue
    }

    /// Scrubs provider keys from the whole error answer Envoy holds (`body_size` bytes).
    fn scrub_held(&self, body_size: usize, rt: &InjectRuntime) -> Action {
        let body = http::response_body(body_size).unwrap_or_default();
        if let Some(clean) = scrub(&body, &rt.injector.secrets()) {
            http::set_response_body(body_size, &clean);
        }
        Action::Continue
    }
}

// Left to the SDK (neither role has `on_log` or `on_done`): Envoy need not enter the module for them (`make wasm`
// drops their exports, see `sluice_host::callbacks`).
sluice_host::unused_callbacks!(b"proxy_on_log proxy_on_done");

proxy_wasm::main! {{
    sluice_host::install::<KeyInjection>();
}}
