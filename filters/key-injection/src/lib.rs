//! key-injection: gateway keys in, provider credentials out.
//!
//! Host glue only; the logic is `sluice_core::key_injection`. One module, two plugin configs in
//! the chain (same VM): `authenticate` runs first and reads headers only (the body only for a
//! consumer whose models are restricted), `inject` runs after the router.

use std::cell::Cell;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use sluice_core::key_injection::auth::{model_not_allowed, Authenticator};
use sluice_core::key_injection::config::{KeyInjectionConfig, Role};
use sluice_core::key_injection::inject::{cooldown_for, cooldown_slot, Injector};
use sluice_core::key_injection::scrub::{scrub, scrub_str};
use sluice_core::{ApiError, ConfigError, Dialect, ErrorKind, StateKey};
use sluice_host::{http, reply, state};

pub struct KeyInjection;

/// What one plugin config of this module runs with.
pub enum Runtime {
    Authenticate(Authenticator),
    Inject {
        injector: Injector,
        /// Round-robin position, per VM (each worker rotates on its own).
        next: Cell<usize>,
    },
}

impl sluice_host::Filter for KeyInjection {
    const NAME: &'static str = "key-injection";
    type Config = KeyInjectionConfig;
    type Runtime = Runtime;

    fn prepare(config: KeyInjectionConfig) -> Result<Runtime, ConfigError> {
        Ok(match config.role {
            Role::Authenticate => Runtime::Authenticate(Authenticator::new(&config)?),
            Role::Inject => Runtime::Inject {
                injector: Injector::new(&config, http::env)?,
                next: Cell::new(0),
            },
        })
    }

    fn http_context(runtime: Rc<Runtime>, _context_id: u32) -> Box<dyn HttpContext> {
        match &*runtime {
            Runtime::Authenticate(_) => Box::new(AuthenticateStream {
                runtime,
                model_check: false,
                consumer_id: None,
                dialect: Dialect::OpenAi,
            }),
            Runtime::Inject { .. } => Box::new(InjectStream {
                runtime,
                used: None,
                scrub_body: false,
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
}

impl AuthenticateStream {
    fn refuse(&self, err: &ApiError) -> Action {
        reply::send_error(err, self.dialect);
        Action::Pause
    }
}

impl Context for AuthenticateStream {}

impl HttpContext for AuthenticateStream {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        let runtime = self.runtime.clone();
        let Runtime::Authenticate(auth) = &*runtime else {
            return Action::Continue;
        };
        let path = http::request_header(":path").unwrap_or_default();
        self.dialect = Dialect::from_path(&path);
        let key = auth.presented_key(http::request_header);
        let consumer = match auth.authenticate(key.as_deref(), &path, http::now_secs()) {
            Ok(c) => c,
            Err(err) => return self.refuse(&err),
        };
        state::set(StateKey::Consumer, &consumer.id);
        state::set(StateKey::Tenant, &consumer.tenant);
        for name in auth.caller_headers() {
            http::set_request_header(name, None);
        }
        if !consumer.restricts_models() {
            return Action::Continue;
        }
        if let Some(model) = http::request_header("x-sluice-model") {
            if !consumer.allows_model(&model) {
                return self.refuse(&model_not_allowed(&model));
            }
        }
        if end_of_stream {
            return Action::Continue; // no body, no model to check
        }
        self.model_check = true;
        self.consumer_id = Some(consumer.id.clone());
        Action::Pause
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.model_check {
            return Action::Continue;
        }
        let runtime = self.runtime.clone();
        let Runtime::Authenticate(auth) = &*runtime else {
            return Action::Continue;
        };
        if body_size as u64 > auth.max_body_bytes {
            self.model_check = false;
            let err = ApiError::new(
                ErrorKind::RequestTooLarge,
                format!("Request body is over {} bytes.", auth.max_body_bytes),
            )
            .with_code("request_too_large");
            return self.refuse(&err);
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.model_check = false;
        let body = http::request_body(body_size).unwrap_or_default();
        let model = match sluice_core::openai::model_of(&body) {
            Ok(model) => model,
            Err(err) => return self.refuse(&err),
        };
        let Some(model) = model else {
            return Action::Continue; // nothing named: the router answers a missing model
        };
        let allowed = self
            .consumer_id
            .as_deref()
            .and_then(|id| auth.consumer(id))
            .is_some_and(|c| c.allows_model(&model));
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
    /// The answer is an error: read it whole and scrub provider keys from it.
    scrub_body: bool,
}

impl InjectStream {
    fn injector(&self) -> Option<(&Injector, &Cell<usize>)> {
        match &*self.runtime {
            Runtime::Inject { injector, next } => Some((injector, next)),
            Runtime::Authenticate(_) => None,
        }
    }
}

/// The provider for this request: the router's decision in filter state, else the cluster
/// (router's filter state, the routing header, or Envoy's chosen route cluster).
fn provider_for_request(injector: &Injector) -> Option<usize> {
    if let Some(name) = state::get(StateKey::Provider) {
        if let Some(i) = injector.by_name(&name) {
            return Some(i);
        }
    }
    let cluster = state::get(StateKey::Cluster)
        .or_else(|| http::request_header("x-sluice-cluster"))
        .or_else(|| http::property(&["xds", "cluster_name"]))?;
    injector.by_cluster(&cluster)
}

impl Context for InjectStream {}

impl HttpContext for InjectStream {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let Some((injector, next)) = self.injector() else {
            return Action::Continue;
        };
        for name in injector.caller_headers() {
            http::set_request_header(name, None);
        }
        let Some(pi) = provider_for_request(injector) else {
            return Action::Continue;
        };
        let Some(provider) = injector.get(pi) else {
            return Action::Continue;
        };
        let start = next.get();
        next.set(start.wrapping_add(1));
        let now = http::now_secs();
        let ki = provider.pick_key(start, now, |k| {
            http::shared_get(&cooldown_slot(&provider.name, k))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        });
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
        let Some((injector, _)) = self.injector() else {
            return Action::Continue;
        };
        let status: u16 = http::response_header(":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if let (true, Some((pi, ki))) = (status == 401 || status == 429, self.used) {
            if let Some(provider) = injector.get(pi) {
                let rest = cooldown_for(provider, http::response_header("retry-after").as_deref());
                let until = http::now_secs().saturating_add(rest);
                http::shared_set(&cooldown_slot(&provider.name, ki), &until.to_string());
                log::info!(
                    "sluice key-injection: provider {} key #{ki} answered {status}; resting {rest} s",
                    provider.name
                );
            }
        }
        let secrets = injector.secrets();
        for (name, value) in http::response_headers() {
            if let Some(clean) = scrub_str(&value, &secrets) {
                http::set_response_header(&name, Some(&clean));
            }
        }
        if status >= 400 && !end_of_stream && !secrets.is_empty() {
            // The body may change length: drop content-length, Envoy re-frames it.
            http::set_response_header("content-length", None);
            self.scrub_body = true;
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.scrub_body {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.scrub_body = false;
        let Some((injector, _)) = self.injector() else {
            return Action::Continue;
        };
        let body = http::response_body(body_size).unwrap_or_default();
        if let Some(clean) = scrub(&body, &injector.secrets()) {
            http::set_response_body(body_size, &clean);
        }
        Action::Continue
    }
}

proxy_wasm::main! {{
    sluice_host::install::<KeyInjection>();
}}
