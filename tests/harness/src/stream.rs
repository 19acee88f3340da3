//! A streamed answer as a caller reads it back: its text, its finish or stop reasons, and
//! whether it ended with OpenAI's `[DONE]`. One reader for every test, in both dialects.

use serde_json::Value;
use sluice_core::SseParser;

/// What a caller made of an SSE answer body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Streamed {
    /// The assistant text: OpenAI chunks' `choices[0].delta.content` and Anthropic
    /// `content_block_delta` events' `delta.text`, in order.
    pub text: String,
    /// `finish_reason` (OpenAI) and `stop_reason` (Anthropic `message_delta`) values, in order.
    pub reasons: Vec<String>,
    /// The last event is `data: [DONE]`.
    pub done: bool,
    /// The last event's name (Anthropic: `message_stop` on a whole stream).
    pub last_event: Option<String>,
}

/// Reads a whole SSE body (only events its blank lines end: a cut-off last event is not one).
/// Panics on an event whose data is not JSON: a caller's SDK would fail there too.
pub fn read(body: &[u8]) -> Streamed {
    let events = SseParser::new().feed(body);
    let mut out = Streamed {
        done: events.last().is_some_and(|e| e.is_done_marker()),
        last_event: events.last().and_then(|e| e.event.clone()),
        ..Streamed::default()
    };
    for e in &events {
        let Some(data) = e.data.as_deref() else {
            continue;
        };
        if e.is_done_marker() {
            continue;
        }
        let v: Value = serde_json::from_str(data)
            .unwrap_or_else(|err| panic!("an SSE event that is not JSON ({err}): {data}"));
        for text in [&v["choices"][0]["delta"]["content"], &v["delta"]["text"]] {
            if let Some(t) = text.as_str() {
                out.text += t;
            }
        }
        for reason in [
            &v["choices"][0]["finish_reason"],
            &v["delta"]["stop_reason"],
        ] {
            if let Some(r) = reason.as_str() {
                out.reasons.push(r.to_owned());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_dialects() {
        let openai = b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n\
            data: {\"choices\":[{\"delta\":{\"content\":\"b\"},\"finish_reason\":\"stop\"}]}\n\n\
            data: [DONE]\n\n";
        let s = read(openai);
        assert_eq!(
            (s.text.as_str(), s.reasons.as_slice(), s.done),
            ("ab", &["stop".to_owned()][..], true)
        );
        let anthropic = b"event: content_block_delta\ndata: {\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n\
            event: message_delta\ndata: {\"delta\":{\"stop_reason\":\"end_turn\"}}\n\n\
            event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        let s = read(anthropic);
        assert_eq!(s.text, "hi");
        assert_eq!(s.reasons, ["end_turn"]);
        assert!(!s.done);
        assert_eq!(s.last_event.as_deref(), Some("message_stop"));
        // A last event without its blank line is not read.
        assert!(!read(b"data: [DONE]\n").done);
    }
}
