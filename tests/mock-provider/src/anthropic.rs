//! `POST /v1/messages`: the Anthropic Messages API, JSON and SSE.

use serde_json::json;
use sluice_core::anthropic::MessagesRequest;

use crate::controls::Controls;
use crate::openai::{id_for, pieces};
use crate::reply::{named_event, Reply};
use crate::tokens;

const DEFAULT_REPLY: &str = "Hello from the Sluice mock provider.";

fn invalid(message: &str) -> Reply {
    Reply::json(
        400,
        &json!({"type": "error", "error": {"type": "invalid_request_error", "message": message}}),
    )
}

pub fn messages(body: &[u8], controls: &Controls) -> Reply {
    let req: MessagesRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return invalid(&format!("mock provider: invalid messages request: {e}")),
    };
    let Some(model) = req.model.clone() else {
        return invalid("model: Field required");
    };
    if req.max_tokens.is_none() {
        return invalid("max_tokens: Field required");
    }
    let text = controls.reply.clone().unwrap_or_else(|| {
        req.messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .map(|m| m.content.text())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| DEFAULT_REPLY.to_owned())
    });
    let text = controls.repeated(text);
    // The mock counts with o200k_base: Anthropic's own tokenizer is not public.
    let mut prompt_text = req.system.as_ref().map(|s| s.text()).unwrap_or_default();
    for m in &req.messages {
        prompt_text.push_str(&m.content.text());
    }
    let input_tokens = tokens::count_text("o200k", &prompt_text);
    let output_tokens = tokens::count_text("o200k", &text);
    let id = id_for("msg_mock", body);

    if !req.is_stream() && !controls.force_stream {
        return Reply::json(
            200,
            &json!({
                "id": id, "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn", "stop_sequence": null,
                "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
            }),
        );
    }

    let mut events = vec![
        named_event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": input_tokens, "output_tokens": 1,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}}),
        ),
        named_event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "text", "text": ""}}),
        ),
        named_event("ping", &json!({"type": "ping"})),
    ];
    for piece in pieces(&text) {
        events.push(named_event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": piece}}),
        ));
    }
    events.push(named_event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": 0}),
    ));
    let mut delta = json!({"type": "message_delta",
                           "delta": {"stop_reason": "end_turn", "stop_sequence": null}});
    if !controls.no_usage {
        delta["usage"] = json!({"output_tokens": output_tokens});
    }
    events.push(named_event("message_delta", &delta));
    events.push(named_event(
        "message_stop",
        &json!({"type": "message_stop"}),
    ));
    Reply::Sse { events }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::SseParser;

    #[test]
    fn stream_has_the_anthropic_event_sequence() {
        let body = br#"{"model":"claude-x","max_tokens":9,"stream":true,"messages":[{"role":"user","content":"a b"}]}"#;
        let Reply::Sse { events } = messages(body, &Controls::default()) else {
            panic!("expected a stream");
        };
        let names: Vec<String> = SseParser::new()
            .feed(&events.concat())
            .into_iter()
            .filter_map(|e| e.event)
            .collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
    }

    #[test]
    fn max_tokens_is_required() {
        let Reply::Json { status, .. } = messages(
            br#"{"model":"claude-x","messages":[{"role":"user","content":"a"}]}"#,
            &Controls::default(),
        ) else {
            panic!("expected JSON");
        };
        assert_eq!(status, 400);
    }
}
