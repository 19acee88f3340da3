//! What token-count reads of a request body: only the fields that count, borrowed from the body
//! where they need no unescaping.
//!
//! Not [`crate::openai`]'s and [`crate::anthropic`]'s wire types: those keep every unnamed field
//! (`#[serde(flatten)]`) and try each form of an untagged enum on a buffered copy, so they can be
//! written back unchanged. Counting writes nothing back; these views skip what they do not name,
//! and a content that is "a string or a list" is told apart by its first token. The module is
//! smaller for it (token-count's must stay under 2 MiB) and a request is parsed with fewer
//! copies.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use crate::ApiError;

/// Text from the body: borrowed unless it had escapes.
pub type Text<'a> = Cow<'a, str>;

/// `POST /v1/chat/completions`, as counted.
#[derive(Debug, Deserialize)]
pub struct Chat<'a> {
    #[serde(default, borrow)]
    pub model: Option<Text<'a>>,
    #[serde(borrow)]
    pub messages: Vec<Message<'a>>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
    #[serde(default, borrow)]
    pub tools: Option<Vec<Tool<'a>>>,
    /// Legacy function definitions (a list, read as `tools.rs` reads it).
    #[serde(default)]
    pub functions: Option<Value>,
    /// `auto`, `none`, `required` or a named function.
    #[serde(default)]
    pub tool_choice: Option<Value>,
    #[serde(default)]
    pub response_format: Option<Value>,
}

impl Chat<'_> {
    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }

    /// The completion limit the caller asked for, newest field first.
    pub fn completion_limit(&self) -> Option<u64> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// The `response_format`'s `type` (`text`, `json_object`, `json_schema`).
    pub fn response_format_type(&self) -> Option<&str> {
        self.response_format
            .as_ref()
            .and_then(|f| f.get("type"))
            .and_then(Value::as_str)
    }
}

/// One chat message.
#[derive(Debug, Deserialize)]
pub struct Message<'a> {
    #[serde(borrow)]
    pub role: Text<'a>,
    #[serde(default, borrow)]
    pub content: Option<Content<'a>>,
    #[serde(default, borrow)]
    pub name: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub tool_calls: Option<Vec<ToolCall<'a>>>,
    /// A tool result's call.
    #[serde(default, borrow)]
    pub tool_call_id: Option<Text<'a>>,
    /// Legacy assistant function call: only whether there is one.
    #[serde(default)]
    pub function_call: Option<IgnoredAny>,
    /// An earlier answer's audio: only whether there is one.
    #[serde(default)]
    pub audio: Option<IgnoredAny>,
}

/// A message's content: a string, or a list of typed parts.
pub type Content<'a> = Either<'a, Part<'a>>;

/// One part of a multi-part content (`text`, `image_url`, `input_audio`, `file`, …).
#[derive(Debug, Deserialize)]
pub struct Part<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Text<'a>,
    #[serde(default, borrow)]
    pub text: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub image_url: Option<ImageUrl<'a>>,
}

/// An `image_url` part's image: a `data:` or `http(s):` URL, and the detail asked for.
#[derive(Debug, Deserialize)]
pub struct ImageUrl<'a> {
    #[serde(default, borrow)]
    pub url: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub detail: Option<Text<'a>>,
}

/// A tool the model may call.
#[derive(Debug, Deserialize)]
pub struct Tool<'a> {
    #[serde(rename = "type", default, borrow)]
    pub kind: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub function: Option<Function<'a>>,
}

/// A function tool's definition.
#[derive(Debug, Deserialize)]
pub struct Function<'a> {
    #[serde(borrow)]
    pub name: Text<'a>,
    #[serde(default, borrow)]
    pub description: Option<Text<'a>>,
    #[serde(default)]
    pub parameters: Option<Value>,
}

/// A tool call in an assistant message.
#[derive(Debug, Deserialize)]
pub struct ToolCall<'a> {
    #[serde(default, borrow)]
    pub id: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub function: Option<FunctionCall<'a>>,
}

