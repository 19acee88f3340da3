//! prompt-template's plugin config: templates, route rules (template sets and decorations),
//! REST endpoints. Every problem is refused at load, naming its JSON path.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::{require_non_empty, ConfigError, JsonPath, Validate};

use super::render::placeholders_in;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptTemplateConfig {
    /// Templates by name.
    #[serde(default)]
    pub templates: BTreeMap<String, Template>,
    /// Route rules, first match wins. None: every route may use every template, undecorated.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// What a request that names no template gets where no rule says otherwise.
    #[serde(default)]
    pub untemplated: Untemplated,
    /// Prompts published as REST endpoints.
    #[serde(default)]
    pub endpoints: Vec<RestEndpoint>,
    /// Largest request body read (else 413).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
}

impl Default for PromptTemplateConfig {
    fn default() -> Self {
        PromptTemplateConfig {
            templates: BTreeMap::new(),
            rules: Vec::new(),
            untemplated: Untemplated::Pass,
            endpoints: Vec::new(),
            max_body_bytes: default_max_body_bytes(),
        }
    }
}

fn default_max_body_bytes() -> u64 {
    4 * 1024 * 1024
}

fn default_version() -> String {
    "1".to_owned()
}

/// A named template: the request it expands to.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// Recorded with the name in filter state `sluice.template` (`name@version`).
    #[serde(default = "default_version")]
    pub version: String,
    /// The model the request goes to (a caller may change it only if `model` is overridable).
    #[serde(default)]
    pub model: Option<String>,
    /// Chat messages; `{{variable}}` may appear in any string of a message but its `role`.
    pub messages: Vec<Map<String, Value>>,
    /// Per variable rules; a placeholder without an entry is a required variable.
    #[serde(default)]
    pub variables: BTreeMap<String, Variable>,
    /// Refuse variables the template does not use.
    #[serde(default)]
    pub strict: bool,
    /// Request fields the expanded request starts with (`temperature`, `max_tokens`, …).
    #[serde(default)]
    pub defaults: Map<String, Value>,
    /// Which of `defaults` (and `model`) a caller may set in its request.
    #[serde(default)]
    pub overridable: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Variable {
    /// Default: true unless a `default` is given.
    #[serde(default)]
    pub required: Option<bool>,
    #[serde(default)]
    pub default: Option<String>,
    /// In characters (Unicode scalar values).
    #[serde(default)]
    pub max_length: Option<usize>,
    /// The only values taken, when given.
    #[serde(default)]
    pub allowed: Option<Vec<String>>,
}

impl Variable {
    pub fn is_required(&self) -> bool {
        self.required.unwrap_or(self.default.is_none())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Untemplated {
    /// Requests naming no template go on (decorated, when the rule decorates).
    #[default]
    Pass,
    /// Requests naming no template get 400 `template_required`.
    Refuse,
}

/// Which requests a rule applies to, and what it gives them. Every matcher given must match;
/// a rule with none matches every request.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Envoy's route name (`route_name` attribute).
    #[serde(default)]
    pub route_name: Option<String>,
    /// The request's host (`:authority`, with or without its port); `*.example.com` matches
    /// any subdomain.
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Templates callers on this rule may name (absent: all).
    #[serde(default)]
    pub templates: Option<Vec<String>>,
    #[serde(default)]
    pub decorate: Option<Decoration>,
    /// Overrides the top-level `untemplated`.
    #[serde(default)]
    pub untemplated: Option<Untemplated>,
}

/// Enforced messages around every request of a rule.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Decoration {
    #[serde(default)]
    pub prepend: Vec<Map<String, Value>>,
    #[serde(default)]
    pub append: Vec<Map<String, Value>>,
    #[serde(default)]
    pub system: SystemPolicy,
}

/// What happens to a caller's own system (or developer) message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SystemPolicy {
    /// It stays; the decoration is added.
    #[default]
    Keep,
    /// It is removed; the decoration's take its place.
    Replace,
    /// 400 `system_message_not_allowed`.
    Refuse,
}

/// A prompt published as a plain REST endpoint.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestEndpoint {
    /// The exact path (query string aside), e.g. `/apis/sentiment`.
    pub path: String,
    #[serde(default = "default_method")]
    pub method: String,
    /// The template the body's fields fill (each field a variable).
    pub template: String,
    #[serde(default)]
    pub answer: AnswerMode,
    /// Where the chat request goes.
    #[serde(default = "default_chat_path")]
    pub chat_path: String,
}

fn default_method() -> String {
    "POST".to_owned()
}

