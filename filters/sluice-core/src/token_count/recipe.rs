//! Prompt tokens of a request, by OpenAI's counting recipe.
//!
//! Chat: every message costs 3 tokens plus the tokens of each of its string fields (`role`,
//! `content`, `name`, `tool_call_id`), a `name` one more, and the reply is primed with 3
//! (OpenAI cookbook, "How to count tokens with tiktoken"). Tool definitions follow the
//! cookbook's function-calling recipe. Text parts of multi-part content are counted exactly; an
//! image given as a data URL is priced by its size read from its header and the model's image
//! rule (`image.rs`); any other image part is counted as 85 tokens (OpenAI's low-detail base
//! cost) and the count is an estimate. Completions and embeddings: the tokens of
//! each input string (token-array inputs count their length). Anthropic Messages: Anthropic's
//! tokenizer is not public, so its prompts are estimated with the model's mapped encoding
//! (`o200k_base` by default) and settled from the provider's `usage`.

// `serde_json::Value` indexing (`v["usage"]`, `v[0]`) never panics: a missing key, a wrong
// type or an out-of-range index yields `Value::Null`. Slices are not indexed here.
#![allow(clippy::indexing_slicing)]

use serde_json::Value;

use super::config::Encoding;
use super::counter::Counter;
use super::family::{estimate_reason, Family};
use super::image::{self, ImageRule};
use super::request::{self, Block, Blocks, Chat, Content, Message, Messages};
use super::response_format;
use super::tools;
use crate::body::{self, Head};
pub use crate::endpoint::{azure_deployment, Endpoint};
use crate::ApiError;

const TOKENS_PER_MESSAGE: u64 = 3;
const TOKENS_PER_NAME: u64 = 1;
const IMAGE_TOKENS: u64 = 85;

/// A counted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptCount {
    pub tokens: u64,
    pub model: Option<String>,
    pub encoding: Encoding,
    /// The completion limit the caller set (`max_completion_tokens` / `max_tokens`).
    pub max_completion: Option<u64>,
    pub stream: bool,
    /// False for Anthropic prompts (estimated with an OpenAI encoding).
    pub exact: bool,
}

/// Counts a request body for `endpoint`. `path_model` is the Azure deployment, if any.
pub fn count_request(
    counter: &Counter,
    endpoint: Endpoint,
    body: &[u8],
    path_model: Option<&str>,
) -> Result<PromptCount, ApiError> {
    let object = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    if !object && endpoint != Endpoint::Completions && endpoint != Endpoint::Embeddings {
        // The views below would take a JSON array for an object (serde's derive does): let
        // the head's parser say what is wrong.
        return Err(body::parse::<Head>(body)
            .err()
            .unwrap_or_else(body::missing_body));
    }
    match endpoint {
        Endpoint::Chat => {
            let req: Chat = request::parse(body)?;
            if req.messages.is_empty() {
                return Err(body::messages_empty());
            }
            let model = req.model.as_deref().or(path_model).map(str::to_owned);
            let enc = counter.encoding_for(model.as_deref());
            Ok(PromptCount {
                tokens: count_chat(counter, enc, model.as_deref(), &req),
                encoding: enc,
                max_completion: req.completion_limit(),
                stream: req.is_stream(),
                exact: estimate_reason(model.as_deref(), &req).is_none(),
                model,
            })
        }
        Endpoint::Completions | Endpoint::Embeddings => {
            // Plain serde_json (a `Value` has no type errors to name): `body::parse::<Value>`
            // would add a second, path-tracking copy of `Value`'s parser to the module.
            if body.iter().all(u8::is_ascii_whitespace) {
                return Err(body::missing_body());
            }
            let req: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::malformed_json(&e.to_string()))?;
            if !req.is_object() {
                return Err(body::parse::<Head>(body)
                    .err()
                    .unwrap_or_else(body::missing_body));
            }
            let model = req["model"]
                .as_str()
                .map(str::to_owned)
                .or(path_model.map(str::to_owned));
            let enc = counter.encoding_for(model.as_deref());
            let field = if endpoint == Endpoint::Completions {
                "prompt"
            } else {
                "input"
            };
            // A completion's `suffix` is billed as prompt too.
            let suffix = if endpoint == Endpoint::Completions {
                count_inputs(counter, enc, &req["suffix"])
            } else {
                0
            };
            Ok(PromptCount {
                tokens: count_inputs(counter, enc, &req[field]) + suffix,
                encoding: enc,
                max_completion: req["max_tokens"].as_u64(),
                stream: req["stream"].as_bool() == Some(true),
                model,
                // An empty string bills a token (recorded once): an estimate.
                exact: !has_empty(&req[field]),
            })
        }
        Endpoint::AnthropicMessages => {
            let req: Messages = request::parse(body)?;
            if req.messages.is_empty() {
                return Err(body::messages_empty());
            }
            let enc = counter.encoding_for(req.model.as_deref());
            Ok(PromptCount {
                tokens: count_anthropic(counter, enc, &req),
                encoding: enc,
                max_completion: req.max_tokens,
                stream: req.is_stream(),
                model: req.model.map(|m| m.into_owned()),
                exact: false,
            })
        }
    }
}

