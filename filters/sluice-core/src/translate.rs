//! Dialect translation, both ways: an OpenAI chat request served by an Anthropic Messages
//! provider and its answer back in OpenAI's terms; an Anthropic Messages request served by an
//! OpenAI-style provider and its answer back in Anthropic's terms. Answers are translated whole
//! (JSON) or event by event as they arrive (SSE).

// `serde_json::Value` indexing never panics (missing keys and wrong types give `Value::Null`);
// no slice is indexed here.
#![allow(clippy::indexing_slicing)]

use serde_json::{json, Map, Value};

use crate::sse::{SseEvent, SseParser};
use crate::ApiError;

/// What the answer translation needs to know about the request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFacts {
    /// The model name the caller used (answers carry it back).
    pub model: String,
    pub stream: bool,
    /// `stream_options.include_usage`: end the stream with a usage chunk.
    pub include_usage: bool,
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// An OpenAI `image_url` part as an Anthropic image block.
fn image_block(url: &str) -> Value {
    if let Some(rest) = url.strip_prefix("data:") {
        if let Some((meta, data)) = rest.split_once(',') {
            let media_type = meta.trim_end_matches(";base64");
            return json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}});
        }
    }
    json!({"type": "image", "source": {"type": "url", "url": url}})
}

/// OpenAI message content as Anthropic content blocks.
fn blocks_of(content: &Value) -> Vec<Value> {
    match content {
        Value::String(s) if !s.is_empty() => vec![json!({"type": "text", "text": s})],
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| match p["type"].as_str() {
                Some("text") => Some(json!({"type": "text", "text": p["text"]})),
                Some("image_url") => p["image_url"]["url"].as_str().map(image_block),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Appends `block` to the last message if it has `role`, else starts a message (Anthropic wants
/// user and assistant turns to alternate, and tool results inside a user turn).
fn push_block(messages: &mut Vec<Value>, role: &str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    if let Some(last) = messages.last_mut() {
        if last["role"] == role {
            if let Some(content) = last["content"].as_array_mut() {
                content.extend(blocks);
                return;
            }
        }
    }
    messages.push(json!({"role": role, "content": blocks}));
}

/// Translates an OpenAI chat request body into an Anthropic Messages body for `upstream_model`.
/// `default_max_tokens` is used when the caller set no limit (Anthropic requires one).
pub fn chat_to_messages(
    body: &[u8],
    upstream_model: &str,
    default_max_tokens: u64,
) -> Result<(Vec<u8>, RequestFacts), ApiError> {
    let req: Value = crate::body::parse(body)?;
    let Some(input) = req["messages"].as_array() else {
        return Err(ApiError::invalid_request("`messages` must be an array").with_param("messages"));
    };
    let mut system = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    for m in input {
        match m["role"].as_str().unwrap_or_default() {
            "system" | "developer" => system.push(text_of(&m["content"])),
            "user" => push_block(&mut messages, "user", blocks_of(&m["content"])),
            "assistant" => {
                let mut blocks = blocks_of(&m["content"]);
                for call in m["tool_calls"].as_array().into_iter().flatten() {
                    let args = call["function"]["arguments"].as_str().unwrap_or("{}");
                    let input: Value = serde_json::from_str(args).unwrap_or_else(|_| json!({}));
                    blocks.push(json!({"type": "tool_use", "id": call["id"],
                                       "name": call["function"]["name"], "input": input}));
                }
                push_block(&mut messages, "assistant", blocks);
            }
            "tool" => push_block(
                &mut messages,
                "user",
                vec![
                    json!({"type": "tool_result", "tool_use_id": m["tool_call_id"],
                            "content": text_of(&m["content"])}),
                ],
            ),
            other => {
                return Err(
                    ApiError::invalid_request(format!("unknown message role `{other}`"))
                        .with_param("messages"),
                )
            }
        }
    }
    let max_tokens = req["max_completion_tokens"]
        .as_u64()
        .or(req["max_tokens"].as_u64())
        .unwrap_or(default_max_tokens);
    let mut out = Map::new();
    out.insert("model".into(), json!(upstream_model));
    out.insert("max_tokens".into(), json!(max_tokens));
    if !system.is_empty() {
        out.insert("system".into(), json!(system.join("\n\n")));
    }
    out.insert("messages".into(), Value::Array(messages));
    if let Some(t) = req["temperature"].as_f64() {
        out.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
    }
    if let Some(p) = req["top_p"].as_f64() {
        out.insert("top_p".into(), json!(p));
    }
    match &req["stop"] {
        Value::String(s) => {
            out.insert("stop_sequences".into(), json!([s]));
        }
        Value::Array(a) if !a.is_empty() => {
            out.insert("stop_sequences".into(), Value::Array(a.clone()));
        }
        _ => {}
    }
    if let Some(tools) = req["tools"].as_array().filter(|t| !t.is_empty()) {
        let tools: Vec<Value> = tools
            .iter()
            .filter(|t| t["type"] == "function")
            .map(|t| {
                let f = &t["function"];
                let mut tool = json!({"name": f["name"], "input_schema":
                    if f["parameters"].is_object() { f["parameters"].clone() } else { json!({"type": "object"}) }});
                if let Some(d) = f["description"].as_str() {
                    tool["description"] = json!(d);
                }
                tool
            })
            .collect();
        out.insert("tools".into(), Value::Array(tools));
        let choice = match &req["tool_choice"] {
            Value::String(s) if s == "required" => Some(json!({"type": "any"})),
            Value::String(s) if s == "none" => Some(json!({"type": "none"})),
            Value::String(s) if s == "auto" => Some(json!({"type": "auto"})),
            Value::Object(o) => o
                .get("function")
                .and_then(|f| f["name"].as_str())
                .map(|n| json!({"type": "tool", "name": n})),
            _ => None,
        };
        if let Some(c) = choice {
            out.insert("tool_choice".into(), c);
        }
    }
    if let Some(user) = req["user"].as_str() {
        out.insert("metadata".into(), json!({"user_id": user}));
    }
    let stream = req["stream"].as_bool() == Some(true);
    if stream {
        out.insert("stream".into(), json!(true));
    }
    let facts = RequestFacts {
        model: req["model"].as_str().unwrap_or(upstream_model).to_owned(),
        stream,
        include_usage: req["stream_options"]["include_usage"].as_bool() == Some(true),
    };
    let bytes = serde_json::to_vec(&Value::Object(out))
        .map_err(|e| ApiError::malformed_json(&e.to_string()))?;
    Ok((bytes, facts))
}

fn finish_reason(stop: &str) -> &'static str {
    match stop {
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

fn openai_usage(usage: &Value) -> Value {
    let input = usage["input_tokens"].as_u64().unwrap_or(0);
    let cache_read = usage["cache_read_input_tokens"].as_u64().unwrap_or(0);
    let cache_write = usage["cache_creation_input_tokens"].as_u64().unwrap_or(0);
    let prompt = input + cache_read + cache_write;
    let completion = usage["output_tokens"].as_u64().unwrap_or(0);
    json!({"prompt_tokens": prompt, "completion_tokens": completion,
           "total_tokens": prompt + completion,
           "prompt_tokens_details": {"cached_tokens": cache_read}})
}

fn chat_id(anthropic_id: &Value) -> String {
    format!("chatcmpl-{}", anthropic_id.as_str().unwrap_or("sluice"))
}

/// Translates an Anthropic Messages answer (JSON) into an OpenAI `chat.completion`.
pub fn message_to_chat(body: &[u8], facts: &RequestFacts, created: u64) -> Option<Vec<u8>> {
    let msg: Value = serde_json::from_slice(body).ok()?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in msg["content"].as_array().into_iter().flatten() {
        match block["type"].as_str() {
            Some("text") => text.push_str(block["text"].as_str().unwrap_or_default()),
            Some("tool_use") => tool_calls.push(json!({"id": block["id"], "type": "function",
                "function": {"name": block["name"], "arguments": block["input"].to_string()}})),
            _ => {}
        }
    }
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && !tool_calls.is_empty() { Value::Null } else { json!(text) }});
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    let out = json!({
        "id": chat_id(&msg["id"]), "object": "chat.completion", "created": created,
        "model": facts.model,
        "choices": [{"index": 0, "message": message,
                     "finish_reason": finish_reason(msg["stop_reason"].as_str().unwrap_or("end_turn")),
                     "logprobs": null}],
        "usage": openai_usage(&msg["usage"]),
    });
    serde_json::to_vec(&out).ok()
}

/// Translates an Anthropic error body into OpenAI's shape (status kept by the caller).
pub fn error_to_openai(body: &[u8]) -> Option<Vec<u8>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let err = &v["error"];
    let kind = err["type"].as_str()?;
    serde_json::to_vec(&openai_error(kind, &err["message"])).ok()
}

/// What the OpenAI SDK's callers look for in an error, for an Anthropic error `type`: OpenAI's
/// own `type` and `code` for the same failure (e.g. a 429 is `"type": "requests", "code":
/// "rate_limit_exceeded"`), never Anthropic's names in OpenAI's fields.
pub fn openai_error_names(anthropic_type: &str) -> (&'static str, Option<&'static str>) {
    match anthropic_type {
        "invalid_request_error" => ("invalid_request_error", None),
        "authentication_error" => ("invalid_request_error", Some("invalid_api_key")),
        "permission_error" => ("invalid_request_error", Some("permission_denied")),
        "not_found_error" => ("invalid_request_error", Some("not_found")),
        "request_too_large" => ("invalid_request_error", Some("request_too_large")),
        "rate_limit_error" => ("requests", Some("rate_limit_exceeded")),
        "billing_error" => ("insufficient_quota", Some("insufficient_quota")),
        "timeout_error" => ("server_error", Some("timeout")),
        "overloaded_error" => ("server_error", Some("server_overloaded")),
        _ => ("server_error", None),
    }
}

fn openai_error(anthropic_type: &str, message: &Value) -> Value {
    let (kind, code) = openai_error_names(anthropic_type);
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

/// An answer stream translated as it arrives: feed it the upstream bytes in any chunks, send
/// what it returns in their place (maybe nothing, while an event is incomplete).
pub trait StreamTranslator {
    /// Upstream bytes in; the caller-dialect bytes to send in their place.
    fn feed(&mut self, chunk: &[u8]) -> Vec<u8>;
    /// At end of stream: anything left, and a proper ending if the upstream never sent one.
    fn finish(&mut self) -> Vec<u8>;
}

/// What a translator does per event; [`StreamTranslator`] is built on it.
trait EventTranslator {
    fn parser(&mut self) -> &mut SseParser;
    fn event(&mut self, ev: &SseEvent, out: &mut Vec<u8>);
    fn ended(&self) -> bool;
    fn end(&mut self, out: &mut Vec<u8>);
}

impl<T: EventTranslator> StreamTranslator for T {
    fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for ev in self.parser().feed(chunk) {
            self.event(&ev, &mut out);
        }
        out
    }

    fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(ev) = self.parser().finish() {
            self.event(&ev, &mut out);
        }
        if !self.ended() {
            self.end(&mut out);
        }
        out
    }
}

/// Turns an Anthropic SSE stream into OpenAI `chat.completion.chunk` events as it arrives.
pub struct MessagesToChatStream {
    facts: RequestFacts,
    created: u64,
    parser: SseParser,
    id: String,
    usage: Value,
    /// Anthropic content-block index → OpenAI tool-call index, for tool_use blocks.
    tool_index: Vec<(u64, u64)>,
    done: bool,
}

impl EventTranslator for MessagesToChatStream {
    fn parser(&mut self) -> &mut SseParser {
        &mut self.parser
    }

    fn event(&mut self, ev: &SseEvent, out: &mut Vec<u8>) {
        self.on_event(ev, out);
    }

    fn ended(&self) -> bool {
        self.done
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        self.on_end(out);
    }
}

impl MessagesToChatStream {
    pub fn new(facts: RequestFacts, created: u64) -> Self {
        MessagesToChatStream {
            facts,
            created,
            parser: SseParser::new(),
            id: "chatcmpl-sluice".to_owned(),
            usage: json!({}),
            tool_index: Vec::new(),
            done: false,
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Vec<u8> {
        let mut v = json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                           "model": self.facts.model,
                           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        if self.facts.include_usage {
            v["usage"] = Value::Null;
        }
        SseEvent::new(None, &v.to_string()).raw
    }

    fn on_end(&mut self, out: &mut Vec<u8>) {
        if self.facts.include_usage {
            let v = json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                           "model": self.facts.model, "choices": [], "usage": openai_usage(&self.usage)});
            out.extend(SseEvent::new(None, &v.to_string()).raw);
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        self.done = true;
    }

    fn on_event(&mut self, ev: &SseEvent, out: &mut Vec<u8>) {
        let Some(data) = ev.data.as_deref() else {
            return;
        };
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return;
        };
        match v["type"].as_str().unwrap_or_default() {
            "message_start" => {
                self.id = chat_id(&v["message"]["id"]);
                self.usage = v["message"]["usage"].clone();
                out.extend(self.chunk(json!({"role": "assistant", "content": ""}), None));
            }
            "content_block_start" if v["content_block"]["type"] == "tool_use" => {
                let index = self.tool_index.len() as u64;
                self.tool_index
                    .push((v["index"].as_u64().unwrap_or(0), index));
                let block = &v["content_block"];
                out.extend(self.chunk(
                    json!({"tool_calls": [{"index": index, "id": block["id"], "type": "function",
                                           "function": {"name": block["name"], "arguments": ""}}]}),
                    None,
                ));
            }
            "content_block_delta" => {
                let delta = &v["delta"];
                if let Some(text) = delta["text"].as_str() {
                    out.extend(self.chunk(json!({"content": text}), None));
                } else if let Some(part) = delta["partial_json"].as_str() {
                    let block = v["index"].as_u64().unwrap_or(0);
                    let index = self
                        .tool_index
                        .iter()
                        .find(|(b, _)| *b == block)
                        .map_or(0, |(_, i)| *i);
                    out.extend(self.chunk(
                        json!({"tool_calls": [{"index": index, "function": {"arguments": part}}]}),
                        None,
                    ));
                }
            }
            "message_delta" => {
                if let Some(n) = v["usage"]["output_tokens"].as_u64() {
                    self.usage["output_tokens"] = json!(n);
                }
                let stop = v["delta"]["stop_reason"].as_str().unwrap_or("end_turn");
                out.extend(self.chunk(json!({}), Some(finish_reason(stop))));
            }
            "message_stop" => self.on_end(out),
            "error" => {
                let kind = v["error"]["type"].as_str().unwrap_or("api_error");
                let body = openai_error(kind, &v["error"]["message"]);
                out.extend(SseEvent::new(None, &body.to_string()).raw);
            }
            _ => {} // ping, content_block_stop, text block starts: nothing to say
        }
    }
}

// ---- Anthropic caller, OpenAI-style provider ----

fn openai_stop(reason: &str) -> &'static str {
    match reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// Anthropic content (string or blocks) as OpenAI messages of `role`: text and images in one
/// message, each `tool_result` as its own `tool` message, `tool_use` as the message's tool calls.
fn openai_messages_of(role: &str, content: &Value, out: &mut Vec<Value>) {
    let blocks = match content {
        Value::String(s) => {
            out.push(json!({"role": role, "content": s}));
            return;
        }
        Value::Array(b) => b,
        _ => return,
    };
    let mut parts = Vec::new();
    let mut tool_calls = Vec::new();
    for b in blocks {
        match b["type"].as_str() {
            Some("text") => parts.push(json!({"type": "text", "text": b["text"]})),
            Some("image") => {
                let src = &b["source"];
                let url = match src["type"].as_str() {
                    Some("base64") => format!(
                        "data:{};base64,{}",
                        src["media_type"].as_str().unwrap_or("image/png"),
                        src["data"].as_str().unwrap_or_default()
                    ),
                    _ => src["url"].as_str().unwrap_or_default().to_owned(),
                };
                parts.push(json!({"type": "image_url", "image_url": {"url": url}}));
            }
            Some("tool_use") => tool_calls.push(json!({"id": b["id"], "type": "function",
                "function": {"name": b["name"], "arguments": b["input"].to_string()}})),
            Some("tool_result") => out
                .push(json!({"role": "tool", "tool_call_id": b["tool_use_id"],
                                                   "content": text_of(&b["content"])})),
            _ => {}
        }
    }
    if parts.is_empty() && tool_calls.is_empty() {
        return;
    }
    let only_text = parts.iter().all(|p| p["type"] == "text");
    let content = if parts.is_empty() {
        Value::Null
    } else if only_text {
        json!(parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""))
    } else {
        Value::Array(parts)
    };
    let mut m = json!({"role": role, "content": content});
    if !tool_calls.is_empty() {
        m["tool_calls"] = Value::Array(tool_calls);
    }
    out.push(m);
}

