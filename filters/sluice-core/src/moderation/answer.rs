//! The answer side: placeholders restored and rules applied to the assistant's text, in a JSON
//! answer before the caller sees a byte of it, and in a stream event by event.
//!
//! A stream keeps its events: each passes as it arrives, its text shortened by what is held back
//! (the start of a placeholder, or the guard's window) and lengthened by what was held from the
//! event before. Held text left when a text ends goes out in one extra event just before the end
//! (OpenAI: a chunk before the one with `finish_reason`; Anthropic: a `text_delta` before
//! `content_block_stop`). On a violation the stream ends cleanly in the caller's dialect: OpenAI
//! a chunk with `finish_reason: "content_filter"` then `data: [DONE]`; Anthropic
//! `content_block_stop`, `message_delta` with `stop_reason: "refusal"`, `message_stop`. Nothing
//! from the offending text on reaches the caller, nothing before it is lost, and every other
//! event passes byte for byte.

use serde_json::{json, Value};

use super::engine::{Cause, Engine};
use super::guard::Guard;
use super::mask::Restorer;
use super::rules::{Segment, Selection};
use crate::error::Dialect;
use crate::sse::{SseEvent, SseParser};

/// A JSON answer after moderation.
#[derive(Debug, Default)]
pub struct AnswerReport {
    /// The new body, when anything changed.
    pub body: Option<Vec<u8>>,
    /// What cut the answer short, if anything.
    pub blocked: Option<Cause>,
}

/// One text through restore then check: what may be released, and whether it was cut.
fn pass_text(
    engine: &Engine,
    restorer: Option<&Restorer>,
    selection: &Selection,
    text: &str,
) -> (String, Option<Cause>) {
    let restored = match restorer {
        Some(r) => r.restore_all(text),
        None => text.to_owned(),
    };
    match engine
        .rules()
        .check_in(Segment::Answer, &restored, selection)
    {
        Some(v) => (
            restored.get(..v.start).unwrap_or("").to_owned(),
            Some(Cause::Rule(v.rule.to_owned())),
        ),
        None => (restored, None),
    }
}

/// Moderates a whole JSON answer (`body` as the provider sent it). A body that is not JSON, or
/// not an answer, is left alone.
pub fn moderate_json(
    engine: &Engine,
    restorer: Option<&Restorer>,
    selection: &Selection,
    dialect: Dialect,
    body: &[u8],
) -> AnswerReport {
    let mut report = AnswerReport::default();
    // Nothing to restore and nothing a rule could find: no parse.
    if restorer.is_none() && !engine.rules().answer_may_match_raw(body, selection) {
        return report;
    }
    let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
        return report;
    };
    let mut changed = false;
    match dialect {
        Dialect::OpenAi => {
            for choice in value
                .get_mut("choices")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                let mut cut = None;
                // Chat answers (`message.content`) and completions (`text`).
                let slot = match choice.get_mut("message") {
                    Some(message) => message.get_mut("content"),
                    None => choice.get_mut("text"),
                };
                if let Some(Value::String(text)) = slot {
                    let (out, cause) = pass_text(engine, restorer, selection, text);
                    if out != *text {
                        *text = out;
                        changed = true;
                    }
                    cut = cause;
                }
                if let Some(r) = restorer {
                    for call in choice
                        .pointer_mut("/message/tool_calls")
                        .and_then(Value::as_array_mut)
                        .into_iter()
                        .flatten()
                    {
                        if let Some(Value::String(args)) = call.pointer_mut("/function/arguments") {
                            let restored = r.restore_all(args);
                            if restored != *args {
                                *args = restored;
                                changed = true;
                            }
                        }
                    }
                }
                if let Some(cause) = cut {
                    if let Some(obj) = choice.as_object_mut() {
                        obj.insert("finish_reason".into(), json!("content_filter"));
                    }
                    changed = true;
                    report.blocked.get_or_insert(cause);
                }
            }
        }
        Dialect::Anthropic => {
            let mut cut_at = None;
            if let Some(blocks) = value.get_mut("content").and_then(Value::as_array_mut) {
                for (i, block) in blocks.iter_mut().enumerate() {
                    if let Some(Value::String(text)) = block.get_mut("text") {
                        let (out, cause) = pass_text(engine, restorer, selection, text);
                        if out != *text {
                            *text = out;
                            changed = true;
                        }
                        if let Some(cause) = cause {
                            cut_at = Some(i + 1);
                            report.blocked = Some(cause);
                            break;
                        }
                    } else if let (Some(r), Some(input)) = (restorer, block.get_mut("input")) {
                        changed |= restore_strings(r, input);
                    }
                }
                if let Some(n) = cut_at {
                    blocks.truncate(n);
                }
            }
            if cut_at.is_some() {
                if let Some(obj) = value.as_object_mut() {
                    obj.insert("stop_reason".into(), json!("refusal"));
                }
            }
        }
    }
    if changed {
        report.body = serde_json::to_vec(&value).ok();
    }
    report
}

