//! Completion tokens (and the provider's own prompt count) read from an answer.
//!
//! JSON answers carry `usage`. Streams carry it in a final OpenAI chunk (when the caller asked
//! `stream_options.include_usage`) or in Anthropic's `message_start` / `message_delta` events;
//! where a stream has none, the streamed text is counted locally.

// `serde_json::Value` indexing (`v["usage"]`, `v[0]`) never panics: a missing key, a wrong
// type or an out-of-range index yields `Value::Null`. Slices are not indexed here.
#![allow(clippy::indexing_slicing)]

use serde::Deserialize;
use serde_json::Value;

use super::config::Encoding;
use super::counter::Counter;
use crate::sse::{SseEvent, SseParser};
use crate::Dialect;

/// Usage as reported, in OpenAI's terms (Anthropic's input/output map to prompt/completion).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt: Option<u64>,
    pub completion: Option<u64>,
    /// Prompt tokens served from the provider's cache.
    pub cached: Option<u64>,
    /// Reasoning tokens (inside `completion`).
    pub reasoning: Option<u64>,
}

/// Where the completion count came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Provider,
    Local,
}

impl Source {
    pub const fn as_str(self) -> &'static str {
        match self {
            Source::Provider => "provider",
            Source::Local => "local",
        }
    }
}