fn count_message(counter: &Counter, enc: Encoding, images: ImageRule, m: &Message) -> u64 {
    let mut n = TOKENS_PER_MESSAGE + counter.count(enc, &m.role);
    match &m.content {
        Some(Content::Text(t)) => n += counter.count(enc, t),
        Some(Content::Parts(parts)) => {
            for p in parts {
                match (&p.text, p.kind.as_ref()) {
                    (Some(t), _) => n += counter.count(enc, t),
                    (None, "image_url" | "image") => {
                        let url = p.image_url.as_ref();
                        n += image::part_tokens(
                            images,
                            url.and_then(|u| u.url.as_deref()),
                            url.and_then(|u| u.detail.as_deref()),
                        )
                        .unwrap_or(IMAGE_TOKENS);
                    }
                    _ => {}
                }
            }
        }
        None => {}
    }
    if let Some(name) = &m.name {
        n += counter.count(enc, name) + TOKENS_PER_NAME;
    }
    n
}

/// A message in a chat's history: tool calls and results as OpenAI renders them
/// (`tools.rs`), the others by the recipe.
fn history_message(
    counter: &Counter,
    enc: Encoding,
    images: ImageRule,
    family: Family,
    req: &Chat,
    m: &Message,
) -> u64 {
    let calls = m.tool_calls.as_deref().unwrap_or_default();
    if !calls.is_empty() {
        let has_content = match &m.content {
            Some(Content::Text(t)) => !t.is_empty(),
            Some(Content::Parts(p)) => !p.is_empty(),
            None => false,
        };
        let content = if has_content {
            count_message(counter, enc, images, m)
        } else {
            0
        };
        return content + tools::calls_tokens(counter, enc, family, calls);
    }
    let n = count_message(counter, enc, images, m);
    match tools::called(req, m).filter(|_| m.role == "tool") {
        // The role's place holds the function's name.
        Some(name) => {
            n + tools::result_tokens(counter, enc, family, name) - counter.count(enc, &m.role)
        }
        None => n,
    }
}

/// Chat prompt tokens (messages, then tool definitions).
pub fn count_chat(counter: &Counter, enc: Encoding, model: Option<&str>, req: &Chat) -> u64 {
    let images = model.map_or(ImageRule::Unknown, image::rule_for);
    let family = Family::of(model);
    let messages: u64 = req
        .messages
        .iter()
        .map(|m| history_message(counter, enc, images, family, req, m))
        .sum();
    messages
        + family.reply_priming()
        + tools::count(counter, enc, family, req)
        + response_format::count(counter, enc, req)
}

/// Whether an input is or holds an empty string.
fn has_empty(input: &Value) -> bool {
    match input {
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.iter().any(has_empty),
        _ => false,
    }
}

/// Completions `prompt` / embeddings `input`: a string, strings, or token arrays.
fn count_inputs(counter: &Counter, enc: Encoding, input: &Value) -> u64 {
    match input {
        Value::String(s) => counter.count(enc, s),
        Value::Array(items) => {
            if items.iter().all(Value::is_number) {
                return items.len() as u64; // one prompt given as tokens
            }
            items.iter().map(|i| count_inputs(counter, enc, i)).sum()
        }
        _ => 0,
    }
}

fn count_anthropic_content(counter: &Counter, enc: Encoding, content: &Blocks) -> u64 {
    match content {
        Blocks::Text(t) => counter.count(enc, t),
        Blocks::Parts(blocks) => blocks
            .iter()
            .map(|b: &Block| {
                let mut n = b.text.as_deref().map_or(0, |t| counter.count(enc, t));
                if let Some(input) = &b.input {
                    n += counter.count(enc, &input.to_string());
                }
                if let Some(content) = &b.content {
                    n += match content {
                        Value::String(s) => counter.count(enc, s),
                        other => counter.count(enc, &other.to_string()),
                    };
                }
                if b.kind == "image" {
                    n += IMAGE_TOKENS;
                }
                n
            })
            .sum(),
    }
}