/// The assistant's texts in a JSON answer, as the provider wrote them (placeholders kept): what
/// the external check reads. Empty for a body that is not JSON or has no text.
pub fn answer_texts(dialect: Dialect, body: &[u8]) -> Vec<String> {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let texts: Vec<&Value> = match dialect {
        Dialect::OpenAi => value
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.pointer("/message/content").or_else(|| c.get("text")))
            .collect(),
        Dialect::Anthropic => value
            .get("content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|b| b.get("text"))
            .collect(),
    };
    texts
        .into_iter()
        .filter_map(Value::as_str)
        .filter(|t| !t.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// A JSON answer with its assistant text withheld, as a rule's cut leaves it: OpenAI choices
/// with empty content and `finish_reason: "content_filter"`, Anthropic with no content blocks
/// and `stop_reason: "refusal"`. None for a body that is not a JSON object.
pub fn withhold_json(dialect: Dialect, body: &[u8]) -> Option<Vec<u8>> {
    let mut value = serde_json::from_slice::<Value>(body).ok()?;
    let obj = value.as_object_mut()?;
    match dialect {
        Dialect::OpenAi => {
            for choice in obj
                .get_mut("choices")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                let Some(choice) = choice.as_object_mut() else {
                    continue;
                };
                if let Some(message) = choice.get_mut("message").and_then(Value::as_object_mut) {
                    message.insert("content".into(), json!(""));
                    message.remove("tool_calls");
                } else {
                    choice.insert("text".into(), json!(""));
                }
                choice.insert("finish_reason".into(), json!("content_filter"));
            }
        }
        Dialect::Anthropic => {
            obj.insert("content".into(), json!([]));
            obj.insert("stop_reason".into(), json!("refusal"));
        }
    }
    serde_json::to_vec(&value).ok()
}

/// Restores placeholders in every string inside a JSON value (a tool call's input).
fn restore_strings(r: &Restorer, value: &mut Value) -> bool {
    match value {
        Value::String(s) => {
            let restored = r.restore_all(s);
            let changed = restored != *s;
            *s = restored;
            changed
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |c, v| restore_strings(r, v) | c),
        Value::Object(map) => map
            .values_mut()
            .fold(false, |c, v| restore_strings(r, v) | c),
        _ => false,
    }
}

/// One streamed text (an OpenAI choice, an Anthropic content block).
#[derive(Debug)]
struct Text {
    index: u64,
    restorer: Option<Restorer>,
    guard: Option<Guard>,
}

impl Text {
    /// Passes a piece through restore and check; the released text, and a cause on a cut.
    fn push(&mut self, engine: &Engine, piece: &str) -> (String, Option<Cause>) {
        let mut restored = String::new();
        match &mut self.restorer {
            Some(r) => r.push(piece, &mut restored),
            None => restored.push_str(piece),
        }
        self.guarded(engine, &restored, false)
    }

    /// The text ended: everything still held, checked.
    fn finish(&mut self, engine: &Engine) -> (String, Option<Cause>) {
        let mut restored = String::new();
        if let Some(r) = &mut self.restorer {
            r.finish(&mut restored);
        }
        self.guarded(engine, &restored, true)
    }

    fn guarded(&mut self, engine: &Engine, text: &str, end: bool) -> (String, Option<Cause>) {
        let Some(guard) = &mut self.guard else {
            return (text.to_owned(), None);
        };
        let mut out = String::new();
        let mut stop = guard.push(engine.rules(), text, &mut out);
        if end && stop.is_none() {
            stop = guard.finish(engine.rules(), &mut out);
        }
        (out, stop.map(|s| Cause::Rule(s.rule)))
    }
}

/// A streamed answer's moderation: SSE bytes in, SSE bytes out.
#[derive(Debug)]
pub struct AnswerStream {
    dialect: Dialect,
    parser: SseParser,
    restorer: Option<Restorer>,
    selection: Selection,
    check: bool,
    texts: Vec<Text>,
    /// The last OpenAI chunk's `id`, `object`, `created`, `model`: the frame of added chunks.
    frame: Option<Value>,
    stopped: Option<Cause>,
    events: Vec<SseEvent>,
}

impl AnswerStream {
    /// `restorer`: the request's placeholders (None when nothing was masked or restore is off).
    pub fn new(
        engine: &Engine,
        dialect: Dialect,
        restorer: Option<Restorer>,
        selection: Selection,
    ) -> AnswerStream {
        AnswerStream {
            dialect,
            parser: SseParser::new(),
            restorer,
            check: engine.rules().reads_answers(&selection),
            selection,
            texts: Vec::new(),
            frame: None,
            stopped: None,
            events: Vec::new(),
        }
    }

    /// What cut the stream, once it has been cut.
    pub fn stopped(&self) -> Option<&Cause> {
        self.stopped.as_ref()
    }

    /// Feeds a chunk of the upstream body; appends the bytes to send on to `out`.
    pub fn feed(&mut self, engine: &Engine, chunk: &[u8], end: bool, out: &mut Vec<u8>) {
        let mut events = std::mem::take(&mut self.events);
        self.parser.feed_into(chunk, &mut events);
        if end {
            events.extend(self.parser.finish());
        }
        for event in events.drain(..) {
            if self.stopped.is_some() {
                continue;
            }
            match self.dialect {
                Dialect::OpenAi => self.openai_event(engine, event, out),
                Dialect::Anthropic => self.anthropic_event(engine, event, out),
            }
        }
        self.events = events;
        if end && self.stopped.is_none() {
            // The stream ended without closing its texts: release what was held.
            self.flush_all(engine, out);
        }
    }

    fn new_text(&self, engine: &Engine, index: u64) -> Text {
        Text {
            index,
            restorer: self.restorer.clone(),
            guard: self.check.then(|| engine.guard(&self.selection)),
        }
    }

    fn ensure_text(&mut self, engine: &Engine, index: u64) -> usize {
        match self.texts.iter().position(|t| t.index == index) {
            Some(p) => p,
            None => {
                let t = self.new_text(engine, index);
                self.texts.push(t);
                self.texts.len() - 1
            }
        }
    }

    fn push_text(&mut self, engine: &Engine, index: u64, piece: &str) -> (String, Option<Cause>) {
        let i = self.ensure_text(engine, index);
        match self.texts.get_mut(i) {
            Some(t) => t.push(engine, piece),
            None => (piece.to_owned(), None),
        }
    }

    fn finish_text(&mut self, engine: &Engine, index: u64) -> (String, Option<Cause>) {
        match self.texts.iter().position(|t| t.index == index) {
            Some(i) => {
                let mut t = self.texts.remove(i);
                t.finish(engine)
            }
            None => (String::new(), None),
        }
    }

    // ---- OpenAI: chat chunks (`choices[].delta.content`) and completions (`choices[].text`)

    fn openai_event(&mut self, engine: &Engine, event: SseEvent, out: &mut Vec<u8>) {
        if event.is_done_marker() {
            self.flush_all(engine, out);
            if self.stopped.is_none() {
                out.extend_from_slice(&event.raw);
            }
            return;
        }
        let Some(mut value) = event_json(&event) else {
            out.extend_from_slice(&event.raw);
            return;
        };
        if let Some(obj) = value.as_object() {
            let mut frame = serde_json::Map::new();
            for key in ["id", "object", "created", "model", "system_fingerprint"] {
                if let Some(v) = obj.get(key) {
                    frame.insert(key.to_owned(), v.clone());
                }
            }
            self.frame = Some(Value::Object(frame));
        }
        let mut changed = false;
        let mut before: Vec<u8> = Vec::new();
        let mut cut: Option<(u64, Cause)> = None;
        let choices = value.get_mut("choices").and_then(Value::as_array_mut);
        for choice in choices.into_iter().flatten() {
            let index = choice.get("index").and_then(Value::as_u64).unwrap_or(0);
            let slot = if choice.get("delta").is_some() {
                choice.pointer_mut("/delta/content")
            } else {
                choice.get_mut("text")
            };
            if let Some(Value::String(piece)) = slot {
                let (released, cause) = self.push_text(engine, index, piece);
                if released != *piece {
                    *piece = released;
                    changed = true;
                }
                if let Some(cause) = cause {
                    cut = Some((index, cause));
                    break;
                }
            }
            let finished = choice.get("finish_reason").is_some_and(|f| !f.is_null());
            if finished {
                let (rest, cause) = self.finish_text(engine, index);
                if !rest.is_empty() {
                    before.extend(self.openai_chunk(index, Some(&rest), None));
                }
                if let Some(cause) = cause {
                    cut = Some((index, cause));
                    break;
                }
            }
        }
        if let Some((index, cause)) = cut {
            if changed {
                out.extend(encode(&event, &value));
            } else {
                out.extend_from_slice(&event.raw);
            }
            out.extend(before);
            out.extend(self.openai_chunk(index, None, Some("content_filter")));
            out.extend_from_slice(b"data: [DONE]\n\n");
            self.stopped = Some(cause);
            return;
        }
        out.extend(before);
        if changed {
            out.extend(encode(&event, &value));
        } else {
            out.extend_from_slice(&event.raw);
        }
    }

    /// An added chunk in the stream's frame: some text, or a finish reason.
    fn openai_chunk(&self, index: u64, text: Option<&str>, finish: Option<&str>) -> Vec<u8> {
        let mut chunk = self.frame.clone().unwrap_or_else(|| json!({}));
        let delta = match text {
            Some(t) => json!({"content": t}),
            None => json!({}),
        };
        if let Some(obj) = chunk.as_object_mut() {
            obj.insert(
                "choices".into(),
                json!([{"index": index, "delta": delta, "finish_reason": finish}]),
            );
        }
        encode(&SseEvent::default(), &chunk)
    }

    // ---- Anthropic: `content_block_delta` / `text_delta`

    fn anthropic_event(&mut self, engine: &Engine, event: SseEvent, out: &mut Vec<u8>) {
        let Some(mut value) = event_json(&event) else {
            out.extend_from_slice(&event.raw);
            return;
        };
        let kind = value.get("type").and_then(Value::as_str).unwrap_or("");
        let index = value.get("index").and_then(Value::as_u64).unwrap_or(0);
        match kind {
            "content_block_delta" => {
                let Some(Value::String(piece)) = value.pointer_mut("/delta/text") else {
                    out.extend_from_slice(&event.raw);
                    return;
                };
                let (released, cause) = self.push_text(engine, index, piece);
                if released == *piece {
                    out.extend_from_slice(&event.raw);
                } else {
                    *piece = released;
                    out.extend(encode(&event, &value));
                }
                if let Some(cause) = cause {
                    self.anthropic_cut(index, cause, out);
                }
            }
            "content_block_stop" => {
                let (rest, cause) = self.finish_text(engine, index);
                if !rest.is_empty() {
                    out.extend(anthropic_delta(index, &rest));
                }
                match cause {
                    Some(cause) => self.anthropic_cut(index, cause, out),
                    None => out.extend_from_slice(&event.raw),
                }
            }
            _ => out.extend_from_slice(&event.raw),
        }
    }

    fn anthropic_cut(&mut self, index: u64, cause: Cause, out: &mut Vec<u8>) {
        let events = [
            (
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index}),
            ),
            (
                "message_delta",
                json!({"type": "message_delta",
                       "delta": {"stop_reason": "refusal", "stop_sequence": null},
                       "usage": {"output_tokens": 0}}),
            ),
            ("message_stop", json!({"type": "message_stop"})),
        ];
        for (name, data) in events {
            out.extend(SseEvent::new(Some(name), &data.to_string()).raw);
        }
        self.stopped = Some(cause);
    }

    /// Releases every open text's held part (the stream is ending).
    fn flush_all(&mut self, engine: &Engine, out: &mut Vec<u8>) {
        let indexes: Vec<u64> = self.texts.iter().map(|t| t.index).collect();
        for index in indexes {
            if self.stopped.is_some() {
                return;
            }
            let (rest, cause) = self.finish_text(engine, index);
            let added = match self.dialect {
                Dialect::OpenAi => self.openai_chunk(index, Some(&rest), None),
                Dialect::Anthropic => anthropic_delta(index, &rest),
            };
            if !rest.is_empty() {
                out.extend(added);
            }
            if let Some(cause) = cause {
                match self.dialect {
                    Dialect::OpenAi => {
                        out.extend(self.openai_chunk(index, None, Some("content_filter")));
                        out.extend_from_slice(b"data: [DONE]\n\n");
                        self.stopped = Some(cause);
                    }
                    Dialect::Anthropic => self.anthropic_cut(index, cause, out),
                }
            }
        }
    }
}

