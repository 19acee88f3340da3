//! OpenAI chat-completions wire types.
//!
//! Tolerant by design: every struct keeps the fields it does not name in `extra`, and writes
//! them back when re-serialised, so a filter that changes one field never drops another (new
//! provider parameters keep working through the gateway). Optional fields absent on input stay
//! absent on output.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Unnamed fields, kept verbatim.
pub type Extra = Map<String, Value>;

/// `POST /v1/chat/completions` request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionRequest {
    /// Optional here so a missing model is a clear 400 from the filter, not a parse error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub messages: Vec<ChatMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl ChatCompletionRequest {
    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }

    /// The completion limit the caller asked for, newest field first.
    pub fn completion_limit(&self) -> Option<u64> {
        self.max_completion_tokens.or(self.max_tokens)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct StreamOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// One message of the conversation (any role).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    /// Absent or `null` for an assistant message that only calls tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<MessageContent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl ChatMessage {
    pub fn new(role: &str, text: &str) -> Self {
        ChatMessage {
            role: role.to_owned(),
            content: Some(MessageContent::Text(text.to_owned())),
            name: None,
            tool_calls: None,
            tool_call_id: None,
            extra: Extra::new(),
        }
    }

    /// The message's text: the string content, or its text parts joined with no separator.
    pub fn text(&self) -> String {
        self.content
            .as_ref()
            .map(MessageContent::text)
            .unwrap_or_default()
    }
}

/// A message's content: a plain string or a list of typed parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

impl MessageContent {
    pub fn text(&self) -> String {
        match self {
            MessageContent::Text(t) => t.clone(),
            MessageContent::Parts(parts) => parts
                .iter()
                .filter_map(|p| p.text.as_deref())
                .collect::<Vec<_>>()
                .concat(),
        }
    }
}

/// One part of a multi-part content: `{"type":"text","text":…}`, `{"type":"image_url",…}`, ….
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionDefinition>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionDefinition {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A tool call made by the assistant (also the shape of streamed tool-call deltas, where every
/// field may be missing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionCall>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// JSON text, possibly partial in a stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Non-streaming `chat.completion` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletion {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<Choice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub index: u32,
    pub message: ChatMessage,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Streaming `chat.completion.chunk` event payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionChunk {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChunkChoice>,
    /// Present (and `choices` empty) on the final chunk when `include_usage` was asked for;
    /// explicitly `null` on the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: Delta,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Delta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Token usage as OpenAI reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Usage {
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    pub total_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PromptTokensDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CompletionTokensDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
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
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [
                    {"type": "text", "text": "what is "},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    {"type": "text", "text": "this?"}
                ], "name": "ann"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "f", "arguments": "{\"a\":1}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "42"}
            ],
            "temperature": 0.2,
            "stream": true,
            "stream_options": {"include_usage": true},
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}, "strict": true}}],
            "future_param": {"nested": [1, 2]}
        });
        let req: ChatCompletionRequest = serde_json::from_value(input.clone()).unwrap();
        assert_eq!(req.model.as_deref(), Some("gpt-4o"));
        assert!(req.is_stream());
        assert_eq!(req.messages[1].text(), "what is this?");
        assert_eq!(req.messages[2].text(), "");
        assert_eq!(req.extra["temperature"], json!(0.2));
        let mut back = serde_json::to_value(&req).unwrap();
        // `"content": null` and an absent content mean the same; the rest must be identical.
        back["messages"][2]["content"] = Value::Null;
        assert_eq!(back, input);
    }

    #[test]
    fn request_without_model_parses() {
        let req: ChatCompletionRequest =
            serde_json::from_value(json!({"messages": [{"role": "user", "content": "hi"}]}))
                .unwrap();
        assert!(req.model.is_none());
        assert_eq!(req.completion_limit(), None);
    }

    #[test]
    fn completion_limit_prefers_max_completion_tokens() {
        let req: ChatCompletionRequest = serde_json::from_value(json!({
            "model": "m", "messages": [], "max_tokens": 10, "max_completion_tokens": 20
        }))
        .unwrap();
        assert_eq!(req.completion_limit(), Some(20));
    }

    #[test]
    fn response_and_chunk_parse_with_usage_details() {
        let resp: ChatCompletion = serde_json::from_value(json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                         "finish_reason": "stop", "logprobs": null}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6,
                      "prompt_tokens_details": {"cached_tokens": 2, "audio_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": 0}},
            "system_fingerprint": "fp"
        }))
        .unwrap();
        let usage = resp.usage.clone().unwrap();
        assert_eq!(usage.prompt_tokens_details.unwrap().cached_tokens, Some(2));
        assert_eq!(resp.extra["system_fingerprint"], "fp");

        let chunk: ChatCompletionChunk = serde_json::from_value(json!({
            "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
        }))
        .unwrap();
        assert_eq!(chunk.usage.unwrap().completion_tokens, 3);
    }

    #[test]
    fn head_reads_only_the_model() {
        use crate::body::Head;
        let model_of = |b: &[u8]| Head::of(b).map(|h| h.model);
        assert_eq!(
            model_of(br#"{"messages":[1],"model":"m"}"#)
                .unwrap()
                .as_deref(),
            Some("m")
        );
        assert_eq!(model_of(b"{}").unwrap(), None);
        assert_eq!(model_of(br#"{"model":3}"#).unwrap_err().status(), 400);
        let err = model_of(b"{not json").unwrap_err();
        assert_eq!(err.code.as_deref(), Some("invalid_json"));
        assert_eq!(model_of(b"[]").unwrap_err().status(), 400);
    }

    #[test]
    fn malformed_request_is_an_error_not_a_panic() {
        assert!(serde_json::from_slice::<ChatCompletionRequest>(b"{\"messages\": 3}").is_err());
        assert!(serde_json::from_slice::<ChatCompletionRequest>(b"\xff").is_err());
    }
}
