//! Logic of the `prompt-template` filter (its crate under `filters/prompt-template` is the host glue).
//!
//! - [`config`]: templates, route rules, REST endpoints, validated at load.
//! - [`render`]: `{{variable}}` substitution on parsed JSON strings.
//! - `splice` (cargo feature `splice`, which prompt-template enables): the fast path of
//!   [`Engine::apply`]: the expanded request written from the body's fields as they came and
//!   each template's messages compiled to JSON text at load, each variable's value spliced in
//!   escaped once; anything else, or every body without the feature, goes the full path.
//! - [`Engine`]: which rule a request falls under ([`Engine::rule_for`]), whether its body
//!   must be read ([`Engine::reads_body`]), the request a template and a decoration make of a
//!   body ([`Engine::apply`]), a REST call turned into a chat request ([`Engine::rest_request`]),
//!   and a REST answer reduced to `{"result"}` ([`reduce_answer`]).
//!
//! No host calls here: the glue reads the route name, host, path and body, and acts on what
//! these functions return.

pub mod config;
mod decorate;
mod expand;
pub mod render;
mod rest;
#[cfg(feature = "splice")]
mod splice;

use std::collections::BTreeMap;

use crate::endpoint::Endpoint;
use crate::error::ErrorKind;
use crate::{ApiError, ConfigError, Dialect};

use config::{PromptTemplateConfig, RestEndpoint, Rule, Template, Untemplated};

pub use rest::{reduce_answer, RestRequest};

/// Filter state `sluice.template` for a request expanded from `name`.
pub fn state_value(name: &str, template: &Template) -> String {
    format!("{name}@{}", template.version)
}

/// The parts of a request's head [`Engine::plan`] may need beyond its path; each may cost a
/// host call, and the engine asks for each at most once.
pub trait Head {
    fn method(&mut self) -> String;
    /// `:authority`.
    fn host(&mut self) -> String;
    /// Envoy's route name.
    fn route_name(&mut self) -> Option<String>;
}

/// What the filter does with a request, decided from its head (method, path, host, route).
#[derive(Debug, PartialEq)]
pub enum Plan {
    /// Nothing here can change or refuse it: pass on without reading the body.
    Pass,
    /// Read the body and [`Engine::apply`] rule `rule` to it.
    Template { rule: usize, dialect: Dialect },
    /// A REST endpoint (index into `config.endpoints`): read the body, [`Engine::rest_request`].
    Rest(usize),
    /// Refuse at once (a REST endpoint called with another method).
    Refuse(ApiError),
}

/// What a REST endpoint's answer needs: held whole and reduced, or passed as it comes.
pub fn holds_answer(rest: &RestRequest, status: u16, content_type: &str) -> bool {
    rest.answer != config::AnswerMode::Raw
        && !rest.stream
        && (200..300).contains(&status)
        && content_type.starts_with("application/json")
}

/// The config, ready for requests.
#[derive(Debug)]
pub struct Engine {
    pub config: PromptTemplateConfig,
    /// Rules as configured, or one rule that matches everything when none are.
    rules: Vec<Rule>,
    needs_route_name: bool,
    idle: bool,
    /// Each template's messages as JSON text with holes (`splice`), by name.
    #[cfg(feature = "splice")]
    compiled: BTreeMap<String, splice::Compiled>,
}

/// What [`Engine::apply`] made of a body.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    /// The new body, when it changed.
    pub body: Option<Vec<u8>>,
    /// `name@version` of the template used.
    pub template: Option<String>,
}

impl Engine {
    pub fn new(config: PromptTemplateConfig) -> Result<Engine, ConfigError> {
        let rules = if config.rules.is_empty() {
            vec![Rule::default()]
        } else {
            config.rules.clone()
        };
        let needs_route_name = rules.iter().any(|r| r.route_name.is_some());
        let mut engine = Engine {
            config,
            rules,
            needs_route_name,
            idle: false,
            #[cfg(feature = "splice")]
            compiled: BTreeMap::new(),
        };
        #[cfg(feature = "splice")]
        {
            engine.compiled = engine
                .config
                .templates
                .iter()
                .map(|(name, t)| (name.clone(), splice::Compiled::new(t)))
                .collect();
        }
        engine.idle = engine.config.endpoints.is_empty()
            && (0..engine.rules.len()).all(|r| !engine.reads_body(r));
        Ok(engine)
    }

