//! model-router: route by the body's `model` to an Envoy cluster.
//!
//! Host glue only; the logic is `sluice_core::model_router`. The request body is read whole,
//! its model (or the `x-sluice-model` override header) picks a target; the filter names the
//! target's cluster in `x-sluice-cluster` (which the route table matches) and has Envoy pick the
//! route again, renames the model upstream when the target aliases it, and moves an Azure
//! OpenAI request to its deployment path.

use std::cell::Cell;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use sluice_core::endpoint::Endpoint;
use sluice_core::model_router::config::{Kind, ModelRouterConfig, Sticky};
use sluice_core::model_router::route::{
    azure_path, model_missing, model_not_found, with_model, Router,
};
use sluice_core::openai::model_of;
use sluice_core::translate::{
    chat_to_message, chat_to_messages, error_to_anthropic, error_to_openai, message_to_chat,
    messages_to_chat, ChatToMessagesStream, MessagesToChatStream, RequestFacts, StreamTranslator,
};
use sluice_core::{ApiError, ConfigError, Dialect, StateKey};
use sluice_host::{http, reply, state};

pub struct ModelRouter;

pub struct Runtime {
    router: Router,
    max_body_bytes: u64,
    default_max_tokens: u64,
    /// Spreads requests without a sticky key over a rule's weights (per VM).
    turn: Cell<u64>,
}

impl sluice_host::Filter for ModelRouter {
    const NAME: &'static str = "model-router";
    type Config = ModelRouterConfig;
    type Runtime = Runtime;

    fn prepare(config: ModelRouterConfig) -> Result<Runtime, ConfigError> {
        Ok(Runtime {
            router: Router::new(&config),
            max_body_bytes: config.max_body_bytes,
            default_max_tokens: config.default_max_tokens,
            turn: Cell::new(0),
        })
    }

    fn http_context(runtime: Rc<Runtime>, _context_id: u32) -> Box<dyn HttpContext> {
        Box::new(RouteStream {
            runtime,
            routing: false,
            dialect: Dialect::OpenAi,
            path: String::new(),
            override_model: None,
            sticky_header: Vec::new(),
            translation: None,
            answer: Answer::AsIs,
        })
    }
}

pub const ROUTE_HEADER: &str = "x-sluice-cluster";
pub const MODEL_HEADER: &str = "x-sluice-model";

struct RouteStream {
    runtime: Rc<Runtime>,
    routing: bool,
    dialect: Dialect,
    path: String,
    override_model: Option<String>,
    /// Request headers, kept for a rule that is sticky by header.
    sticky_header: Vec<(String, String)>,
    /// Set when the request was translated to the target's dialect: the answer goes back.
    translation: Option<(Direction, RequestFacts)>,
    answer: Answer,
}

/// Which way a request was translated.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// An OpenAI caller, an Anthropic target.
    OpenAiToAnthropic,
    /// An Anthropic caller, an OpenAI-style target.
    AnthropicToOpenAi,
}

/// How the answer is passed back.
enum Answer {
    AsIs,
    /// A JSON body, translated whole: a success, or an error with this status.
    Json {
        error: Option<u16>,
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
            Sticky::Header(name) => self
                .sticky_header
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone()),
        }
    }
}

impl Context for RouteStream {}