/// The function an assistant called and its arguments (JSON text).
#[derive(Debug, Deserialize)]
pub struct FunctionCall<'a> {
    #[serde(default, borrow)]
    pub name: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub arguments: Option<Text<'a>>,
}

/// `POST /v1/messages` (Anthropic), as counted.
#[derive(Debug, Deserialize)]
pub struct Messages<'a> {
    #[serde(default, borrow)]
    pub model: Option<Text<'a>>,
    #[serde(borrow)]
    pub messages: Vec<AnthropicMessage<'a>>,
    #[serde(default, borrow)]
    pub system: Option<Blocks<'a>>,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default)]
    pub stream: Option<bool>,
    /// Tool definitions, counted as their JSON text.
    #[serde(default)]
    pub tools: Option<Vec<Value>>,
}

impl Messages<'_> {
    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }
}

/// One Anthropic message.
#[derive(Debug, Deserialize)]
pub struct AnthropicMessage<'a> {
    #[serde(borrow)]
    pub content: Blocks<'a>,
}

/// Anthropic content: a string or a list of blocks.
pub type Blocks<'a> = Either<'a, Block<'a>>;

/// An Anthropic content block (`text`, `image`, `tool_use`, `tool_result`, …).
#[derive(Debug, Deserialize)]
pub struct Block<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Text<'a>,
    #[serde(default, borrow)]
    pub text: Option<Text<'a>>,
    /// `tool_use`: the arguments.
    #[serde(default)]
    pub input: Option<Value>,
    /// `tool_result`: a string or blocks.
    #[serde(default)]
    pub content: Option<Value>,
}

/// A string, or a list of `T`, told apart by the first JSON token (no buffered copy).
#[derive(Debug)]
pub enum Either<'a, T> {
    Text(Text<'a>),
    Parts(Vec<T>),
}

struct EitherVisitor<'a, T>(PhantomData<(&'a (), T)>);

impl<'de: 'a, 'a, T: Deserialize<'de>> Visitor<'de> for EitherVisitor<'a, T> {
    type Value = Either<'a, T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("one of: a string, an array of content parts")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Either::Text(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Either::Text(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Either::Text(Cow::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Either::Parts(items))
    }
}

impl<'de: 'a, 'a, T: Deserialize<'de>> Deserialize<'de> for Either<'a, T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(EitherVisitor(PhantomData))
    }
}

/// Parses a request body as `T`, refused as [`crate::body::parse`] refuses it (a code, and the
/// field at fault as a JSON path), without its path-tracking parser: that one is built anew for
/// every type it parses (about 30 KB of module for these views). The path is found again, only
/// when there is an error, from where in the body the parser stopped.
pub fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(crate::body::missing_body());
    }
    serde_json::from_slice(body).map_err(|err| {
        let at = offset(body, err.line(), err.column());
        crate::body::refusal(&path_at(body.get(..at).unwrap_or(body)), &err)
    })
}

/// The byte offset of serde_json's (1-based line, bytes into that line).
fn offset(body: &[u8], line: usize, column: usize) -> usize {
    let line_start = if line <= 1 {
        0
    } else {
        body.iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(line - 2)
            .map_or(body.len(), |(i, _)| i + 1)
    };
    line_start.saturating_add(column).min(body.len())
}

/// One open JSON container while scanning.
enum Frame {
    /// An object: its current key, once the `:` after it has been read.
    Object {
        key: Vec<u8>,
        value: bool,
    },
    Array {
        index: usize,
    },
}

