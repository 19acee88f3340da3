//! Dialect translation: an OpenAI chat request served by an Anthropic Messages provider, and its
//! answer (JSON, or SSE event by event) back in OpenAI's terms.

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
    let req: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::malformed_json(&e.to_string()))?;
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
    let openai_type = match kind {
        "rate_limit_error" => "rate_limit_exceeded",
        "api_error" | "overloaded_error" => "server_error",
        "invalid_request_error" | "not_found_error" | "request_too_large" => {
            "invalid_request_error"
        }
        other => other,
    };
    serde_json::to_vec(
        &json!({"error": {"message": err["message"], "type": openai_type,
                                          "param": null, "code": kind}}),
    )
    .ok()
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

    /// Feeds upstream bytes; returns the OpenAI bytes to send in their place (maybe empty).
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for ev in self.parser.feed(chunk) {
            self.event(&ev, &mut out);
        }
        out
    }

    /// At end of stream: anything left, and `[DONE]` if the upstream never sent `message_stop`.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(ev) = self.parser.finish() {
            self.event(&ev, &mut out);
        }
        if !self.done {
            self.end(&mut out);
        }
        out
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        if self.facts.include_usage {
            let v = json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                           "model": self.facts.model, "choices": [], "usage": openai_usage(&self.usage)});
            out.extend(SseEvent::new(None, &v.to_string()).raw);
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        self.done = true;
    }

    fn event(&mut self, ev: &SseEvent, out: &mut Vec<u8>) {
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
            "message_stop" => self.end(out),
            "error" => {
                let body = json!({"error": {"message": v["error"]["message"],
                                            "type": v["error"]["type"], "param": null, "code": null}});
                out.extend(SseEvent::new(None, &body.to_string()).raw);
            }
            _ => {} // ping, content_block_stop, text block starts: nothing to say
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
        assert_eq!(v["error"]["type"], "rate_limit_exceeded");
        assert_eq!(v["error"]["message"], "slow");
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
    fn a_stream_cut_short_still_ends_with_done() {
        let mut t = MessagesToChatStream::new(facts(false), 5);
        let cut = STREAM.find("event: message_delta").unwrap();
        let mut out = t.feed(&STREAM.as_bytes()[..cut]);
        out.extend(t.finish());
        assert!(out.ends_with(b"data: [DONE]\n\n"));
    }
}
