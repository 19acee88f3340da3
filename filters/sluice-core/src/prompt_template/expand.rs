//! A request that names a template, in any accepted form, expanded into the full request.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::config::Template;
use super::render::{placeholders_in, render_value};
use super::Variables;
use crate::{ApiError, Dialect};

/// A template named by a request, and the variables it sent.
#[derive(Debug)]
pub struct Call {
    pub name: String,
    pub variables: Supplied,
}

/// Where the variables of a call are.
#[derive(Debug)]
pub enum Supplied {
    /// In an object under this key (`variables`, `properties`, `template_variables`), or none.
    Map(&'static str, Map<String, Value>),
    /// At the top level of the body, beside `template_name` (APISIX's form).
    TopLevel,
}

pub fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("No template named {name:?} is available here."))
        .with_code("template_not_found")
        .with_param("template")
}

pub fn template_required() -> ApiError {
    ApiError::invalid_request(
        "This route takes templated requests only: name a template (`template` and `variables`).",
    )
    .with_code("template_required")
    .with_param("template")
}

fn invalid(message: String, code: &str, param: &str) -> ApiError {
    ApiError::invalid_request(message)
        .with_code(code)
        .with_param(param)
}

fn take_string(request: &mut Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match request.remove(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(
            format!("$.{key} must be a string (a template name)"),
            "invalid_type",
            key,
        )),
    }
}

fn take_map(
    request: &mut Map<String, Value>,
    key: &'static str,
) -> Result<Option<Map<String, Value>>, ApiError> {
    match request.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(invalid(
            format!("$.{key} must be a JSON object of variable values"),
            "invalid_type",
            key,
        )),
    }
}

/// Kong's reference, `{template://name}`.
pub fn kong_reference(s: &str) -> Option<&str> {
    s.trim()
        .strip_prefix("{template://")?
        .strip_suffix('}')
        .filter(|n| !n.is_empty())
}

/// The template a body names, removing the naming fields from it. The forms:
/// `{"template": name, "variables" | "properties": {...}}`;
/// `{"template_name": name, "template_variables": {...}}` or the variables beside it;
/// Kong's `"messages": "{template://name}"` (or one message with that content) with `properties`.
pub fn named_template(request: &mut Map<String, Value>) -> Result<Option<Call>, ApiError> {
    if let Some(name) = take_string(request, "template")? {
        let variables = match take_map(request, "variables")? {
            Some(m) => {
                if request.contains_key("properties") {
                    return Err(invalid(
                        "$.properties cannot be sent with $.variables: send the variables once"
                            .to_owned(),
                        "invalid_value",
                        "properties",
                    ));
                }
                Supplied::Map("variables", m)
            }
            None => Supplied::Map(
                "properties",
                take_map(request, "properties")?.unwrap_or_default(),
            ),
        };
        return Ok(Some(Call { name, variables }));
    }
    if let Some(name) = take_string(request, "template_name")? {
        let variables = match take_map(request, "template_variables")? {
            Some(m) => Supplied::Map("template_variables", m),
            None => Supplied::TopLevel,
        };
        return Ok(Some(Call { name, variables }));
    }
    let kong = match request.get("messages") {
        Some(Value::String(s)) => kong_reference(s).map(str::to_owned),
        Some(Value::Array(items)) if items.len() == 1 => items
            .first()
            .and_then(|m| m.get("content"))
            .and_then(Value::as_str)
            .and_then(kong_reference)
            .map(str::to_owned),
        _ => None,
    };
    match kong {
        Some(name) => {
            request.remove("messages");
            let m = take_map(request, "properties")?.unwrap_or_default();
            Ok(Some(Call {
                name,
                variables: Supplied::Map("properties", m),
            }))
        }
        None => Ok(None),
    }
}

/// A variable value as text: a string as it is, another JSON value as its JSON text.
fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Every variable the template's messages use.
pub fn used_variables(t: &Template) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for m in &t.messages {
        for v in m.values() {
            placeholders_in(v, &mut used);
        }
    }
    used
}