fn anthropic_delta(index: u64, text: &str) -> Vec<u8> {
    let data = json!({"type": "content_block_delta", "index": index,
                      "delta": {"type": "text_delta", "text": text}});
    SseEvent::new(Some("content_block_delta"), &data.to_string()).raw
}

/// An event with its data replaced by `value`, other fields kept.
fn encode(event: &SseEvent, value: &Value) -> Vec<u8> {
    let mut e = event.clone();
    e.data = Some(value.to_string());
    e.encode()
}

/// An event's `data` as JSON, or `None` when it has none or it is not JSON (such an event is
/// passed on as it came).
fn event_json(event: &SseEvent) -> Option<Value> {
    event
        .data
        .as_deref()
        .and_then(|d| serde_json::from_str::<Value>(d).ok())
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::super::config::ModerationConfig;
    use super::super::mask::Masker;
    use super::*;
    use crate::endpoint::Endpoint;
    use crate::parse_config;

    const CONFIG: &str = r#"{
        "rules":[{"id":"demo-deny","keywords":["forbidden topic"],"case_insensitive":true}],
        "pii":{"detectors":{"email":"mask"}}, "stream_window_chars": 8}"#;

    fn engine() -> Engine {
        Engine::new(&parse_config::<ModerationConfig>(CONFIG.as_bytes()).unwrap()).unwrap()
    }

    /// The restorer of a request that masked a@x.io as [EMAIL_1].
    fn restorer(engine: &Engine) -> Restorer {
        let mut body = json!({"messages":[{"role":"user","content":"a@x.io"}]});
        let report = engine.moderate_request(&mut body, Endpoint::Chat, &Default::default());
        let masker: &Masker = &report.masker;
        masker.restorer().unwrap()
    }

    fn openai_stream(pieces: &[&str]) -> String {
        let mut s = String::new();
        for (i, p) in pieces.iter().enumerate() {
            let role = if i == 0 { r#""role":"assistant","# } else { "" };
            s += &format!(
                "data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{{role}\"content\":{}}},\"finish_reason\":null}}]}}\n\n",
                serde_json::to_string(p).unwrap()
            );
        }
        s += "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";
        s += "data: [DONE]\n\n";
        s
    }

    /// (concatenated content, finish reasons, number of events, ends with [DONE]).
    fn read_openai(bytes: &[u8]) -> (String, Vec<String>, usize, bool) {
        let events = SseParser::new().feed(bytes);
        let mut text = String::new();
        let mut finishes = Vec::new();
        for e in &events {
            if e.is_done_marker() {
                continue;
            }
            let v: Value = serde_json::from_str(e.data.as_deref().unwrap()).unwrap();
            let c = &v["choices"][0];
            if let Some(t) = c["delta"]["content"].as_str() {
                text += t;
            }
            if let Some(f) = c["finish_reason"].as_str() {
                finishes.push(f.to_owned());
            }
        }
        let done = events.last().is_some_and(SseEvent::is_done_marker);
        (text, finishes, events.len(), done)
    }

    fn run(
        engine: &Engine,
        dialect: Dialect,
        r: Option<Restorer>,
        chunks: &[&[u8]],
    ) -> (Vec<u8>, Option<Cause>) {
        let mut stream = AnswerStream::new(engine, dialect, r, Selection::all());
        let mut out = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            stream.feed(engine, c, i + 1 == chunks.len(), &mut out);
        }
        (out, stream.stopped().cloned())
    }

    #[test]
    fn a_placeholder_split_across_events_and_chunks_is_restored() {
        let e = engine();
        let input = openai_stream(&["Hello [EMA", "IL_1], how", " are you?"]);
        let bytes = input.as_bytes();
        for cut in 0..=bytes.len() {
            let (out, stop) = run(
                &e,
                Dialect::OpenAi,
                Some(restorer(&e)),
                &[&bytes[..cut], &bytes[cut..]],
            );
            let (text, finishes, events, done) = read_openai(&out);
            assert_eq!(text, "Hello a@x.io, how are you?", "cut {cut}");
            assert_eq!(finishes, ["stop"]);
            assert!(done && stop.is_none());
            // As many events as came: 3 with content, the finish chunk and [DONE] (the keyword
            // rule holds back nothing here: no text end could grow into its keyword).
            assert_eq!(events, 5, "cut {cut}");
            assert!(!String::from_utf8_lossy(&out).contains("EMAIL_1"));
        }
    }

    #[test]
    fn a_held_tail_goes_out_in_one_added_chunk_before_the_finish() {
        let e = engine();
        let input = openai_stream(&["I waited for", " you, then for"]);
        let (out, stop) = run(&e, Dialect::OpenAi, None, &[input.as_bytes()]);
        let (text, finishes, events, done) = read_openai(&out);
        assert_eq!(text, "I waited for you, then for");
        assert_eq!(
            (finishes, events, done, stop),
            (vec!["stop".to_owned()], 5, true, None)
        );
        let events = SseParser::new().feed(&out);
        let first: Value = serde_json::from_str(events[0].data.as_deref().unwrap()).unwrap();
        assert_eq!(first["choices"][0]["delta"]["content"], "I waited ");
        let added: Value = serde_json::from_str(events[2].data.as_deref().unwrap()).unwrap();
        assert_eq!(added["choices"][0]["delta"]["content"], "for");
        assert_eq!(added["id"], "c1");
    }

    #[test]
    fn events_nothing_touched_pass_byte_for_byte() {
        let e = Engine::new(
            &parse_config::<ModerationConfig>(br#"{"pii":{"detectors":{"email":"mask"}}}"#)
                .unwrap(),
        )
        .unwrap();
        let input = openai_stream(&["Hello", " there"]);
        let (out, _) = run(&e, Dialect::OpenAi, Some(restorer(&e)), &[input.as_bytes()]);
        assert_eq!(String::from_utf8(out).unwrap(), input);
    }

    #[test]
    fn a_violation_ends_the_stream_cleanly_at_any_split() {
        let e = engine();
        let input = openai_stream(&["Sure, the forb", "idden TOPIC is", " secret stuff"]);
        let bytes = input.as_bytes();
        for cut in 0..=bytes.len() {
            let (out, stop) = run(&e, Dialect::OpenAi, None, &[&bytes[..cut], &bytes[cut..]]);
            let (text, finishes, _, done) = read_openai(&out);
            assert_eq!(text, "Sure, the ", "cut {cut}");
            assert_eq!(finishes, ["content_filter"]);
            assert!(done);
            assert_eq!(stop, Some(Cause::Rule("demo-deny".into())));
            let s = String::from_utf8_lossy(&out).to_lowercase();
            assert!(!s.contains("idden") && !s.contains("secret"), "{s}");
        }
    }

    fn anthropic_stream(pieces: &[&str]) -> String {
        let mut s = String::from("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"c\",\"usage\":{\"input_tokens\":1,\"output_tokens\":0}}}\n\n");
        s += "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n";
        for p in pieces {
            s += &format!(
                "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":{}}}}}\n\n",
                serde_json::to_string(p).unwrap()
            );
        }
        s += "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n";
        s += "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":5}}\n\n";
        s += "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        s
    }

    /// (text, stop reasons, event names).
    fn read_anthropic(bytes: &[u8]) -> (String, Vec<String>, Vec<String>) {
        let mut text = String::new();
        let mut stops = Vec::new();
        let mut names = Vec::new();
        for e in SseParser::new().feed(bytes) {
            names.push(e.event.clone().unwrap_or_default());
            let v: Value = serde_json::from_str(e.data.as_deref().unwrap()).unwrap();
            if let Some(t) = v["delta"]["text"].as_str() {
                text += t;
            }
            if let Some(r) = v["delta"]["stop_reason"].as_str() {
                stops.push(r.to_owned());
            }
        }
        (text, stops, names)
    }

    #[test]
    fn anthropic_streams_restore_and_cut() {
        let e = engine();
        let input = anthropic_stream(&["Mail [EMAIL", "_1] now"]);
        let bytes = input.as_bytes();
        for cut in 0..=bytes.len() {
            let (out, _) = run(
                &e,
                Dialect::Anthropic,
                Some(restorer(&e)),
                &[&bytes[..cut], &bytes[cut..]],
            );
            let (text, stops, names) = read_anthropic(&out);
            assert_eq!(text, "Mail a@x.io now", "cut {cut}");
            assert_eq!(stops, ["end_turn"]);
            assert_eq!(names.last().map(String::as_str), Some("message_stop"));
        }
        let input = anthropic_stream(&["About the Forbidden", " Topic: details"]);
        let (out, stop) = run(&e, Dialect::Anthropic, None, &[input.as_bytes()]);
        let (text, stops, names) = read_anthropic(&out);
        assert_eq!(text, "About the ");
        assert_eq!(stops, ["refusal"]);
        assert_eq!(
            names[names.len() - 3..],
            ["content_block_stop", "message_delta", "message_stop"]
        );
        assert!(stop.is_some());
        assert!(!String::from_utf8_lossy(&out).contains("details"));
    }

    #[test]
    fn json_answers_restored_and_cut() {
        let e = engine();
        let r = restorer(&e);
        let body = br#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"Hi [EMAIL_1]"},"finish_reason":"stop"}]}"#;
        let rep = moderate_json(&e, Some(&r), &Selection::all(), Dialect::OpenAi, body);
        let v: Value = serde_json::from_slice(&rep.body.unwrap()).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "Hi a@x.io");
        assert!(rep.blocked.is_none());

        let body = br#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"So: the forbidden topic is x"},"finish_reason":"stop"}]}"#;
        let rep = moderate_json(&e, None, &Selection::all(), Dialect::OpenAi, body);
        let v: Value = serde_json::from_slice(&rep.body.unwrap()).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "So: the ");
        assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
        assert_eq!(rep.blocked, Some(Cause::Rule("demo-deny".into())));

        let body = br#"{"type":"message","content":[{"type":"text","text":"To [EMAIL_1]: forbidden topic"},{"type":"text","text":"more"}],"stop_reason":"end_turn"}"#;
        let rep = moderate_json(&e, Some(&r), &Selection::all(), Dialect::Anthropic, body);
        let v: Value = serde_json::from_slice(&rep.body.unwrap()).unwrap();
        assert_eq!(v["content"], json!([{"type":"text","text":"To a@x.io: "}]));
        assert_eq!(v["stop_reason"], "refusal");

        let clean = br#"{"choices":[{"index":0,"message":{"role":"assistant","content":"fine"}}]}"#;
        assert!(
            moderate_json(&e, Some(&r), &Selection::all(), Dialect::OpenAi, clean)
                .body
                .is_none()
        );
    }

    #[test]
    fn answer_texts_and_withheld_answers_in_both_dialects() {
        let openai = br#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"hi [EMAIL_1]","tool_calls":[]},"finish_reason":"stop"}],"usage":{"prompt_tokens":3}}"#;
        assert_eq!(answer_texts(Dialect::OpenAi, openai), vec!["hi [EMAIL_1]"]);
        let withheld: Value =
            serde_json::from_slice(&withhold_json(Dialect::OpenAi, openai).unwrap()).unwrap();
        assert_eq!(withheld["choices"][0]["message"]["content"], "");
        assert_eq!(withheld["choices"][0]["finish_reason"], "content_filter");
        assert!(withheld["choices"][0]["message"]
            .get("tool_calls")
            .is_none());
        assert_eq!(withheld["usage"]["prompt_tokens"], 3);
        let completion = br#"{"choices":[{"index":0,"text":"a","finish_reason":"stop"}]}"#;
        assert_eq!(answer_texts(Dialect::OpenAi, completion), vec!["a"]);
        let anthropic = br#"{"type":"message","content":[{"type":"text","text":"one"},{"type":"tool_use","input":{}},{"type":"text","text":"two"}],"stop_reason":"end_turn"}"#;
        assert_eq!(
            answer_texts(Dialect::Anthropic, anthropic),
            vec!["one", "two"]
        );
        let withheld: Value =
            serde_json::from_slice(&withhold_json(Dialect::Anthropic, anthropic).unwrap()).unwrap();
        assert_eq!(withheld["content"], json!([]));
        assert_eq!(withheld["stop_reason"], "refusal");
        assert!(answer_texts(Dialect::OpenAi, b"not json").is_empty());
        assert!(withhold_json(Dialect::OpenAi, b"[1]").is_none());
    }
}