/// Translates an Anthropic Messages request body into an OpenAI chat request for
/// `upstream_model`.
pub fn messages_to_chat(
    body: &[u8],
    upstream_model: &str,
) -> Result<(Vec<u8>, RequestFacts), ApiError> {
    let req: Value = crate::body::parse(body)?;
    let Some(input) = req["messages"].as_array() else {
        return Err(ApiError::invalid_request("messages: Field required").with_param("messages"));
    };
    let mut messages = Vec::new();
    let system = text_of(&req["system"]);
    if !system.is_empty() {
        messages.push(json!({"role": "system", "content": system}));
    }
    for m in input {
        let role = m["role"].as_str().unwrap_or("user");
        if role != "user" && role != "assistant" {
            return Err(
                ApiError::invalid_request(format!("unknown message role `{role}`"))
                    .with_param("messages"),
            );
        }
        openai_messages_of(role, &m["content"], &mut messages);
    }
    let mut out = Map::new();
    out.insert("model".into(), json!(upstream_model));
    out.insert("messages".into(), Value::Array(messages));
    if let Some(n) = req["max_tokens"].as_u64() {
        out.insert("max_tokens".into(), json!(n));
    }
    for key in ["temperature", "top_p"] {
        if let Some(v) = req[key].as_f64() {
            out.insert(key.into(), json!(v));
        }
    }
    if let Some(stops) = req["stop_sequences"].as_array().filter(|s| !s.is_empty()) {
        out.insert("stop".into(), Value::Array(stops.clone()));
    }
    if let Some(tools) = req["tools"].as_array().filter(|t| !t.is_empty()) {
        let tools: Vec<Value> = tools
            .iter()
            .map(|t| {
                let mut f = json!({"name": t["name"], "parameters": t["input_schema"]});
                if let Some(d) = t["description"].as_str() {
                    f["description"] = json!(d);
                }
                json!({"type": "function", "function": f})
            })
            .collect();
        out.insert("tools".into(), Value::Array(tools));
        let choice = match req["tool_choice"]["type"].as_str() {
            Some("any") => Some(json!("required")),
            Some("none") => Some(json!("none")),
            Some("auto") => Some(json!("auto")),
            Some("tool") => {
                Some(json!({"type": "function", "function": {"name": req["tool_choice"]["name"]}}))
            }
            _ => None,
        };
        if let Some(c) = choice {
            out.insert("tool_choice".into(), c);
        }
    }
    if let Some(user) = req["metadata"]["user_id"].as_str() {
        out.insert("user".into(), json!(user));
    }
    let stream = req["stream"].as_bool() == Some(true);
    if stream {
        out.insert("stream".into(), json!(true));
        // Anthropic streams end with usage: ask the OpenAI side for it.
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    let facts = RequestFacts {
        model: req["model"].as_str().unwrap_or(upstream_model).to_owned(),
        stream,
        include_usage: stream,
    };
    let bytes = serde_json::to_vec(&Value::Object(out))
        .map_err(|e| ApiError::malformed_json(&e.to_string()))?;
    Ok((bytes, facts))
}

fn anthropic_usage(usage: &Value) -> Value {
    let prompt = usage["prompt_tokens"].as_u64().unwrap_or(0);
    let cached = usage["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap_or(0);
    json!({"input_tokens": prompt.saturating_sub(cached),
           "cache_read_input_tokens": cached,
           "output_tokens": usage["completion_tokens"].as_u64().unwrap_or(0)})
}

fn message_id(openai_id: &Value) -> String {
    format!("msg_{}", openai_id.as_str().unwrap_or("sluice"))
}

/// Translates an OpenAI `chat.completion` into an Anthropic Messages answer.
pub fn chat_to_message(body: &[u8], facts: &RequestFacts) -> Option<Vec<u8>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let choice = &v["choices"][0];
    let message = &choice["message"];
    let mut content = Vec::new();
    if let Some(text) = message["content"].as_str().filter(|t| !t.is_empty()) {
        content.push(json!({"type": "text", "text": text}));
    }
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        let args = call["function"]["arguments"].as_str().unwrap_or("{}");
        let input: Value = serde_json::from_str(args).unwrap_or_else(|_| json!({}));
        content.push(json!({"type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": input}));
    }
    let out = json!({
        "id": message_id(&v["id"]), "type": "message", "role": "assistant", "model": facts.model,
        "content": content,
        "stop_reason": openai_stop(choice["finish_reason"].as_str().unwrap_or("stop")),
        "stop_sequence": null,
        "usage": anthropic_usage(&v["usage"]),
    });
    serde_json::to_vec(&out).ok()
}

