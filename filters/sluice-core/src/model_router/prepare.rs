//! A caller's request made ready for one target, and a target's answer made ready for the
//! caller: dialect translation, model aliasing, Azure paths. Used for the first target and for
//! every fallback alike.

use super::config::{Kind, Target};
use super::route::{azure_path, with_model};
use crate::endpoint::Endpoint;
use crate::translate::{
    chat_to_message, chat_to_messages, error_to_anthropic, error_to_openai, message_to_chat,
    messages_to_chat, ChatToMessagesStream, MessagesToChatStream, RequestFacts, StreamTranslator,
};
use crate::{ApiError, Dialect};

/// Which way a request was translated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// An OpenAI caller, an Anthropic target.
    OpenAiToAnthropic,
    /// An Anthropic caller, an OpenAI-style target.
    AnthropicToOpenAi,
}

/// The request as the target wants it.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// Path to send (the caller's when nothing changes it).
    pub path: String,
    /// New body, when it changed.
    pub body: Option<Vec<u8>>,
    /// Set when the answer must be translated back.
    pub translation: Option<(Direction, RequestFacts)>,
}

/// Prepares `body` (whose model is `body_model`) for `target` as `upstream_model`.
pub fn prepare(
    caller: Dialect,
    path: &str,
    body: &[u8],
    body_model: Option<&str>,
    target: &Target,
    upstream_model: &str,
    default_max_tokens: u64,
) -> Result<Prepared, ApiError> {
    let endpoint = Endpoint::from_path(path);
    let target_anthropic = target.kind == Kind::Anthropic;
    let version = target.api_version.as_deref().unwrap_or_default();
    if caller == Dialect::OpenAi && target_anthropic && endpoint == Some(Endpoint::Chat) {
        let (body, facts) = chat_to_messages(body, upstream_model, default_max_tokens)?;
        return Ok(Prepared {
            path: "/v1/messages".to_owned(),
            body: Some(body),
            translation: Some((Direction::OpenAiToAnthropic, facts)),
        });
    }
    if caller == Dialect::Anthropic
        && !target_anthropic
        && endpoint == Some(Endpoint::AnthropicMessages)
    {
        let (body, facts) = messages_to_chat(body, upstream_model)?;
        let path = match target.kind {
            Kind::AzureOpenai => azure_path("/v1/chat/completions", upstream_model, version)
                .unwrap_or_else(|| "/v1/chat/completions".to_owned()),
            _ => "/v1/chat/completions".to_owned(),
        };
        return Ok(Prepared {
            path,
            body: Some(body),
            translation: Some((Direction::AnthropicToOpenAi, facts)),
        });
    }
    if (caller == Dialect::Anthropic) != target_anthropic {
        return Err(ApiError::invalid_request(format!(
            "`{upstream_model}` is served in the {} dialect, which this endpoint cannot be translated to.",
            target.kind.name()
        ))
        .with_code("dialect_not_supported")
        .with_param("model"));
    }
    let body = if body_model == Some(upstream_model) {
        None
    } else {
        Some(with_model(body, upstream_model)?)
    };
    let path = match target.kind {
        Kind::AzureOpenai => {
            azure_path(path, upstream_model, version).unwrap_or_else(|| path.to_owned())
        }
        _ => path.to_owned(),
    };
    Ok(Prepared {
        path,
        body,
        translation: None,
    })
}

/// A stream translator for an answer that is a success and an event stream.
pub fn stream_translator(
    direction: Direction,
    facts: RequestFacts,
    now: u64,
) -> Box<dyn StreamTranslator> {
    match direction {
        Direction::OpenAiToAnthropic => Box::new(MessagesToChatStream::new(facts, now)),
        Direction::AnthropicToOpenAi => Box::new(ChatToMessagesStream::new(facts)),
    }
}

