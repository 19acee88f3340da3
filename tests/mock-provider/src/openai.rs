//! `POST /v1/chat/completions`, `POST /v1/completions`, `POST /v1/embeddings` and
//! `POST /v1/moderations`.

use serde_json::{json, Value};
use sluice_core::openai::{ChatCompletionRequest, MessageContent};

use crate::controls::Controls;
use crate::reply::{data_event, Reply};
use crate::tokens;

pub const CREATED: u64 = 1_700_000_000;
const DEFAULT_REPLY: &str = "Hello from the Sluice mock provider.";

fn invalid(message: &str) -> Reply {
    Reply::json(
        400,
        &json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}}),
    )
}

/// A deterministic id: the same request body gives the same id.
pub fn id_for(prefix: &str, body: &[u8]) -> String {
    use std::hash::{DefaultHasher, Hasher};
    let mut h = DefaultHasher::new();
    h.write(body);
    format!("{prefix}{:016x}", h.finish())
}

/// Splits a reply into stream pieces: one word (with its trailing space) per piece.
pub fn pieces(text: &str) -> Vec<&str> {
    text.split_inclusive(' ').collect()
}

pub fn chat(body: &[u8], controls: &Controls) -> Reply {
    let req: ChatCompletionRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return invalid(&format!("mock provider: invalid chat request: {e}")),
    };
    let Some(model) = req.model.clone() else {
        return invalid("you must provide a model parameter");
    };
    let text = controls.reply.clone().unwrap_or_else(|| {
        req.messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .and_then(|m| m.content.as_ref())
            .map(MessageContent::text)
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| DEFAULT_REPLY.to_owned())
    });
    let text = controls.repeated(text);
    let (prompt_tokens, completion_tokens) = if controls.count_words {
        let words = |t: &str| t.split_whitespace().count() as u64;
        (
            req.messages.iter().map(|m| words(&m.text())).sum(),
            words(&text),
        )
    } else {
        (
            tokens::count_chat(&model, &req.messages),
            tokens::count_text(&model, &text),
        )
    };
    // Reasoning happens before the reply and counts as completion.
    let completion_tokens = completion_tokens + controls.reasoning_tokens;
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": controls.cached_tokens.min(prompt_tokens)},
        "completion_tokens_details": {"reasoning_tokens": controls.reasoning_tokens}
    });
    let id = id_for("chatcmpl-mock", body);

    if !req.is_stream() && !controls.force_stream {
        return Reply::json(
            200,
            &json!({
                "id": id, "object": "chat.completion", "created": CREATED, "model": model,
                "system_fingerprint": "fp_mock",
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": null,
                             "message": {"role": "assistant", "content": text, "refusal": null}}],
                "usage": usage
            }),
        );
    }

    let include_usage = req
        .stream_options
        .as_ref()
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    let chunk = |choices: Value, usage: Value| {
        let mut v = json!({"id": id, "object": "chat.completion.chunk", "created": CREATED,
                           "model": model, "system_fingerprint": "fp_mock", "choices": choices});
        if include_usage {
            v["usage"] = usage;
        }
        data_event(&v)
    };
    let mut events = vec![chunk(
        json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
        Value::Null,
    )];
    for piece in pieces(&text) {
        events.push(chunk(
            json!([{"index": 0, "delta": {"content": piece}, "finish_reason": null}]),
            Value::Null,
        ));
    }
    events.push(chunk(
        json!([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
        Value::Null,
    ));
    if include_usage && !controls.no_usage {
        events.push(chunk(json!([]), usage));
    }
    events.push(b"data: [DONE]\n\n".to_vec());
    Reply::Sse { events }
}

/// The prompt tokens of a legacy-completions `prompt` or an embeddings `input`: a string, an
/// array of strings, an array of token ids, or an array of those (counted as given).
fn input_tokens(model: &str, input: &Value) -> Option<u64> {
    match input {
        Value::String(s) => Some(tokens::count_text(model, s)),
        Value::Array(items) if items.iter().all(Value::is_u64) => Some(items.len() as u64),
        Value::Array(items) => items.iter().map(|i| input_tokens(model, i)).sum(),
        _ => None,
    }
}

/// `POST /v1/completions` (legacy): JSON only.
pub fn completions(body: &[u8], controls: &Controls) -> Reply {
    let req: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return invalid(&format!("mock provider: invalid completions request: {e}")),
    };
    let Some(model) = req["model"].as_str() else {
        return invalid("you must provide a model parameter");
    };
    let Some(prompt_tokens) = input_tokens(model, &req["prompt"]) else {
        return invalid("mock provider: `prompt` must be a string, tokens or an array of them");
    };
    let text = controls
        .reply
        .clone()
        .unwrap_or_else(|| DEFAULT_REPLY.to_owned());
    let completion_tokens = tokens::count_text(model, &text);
    Reply::json(
        200,
        &json!({
            "id": id_for("cmpl-mock", body), "object": "text_completion", "created": CREATED,
            "model": model,
            "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": null}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}
        }),
    )
}