/// Translates an OpenAI error body into Anthropic's shape (status kept by the caller).
pub fn error_to_anthropic(body: &[u8], status: u16) -> Option<Vec<u8>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let message = v["error"]["message"].as_str()?;
    let kind = match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    };
    serde_json::to_vec(&json!({"type": "error", "error": {"type": kind, "message": message}})).ok()
}

/// Turns an OpenAI chunk stream into Anthropic Messages events as it arrives.
pub struct ChatToMessagesStream {
    facts: RequestFacts,
    parser: SseParser,
    started: bool,
    /// The Anthropic content block open now: its index and whether it is text.
    open: Option<(u64, bool)>,
    next_block: u64,
    /// OpenAI tool-call index → Anthropic block index.
    tools: Vec<(u64, u64)>,
    stop_reason: &'static str,
    usage: Value,
    done: bool,
}

impl EventTranslator for ChatToMessagesStream {
    fn parser(&mut self) -> &mut SseParser {
        &mut self.parser
    }

    fn event(&mut self, ev: &SseEvent, out: &mut Vec<u8>) {
        self.on_event(ev, out);
    }

    fn ended(&self) -> bool {
        self.done
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        self.on_end(out);
    }
}

impl ChatToMessagesStream {
    pub fn new(facts: RequestFacts) -> Self {
        ChatToMessagesStream {
            facts,
            parser: SseParser::new(),
            started: false,
            open: None,
            next_block: 0,
            tools: Vec::new(),
            stop_reason: "end_turn",
            usage: json!({}),
            done: false,
        }
    }