/// Checks the caller's values against the template's rules; returns every variable's value.
/// `prefix` is where the caller put them (`variables`, …; empty: top-level fields).
pub fn resolve(
    name: &str,
    t: &Template,
    supplied: &Map<String, Value>,
    prefix: &str,
) -> Result<Variables, ApiError> {
    let used = used_variables(t);
    let field = |var: &str| {
        if prefix.is_empty() {
            var.to_owned()
        } else {
            format!("{prefix}.{var}")
        }
    };
    if t.strict {
        if let Some(unknown) = supplied.keys().find(|k| !used.contains(*k)) {
            return Err(invalid(
                format!(
                    "$.{} is not a variable of template {name:?} (it takes: {})",
                    field(unknown),
                    used.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
                "unknown_variable",
                &field(unknown),
            ));
        }
    }
    let mut values = Variables::new();
    for var in used {
        let rule = t.variables.get(&var).cloned().unwrap_or_default();
        let value = match supplied.get(&var).and_then(as_text) {
            Some(v) => {
                if let Some(max) = rule.max_length {
                    let len = v.chars().count();
                    if len > max {
                        return Err(invalid(
                            format!(
                                "$.{} is {len} characters long, over its maximum of {max}",
                                field(&var)
                            ),
                            "variable_too_long",
                            &field(&var),
                        ));
                    }
                }
                if let Some(allowed) = &rule.allowed {
                    if !allowed.contains(&v) {
                        return Err(invalid(
                            format!("$.{} must be one of {allowed:?}", field(&var)),
                            "variable_not_allowed",
                            &field(&var),
                        ));
                    }
                }
                v
            }
            None => match (&rule.default, rule.is_required()) {
                (Some(d), _) => d.clone(),
                (None, true) => {
                    return Err(invalid(
                        format!("$.{} is required by template {name:?}", field(&var)),
                        "missing_variable",
                        &field(&var),
                    ))
                }
                (None, false) => String::new(),
            },
        };
        values.insert(var, value);
    }
    Ok(values)
}

fn not_overridable(field: &str, name: &str) -> ApiError {
    invalid(
        format!("$.{field} is set by template {name:?} and cannot be changed by the caller"),
        "not_overridable",
        field,
    )
}

/// The full request: the template's defaults and model, the caller's other fields, the
/// rendered messages (system messages in Anthropic's top-level `system` for that dialect).
pub fn expand(
    name: &str,
    t: &Template,
    call: Call,
    mut request: Map<String, Value>,
    dialect: Dialect,
) -> Result<Map<String, Value>, ApiError> {
    let values = match &call.variables {
        Supplied::Map(prefix, m) => resolve(name, t, m, prefix)?,
        Supplied::TopLevel => {
            let mut picked = Map::new();
            for var in used_variables(t) {
                if let Some(v) = request.remove(&var) {
                    picked.insert(var, v);
                }
            }
            resolve(name, t, &picked, "")?
        }
    };
    for held in ["messages", "system"] {
        if request.contains_key(held) {
            return Err(invalid(
                format!("$.{held} cannot be sent with a template: the template holds the prompt"),
                "invalid_value",
                held,
            ));
        }
    }
    let may = |f: &str| t.overridable.iter().any(|o| o == f);
    if t.model.is_some() && request.contains_key("model") && !may("model") {
        return Err(not_overridable("model", name));
    }
    if let Some(field) = request
        .keys()
        .find(|k| t.defaults.contains_key(*k) && !may(k))
    {
        return Err(not_overridable(field, name));
    }
    let mut out = t.defaults.clone();
    if let Some(model) = &t.model {
        out.insert("model".to_owned(), Value::String(model.clone()));
    }
    out.append(&mut request);
    let mut messages = Vec::with_capacity(t.messages.len());
    let mut system: Vec<Value> = Vec::new();
    for m in &t.messages {
        let rendered = render_value(&Value::Object(m.clone()), &values);
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        if dialect == Dialect::Anthropic && matches!(role, "system" | "developer") {
            match rendered.get("content") {
                Some(Value::String(s)) => system.push(text_block(s)),
                Some(Value::Array(parts)) => system.extend(parts.iter().cloned()),
                _ => {}
            }
        } else {
            messages.push(rendered);
        }
    }
    if !system.is_empty() {
        out.insert("system".to_owned(), Value::Array(system));
    }
    out.insert("messages".to_owned(), Value::Array(messages));
    Ok(out)
}

/// An Anthropic text block.
pub fn text_block(text: &str) -> Value {
    serde_json::json!({"type": "text", "text": text})
}
