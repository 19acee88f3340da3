//! Request bodies as the filters read them: a JSON object, or a refusal a caller understands.
//!
//! Every refusal names the field at fault as a JSON path (`$.max_tokens`, `$.messages[0].role`)
//! in its message and in `param`, and carries a `code`: `invalid_json` (not JSON at all),
//! `missing_body` (nothing sent), `invalid_type` (a field of the wrong type),
//! `invalid_value` (right type, value not taken), `missing_required_parameter`, `duplicate_key`
//! and `empty_array`. serde's own wording (Rust type names such as `u64` or `struct
//! ChatCompletionRequest`) never reaches a caller.

use std::fmt;

use serde::de::{Error as _, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::config::{serde_path, strip_position};
use crate::endpoint::Endpoint;
use crate::ApiError;

/// Checks that `body` is one JSON value, refused as [`parse`] refuses it, and says whether it
/// asks for a streamed answer: a JSON object whose `stream` is `true` (the last `stream`, when
/// a caller repeats it, as a provider's JSON parser takes it). Nothing else is built.
pub fn check_streaming(body: &[u8]) -> Result<bool, ApiError> {
    parse::<Streaming>(body).map(|s| s.0)
}

/// Whether a JSON value asks for a streamed answer (see [`check_streaming`]).
struct Streaming(bool);

impl<'de> Deserialize<'de> for Streaming {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StreamingVisitor)
    }
}

struct StreamingVisitor;

impl<'de> Visitor<'de> for StreamingVisitor {
    type Value = Streaming;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Streaming, A::Error> {
        let mut stream = false;
        while let Some(key) = map.next_key::<Key>()? {
            if matches!(key, Key::Stream) {
                stream = map.next_value::<serde_json::Value>()? == serde_json::Value::Bool(true);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Streaming(stream))
    }

    // Any other JSON value is no request for a stream.
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Streaming, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Streaming(false))
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Streaming, E> {
        Ok(Streaming(false))
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Streaming, E> {
        Ok(Streaming(false))
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Streaming, E> {
        Ok(Streaming(false))
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Streaming, E> {
        Ok(Streaming(false))
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Streaming, E> {
        Ok(Streaming(false))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Streaming, E> {
        Ok(Streaming(false))
    }
}

/// Parses a whole request body as `T` (which may borrow from it).
pub fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(missing_body());
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = serde_path(err.path());
        refusal(&path, err.inner())
    })?;
    de.end().map_err(|err| refusal("$", &err))?;
    Ok(value)
}

/// What every filter that routes or checks a request needs of its body, read without building
/// the rest: the `model`, and how many `messages` it has (when it has the field). A duplicate
/// `model` or `messages` is refused: the gateway and the provider could each read another.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Head {
    pub model: Option<String>,
    pub messages: Option<usize>,
}

impl Head {
    /// Parses the body's top level (values other than `model` and `messages` are skipped).
    pub fn of(body: &[u8]) -> Result<Head, ApiError> {
        parse(body)
    }

    /// Refuses a chat or Messages request without a message, as OpenAI and Anthropic do.
    pub fn check_messages(&self, endpoint: Endpoint) -> Result<(), ApiError> {
        if !matches!(endpoint, Endpoint::Chat | Endpoint::AnthropicMessages) {
            return Ok(());
        }
        match self.messages {
            None => Err(refusal_of(
                "$.messages is required",
                "missing_required_parameter",
                "messages",
            )),
            Some(0) => Err(messages_empty()),
            Some(_) => Ok(()),
        }
    }
}

impl<'de> Deserialize<'de> for Head {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(HeadVisitor)
    }
}

struct HeadVisitor;

/// A top-level key, told apart without copying it.
enum Key {
    Model,
    Messages,
    Stream,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    "model" => Key::Model,
                    "messages" => Key::Messages,
                    "stream" => Key::Stream,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

impl<'de> Visitor<'de> for HeadVisitor {
    type Value = Head;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    /// Linear in the body: other keys are neither copied nor remembered. A duplicate is
    /// refused for the keys the filters read (`model`, `messages`), where the gateway and the
    /// provider could each take a different one.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Head, A::Error> {
        let mut head = Head::default();
        let (mut model_seen, mut messages_seen) = (false, false);
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Model => {
                    if std::mem::replace(&mut model_seen, true) {
                        return Err(A::Error::custom("duplicate field `model`"));
                    }
                    head.model = map.next_value::<Option<String>>()?;
                }
                // Counted, not built: `IgnoredAny` has no size, so the vector never allocates.
                Key::Messages => {
                    if std::mem::replace(&mut messages_seen, true) {
                        return Err(A::Error::custom("duplicate field `messages`"));
                    }
                    head.messages = map
                        .next_value::<Option<Vec<IgnoredAny>>>()?
                        .map(|m| m.len());
                }
                Key::Stream | Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(head)
    }
}