    fn emit(out: &mut Vec<u8>, name: &str, data: &Value) {
        out.extend(SseEvent::new(Some(name), &data.to_string()).raw);
    }

    fn close_block(&mut self, out: &mut Vec<u8>) {
        if let Some((index, _)) = self.open.take() {
            Self::emit(
                out,
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            );
        }
    }

    fn start(&mut self, id: &Value, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        Self::emit(
            out,
            "message_start",
            &json!({"type": "message_start", "message": {
            "id": message_id(id), "type": "message", "role": "assistant", "model": self.facts.model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0}}}),
        );
    }

    fn on_end(&mut self, out: &mut Vec<u8>) {
        self.start(&Value::Null, out);
        self.close_block(out);
        Self::emit(
            out,
            "message_delta",
            &json!({"type": "message_delta",
            "delta": {"stop_reason": self.stop_reason, "stop_sequence": null},
            "usage": anthropic_usage(&self.usage)}),
        );
        Self::emit(out, "message_stop", &json!({"type": "message_stop"}));
        self.done = true;
    }

    fn on_event(&mut self, ev: &SseEvent, out: &mut Vec<u8>) {
        let Some(data) = ev.data.as_deref() else {
            return;
        };
        if ev.is_done_marker() {
            if !self.done {
                self.on_end(out);
            }
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return;
        };
        if v["error"].is_object() {
            Self::emit(
                out,
                "error",
                &json!({"type": "error", "error": {"type": "api_error",
                                                                        "message": v["error"]["message"]}}),
            );
            return;
        }
        self.start(&v["id"], out);
        if v["usage"].is_object() {
            self.usage = v["usage"].clone();
        }
        for choice in v["choices"].as_array().into_iter().flatten() {
            let delta = &choice["delta"];
            if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
                if !matches!(self.open, Some((_, true))) {
                    self.close_block(out);
                    let index = self.next_block;
                    self.next_block += 1;
                    self.open = Some((index, true));
                    Self::emit(
                        out,
                        "content_block_start",
                        &json!({"type": "content_block_start",
                        "index": index, "content_block": {"type": "text", "text": ""}}),
                    );
                }
                let index = self.open.map_or(0, |(i, _)| i);
                Self::emit(
                    out,
                    "content_block_delta",
                    &json!({"type": "content_block_delta",
                    "index": index, "delta": {"type": "text_delta", "text": text}}),
                );
            }
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                let tool = call["index"].as_u64().unwrap_or(0);
                let block = match self.tools.iter().find(|(t, _)| *t == tool) {
                    Some((_, b)) => *b,
                    None => {
                        self.close_block(out);
                        let index = self.next_block;
                        self.next_block += 1;
                        self.tools.push((tool, index));
                        self.open = Some((index, false));
                        Self::emit(
                            out,
                            "content_block_start",
                            &json!({"type": "content_block_start",
                            "index": index, "content_block": {"type": "tool_use", "id": call["id"],
                            "name": call["function"]["name"], "input": {}}}),
                        );
                        index
                    }
                };
                if let Some(args) = call["function"]["arguments"]
                    .as_str()
                    .filter(|a| !a.is_empty())
                {
                    Self::emit(
                        out,
                        "content_block_delta",
                        &json!({"type": "content_block_delta",
                        "index": block, "delta": {"type": "input_json_delta", "partial_json": args}}),
                    );
                }
            }
            if let Some(reason) = choice["finish_reason"].as_str() {
                self.stop_reason = openai_stop(reason);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn chat_request_becomes_a_messages_request() {
        let body = json!({
            "model": "claude", "temperature": 1.5, "stop": "END", "max_tokens": 77,
            "stream": true, "stream_options": {"include_usage": true}, "user": "u1",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "developer", "content": [{"type": "text", "text": "really"}]},
                {"role": "user", "content": [{"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                    "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "42"},
                {"role": "user", "content": "and?"}
            ],
            "tools": [{"type": "function", "function": {"name": "f", "description": "d",
                       "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}}],
            "tool_choice": "required"
        });
        let (out, facts) =
            chat_to_messages(body.to_string().as_bytes(), "claude-up", 1024).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            facts,
            RequestFacts {
                model: "claude".into(),
                stream: true,
                include_usage: true
            }
        );
        assert_eq!(v["model"], "claude-up");
        assert_eq!(v["max_tokens"], 77);
        assert_eq!(v["system"], "be brief\n\nreally");
        assert_eq!(v["temperature"], 1.0);
        assert_eq!(v["stop_sequences"], json!(["END"]));
        assert_eq!(v["metadata"]["user_id"], "u1");
        assert_eq!(v["tool_choice"], json!({"type": "any"}));
        assert_eq!(
            v["tools"][0]["input_schema"]["properties"]["a"]["type"],
            "integer"
        );
        let msgs = v["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 3, "{msgs:?}");
        assert_eq!(msgs[0]["content"][1]["source"]["media_type"], "image/png");
        assert_eq!(msgs[1]["content"][0]["type"], "tool_use");
        assert_eq!(msgs[1]["content"][0]["input"]["a"], 1);
        // The tool result and the next user text share one user turn.
        assert_eq!(msgs[2]["content"][0]["type"], "tool_result");
        assert_eq!(msgs[2]["content"][1]["text"], "and?");
    }

    #[test]
    fn defaults_and_bad_input() {
        let (out, _) = chat_to_messages(
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
            "m",
            4096,
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["max_tokens"], 4096);
        assert!(v.get("stream").is_none());
        assert_eq!(chat_to_messages(b"{", "m", 1).unwrap_err().status(), 400);
        assert_eq!(
            chat_to_messages(br#"{"messages":[{"role":"wizard","content":"x"}]}"#, "m", 1)
                .unwrap_err()
                .status(),
            400
        );
    }

    fn facts(include_usage: bool) -> RequestFacts {
        RequestFacts {
            model: "claude-alias".into(),
            stream: true,
            include_usage,
        }
    }

    #[test]
    fn message_answer_becomes_a_chat_completion() {
        let body = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "x",
            "content": [{"type": "text", "text": "hello"},
                        {"type": "tool_use", "id": "tu_1", "name": "f", "input": {"a": 1}}],
            "stop_reason": "tool_use", "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 2}});
        let out = message_to_chat(body.to_string().as_bytes(), &facts(false), 7).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["model"], "claude-alias");
        assert_eq!(v["choices"][0]["message"]["content"], "hello");
        assert_eq!(
            v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            "{\"a\":1}"
        );
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            v["usage"],
            json!({"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17,
                                      "prompt_tokens_details": {"cached_tokens": 2}})
        );
    }

    #[test]
    fn anthropic_errors_become_openai_errors() {
        let out = error_to_openai(
            br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow"}}"#,
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["error"]["type"], "requests");
        assert_eq!(v["error"]["code"], "rate_limit_exceeded");
        assert_eq!(v["error"]["message"], "slow");
        for (anthropic, code) in [
            ("authentication_error", json!("invalid_api_key")),
            ("overloaded_error", json!("server_overloaded")),
            ("invalid_request_error", Value::Null),
        ] {
            let body = json!({"type": "error", "error": {"type": anthropic, "message": "m"}});
            let out = error_to_openai(body.to_string().as_bytes()).unwrap();
            let v: Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(v["error"]["code"], code, "{anthropic}");
            if anthropic != "invalid_request_error" {
                assert_ne!(v["error"]["type"], anthropic);
            }
        }
    }

    const STREAM: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_9\",\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: ping\ndata: {\"type\":\"ping\"}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"héllo \"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"🦀\"}}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"tu\",\"name\":\"f\",\"input\":{}}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\":\"}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"1}\"}}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":7}}\n\n\