fn read_openai(usage: &Value, out: &mut Usage) {
    if !usage.is_object() {
        return;
    }
    out.prompt = usage["prompt_tokens"].as_u64().or(out.prompt);
    out.completion = usage["completion_tokens"].as_u64().or(out.completion);
    out.cached = usage["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .or(out.cached);
    out.reasoning = usage["completion_tokens_details"]["reasoning_tokens"]
        .as_u64()
        .or(out.reasoning);
}

/// Anthropic's input side: `input_tokens` plus cache reads and writes, which are prompt too.
fn read_anthropic_prompt(usage: &Value, out: &mut Usage) {
    if let Some(input) = usage["input_tokens"].as_u64() {
        let cache_read = usage["cache_read_input_tokens"].as_u64().unwrap_or(0);
        let cache_write = usage["cache_creation_input_tokens"].as_u64().unwrap_or(0);
        out.prompt = Some(input + cache_read + cache_write);
        if cache_read > 0 {
            out.cached = Some(cache_read);
        }
    }
}

fn read_anthropic(usage: &Value, out: &mut Usage) {
    read_anthropic_prompt(usage, out);
    out.completion = usage["output_tokens"].as_u64().or(out.completion);
}

/// An answer's `usage`, and nothing else: the rest of the answer (its text, its choices) is
/// skipped as it is read, never copied out. Both dialects call it `usage`.
#[derive(Deserialize)]
struct UsageOnly {
    #[serde(default)]
    usage: Value,
}

/// Usage of a JSON answer.
pub fn from_json(dialect: Dialect, body: &[u8]) -> Option<Usage> {
    let answer: UsageOnly = serde_json::from_slice(body).ok()?;
    let mut u = Usage::default();
    match dialect {
        Dialect::OpenAi => read_openai(&answer.usage, &mut u),
        Dialect::Anthropic => read_anthropic(&answer.usage, &mut u),
    }
    (u != Usage::default()).then_some(u)
}

/// How much of the end of a JSON answer too long to hold whole is kept to find its `usage`
/// ([`from_json_tail`]).
pub const TAIL_BYTES: usize = 64 << 10;

/// Usage from the last bytes (`tail`) of a JSON answer too long to hold whole: the value of the
/// last `"usage"` key in them that holds a usage (providers write `usage` at the end of an
/// answer). Inside a JSON string the quotes of `"usage"` would be escaped, so each match is a
/// key or a string value; one not followed by `:` and a usage object is passed over.
pub fn from_json_tail(dialect: Dialect, tail: &[u8]) -> Option<Usage> {
    // A plain loop from the end: once per long answer, and far less code than a substring
    // searcher or an iterator chain (token-count's module stays under 2 MiB).
    const KEY: &[u8] = b"\"usage\"";
    let mut at = tail.len().checked_sub(KEY.len())?;
    loop {
        if tail.get(at..at + KEY.len()) == Some(KEY) {
            if let Some(u) = usage_after_key(dialect, tail.get(at + KEY.len()..)?) {
                return Some(u);
            }
        }
        at = at.checked_sub(1)?;
    }
}

/// The usage in `after`, the bytes after a `"usage"` key, when that key is the answer's own
/// (at its top level): `{"usage"` and those bytes then make a whole JSON object (the rest of
/// the answer closes it), read as [`from_json`] reads a whole answer.
fn usage_after_key(dialect: Dialect, after: &[u8]) -> Option<Usage> {
    let mut answer = b"{\"usage\"".to_vec();
    answer.extend_from_slice(after);
    from_json(dialect, &answer)
}

/// The end of a JSON answer too long to hold whole, kept as the answer passes: its `usage` is
/// read from it at the end ([`from_json_tail`]); an answer that reported none, or did not end,
/// is estimated from its length.
#[derive(Debug, Default)]
pub struct AnswerTail {
    /// Its last bytes, at most [`TAIL_BYTES`].
    tail: Vec<u8>,
    /// Bytes of the answer seen in all.
    passed: u64,
}

impl AnswerTail {
    /// From the answer's first `passed` bytes, of which `tail` is the end.
    pub fn new(tail: Vec<u8>, passed: u64) -> AnswerTail {
        let mut t = AnswerTail {
            tail: Vec::new(),
            passed: passed.saturating_sub(tail.len() as u64),
        };
        t.feed(&tail);
        t
    }

    /// The next piece of the answer.
    pub fn feed(&mut self, piece: &[u8]) {
        self.passed = self.passed.saturating_add(piece.len() as u64);
        self.tail.extend_from_slice(piece);
        let over = self.tail.len().saturating_sub(TAIL_BYTES);
        self.tail.drain(..over);
    }

    /// The usage the answer reported at its end, and false; else an estimate, and true: its
    /// completion about a token per four bytes of the answer (the JSON around the text counted
    /// too: it errs high, where a budget should).
    pub fn finish(&self, dialect: Dialect) -> (Usage, bool) {
        match from_json_tail(dialect, &self.tail) {
            Some(u) => (u, false),
            None => (
                Usage {
                    completion: Some(self.passed / 4),
                    ..Usage::default()
                },
                true,
            ),
        }
    }
}

/// Completion tokens of a JSON answer that reports no usage: its text counted locally.
pub fn local_from_json(
    counter: &Counter,
    encoding: Encoding,
    dialect: Dialect,
    body: &[u8],
) -> u64 {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return 0;
    };
    let mut text = String::new();
    match dialect {
        Dialect::OpenAi => {
            for choice in v["choices"].as_array().into_iter().flatten() {
                let message = &choice["message"];
                text.push_str(message["content"].as_str().unwrap_or_default());
                text.push_str(choice["text"].as_str().unwrap_or_default());
                for call in message["tool_calls"].as_array().into_iter().flatten() {
                    text.push_str(call["function"]["name"].as_str().unwrap_or_default());
                    text.push_str(call["function"]["arguments"].as_str().unwrap_or_default());
                }
            }
        }
        Dialect::Anthropic => {
            for block in v["content"].as_array().into_iter().flatten() {
                text.push_str(block["text"].as_str().unwrap_or_default());
                if block["type"] == "tool_use" {
                    text.push_str(&block["input"].to_string());
                }
            }
        }
    }
    counter.count(encoding, &text)
}

/// An answer that reached the caller without passing token-count: model-router's fallback
/// answer, which Envoy sends straight to the caller. model-router publishes it in filter state
/// ([`crate::StateKey::AnswerUsage`]) as `status;prompt;completion;cached;reasoning` (a number
/// not reported is empty), and token-count settles the request with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivered {
    pub status: u16,
    /// The provider's usage, when the answer reported it.
    pub usage: Option<Usage>,
}

impl Delivered {
    /// Reads the answer a provider gave (`dialect` is the provider's, not the caller's).
    pub fn of_answer(dialect: Dialect, status: u16, event_stream: bool, body: &[u8]) -> Self {
        let usage = if !(200..300).contains(&status) {
            None
        } else if event_stream {
            let mut watch = StreamUsage::new(dialect);
            watch.feed(body);
            watch.reported()
        } else {
            from_json(dialect, body).filter(|u| u.completion.is_some())
        };
        Delivered { status, usage }
    }