/// The refusal for a POST with no body.
pub fn missing_body() -> ApiError {
    ApiError::invalid_request(
        "The request body is empty: send a JSON object (for a chat: `model` and `messages`).",
    )
    .with_code("missing_body")
}

/// The refusal for `"messages": []`.
pub fn messages_empty() -> ApiError {
    refusal_of(
        "$.messages must not be empty: at least one message is required",
        "empty_array",
        "messages",
    )
}

fn refusal_of(message: &str, code: &str, param: &str) -> ApiError {
    ApiError::invalid_request(message)
        .with_code(code)
        .with_param(param)
}

/// A serde error at `path`, said in the API's terms.
pub fn refusal(path: &str, err: &serde_json::Error) -> ApiError {
    if !err.is_data() {
        return ApiError::malformed_json(&err.to_string());
    }
    describe(path, &strip_position(err))
}

/// `$.a.b` + `c` → `$.a.b.c`.
fn join(path: &str, field: &str) -> String {
    format!("{path}.{field}")
}

/// Turns serde's message (`invalid type: string "x", expected u64`, `missing field
/// `messages``, …) into one that names the field and the JSON type it must have.
fn describe(path: &str, text: &str) -> ApiError {
    let subject = |p: &str| {
        if p == "$" {
            "the request body".to_owned()
        } else {
            p.to_owned()
        }
    };
    let param = |p: &str| p.strip_prefix("$.").unwrap_or(p).to_owned();
    let quoted = |rest: &str| rest.split('`').next().unwrap_or(rest).to_owned();
    if let Some(rest) = text.strip_prefix("missing field `") {
        let p = join(path, &quoted(rest));
        return refusal_of(
            &format!("{p} is required"),
            "missing_required_parameter",
            &param(&p),
        );
    }
    if let Some(rest) = text.strip_prefix("duplicate field `") {
        let p = join(path, &quoted(rest));
        return refusal_of(
            &format!("{p} appears more than once: each key may be given once"),
            "duplicate_key",
            &param(&p),
        );
    }
    let expected = text
        .split_once(", expected ")
        .map(|(_, e)| json_type(e))
        .unwrap_or_else(|| "of another type or form".to_owned());
    let code = if text.starts_with("invalid type") {
        "invalid_type"
    } else if text.starts_with("data did not match any variant") {
        return refusal_of(
            &format!(
                "{} is not in a form this API takes (see its type in the API reference)",
                subject(path)
            ),
            "invalid_type",
            &param(path),
        );
    } else {
        "invalid_value"
    };
    refusal_of(
        &format!("{} must be {expected}", subject(path)),
        code,
        &param(path),
    )
}