/// The JSON path (`$.messages[0].role`) of the value being read where `prefix` ends: serde_json
/// stops right after a value of the wrong type, right after a duplicate key (before its `:`),
/// and right after the `}` of an object that misses a field; in each case the path of the
/// innermost open value is the one [`crate::body::refusal`] wants.
fn path_at(prefix: &[u8]) -> String {
    let mut stack: Vec<Frame> = Vec::new();
    let mut bytes = prefix.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'"' => {
                let mut text = Vec::new();
                while let Some(&c) = bytes.next() {
                    match c {
                        b'"' => break,
                        b'\\' => {
                            text.push(c);
                            if let Some(&n) = bytes.next() {
                                text.push(n);
                            }
                        }
                        _ => text.push(c),
                    }
                }
                if let Some(Frame::Object { key, value: false }) = stack.last_mut() {
                    *key = text;
                }
            }
            b'{' => stack.push(Frame::Object {
                key: Vec::new(),
                value: false,
            }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                stack.pop();
            }
            b':' => {
                if let Some(Frame::Object { value, .. }) = stack.last_mut() {
                    *value = true;
                }
            }
            b',' => match stack.last_mut() {
                Some(Frame::Object { key, value }) => {
                    key.clear();
                    *value = false;
                }
                Some(Frame::Array { index }) => *index += 1,
                None => {}
            },
            _ => {}
        }
    }
    let mut path = String::from("$");
    for frame in &stack {
        match frame {
            Frame::Object { key, value: true } => {
                path.push('.');
                path.push_str(&String::from_utf8_lossy(key));
            }
            Frame::Object { value: false, .. } => {}
            Frame::Array { index } => {
                path.push('[');
                path.push_str(&index.to_string());
                path.push(']');
            }
        }
    }
    path
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    /// The refusal without path tracking is the refusal with it, field for field.
    #[test]
    fn refusals_name_the_same_field_as_the_tracking_parser() {
        let bodies = [
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":"ten"}"#,
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":-5}"#,
            r#"{"model":"gpt-4o","messages":[{"role":7,"content":"hi"}]}"#,
            r#"{"model":"gpt-4o","messages":[{"role":{"a":[1]},"content":"hi"}]}"#,
            r#"{"model":"gpt-4o","model":"gpt-4.1","messages":[]}"#,
            r#"{"model":"gpt-4o"}"#,
            r#"{"model":"gpt-4o","messages":"x"}"#,
            r#"{"messages":[{"role":"user","content":"a"},{"content":"b"}]}"#,
            r#"{"messages":[{"role":"user","role":"user"}]}"#,
            r#"{"messages":[{"role":"user","content":5}]}"#,
            r#"{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"text":"b"}]}]}"#,
            r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":3}}]}]}"#,
            "{\"messages\":\n [{\"role\":\"us\\\"er\",\n  \"tool_calls\":[{\"function\":{\"name\":[]}}]}]}",
            r#"{"messages":[{"role":"user","content":"a"}],"tools":[{"type":"function","function":{"description":"x"}}]}"#,
            r#"{"messages":[{"role":"user","content":"a"}],"stream":"yes"}"#,
            r#"{"messages":[{"role":"user","content":"a"}],"model":null,"n":{"a":"}"},"stream":1}"#,
            r#"{"messages":[{"role":"user"}]} x"#,
            r#"{"messages":[{"role":"user"]}"#,
        ];
        for body in bodies {
            let lean = parse::<Chat>(body.as_bytes()).unwrap_err();
            let tracked = crate::body::parse::<Chat>(body.as_bytes()).unwrap_err();
            assert_eq!(lean, tracked, "{body}");
        }
        let anthropic = [
            r#"{"messages":[{"role":"user","content":[{"text":"a"}]}]}"#,
            r#"{"messages":[{"role":"user","content":"a"}],"system":[{"type":"text","text":1}]}"#,
            r#"{"max_tokens":"x","messages":[]}"#,
        ];
        for body in anthropic {
            let lean = parse::<Messages>(body.as_bytes()).unwrap_err();
            let tracked = crate::body::parse::<Messages>(body.as_bytes()).unwrap_err();
            assert_eq!(lean, tracked, "{body}");
        }
    }
}