    /// Whether no request could ever be changed or refused: no REST endpoint, and no rule
    /// that reads bodies. Then the filter makes no host call at all.
    pub fn idle(&self) -> bool {
        self.idle
    }

    pub fn needs_route_name(&self) -> bool {
        self.needs_route_name
    }

    /// What to do with a request, from its head: its `path`, and what else of `head` a
    /// decision needs (each part a host call, asked for at most once): the method only for a
    /// REST endpoint, the host and route name only when a rule the request could fall under
    /// matches on them. A request whose path alone settles it (not chat, or a rule on the path
    /// that changes nothing, or a rule on the path that applies) costs no other read.
    pub fn plan(&self, path: &str, head: &mut impl Head) -> Plan {
        if self.idle {
            return Plan::Pass;
        }
        if !self.config.endpoints.is_empty() {
            let bare = path.split('?').next().unwrap_or(path);
            if let Some(i) = self.config.endpoints.iter().position(|e| e.path == bare) {
                let method = head.method();
                return match self.config.endpoints.get(i) {
                    Some(e) if e.method != method => Plan::Refuse(
                        ApiError::new(
                            ErrorKind::MethodNotAllowed,
                            format!("{} takes {} requests only, not {method}.", e.path, e.method),
                        )
                        .with_code("method_not_allowed")
                        .with_header("allow", e.method.clone()),
                    ),
                    _ => Plan::Rest(i),
                };
            }
        }
        if !matches!(
            Endpoint::from_path(path),
            Some(Endpoint::Chat | Endpoint::AnthropicMessages)
        ) {
            return Plan::Pass;
        }
        // The method is not read (one host call fewer on every request a rule could change):
        // a rule applies to a chat request with a body whatever its method, as moderation's
        // rules do. A chat request is POST, and the shipped route table answers another
        // method on an API path with 405 after the chain; such a request that this filter
        // refuses (an unknown template, a missing variable) gets that refusal first.
        match self.rule_for_head(path, head) {
            Some(rule) if self.reads_body(rule) => Plan::Template {
                rule,
                dialect: Dialect::from_path(path),
            },
            _ => Plan::Pass,
        }
    }

    /// [`Engine::rule_for`], reading the host and route name only when a rule needs them.
    fn rule_for_head(&self, path: &str, head: &mut impl Head) -> Option<usize> {
        let mut host: Option<String> = None;
        let mut route: Option<Option<String>> = None;
        self.rules.iter().position(|r| {
            if !r.path_prefix.as_deref().is_none_or(|p| path.starts_with(p)) {
                return false;
            }
            if let Some(pattern) = r.host.as_deref() {
                let host = host.get_or_insert_with(|| head.host());
                if !host_matches(pattern, host) {
                    return false;
                }
            }
            match r.route_name.as_deref() {
                None => true,
                Some(n) => route
                    .get_or_insert_with(|| head.route_name())
                    .as_deref()
                    .is_some_and(|route| route == n),
            }
        })
    }

    /// The first rule matching the request, by index.
    pub fn rule_for(&self, route_name: Option<&str>, host: &str, path: &str) -> Option<usize> {
        self.rules.iter().position(|r| {
            r.route_name
                .as_deref()
                .is_none_or(|n| Some(n) == route_name)
                && r.host.as_deref().is_none_or(|h| host_matches(h, host))
                && r.path_prefix.as_deref().is_none_or(|p| path.starts_with(p))
        })
    }

    /// Whether a rule could change or refuse a request, so that its body must be read.
    pub fn reads_body(&self, rule: usize) -> bool {
        let Some(r) = self.rules.get(rule) else {
            return false;
        };
        let may_template = match &r.templates {
            Some(list) => !list.is_empty(),
            None => !self.config.templates.is_empty(),
        };
        may_template || r.decorate.is_some() || self.untemplated(r) == Untemplated::Refuse
    }

    fn untemplated(&self, rule: &Rule) -> Untemplated {
        rule.untemplated.unwrap_or(self.config.untemplated)
    }

    /// The REST endpoint published at `path` (query string aside), if any.
    pub fn endpoint_for(&self, path: &str) -> Option<&RestEndpoint> {
        let path = path.split('?').next().unwrap_or(path);
        self.config.endpoints.iter().find(|e| e.path == path)
    }