/// serde's name for what it expected, as a JSON type.
fn json_type(expected: &str) -> String {
    let plain = match expected {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a non-negative integer",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "an integer",
        "f32" | "f64" => "a number",
        "a boolean" | "bool" => "a boolean (true or false)",
        "a string" | "a borrowed string" | "a character" | "char" => "a string",
        "unit" => "null",
        e if e.starts_with("a sequence") || e.starts_with("tuple") => "an array",
        e if e.starts_with("struct ")
            || e.starts_with("a map")
            || e.starts_with("map")
            || e == "a JSON object" =>
        {
            "a JSON object"
        }
        e if e.starts_with("one of ") => return e.to_owned(),
        e if e.starts_with("enum ") || e.starts_with("variant") => "one of the values it takes",
        _ => "of another type",
    };
    plain.to_owned()
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn a_stream_is_asked_for_by_a_top_level_true_only() {
        let streaming = |b: &str| check_streaming(b.as_bytes()).unwrap();
        assert!(streaming(r#"{"model":"m","stream":true,"messages":[]}"#));
        assert!(streaming(r#"{"str\u0065am":true}"#));
        assert!(streaming(r#"{"stream":false,"stream":true}"#));
        assert!(!streaming(r#"{"stream":true,"stream":false}"#));
        assert!(!streaming(r#"{"stream":"true"}"#));
        assert!(!streaming(r#"{"stream":null,"x":{"stream":true}}"#));
        assert!(!streaming(r#"{"messages":[{"stream":true}]}"#));
        assert!(!streaming(r#"[{"stream":true}]"#));
        assert!(!streaming(r#""stream""#));
        assert!(!streaming("1.5"));
        assert!(!streaming("null"));
        assert_eq!(
            check_streaming(b"{\"stream\":tru")
                .unwrap_err()
                .code
                .as_deref(),
            Some("invalid_json")
        );
        assert_eq!(
            check_streaming(b"  ").unwrap_err().code.as_deref(),
            Some("missing_body")
        );
    }
    use crate::openai::ChatCompletionRequest;

    fn chat(body: &str) -> ApiError {
        parse::<ChatCompletionRequest>(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn type_errors_name_the_field_and_the_json_type() {
        let err = chat(r#"{"model":"m","messages":[],"max_tokens":"x"}"#);
        assert_eq!(err.message, "$.max_tokens must be a non-negative integer");
        assert_eq!(err.code.as_deref(), Some("invalid_type"));
        assert_eq!(err.param.as_deref(), Some("max_tokens"));
        let err = chat(r#"{"model":"m","messages":[],"max_tokens":-1}"#);
        assert_eq!(err.message, "$.max_tokens must be a non-negative integer");
        assert_eq!(err.code.as_deref(), Some("invalid_value"));
        let err = chat(r#"{"model":"m","messages":3}"#);
        assert_eq!(err.message, "$.messages must be an array");
        let err = chat(r#"{"model":"m","messages":[{"role":5,"content":"x"}]}"#);
        assert_eq!(err.message, "$.messages[0].role must be a string");
        assert_eq!(err.param.as_deref(), Some("messages[0].role"));
        let err = chat(r#"[1]"#);
        assert_eq!(err.message, "the request body must be a JSON object");
        for e in [
            chat(r#"{"model":"m","messages":[],"max_tokens":"x"}"#),
            chat("[1]"),
            chat(r#"{"model":"m"}"#),
        ] {
            let text = format!("{e:?}");
            for rust in ["u64", "struct", "ChatCompletionRequest", "Vec<"] {
                assert!(!e.message.contains(rust), "{rust} in {text}");
            }
            assert!(e.code.is_some(), "{text}");
        }
    }

    #[test]
    fn missing_and_duplicate_fields_and_empty_bodies() {
        let err = chat(r#"{"model":"m"}"#);
        assert_eq!(err.message, "$.messages is required");
        assert_eq!(err.code.as_deref(), Some("missing_required_parameter"));
        let err = Head::of(br#"{"model":"a","model":"b"}"#).unwrap_err();
        assert_eq!(
            err.message,
            "$.model appears more than once: each key may be given once"
        );
        assert_eq!(err.code.as_deref(), Some("duplicate_key"));
        for empty in ["", "  \n"] {
            let err = Head::of(empty.as_bytes()).unwrap_err();
            assert_eq!(err.code.as_deref(), Some("missing_body"), "{empty:?}");
        }
        let err = Head::of(b"{\"model\":").unwrap_err();
        assert_eq!(err.code.as_deref(), Some("invalid_json"));
        let err = Head::of(b"{} x").unwrap_err();
        assert_eq!(err.code.as_deref(), Some("invalid_json"));
    }

    #[cfg(not(target_arch = "wasm32"))] // no clock there
    #[test]
    fn many_keys_cost_linear_time() {
        let body: String = (0..300_000)
            .map(|i| format!("\"k{i}\":0"))
            .collect::<Vec<_>>()
            .join(",");
        let started = std::time::Instant::now();
        let head = Head::of(format!("{{{body},\"model\":\"m\"}}").as_bytes()).unwrap();
        assert_eq!(head.model.as_deref(), Some("m"));
        assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
        let err = Head::of(br#"{"messages":[],"x":1,"messages":[]}"#).unwrap_err();
        assert_eq!(err.code.as_deref(), Some("duplicate_key"));
    }

    #[test]
    fn head_reads_model_and_counts_messages() {
        let head = Head::of(br#"{"x":{"model":1},"model":"gpt-4o","messages":[{},{}]}"#).unwrap();
        assert_eq!(head.model.as_deref(), Some("gpt-4o"));
        assert_eq!(head.messages, Some(2));
        assert!(head.check_messages(Endpoint::Chat).is_ok());
        let head = Head::of(br#"{"model":"m","messages":[]}"#).unwrap();
        let err = head
            .check_messages(Endpoint::AnthropicMessages)
            .unwrap_err();
        assert_eq!(err.code.as_deref(), Some("empty_array"));
        assert!(head.check_messages(Endpoint::Embeddings).is_ok());
        let head = Head::of(br#"{"model":"m","input":"x"}"#).unwrap();
        assert_eq!(
            head.check_messages(Endpoint::Chat)
                .unwrap_err()
                .code
                .as_deref(),
            Some("missing_required_parameter")
        );
        let err = Head::of(br#"{"model":3}"#).unwrap_err();
        assert_eq!(err.message, "$.model must be a string");
        assert_eq!(err.param.as_deref(), Some("model"));
        let err = Head::of(br#""text""#).unwrap_err();
        assert_eq!(err.message, "the request body must be a JSON object");
    }
}