    pub fn encode(&self) -> String {
        let n = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        let u = self.usage.clone().unwrap_or_default();
        format!(
            "{};{};{};{};{}",
            self.status,
            n(u.prompt),
            n(u.completion),
            n(u.cached),
            n(u.reasoning)
        )
    }

    pub fn decode(text: &str) -> Option<Self> {
        let mut parts = text.split(';');
        let status = parts.next()?.parse().ok()?;
        let mut next = || -> Option<Option<u64>> {
            let p = parts.next()?;
            Some(if p.is_empty() {
                None
            } else {
                Some(p.parse().ok()?)
            })
        };
        let usage = Usage {
            prompt: next()?,
            completion: next()?,
            cached: next()?,
            reasoning: next()?,
        };
        Some(Delivered {
            status,
            usage: usage.completion.is_some().then_some(usage),
        })
    }
}

/// Follows a streamed answer chunk by chunk; never changes it.
pub struct StreamUsage {
    dialect: Dialect,
    parser: SseParser,
    usage: Usage,
    /// Streamed text, kept only while no provider usage has been seen, up to a bound.
    text: String,
    text_capped: bool,
}

/// Streamed text kept for local counting, at most (a completion longer than this is counted
/// on its first part only, and the count says `local`).
const MAX_LOCAL_TEXT: usize = 4 << 20;

impl StreamUsage {
    pub fn new(dialect: Dialect) -> Self {
        StreamUsage {
            dialect,
            parser: SseParser::new(),
            usage: Usage::default(),
            text: String::new(),
            text_capped: false,
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        for ev in self.parser.feed(chunk) {
            self.event(&ev);
        }
    }

    fn keep_text(&mut self, piece: &str) {
        if self.text.len() + piece.len() <= MAX_LOCAL_TEXT {
            self.text.push_str(piece);
        } else {
            self.text_capped = true;
        }
    }

    fn event(&mut self, ev: &SseEvent) {
        let Some(data) = ev.data.as_deref() else {
            return;
        };
        if ev.is_done_marker() {
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return;
        };
        match self.dialect {
            Dialect::OpenAi => {
                read_openai(&v["usage"], &mut self.usage);
                for choice in v["choices"].as_array().into_iter().flatten() {
                    let delta = &choice["delta"];
                    if let Some(t) = delta["content"].as_str() {
                        self.keep_text(t);
                    }
                    for call in delta["tool_calls"].as_array().into_iter().flatten() {
                        if let Some(t) = call["function"]["name"].as_str() {
                            self.keep_text(t);
                        }
                        if let Some(t) = call["function"]["arguments"].as_str() {
                            self.keep_text(t);
                        }
                    }
                }
            }
            Dialect::Anthropic => {
                // message_start's output count is a placeholder: take only its input side; the
                // final output count comes with message_delta's top-level usage.
                read_anthropic_prompt(&v["message"]["usage"], &mut self.usage);
                read_anthropic(&v["usage"], &mut self.usage);
                let delta = &v["delta"];
                for key in ["text", "partial_json", "thinking"] {
                    if let Some(t) = delta[key].as_str() {
                        self.keep_text(t);
                    }
                }
            }
        }
    }

    /// The usage at stream end: the provider's where it reported completion tokens, else the
    /// streamed text counted with `encoding`.
    pub fn finish(&mut self, counter: &Counter, encoding: Encoding) -> (Usage, Source) {
        if let Some(ev) = self.parser.finish() {
            self.event(&ev);
        }
        let mut usage = self.usage.clone();
        if usage.completion.is_some() {
            return (usage, Source::Provider);
        }
        usage.completion = Some(counter.count(encoding, &self.text));
        (usage, Source::Local)
    }

    /// The provider's usage once the stream ended, if it reported completion tokens.
    pub fn reported(&mut self) -> Option<Usage> {
        if let Some(ev) = self.parser.finish() {
            self.event(&ev);
        }
        self.usage.completion.is_some().then(|| self.usage.clone())
    }

    /// True when the streamed text outgrew what is kept for local counting.
    pub fn text_capped(&self) -> bool {
        self.text_capped
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::super::counter::tests::counter;
    use super::*;

    #[test]
    fn delivered_answers_round_trip_through_text() {
        let json = br#"{"usage":{"prompt_tokens":19,"completion_tokens":5}}"#;
        let d = Delivered::of_answer(Dialect::OpenAi, 200, false, json);
        assert_eq!(d.encode(), "200;19;5;;");
        assert_eq!(Delivered::decode(&d.encode()), Some(d));
        let sse = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":7,\"output_tokens\":1}}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":4}}\n\n";
        let d = Delivered::of_answer(Dialect::Anthropic, 200, true, sse);
        assert_eq!(d.encode(), "200;7;4;;");
        let failed = Delivered::of_answer(Dialect::OpenAi, 503, false, json);
        assert_eq!(failed.encode(), "503;;;;");
        assert_eq!(Delivered::decode("503;;;;"), Some(failed));
        assert_eq!(Delivered::decode("x"), None);
        assert_eq!(Delivered::decode("200;1;2"), None);
    }

