//! Anthropic Messages API wire types (`POST /v1/messages`).
//!
//! Same rules as [`crate::openai`]: unnamed fields are kept in `extra` and written back.
//! Content blocks are one struct with a `type` tag and optional fields rather than an enum, so a
//! block type this gateway has never heard of passes through untouched.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::openai::Extra;

/// `POST /v1/messages` request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagesRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<Content>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ToolDefinition>>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl MessagesRequest {
    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: Content,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A string, or a list of content blocks (messages and `system` both allow either).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Blocks(Vec<ContentBlock>),
}

impl Content {
    /// The text of the content: the string, or its `text` blocks joined with no separator.
    pub fn text(&self) -> String {
        match self {
            Content::Text(t) => t.clone(),
            Content::Blocks(blocks) => blocks
                .iter()
                .filter_map(|b| b.text.as_deref())
                .collect::<Vec<_>>()
                .concat(),
        }
    }
}

/// `text`, `image`, `tool_use`, `tool_result`, `thinking`, … Fields not used by a type are absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentBlock {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// `tool_use`: call id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `tool_use`: tool name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `tool_use`: arguments as a JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// `tool_result`: the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_use_id: Option<String>,
    /// `tool_result`: string or blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl ContentBlock {
    pub fn text(text: &str) -> Self {
        ContentBlock {
            kind: "text".to_owned(),
            text: Some(text.to_owned()),
            id: None,
            name: None,
            input: None,
            tool_use_id: None,
            content: None,
            extra: Extra::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDefinition {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Non-streaming response (`"type": "message"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagesResponse {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub role: String,
    pub content: Vec<ContentBlock>,
    pub model: String,
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub stop_sequence: Option<String>,
    pub usage: Usage,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Token usage as Anthropic reports it. In a stream, `message_start` carries the input side and
/// `message_delta` the (cumulative) output side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Usage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

/// One streaming event's payload: `message_start`, `content_block_start`,
/// `content_block_delta`, `content_block_stop`, `message_delta`, `message_stop`, `ping`, `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamEvent {
    #[serde(rename = "type")]
    pub kind: String,
    /// `message_start`: the message so far (its `usage` has the input tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<MessagesResponse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_block: Option<ContentBlock>,
    /// `content_block_delta`: `{"type":"text_delta","text"}` or `input_json_delta`;
    /// `message_delta`: `{"stop_reason","stop_sequence"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use serde_json::json;

    #[test]
    fn request_round_trip_keeps_unknown_fields() {
        let input = json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": "hello"},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "tu_1", "name": "f", "input": {"a": 1}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "tu_1", "content": "42"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
                ]}
            ],
            "stop_sequences": ["END"],
            "metadata": {"user_id": "u"},
            "thinking": {"type": "enabled", "budget_tokens": 2000}
        });
        let req: MessagesRequest = serde_json::from_value(input.clone()).unwrap();
        assert_eq!(req.system.as_ref().unwrap().text(), "be brief");
        assert_eq!(req.messages[0].content.text(), "hello");
        assert_eq!(serde_json::to_value(&req).unwrap(), input);
    }

    #[test]
    fn stream_events_parse() {
        let start: StreamEvent = serde_json::from_value(json!({
            "type": "message_start",
            "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [],
                        "model": "claude", "stop_reason": null, "stop_sequence": null,
                        "usage": {"input_tokens": 12, "output_tokens": 1}}
        }))
        .unwrap();
        assert_eq!(start.message.unwrap().usage.input_tokens, 12);
        let delta: StreamEvent = serde_json::from_value(json!({
            "type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
            "usage": {"output_tokens": 15}
        }))
        .unwrap();
        assert_eq!(delta.usage.unwrap().output_tokens, 15);
    }
}