/// A whole answer in the caller's dialect: a JSON success, a JSON error (with its status kept
/// by the caller of this), or a whole event stream. `None` when it cannot be read.
pub fn translate_answer(
    direction: Direction,
    facts: &RequestFacts,
    status: u16,
    event_stream: bool,
    body: &[u8],
    now: u64,
) -> Option<Vec<u8>> {
    let ok = (200..300).contains(&status);
    match (direction, ok, event_stream) {
        (_, true, true) => {
            let mut t = stream_translator(direction, facts.clone(), now);
            let mut out = t.feed(body);
            out.extend(t.finish());
            Some(out)
        }
        (Direction::OpenAiToAnthropic, true, false) => message_to_chat(body, facts, now),
        (Direction::AnthropicToOpenAi, true, false) => chat_to_message(body, facts),
        (Direction::OpenAiToAnthropic, false, _) => error_to_openai(body),
        (Direction::AnthropicToOpenAi, false, _) => error_to_anthropic(body, status),
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn target(kind: Kind) -> Target {
        Target {
            provider: "p".into(),
            kind,
            cluster: "c".into(),
            model: None,
            weight: 1,
            api_version: Some("2024-10-21".into()),
        }
    }

    const CHAT: &[u8] = br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;

    /// `prepare` for a body whose model is `m`, to a target of `kind` as `upstream`.
    fn prep(
        caller: Dialect,
        path: &str,
        body: &[u8],
        kind: Kind,
        upstream: &str,
        default_max_tokens: u64,
    ) -> Result<Prepared, ApiError> {
        prepare(
            caller,
            path,
            body,
            Some("m"),
            &target(kind),
            upstream,
            default_max_tokens,
        )
    }

    #[test]
    fn same_dialect_only_renames_and_moves() {
        let p = prep(
            Dialect::OpenAi,
            "/v1/chat/completions",
            CHAT,
            Kind::Openai,
            "m",
            1,
        )
        .unwrap();
        assert_eq!(
            (p.path.as_str(), p.body.is_none(), p.translation.is_none()),
            ("/v1/chat/completions", true, true)
        );
        let p = prep(
            Dialect::OpenAi,
            "/v1/chat/completions",
            CHAT,
            Kind::AzureOpenai,
            "dep",
            1,
        )
        .unwrap();
        assert_eq!(
            p.path,
            "/openai/deployments/dep/chat/completions?api-version=2024-10-21"
        );
        assert!(String::from_utf8(p.body.unwrap())
            .unwrap()
            .contains("\"dep\""));
    }

    #[test]
    fn cross_dialect_translates_or_refuses() {
        let p = prep(
            Dialect::OpenAi,
            "/v1/chat/completions",
            CHAT,
            Kind::Anthropic,
            "claude",
            100,
        )
        .unwrap();
        assert_eq!(p.path, "/v1/messages");
        assert_eq!(
            p.translation.map(|t| t.0),
            Some(Direction::OpenAiToAnthropic)
        );
        let msgs = br#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#;
        let p = prep(
            Dialect::Anthropic,
            "/v1/messages",
            msgs,
            Kind::AzureOpenai,
            "dep",
            1,
        )
        .unwrap();
        assert_eq!(
            p.path,
            "/openai/deployments/dep/chat/completions?api-version=2024-10-21"
        );
        let err = prep(
            Dialect::OpenAi,
            "/v1/embeddings",
            CHAT,
            Kind::Anthropic,
            "c",
            1,
        )
        .unwrap_err();
        assert_eq!(err.code.as_deref(), Some("dialect_not_supported"));
    }

    #[test]
    fn whole_answers_are_translated() {
        let facts = RequestFacts {
            model: "m".into(),
            stream: false,
            include_usage: false,
        };
        let msg = br#"{"id":"x","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}"#;
        let out =
            translate_answer(Direction::OpenAiToAnthropic, &facts, 200, false, msg, 0).unwrap();
        assert!(String::from_utf8(out).unwrap().contains("chat.completion"));
        let sse = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"x\",\"usage\":{}}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        let out =
            translate_answer(Direction::OpenAiToAnthropic, &facts, 200, true, sse, 0).unwrap();
        assert!(out.ends_with(b"data: [DONE]\n\n"));
        let err = translate_answer(
            Direction::AnthropicToOpenAi,
            &facts,
            429,
            false,
            br#"{"error":{"message":"no"}}"#,
            0,
        )
        .unwrap();
        assert!(String::from_utf8(err).unwrap().contains("rate_limit_error"));
    }
}