event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

    fn payloads(bytes: &[u8]) -> Vec<String> {
        let mut p = SseParser::new();
        p.feed(bytes).into_iter().filter_map(|e| e.data).collect()
    }

    #[test]
    fn stream_translates_event_by_event_at_any_split() {
        let whole = {
            let mut t = MessagesToChatStream::new(facts(true), 5);
            let mut out = t.feed(STREAM.as_bytes());
            out.extend(t.finish());
            out
        };
        let data = payloads(&whole);
        assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
        let chunks: Vec<Value> = data[..data.len() - 1]
            .iter()
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "héllo 🦀");
        let args: String = chunks
            .iter()
            .filter_map(|c| {
                c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
            })
            .collect();
        assert_eq!(args, "{\"a\":1}");
        assert!(chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));
        let usage = &chunks.last().unwrap()["usage"];
        assert_eq!(
            (
                usage["prompt_tokens"].as_u64(),
                usage["completion_tokens"].as_u64()
            ),
            (Some(12), Some(7))
        );
        assert!(chunks.iter().all(|c| c["id"] == "chatcmpl-msg_9"));

        for cut in 0..STREAM.len() {
            let mut t = MessagesToChatStream::new(facts(true), 5);
            let mut out = t.feed(&STREAM.as_bytes()[..cut]);
            out.extend(t.feed(&STREAM.as_bytes()[cut..]));
            out.extend(t.finish());
            assert_eq!(out, whole, "cut at {cut}");
        }
    }

    #[test]
    fn messages_request_becomes_a_chat_request() {
        let body = json!({"model": "gpt-alias", "max_tokens": 50, "system": [{"type": "text", "text": "be brief"}],
        "stop_sequences": ["END"], "stream": true, "metadata": {"user_id": "u"},
        "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "f"},
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "text", "text": "calling"},
                {"type": "tool_use", "id": "tu", "name": "f", "input": {"a": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu", "content": "42"},
                {"type": "text", "text": "so?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "AA"}}]}
        ]});
        let (out, facts) = messages_to_chat(body.to_string().as_bytes(), "gpt-4o").unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            facts,
            RequestFacts {
                model: "gpt-alias".into(),
                stream: true,
                include_usage: true
            }
        );
        assert_eq!(v["model"], "gpt-4o");
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["stop"], json!(["END"]));
        assert_eq!(v["tool_choice"]["function"]["name"], "f");
        assert_eq!(v["user"], "u");
        let m = v["messages"].as_array().unwrap();
        assert_eq!(m[0], json!({"role": "system", "content": "be brief"}));
        assert_eq!(m[1], json!({"role": "user", "content": "hi"}));
        assert_eq!(m[2]["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
        assert_eq!(
            m[3],
            json!({"role": "tool", "tool_call_id": "tu", "content": "42"})
        );
        assert_eq!(
            m[4]["content"][1]["image_url"]["url"],
            "data:image/jpeg;base64,AA"
        );
    }

    #[test]
    fn chat_answer_becomes_a_message() {
        let body = json!({"id": "c1", "object": "chat.completion", "choices": [{"index": 0,
            "message": {"role": "assistant", "content": "hi", "tool_calls": [{"id": "t", "type": "function",
            "function": {"name": "f", "arguments": "{\"a\":1}"}}]}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13,
                      "prompt_tokens_details": {"cached_tokens": 4}}});
        let out = chat_to_message(body.to_string().as_bytes(), &facts(false)).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["content"][0]["text"], "hi");
        assert_eq!(v["content"][1]["input"]["a"], 1);
        assert_eq!(v["stop_reason"], "max_tokens");
        assert_eq!(
            v["usage"],
            json!({"input_tokens": 6, "cache_read_input_tokens": 4, "output_tokens": 3})
        );
        let err = error_to_anthropic(br#"{"error":{"message":"slow","type":"x"}}"#, 429).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&err).unwrap()["error"]["type"],
            "rate_limit_error"
        );
    }

    const CHAT_STREAM: &str = "data: {\"id\":\"c9\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n\
data: {\"id\":\"c9\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"héllo \"}}]}\n\n\
data: {\"id\":\"c9\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"🦀\"}}]}\n\n\
data: {\"id\":\"c9\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"t\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]}}]}\n\n\
data: {\"id\":\"c9\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"a\\\":1}\"}}]}}]}\n\n\
data: {\"id\":\"c9\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n\
data: {\"id\":\"c9\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":4,\"total_tokens\":13}}\n\n\
data: [DONE]\n\n";

    #[test]
    fn chat_stream_becomes_anthropic_events_at_any_split() {
        let whole = {
            let mut t = ChatToMessagesStream::new(facts(true));
            let mut out = t.feed(CHAT_STREAM.as_bytes());
            out.extend(t.finish());
            out
        };
        let events: Vec<SseEvent> = SseParser::new().feed(&whole);
        let names: Vec<&str> = events.iter().filter_map(|e| e.event.as_deref()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let delta: Value = serde_json::from_str(events[8].data.as_deref().unwrap()).unwrap();
        assert_eq!(delta["delta"]["stop_reason"], "tool_use");
        assert_eq!(delta["usage"]["output_tokens"], 4);
        let text: String = events
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(e.data.as_deref()?).ok())
            .filter_map(|v| v["delta"]["text"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(text, "héllo 🦀");
        for cut in 0..CHAT_STREAM.len() {
            let mut t = ChatToMessagesStream::new(facts(true));
            let mut out = t.feed(&CHAT_STREAM.as_bytes()[..cut]);
            out.extend(t.feed(&CHAT_STREAM.as_bytes()[cut..]));
            out.extend(t.finish());
            assert_eq!(out, whole, "cut at {cut}");
        }
    }

    #[test]
    fn a_stream_cut_short_still_ends_with_done() {
        let mut t = MessagesToChatStream::new(facts(false), 5);
        let cut = STREAM.find("event: message_delta").unwrap();
        let mut out = t.feed(&STREAM.as_bytes()[..cut]);
        out.extend(t.finish());
        assert!(out.ends_with(b"data: [DONE]\n\n"));
    }
}