fn default_chat_path() -> String {
    "/v1/chat/completions".to_owned()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AnswerMode {
    /// The provider's answer as sent.
    Raw,
    /// `{"result": "<assistant text>", "usage": {...}}`.
    #[default]
    Result,
    /// `{"result": <the assistant text parsed as JSON>, "usage": {...}}`; not JSON → 502.
    Json,
}

pub const ROLES: [&str; 4] = ["system", "developer", "user", "assistant"];

/// A variable name: letters, digits, `_`, `-`, `.`.
pub fn valid_variable_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn validate_message(
    at: &JsonPath,
    m: &Map<String, Value>,
    templated: bool,
) -> Result<(), ConfigError> {
    match m.get("role") {
        Some(Value::String(role)) if ROLES.contains(&role.as_str()) => {}
        Some(other) => {
            return Err(at
                .field("role")
                .error(format!("must be one of {ROLES:?}, got {other}")))
        }
        None => return Err(at.field("role").error("is required")),
    }
    match m.get("content") {
        Some(Value::String(_)) | Some(Value::Array(_)) => {}
        Some(_) => {
            return Err(at
                .field("content")
                .error("must be a string or an array of content parts"))
        }
        None => return Err(at.field("content").error("is required")),
    }
    if !templated {
        let mut found = BTreeSet::new();
        placeholders_in(&Value::Object(m.clone()), &mut found);
        if let Some(name) = found.into_iter().next() {
            return Err(at.error(format!(
                "decoration messages take no variables, found {{{{{name}}}}}"
            )));
        }
    }
    Ok(())
}

impl Validate for PromptTemplateConfig {
    fn validate(&self, path: &JsonPath) -> Result<(), ConfigError> {
        let templates = path.field("templates");
        for (name, template) in &self.templates {
            let at = templates.key(name);
            require_non_empty(&at, name)?;
            require_non_empty(&at.field("version"), &template.version)?;
            if template.messages.is_empty() {
                return Err(at.field("messages").error("must hold at least one message"));
            }
            let mut used = BTreeSet::new();
            for (i, m) in template.messages.iter().enumerate() {
                let mat = at.field("messages").index(i);
                validate_message(&mat, m, true)?;
                if let Some(Value::String(role)) = m.get("role") {
                    if role.contains("{{") {
                        return Err(mat.field("role").error("cannot hold a variable"));
                    }
                }
                placeholders_in(&Value::Object(m.clone()), &mut used);
            }
            for (var, rule) in &template.variables {
                let vat = at.field("variables").key(var);
                if !valid_variable_name(var) {
                    return Err(vat.error("a variable name is letters, digits, `_`, `-` or `.`"));
                }
                if !used.contains(var) {
                    return Err(vat.error("is not used by any message of the template"));
                }
                if let Some(allowed) = &rule.allowed {
                    if allowed.is_empty() {
                        return Err(vat.field("allowed").error("must not be empty"));
                    }
                    if let Some(d) = &rule.default {
                        if !allowed.contains(d) {
                            return Err(vat.field("default").error("must be one of `allowed`"));
                        }
                    }
                }
                if let (Some(max), Some(d)) = (rule.max_length, &rule.default) {
                    if d.chars().count() > max {
                        return Err(vat.field("default").error("is over `max_length`"));
                    }
                }
                if rule.required == Some(true) && rule.default.is_some() {
                    return Err(vat
                        .field("default")
                        .error("a required variable has no default"));
                }
            }
            for (field, _) in &template.defaults {
                if matches!(field.as_str(), "messages" | "model" | "system") {
                    return Err(at
                        .field("defaults")
                        .key(field)
                        .error("is set by the template itself"));
                }
            }
            for (i, field) in template.overridable.iter().enumerate() {
                if field != "model" && !template.defaults.contains_key(field) {
                    return Err(at
                        .field("overridable")
                        .index(i)
                        .error(format!("{field:?} is neither `model` nor in `defaults`")));
                }
            }
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let at = path.field("rules").index(i);
            if let Some(p) = &rule.path_prefix {
                if !p.starts_with('/') {
                    return Err(at.field("path_prefix").error("must start with `/`"));
                }
            }
            for (field, value) in [("route_name", &rule.route_name), ("host", &rule.host)] {
                if let Some(v) = value {
                    require_non_empty(&at.field(field), v)?;
                }
            }
            for (j, name) in rule.templates.iter().flatten().enumerate() {
                if !self.templates.contains_key(name) {
                    return Err(at
                        .field("templates")
                        .index(j)
                        .error(format!("no template named {name:?}")));
                }
            }
            if let Some(d) = &rule.decorate {
                for (list, msgs) in [("prepend", &d.prepend), ("append", &d.append)] {
                    for (j, m) in msgs.iter().enumerate() {
                        validate_message(&at.field("decorate").field(list).index(j), m, false)?;
                    }
                }
            }
        }
        let mut paths = BTreeSet::new();
        for (i, ep) in self.endpoints.iter().enumerate() {
            let at = path.field("endpoints").index(i);
            if !ep.path.starts_with('/') || ep.path.contains('?') {
                return Err(at
                    .field("path")
                    .error("must start with `/` and hold no query string"));
            }
            if !paths.insert(ep.path.as_str()) {
                return Err(at.field("path").error("is given twice"));
            }
            if !matches!(ep.method.as_str(), "POST" | "PUT" | "GET" | "PATCH") {
                return Err(at
                    .field("method")
                    .error("must be POST, PUT, PATCH or GET (upper case)"));
            }
            match self.templates.get(&ep.template) {
                None => {
                    return Err(at
                        .field("template")
                        .error(format!("no template named {:?}", ep.template)))
                }
                // A REST caller sends variables only: the template names the model.
                Some(t) if t.model.is_none() => {
                    return Err(at.field("template").error(format!(
                        "template {:?} names no `model` (a REST caller cannot send one)",
                        ep.template
                    )))
                }
                Some(_) => {}
            }
            if crate::endpoint::Endpoint::from_path(&ep.chat_path)
                != Some(crate::endpoint::Endpoint::Chat)
            {
                return Err(at
                    .field("chat_path")
                    .error("must be an OpenAI chat completions path"));
            }
        }
        if self.max_body_bytes == 0 {
            return Err(path.field("max_body_bytes").error("must be over 0"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::parse_config;

    #[test]
    fn accepts_a_template() {
        let c: PromptTemplateConfig = parse_config(
            br#"{"templates":{"greet":{"messages":[{"role":"user","content":"Hi {{name}}"}]}}}"#,
        )
        .unwrap();
        assert_eq!(c.templates["greet"].messages.len(), 1);
        assert_eq!(c.templates["greet"].version, "1");
    }

    #[test]
    fn bad_role_names_the_field() {
        let err = parse_config::<PromptTemplateConfig>(
            br#"{"templates":{"greet":{"messages":[{"role":"robot","content":"x"}]}}}"#,
        )
        .unwrap_err();
        assert_eq!(err.path, r#"$.templates["greet"].messages[0].role"#);
    }

    #[test]
    fn empty_template_is_refused() {
        let err = parse_config::<PromptTemplateConfig>(br#"{"templates":{"t":{"messages":[]}}}"#)
            .unwrap_err();
        assert_eq!(err.path, r#"$.templates["t"].messages"#);
    }

    fn refused(json: &str) -> String {
        parse_config::<PromptTemplateConfig>(json.as_bytes())
            .unwrap_err()
            .path
    }

    #[test]
    fn each_problem_names_its_field() {
        let t = r#""t":{"messages":[{"role":"user","content":"{{a}}"}]"#;
        assert_eq!(
            refused(&format!(
                r#"{{"templates":{{{t},"variables":{{"b":{{}}}}}}}}}}"#
            )),
            r#"$.templates["t"].variables["b"]"#
        );
        assert_eq!(
            refused(&format!(
                r#"{{"templates":{{{t},"variables":{{"a":{{"allowed":["x"],"default":"y"}}}}}}}}}}"#
            )),
            r#"$.templates["t"].variables["a"].default"#
        );
        assert_eq!(
            refused(&format!(
                r#"{{"templates":{{{t},"overridable":["temperature"]}}}}}}"#
            )),
            r#"$.templates["t"].overridable[0]"#
        );
        assert_eq!(
            refused(&format!(
                r#"{{"templates":{{{t}}}}},"rules":[{{"templates":["nope"]}}]}}"#
            )),
            "$.rules[0].templates[0]"
        );
        assert_eq!(
            refused(&format!(
                r#"{{"templates":{{{t}}}}},"endpoints":[{{"path":"/apis/x","template":"nope"}}]}}"#
            )),
            "$.endpoints[0].template"
        );
        assert_eq!(
            refused(
                r#"{"rules":[{"decorate":{"prepend":[{"role":"system","content":"{{x}}"}]}}]}"#
            ),
            "$.rules[0].decorate.prepend[0]"
        );
        assert_eq!(
            refused(r#"{"rules":[{"decorate":{"system":"drop"}}]}"#),
            "$.rules[0].decorate.system"
        );
        assert_eq!(refused(r#"{"untemplated":"maybe"}"#), "$.untemplated");
        assert_eq!(
            refused(&format!(
                r#"{{"templates":{{{t}}}}},"endpoints":[{{"path":"/apis/x","template":"t","answer":"xml"}}]}}"#
            )),
            "$.endpoints[0].answer"
        );
        assert_eq!(
            refused(&format!(
                r#"{{"templates":{{{t}}}}},"endpoints":[{{"path":"/apis/x","template":"t"}}]}}"#
            )),
            "$.endpoints[0].template"
        );
    }
}