/// An estimate for Anthropic prompts (see the module docs).
fn count_anthropic(counter: &Counter, enc: Encoding, req: &Messages) -> u64 {
    let system = req
        .system
        .as_ref()
        .map_or(0, |s| count_anthropic_content(counter, enc, s));
    let messages: u64 = req
        .messages
        .iter()
        .map(|m| TOKENS_PER_MESSAGE + count_anthropic_content(counter, enc, &m.content))
        .sum();
    let tools: u64 = req
        .tools
        .iter()
        .flatten()
        .map(|t| counter.count(enc, &serde_json::to_string(t).unwrap_or_default()))
        .sum();
    system + messages + tools + Family::Classic.reply_priming()
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::super::counter::tests::counter;
    use super::*;

    fn chat(body: &str) -> PromptCount {
        count_request(counter(), Endpoint::Chat, body.as_bytes(), None).unwrap()
    }

    #[test]
    fn chat_recipe_matches_the_cookbook_example() {
        // The OpenAI cookbook's example conversation: 129 prompt tokens on gpt-4o-mini and
        // gpt-4o, 129 on gpt-4 / gpt-3.5-turbo-1106 (its published outputs).
        let body = serde_json::json!({"model": "gpt-4o", "messages": [
            {"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
            {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
            {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
            {"role": "system", "name": "example_user", "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
            {"role": "system", "name": "example_assistant", "content": "Let's talk later when we're less busy about how to do better."},
            {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client deliverable."}
        ]});
        let mut text = body.to_string();
        assert_eq!(chat(&text).tokens, 124);
        text = text.replace("gpt-4o", "gpt-4");
        assert_eq!(chat(&text).tokens, 129);
    }

    #[test]
    fn tools_recipe_matches_the_cookbook_example() {
        // The cookbook's function-calling example: 101 tokens on gpt-4o / gpt-4o-mini.
        let body = serde_json::json!({"model": "gpt-4o", "messages": [
            {"role": "system", "content": "You are a helpful assistant that can answer to questions about the weather."},
            {"role": "user", "content": "What's the weather like in San Francisco?"}
        ], "tools": [{"type": "function", "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {"type": "object", "properties": {
                "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                "unit": {"type": "string", "description": "The unit of temperature to return", "enum": ["celsius", "fahrenheit"]}
            }, "required": ["location"]}}}]});
        assert_eq!(chat(&body.to_string()).tokens, 101);
    }

    #[test]
    fn request_facts_are_kept() {
        let c = chat(
            r#"{"model":"gpt-4o","stream":true,"max_tokens":7,"messages":[{"role":"user","content":"hi"}]}"#,
        );
        assert_eq!(c.model.as_deref(), Some("gpt-4o"));
        assert!(c.stream && c.exact);
        assert_eq!(c.max_completion, Some(7));
        assert_eq!(c.tokens, 3 + 3 + 1 + 1); // priming + per-message + "user" + "hi"
    }

    #[test]
    fn completions_and_embeddings_inputs() {
        let count = |ep, body: &str| {
            count_request(counter(), ep, body.as_bytes(), None)
                .unwrap()
                .tokens
        };
        assert_eq!(
            count(
                Endpoint::Embeddings,
                r#"{"model":"text-embedding-3-small","input":"hello world"}"#
            ),
            2
        );
        assert_eq!(
            count(Endpoint::Embeddings, r#"{"input":["hello world","hello"]}"#),
            3
        );
        assert_eq!(count(Endpoint::Embeddings, r#"{"input":[1,2,3,4]}"#), 4);
        assert_eq!(
            count(
                Endpoint::Completions,
                r#"{"model":"gpt-3.5-turbo-instruct","prompt":"hello world"}"#
            ),
            2
        );
    }

    #[test]
    fn bad_bodies_are_400s() {
        let err = count_request(counter(), Endpoint::Chat, b"{", None).unwrap_err();
        assert_eq!(
            (err.status(), err.code.as_deref()),
            (400, Some("invalid_json"))
        );
        let err =
            count_request(counter(), Endpoint::Chat, br#"{"messages":"x"}"#, None).unwrap_err();
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn azure_model_comes_from_the_path() {
        let c = count_request(
            counter(),
            Endpoint::Chat,
            br#"{"messages":[{"role":"user","content":"hi"}]}"#,
            Some("gpt-4"),
        )
        .unwrap();
        assert_eq!(
            (c.model.as_deref(), c.encoding),
            (Some("gpt-4"), Encoding::Cl100kBase)
        );
    }

    #[test]
    fn anthropic_is_an_estimate() {
        let c = count_request(
            counter(),
            Endpoint::AnthropicMessages,
            br#"{"model":"claude-sonnet-4-5","max_tokens":10,"system":"be brief","messages":[{"role":"user","content":"hello world"}]}"#,
            None,
        )
        .unwrap();
        assert!(!c.exact);
        assert_eq!(c.max_completion, Some(10));
        assert_eq!(c.tokens, 2 + 3 + 2 + 3);
    }
}