impl HttpContext for RouteStream {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        let headers = http::request_headers();
        // A caller must not pick the cluster itself, whatever the request.
        if headers.contains(ROUTE_HEADER) {
            http::set_request_header(ROUTE_HEADER, None);
        }
        let path = headers.get(":path").unwrap_or_default().to_owned();
        let routable =
            Endpoint::from_path(&path).is_some() && headers.get(":method") == Some("POST");
        if !routable || end_of_stream {
            return Action::Continue;
        }
        self.dialect = Dialect::from_path(&path);
        self.path = path;
        self.override_model = headers.get(MODEL_HEADER).map(str::to_owned);
        self.sticky_header = headers.0;
        self.routing = true;
        Action::Pause // the model is in the body
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.routing {
            return Action::Continue;
        }
        let rt = self.runtime.clone();
        let body = match http::whole_request_body(body_size, end_of_stream, rt.max_body_bytes) {
            http::BodyRead::Partial => return Action::Pause,
            http::BodyRead::TooLarge(err) => {
                self.routing = false;
                return self.refuse(&err);
            }
            http::BodyRead::Whole(body) => body,
        };
        self.routing = false;
        let body_model = match model_of(&body) {
            Ok(m) => m,
            Err(err) => return self.refuse(&err),
        };
        let Some(model) = self.override_model.clone().or(body_model.clone()) else {
            return self.refuse(&model_missing());
        };
        let turn = rt.turn.get();
        rt.turn.set(turn.wrapping_add(1));
        let Some(choice) = rt.router.route(&model, |s| self.sticky_value(s), turn) else {
            return self.refuse(&model_not_found(&model));
        };
        let target = choice.target;
        let caller_anthropic = self.dialect == Dialect::Anthropic;
        let openai_to_anthropic = !caller_anthropic
            && target.kind == Kind::Anthropic
            && Endpoint::from_path(&self.path) == Some(Endpoint::Chat);
        if openai_to_anthropic {
            let (new_body, facts) =
                match chat_to_messages(&body, &choice.upstream_model, rt.default_max_tokens) {
                    Ok(t) => t,
                    Err(err) => return self.refuse(&err),
                };
            http::set_request_body(body_size, &new_body);
            http::set_request_header("content-length", Some(&new_body.len().to_string()));
            http::set_request_header(":path", Some("/v1/messages"));
            if !self
                .sticky_header
                .iter()
                .any(|(k, _)| k == "anthropic-version")
            {
                http::set_request_header("anthropic-version", Some("2023-06-01"));
            }
            self.translation = Some((Direction::OpenAiToAnthropic, facts));
        } else if caller_anthropic
            && target.kind != Kind::Anthropic
            && Endpoint::from_path(&self.path) == Some(Endpoint::AnthropicMessages)
        {
            let (new_body, facts) = match messages_to_chat(&body, &choice.upstream_model) {
                Ok(t) => t,
                Err(err) => return self.refuse(&err),
            };
            http::set_request_body(body_size, &new_body);
            http::set_request_header("content-length", Some(&new_body.len().to_string()));
            let path = match (target.kind, target.api_version.as_deref()) {
                (Kind::AzureOpenai, Some(v)) => {
                    azure_path("/v1/chat/completions", &choice.upstream_model, v)
                        .unwrap_or_default()
                }
                _ => "/v1/chat/completions".to_owned(),
            };
            http::set_request_header(":path", Some(&path));
            self.translation = Some((Direction::AnthropicToOpenAi, facts));
        } else if caller_anthropic != (target.kind == Kind::Anthropic) {
            let err = ApiError::invalid_request(format!(
                "The model `{model}` is served in the {} dialect; translating between the \
                 OpenAI and Anthropic dialects is not supported yet.",
                target.kind.name()
            ))
            .with_code("dialect_not_supported")
            .with_param("model");
            return self.refuse(&err);
        }
        let translated = self.translation.is_some();
        if !translated && body_model.as_deref() != Some(choice.upstream_model.as_str()) {
            match with_model(&body, &choice.upstream_model) {
                Ok(new_body) => {
                    http::set_request_body(body_size, &new_body);
                    http::set_request_header("content-length", Some(&new_body.len().to_string()));
                }
                Err(err) => return self.refuse(&err),
            }
        }
        if target.kind == Kind::AzureOpenai && !translated {
            let version = target.api_version.as_deref().unwrap_or_default();
            if let Some(p) = azure_path(&self.path, &choice.upstream_model, version) {
                http::set_request_header(":path", Some(&p));
            }
        }
        http::set_request_header(ROUTE_HEADER, Some(&target.cluster));
        http::set_request_header(MODEL_HEADER, None);
        http::clear_route_cache();
        state::set(StateKey::Model, &model);
        state::set(StateKey::Provider, &target.provider);
        state::set(StateKey::Cluster, &target.cluster);
        state::set(StateKey::UpstreamModel, &choice.upstream_model);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        self.on_translated_response_headers(end_of_stream)
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.on_translated_response_body(body_size, end_of_stream)
    }
}

impl RouteStream {
    fn on_translated_response_headers(&mut self, end_of_stream: bool) -> Action {
        let Some((direction, facts)) = self.translation.clone() else {
            return Action::Continue;
        };
        let status: u16 = http::response_header(":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let content_type = http::response_header("content-type").unwrap_or_default();
        if end_of_stream {
            return Action::Continue;
        }
        http::set_response_header("content-length", None);
        let ok = (200..300).contains(&status);
        self.answer = if ok && content_type.starts_with("text/event-stream") {
            Answer::Stream(match direction {
                Direction::OpenAiToAnthropic => {
                    Box::new(MessagesToChatStream::new(facts, http::now_secs()))
                }
                Direction::AnthropicToOpenAi => Box::new(ChatToMessagesStream::new(facts)),
            })
        } else if content_type.starts_with("application/json") {
            Answer::Json {
                error: (!ok).then_some(status),
            }
        } else {
            Answer::AsIs
        };
        Action::Continue
    }

    fn on_translated_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let out = match &mut self.answer {
            Answer::AsIs => return Action::Continue,
            Answer::Stream(t) => {
                let mut out = t.feed(&http::response_body(body_size).unwrap_or_default());
                if end_of_stream {
                    out.extend(t.finish());
                }
                Some(out)
            }
            Answer::Json { error } => {
                if !end_of_stream {
                    return Action::Pause;
                }
                let error = *error;
                let body = http::response_body(body_size).unwrap_or_default();
                match (&self.translation, error) {
                    (Some((Direction::OpenAiToAnthropic, _)), Some(_)) => error_to_openai(&body),
                    (Some((Direction::AnthropicToOpenAi, _)), Some(status)) => {
                        error_to_anthropic(&body, status)
                    }
                    (Some((Direction::OpenAiToAnthropic, facts)), None) => {
                        message_to_chat(&body, facts, http::now_secs())
                    }
                    (Some((Direction::AnthropicToOpenAi, facts)), None) => {
                        chat_to_message(&body, facts)
                    }
                    (None, _) => None,
                }
            }
        };
        if end_of_stream {
            self.answer = Answer::AsIs;
        }
        if let Some(out) = out {
            http::set_response_body(body_size, &out);
        }
        Action::Continue
    }
}

proxy_wasm::main! {{
    sluice_host::install::<ModelRouter>();
}}
