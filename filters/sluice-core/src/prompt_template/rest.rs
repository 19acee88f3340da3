//! Prompts published as REST endpoints: a plain JSON body in, a chat request out; the chat
//! answer reduced to `{"result": …, "usage": …}` on the way back.

use serde_json::{json, Map, Value};

use super::config::{AnswerMode, RestEndpoint, Template};
use super::expand::{expand, used_variables, Call, Supplied};
use super::state_value;
use crate::error::ErrorKind;
use crate::{ApiError, Dialect};

/// The chat request a REST call becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct RestRequest {
    pub body: Vec<u8>,
    /// The chat path the request goes to.
    pub path: String,
    pub answer: AnswerMode,
    /// The caller asked for a stream (`"stream": true`): the answer passes as it comes.
    pub stream: bool,
    /// `name@version`, for filter state.
    pub template: String,
}

pub fn request(
    endpoint: &RestEndpoint,
    name: &str,
    t: &Template,
    body: &[u8],
) -> Result<RestRequest, ApiError> {
    let used = used_variables(t);
    if body.iter().all(u8::is_ascii_whitespace) {
        let takes: Vec<&str> = used.iter().map(String::as_str).collect();
        return Err(ApiError::invalid_request(format!(
            "The request body is empty: {} takes a JSON object with: {}",
            endpoint.path,
            takes.join(", ")
        ))
        .with_code("missing_body"));
    }
    let mut fields: Map<String, Value> = crate::body::parse(body)?;
    let stream = match fields.remove("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => {
            return Err(
                ApiError::invalid_request("$.stream must be a boolean (true or false)")
                    .with_code("invalid_type")
                    .with_param("stream"),
            )
        }
    };
    if let Some(unknown) = fields.keys().find(|k| !used.contains(*k)) {
        let mut takes: Vec<&str> = used.iter().map(String::as_str).collect();
        takes.push("stream");
        return Err(ApiError::invalid_request(format!(
            "$.{unknown} is not a field of {} (it takes: {})",
            endpoint.path,
            takes.join(", ")
        ))
        .with_code("unknown_field")
        .with_param(unknown.as_str()));
    }
    let call = Call {
        name: name.to_owned(),
        variables: Supplied::Map("", fields),
    };
    let mut out = expand(name, t, call, Map::new(), Dialect::OpenAi)?;
    if stream {
        out.insert("stream".to_owned(), Value::Bool(true));
    }
    if endpoint.answer == AnswerMode::Json && !out.contains_key("response_format") {
        out.insert("response_format".to_owned(), json!({"type": "json_object"}));
    }
    let body = serde_json::to_vec(&out).map_err(|e| ApiError::invalid_request(e.to_string()))?;
    Ok(RestRequest {
        body,
        path: endpoint.chat_path.clone(),
        answer: endpoint.answer,
        stream,
        template: state_value(name, t),
    })
}

fn bad_gateway(message: String, code: &str) -> ApiError {
    ApiError::new(ErrorKind::BadGateway, message).with_code(code)
}

/// The text inside a Markdown code fence (```json … ```), or all of it.
fn unfenced(text: &str) -> &str {
    let t = text.trim();
    let Some(rest) = t.strip_prefix("```") else {
        return t;
    };
    let rest = rest.split_once('\n').map_or("", |(_, body)| body);
    rest.trim_end().strip_suffix("```").unwrap_or(rest).trim()
}

/// A successful chat completion (JSON) reduced to what the endpoint's mode returns.
pub fn reduce_answer(mode: AnswerMode, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    if mode == AnswerMode::Raw {
        return Ok(body.to_vec());
    }
    let answer: Value = serde_json::from_slice(body).map_err(|e| {
        bad_gateway(
            format!("The provider's answer is not JSON: {e}"),
            "invalid_upstream_answer",
        )
    })?;
    let content = answer
        .get("choices")
        .and_then(|c| c.get(0))
        .and_then(|c| c.get("message"))
        .map(|m| m.get("content").cloned().unwrap_or(Value::Null))
        .ok_or_else(|| {
            bad_gateway(
                "The provider's answer has no choices[0].message.".to_owned(),
                "invalid_upstream_answer",
            )
        })?;
    let text = match content {
        Value::String(s) => s,
        Value::Null => String::new(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        other => other.to_string(),
    };
    let usage = answer.get("usage").cloned().unwrap_or(Value::Null);
    let result = match mode {
        AnswerMode::Json => serde_json::from_str::<Value>(unfenced(&text)).map_err(|e| {
            bad_gateway(
                format!(
                    "The model's answer is not valid JSON ({e}); this endpoint returns JSON only."
                ),
                "invalid_model_json",
            )
        })?,
        _ => Value::String(text),
    };
    serde_json::to_vec(&json!({"result": result, "usage": usage}))
        .map_err(|e| bad_gateway(e.to_string(), "invalid_upstream_answer"))
}