    /// Expands the template a body names (in any of the accepted forms) and applies the rule's
    /// decoration. `dialect` is the caller's: Anthropic Messages keep their system prompt in
    /// the top-level `system`. Without a decoration the splice path (feature `splice`)
    /// answers first (no tree, no re-serialising); a refusal, Kong's form or a decoration take
    /// the full path.
    pub fn apply(&self, rule: usize, dialect: Dialect, body: &[u8]) -> Result<Outcome, ApiError> {
        let Some(rule) = self.rules.get(rule) else {
            return Ok(Outcome::default());
        };
        #[cfg(feature = "splice")]
        if rule.decorate.is_none() {
            let fast = splice::apply(
                &self.config.templates,
                &self.compiled,
                rule.templates.as_deref(),
                self.untemplated(rule),
                dialect,
                body,
            );
            match fast {
                Some(splice::Fast::Expanded(outcome)) => return Ok(outcome),
                Some(splice::Fast::Untouched) => return Ok(Outcome::default()),
                None => {} // an error or another form: the full path words it
            }
        }
        self.apply_full(rule, dialect, body)
    }

    /// [`Engine::apply`] on the body parsed whole into a JSON tree, re-serialised: for
    /// decorations, Kong's form and every refusal (its messages name the field at fault).
    fn apply_full(&self, rule: &Rule, dialect: Dialect, body: &[u8]) -> Result<Outcome, ApiError> {
        let mut request: serde_json::Map<String, serde_json::Value> = crate::body::parse(body)?;
        let mut template = None;
        let named = expand::named_template(&mut request)?;
        match named {
            Some(call) => {
                let allowed = rule
                    .templates
                    .as_ref()
                    .is_none_or(|list| list.contains(&call.name));
                let found = self.config.templates.get_key_value(call.name.as_str());
                let (name, t) = match found {
                    Some(found) if allowed => found,
                    _ => return Err(expand::not_found(&call.name)),
                };
                request = expand::expand(name, t, call, request, dialect)?;
                template = Some(state_value(name, t));
            }
            None => {
                if self.untemplated(rule) == Untemplated::Refuse {
                    return Err(expand::template_required());
                }
            }
        }
        let mut changed = template.is_some();
        if let Some(d) = &rule.decorate {
            decorate::decorate(&mut request, d, dialect, template.is_none())?;
            changed = true;
        }
        let body = if changed {
            Some(
                serde_json::to_vec(&request)
                    .map_err(|e| ApiError::invalid_request(e.to_string()))?,
            )
        } else {
            None
        };
        Ok(Outcome { body, template })
    }

    /// The REST endpoint at `index` of the config.
    pub fn endpoint(&self, index: usize) -> Option<&RestEndpoint> {
        self.config.endpoints.get(index)
    }

    /// A REST call to `endpoint` as a chat request (always `POST` to its `path`).
    pub fn rest_request(
        &self,
        endpoint: &RestEndpoint,
        body: &[u8],
    ) -> Result<RestRequest, ApiError> {
        let Some((name, template)) = self.config.templates.get_key_value(&endpoint.template) else {
            return Err(expand::not_found(&endpoint.template));
        };
        rest::request(endpoint, name, template, body)
    }
}

/// `pattern` against a request's `:authority`: exact (case aside), with or without the port,
/// or `*.example.com` for any subdomain.
fn host_matches(pattern: &str, authority: &str) -> bool {
    let host = strip_port(authority);
    if host.eq_ignore_ascii_case(pattern) || authority.eq_ignore_ascii_case(pattern) {
        return true;
    }
    let Some(suffix) = pattern.strip_prefix("*.") else {
        return false;
    };
    let host = host.to_ascii_lowercase();
    host.strip_suffix(&suffix.to_ascii_lowercase())
        .and_then(|rest| rest.strip_suffix('.'))
        .is_some_and(|sub| !sub.is_empty())
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`; a bare IPv6 address stays.
fn strip_port(authority: &str) -> &str {
    match authority.rsplit_once(':') {
        Some((h, port))
            if !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!h.contains(':') || h.ends_with(']')) =>
        {
            h
        }
        _ => authority,
    }
}

/// Values a caller sent for a template's variables, by name.
pub type Variables = BTreeMap<String, String>;

#[cfg(test)]
mod tests;