/// `POST /v1/embeddings`: a short constant vector per input.
pub fn embeddings(body: &[u8]) -> Reply {
    let req: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return invalid(&format!("mock provider: invalid embeddings request: {e}")),
    };
    let Some(model) = req["model"].as_str() else {
        return invalid("you must provide a model parameter");
    };
    let input = &req["input"];
    let Some(prompt_tokens) = input_tokens(model, input) else {
        return invalid("mock provider: `input` must be a string, tokens or an array of them");
    };
    let inputs = match input {
        Value::Array(items) if !items.iter().all(Value::is_u64) => items.len(),
        _ => 1,
    };
    let data: Vec<Value> = (0..inputs)
        .map(|i| json!({"object": "embedding", "index": i, "embedding": [0.0, 0.5, -0.5, 1.0]}))
        .collect();
    Reply::json(
        200,
        &json!({"object": "list", "data": data, "model": model,
                "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}}),
    )
}

pub fn moderations(body: &[u8], controls: &Controls, default_flag_word: &str) -> Reply {
    let req: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return invalid(&format!("mock provider: invalid moderation request: {e}")),
    };
    let inputs: Vec<String> = match &req["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => s.clone(),
                other => other["text"].as_str().unwrap_or_default().to_owned(),
            })
            .collect(),
        _ => return invalid("mock provider: `input` must be a string or an array"),
    };
    let word = controls
        .flag_word
        .clone()
        .unwrap_or_else(|| default_flag_word.to_owned())
        .to_lowercase();
    let results: Vec<Value> = inputs
        .iter()
        .map(|text| {
            let flagged = !word.is_empty() && text.to_lowercase().contains(&word);
            let score = if flagged { 0.99 } else { 0.0001 };
            json!({
                "flagged": flagged,
                "categories": {"harassment": flagged, "hate": false, "self-harm": false,
                               "sexual": false, "violence": false},
                "category_scores": {"harassment": score, "hate": 0.0001, "self-harm": 0.0001,
                                    "sexual": 0.0001, "violence": 0.0001}
            })
        })
        .collect();
    Reply::json(
        200,
        &json!({"id": id_for("modr-mock", body), "model": "omni-moderation-latest", "results": results}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::SseParser;

    fn sse_payloads(reply: Reply) -> Vec<String> {
        let Reply::Sse { events } = reply else {
            panic!("expected a stream");
        };
        let mut p = SseParser::new();
        p.feed(&events.concat())
            .into_iter()
            .filter_map(|e| e.data)
            .collect()
    }

    const STREAM: &str = r#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"one two three"}]}"#;

    #[test]
    fn completions_and_embeddings_count_every_input_form() {
        let reply = |r: Reply| match r {
            Reply::Json { status, body, .. } => {
                (status, serde_json::from_slice::<Value>(&body).unwrap())
            }
            _ => panic!("expected JSON"),
        };
        let (status, v) = reply(embeddings(
            br#"{"model":"text-embedding-3-small","input":["hello world",[1,2,3],"hello world"]}"#,
        ));
        assert_eq!(status, 200);
        assert_eq!(v["usage"]["prompt_tokens"], 2 + 3 + 2);
        assert_eq!(v["data"].as_array().unwrap().len(), 3);
        let (_, v) = reply(embeddings(
            br#"{"model":"text-embedding-3-small","input":[1,2,3]}"#,
        ));
        assert_eq!(
            (
                v["usage"]["prompt_tokens"].as_u64(),
                v["data"].as_array().unwrap().len()
            ),
            (Some(3), 1)
        );
        let (status, v) = reply(completions(
            br#"{"model":"gpt-3.5-turbo-instruct","prompt":"hello world"}"#,
            &Controls::default(),
        ));
        assert_eq!(status, 200);
        assert_eq!(v["usage"]["prompt_tokens"], 2);
        assert_eq!(v["choices"][0]["text"], DEFAULT_REPLY);
        assert_eq!(reply(embeddings(br#"{"model":"m","input":{}}"#)).0, 400);
    }

    #[test]
    fn stream_echoes_text_then_usage_then_done() {
        let data = sse_payloads(chat(STREAM.as_bytes(), &Controls::default()));
        assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
        let chunks: Vec<Value> = data[..data.len() - 1]
            .iter()
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "one two three");
        let usage = &chunks.last().unwrap()["usage"];
        assert_eq!(usage["completion_tokens"], 3);
        assert_eq!(
            usage["total_tokens"].as_u64().unwrap(),
            usage["prompt_tokens"].as_u64().unwrap() + 3
        );
        assert!(chunks.last().unwrap()["choices"]
            .as_array()
            .unwrap()
            .is_empty());
    }

    #[test]
    fn no_usage_control_drops_the_usage_chunk() {
        let controls = Controls {
            no_usage: true,
            ..Controls::default()
        };
        let data = sse_payloads(chat(STREAM.as_bytes(), &controls));
        assert!(data
            .iter()
            .filter(|d| *d != "[DONE]")
            .all(|d| serde_json::from_str::<Value>(d).unwrap()["usage"].is_null()));
    }

    #[test]
    fn prompt_tokens_follow_the_chat_recipe() {
        let msgs: Vec<sluice_core::openai::ChatMessage> =
            vec![sluice_core::openai::ChatMessage::new(
                "user",
                "one two three",
            )];
        // 3 to prime the reply + 3 per message + role + content tokens.
        let expected = 3 + 3 + tokens::count_text("gpt-4o", "user") + 3;
        assert_eq!(tokens::count_chat("gpt-4o", &msgs), expected);
    }

    #[test]
    fn same_request_same_bytes() {
        let a = chat(STREAM.as_bytes(), &Controls::default());
        let b = chat(STREAM.as_bytes(), &Controls::default());
        assert_eq!(sse_payloads(a), sse_payloads(b));
    }

    #[test]
    fn missing_model_is_a_400() {
        let Reply::Json { status, .. } = chat(br#"{"messages":[]}"#, &Controls::default()) else {
            panic!("expected JSON");
        };
        assert_eq!(status, 400);
    }

    #[test]
    fn moderation_flags_the_word() {
        let Reply::Json { body, .. } = moderations(
            br#"{"input":["fine text","a FORBIDDEN text"]}"#,
            &Controls::default(),
            "forbidden",
        ) else {
            panic!("expected JSON");
        };
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["results"][0]["flagged"], false);
        assert_eq!(v["results"][1]["flagged"], true);
    }
}