    #[test]
    fn json_usage_both_dialects() {
        let u = from_json(
            Dialect::OpenAi,
            br#"{"usage":{"prompt_tokens":10,"completion_tokens":3,"total_tokens":13,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":1}}}"#,
        )
        .unwrap();
        assert_eq!(
            u,
            Usage {
                prompt: Some(10),
                completion: Some(3),
                cached: Some(4),
                reasoning: Some(1)
            }
        );
        let u = from_json(
            Dialect::Anthropic,
            br#"{"usage":{"input_tokens":10,"output_tokens":3,"cache_read_input_tokens":2,"cache_creation_input_tokens":0}}"#,
        )
        .unwrap();
        assert_eq!(
            (u.prompt, u.completion, u.cached),
            (Some(12), Some(3), Some(2))
        );
        assert_eq!(from_json(Dialect::OpenAi, b"{}"), None);
        assert_eq!(from_json(Dialect::OpenAi, b"not json"), None);
        assert_eq!(from_json(Dialect::OpenAi, br#"{"usage":null}"#), None);
        // A whole answer: what comes around `usage` is skipped, whatever its shape.
        let whole = br#"{"id":"c1","choices":[{"index":0,"message":{"role":"assistant","content":"ok \"q\" \u00e9","tool_calls":[{"function":{"name":"f","arguments":"{}"}}]},"logprobs":null}],"usage":{"prompt_tokens":4,"completion_tokens":1,"completion_tokens_details":{"reasoning_tokens":0}},"created":1.5e9,"x":[[],{}]}"#;
        assert_eq!(
            from_json(Dialect::OpenAi, whole),
            Some(Usage {
                prompt: Some(4),
                completion: Some(1),
                cached: None,
                reasoning: Some(0)
            })
        );
        // A body that is not whole JSON is not read, even where its usage came first.
        assert_eq!(
            from_json(
                Dialect::OpenAi,
                br#"{"usage":{"completion_tokens":1},"choices":["#
            ),
            None
        );
    }

    #[test]
    fn usage_is_read_from_the_tail_of_an_answer_too_long_to_hold() {
        // The end of an answer: its text cut anywhere before it, a quoted `"usage"` inside the
        // text (escaped) not taken for the key.
        let tail = br#"xt \"usage\": {\"completion_tokens\": 1}","role":"assistant"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":1000001},"system_fingerprint":"fp"}"#;
        assert!(tail.windows(9).any(|w| w == br#"\"usage\""#));
        assert_eq!(
            from_json_tail(Dialect::OpenAi, tail),
            Some(Usage {
                prompt: Some(12),
                completion: Some(1000001),
                cached: None,
                reasoning: None
            })
        );
        let anthropic = br#"...","type":"text"}],"stop_reason":"end_turn","usage" : {"input_tokens":7,"output_tokens":900}}"#;
        let u = from_json_tail(Dialect::Anthropic, anthropic).unwrap();
        assert_eq!((u.prompt, u.completion), (Some(7), Some(900)));
        // No key, a key whose value is cut off, or a value that is no usage: none.
        assert_eq!(from_json_tail(Dialect::OpenAi, br#"text "usage": 1"#), None);
        assert_eq!(
            from_json_tail(Dialect::OpenAi, br#"],"usage":{"prompt_tok"#),
            None
        );
        assert_eq!(from_json_tail(Dialect::OpenAi, br#"],"usage":null}"#), None);
        assert_eq!(from_json_tail(Dialect::OpenAi, b""), None);
        // A later match that is no usage (a string value, a key of something else) is passed
        // over for the one before it.
        let later = br#"],"usage":{"prompt_tokens":3,"completion_tokens":2},"meta":{"kind":"usage","usage":[1]}}"#;
        let u = from_json_tail(Dialect::OpenAi, later).unwrap();
        assert_eq!((u.prompt, u.completion), (Some(3), Some(2)));
    }

    #[test]
    fn an_answer_tail_keeps_the_end_and_estimates_without_usage() {
        let mut t = AnswerTail::new(b"{\"choices\":[{\"text\":\"".to_vec(), 20);
        for _ in 0..3000 {
            t.feed(&[b'x'; 100]);
        }
        t.feed(br#""}],"usage":{"prompt_tokens":5,"completion_tokens":77}}"#);
        assert_eq!(t.finish(Dialect::OpenAi).0.completion, Some(77));
        assert!(!t.finish(Dialect::OpenAi).1);
        assert!(t.tail.len() <= TAIL_BYTES);
        // No usage at its end (or it did not end): about a token per four bytes.
        let mut cut = AnswerTail::new(vec![b'x'; 400], 1000);
        cut.feed(&[b'y'; 600]);
        assert_eq!(
            cut.finish(Dialect::OpenAi),
            (
                Usage {
                    completion: Some(400),
                    ..Usage::default()
                },
                true
            )
        );
    }

    const OPENAI_STREAM: &str = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n\
data: {\"choices\":[{\"delta\":{\"content\":\"hello \"}}]}\n\n\
data: {\"choices\":[{\"delta\":{\"content\":\"world\"}}]}\n\n\
data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11}}\n\n\
data: [DONE]\n\n";

    #[test]
    fn json_without_usage_is_counted_locally() {
        let body = br#"{"choices":[{"message":{"role":"assistant","content":"hello world"}}]}"#;
        assert_eq!(
            local_from_json(counter(), Encoding::O200kBase, Dialect::OpenAi, body),
            2
        );
        let body = br#"{"content":[{"type":"text","text":"hello world"}]}"#;
        assert_eq!(
            local_from_json(counter(), Encoding::O200kBase, Dialect::Anthropic, body),
            2
        );
    }

    #[test]
    fn openai_stream_usage_chunk_wins_at_any_split() {
        for cut in 0..OPENAI_STREAM.len() {
            let mut s = StreamUsage::new(Dialect::OpenAi);
            s.feed(&OPENAI_STREAM.as_bytes()[..cut]);
            s.feed(&OPENAI_STREAM.as_bytes()[cut..]);
            let (u, src) = s.finish(counter(), Encoding::O200kBase);
            assert_eq!(
                (u.prompt, u.completion, src),
                (Some(9), Some(2), Source::Provider),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn openai_stream_without_usage_is_counted_locally() {
        let without: String = OPENAI_STREAM
            .split("\n\n")
            .filter(|e| !e.contains("usage"))
            .map(|e| format!("{e}\n\n"))
            .collect();
        let mut s = StreamUsage::new(Dialect::OpenAi);
        s.feed(without.as_bytes());
        let (u, src) = s.finish(counter(), Encoding::O200kBase);
        assert_eq!((u.completion, src), (Some(2), Source::Local));
    }

    #[test]
    fn anthropic_stream_reads_start_and_delta() {
        let stream = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"hello world\"}}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":5}}\n\n";
        let mut s = StreamUsage::new(Dialect::Anthropic);
        s.feed(stream.as_bytes());
        let (u, src) = s.finish(counter(), Encoding::O200kBase);
        assert_eq!(
            (u.prompt, u.completion, src),
            (Some(12), Some(5), Source::Provider)
        );

        // Without message_delta usage, message_start's placeholder is not taken.
        let no_delta: String = stream.replace(",\"usage\":{\"output_tokens\":5}", "");
        let mut s = StreamUsage::new(Dialect::Anthropic);
        s.feed(no_delta.as_bytes());
        let (u, src) = s.finish(counter(), Encoding::O200kBase);
        assert_eq!(
            (u.prompt, u.completion, src),
            (Some(12), Some(2), Source::Local)
        );
    }
}
