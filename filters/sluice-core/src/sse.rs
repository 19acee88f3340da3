//! Incremental Server-Sent Events parsing.
//!
//! Feed [`SseParser`] the response body in whatever chunks the proxy hands over; it returns
//! whole events. Each [`SseEvent`] keeps the exact bytes it was made of (`raw`), so a filter that
//! only reads events can forward them byte for byte, and a filter that rewrites an event can
//! re-encode it with [`SseEvent::encode`]. A chunk boundary anywhere — inside `data:`, inside a
//! multi-byte UTF-8 sequence, between the `\r` and `\n` of a line break — changes nothing: events
//! are decoded only once all their bytes are in.
//!
//! Line breaks follow the SSE specification: `\n`, `\r\n` or a lone `\r`. An event ends at an
//! empty line. Comment lines (starting with `:`) are kept in `raw` and ignored in the fields.

/// One event, as delimited by an empty line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The exact bytes of the event, including its terminating empty line.
    pub raw: Vec<u8>,
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined by `\n`; `None` when the event had no `data:` line.
    pub data: Option<String>,
    /// The `id:` field, if any.
    pub id: Option<String>,
    /// The `retry:` field, if it was a valid integer.
    pub retry: Option<u64>,
    /// False only for the trailing bytes returned by [`SseParser::finish`] when the stream ended
    /// without an empty line after them.
    pub complete: bool,
}

impl SseEvent {
    /// Builds an event with the given `event:` name (if any) and `data:` payload, encoded with
    /// `\n` line breaks. Multi-line data becomes several `data:` lines.
    pub fn new(event: Option<&str>, data: &str) -> Self {
        let mut ev = SseEvent {
            event: event.map(str::to_owned),
            data: Some(data.to_owned()),
            complete: true,
            ..SseEvent::default()
        };
        ev.raw = ev.encode();
        ev
    }

    /// True when the payload is OpenAI's end-of-stream marker `[DONE]`.
    pub fn is_done_marker(&self) -> bool {
        self.data.as_deref().map(str::trim) == Some("[DONE]")
    }

    /// True when the event carries no field at all (a stray blank line or comments only).
    pub fn is_empty(&self) -> bool {
        self.event.is_none() && self.data.is_none() && self.id.is_none() && self.retry.is_none()
    }

    /// Encodes the fields afresh (`\n` line breaks, one space after each colon). Use `raw` to
    /// forward an unchanged event; use this after changing a field.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(id) = &self.id {
            push_field(&mut out, "id", id);
        }
        if let Some(event) = &self.event {
            push_field(&mut out, "event", event);
        }
        if let Some(retry) = self.retry {
            push_field(&mut out, "retry", &retry.to_string());
        }
        if let Some(data) = &self.data {
            for line in data.split('\n') {
                push_field(&mut out, "data", line);
            }
        }
        out.push(b'\n');
        out
    }

    fn from_raw(raw: Vec<u8>, complete: bool) -> Self {
        let mut ev = SseEvent {
            complete,
            ..SseEvent::default()
        };
        let mut data: Option<String> = None;
        for line in Lines::new(&raw) {
            let line = String::from_utf8_lossy(line);
            if line.is_empty() || line.starts_with(':') {
                continue;
            }
            let (name, value) = match line.split_once(':') {
                Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
                None => (line.as_ref(), ""),
            };
            match name {
                "event" => ev.event = Some(value.to_owned()),
                "data" => match data.as_mut() {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => data = Some(value.to_owned()),
                },
                "id" if !value.contains('\0') => ev.id = Some(value.to_owned()),
                "retry" => {
                    if let Ok(ms) = value.parse::<u64>() {
                        ev.retry = Some(ms);
                    }
                }
                _ => {}
            }
        }
        ev.data = data;
        ev.raw = raw;
        ev
    }
}

fn push_field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.push(b'\n');
}

/// Iterates over the lines of a complete byte slice, accepting `\n`, `\r\n` and `\r`.
struct Lines<'a> {
    rest: &'a [u8],
}

impl<'a> Lines<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Lines { rest: bytes }
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        match self.rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            None => {
                let line = self.rest;
                self.rest = &[];
                Some(line)
            }
            Some(at) => {
                let (line, tail) = self.rest.split_at(at);
                let skip = if tail.starts_with(b"\r\n") { 2 } else { 1 };
                self.rest = tail.get(skip..).unwrap_or(&[]);
                Some(line)
            }
        }
    }
}

/// Turns a byte stream, in arbitrary chunks, into whole [`SseEvent`]s.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the event being assembled (everything after the last complete event).
    buf: Vec<u8>,
    /// Where the first line not yet known to be complete starts in `buf`.
    line_start: usize,
    /// How far `buf` has been searched for a line break (so a long line fed in many small
    /// chunks is scanned once, not once per chunk).
    scanned: usize,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds a chunk; returns the events it completed, in order.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        self.feed_into(chunk, &mut events);
        events
    }

    /// Like [`SseParser::feed`], appending to `out` to spare an allocation per chunk.
    ///
    /// Linear in the chunk however many events it holds: each completed event is copied out at
    /// its own size, and the bytes they took leave the buffer once, at the end.
    pub fn feed_into(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) {
        self.buf.extend_from_slice(chunk);
        // Where the event being assembled starts in `buf`.
        let mut event_start = 0;
        loop {
            let from = self.scanned.max(self.line_start);
            let rest = self.buf.get(from..).unwrap_or(&[]);
            let Some(at) = rest.iter().position(|&b| b == b'\n' || b == b'\r') else {
                self.scanned = self.buf.len();
                break;
            };
            let brk = from + at;
            self.scanned = brk;
            let next = match (self.buf.get(brk), self.buf.get(brk + 1)) {
                (Some(b'\r'), Some(b'\n')) => brk + 2,
                // A `\r` at the very end may be the first half of `\r\n`: wait for more bytes.
                (Some(b'\r'), None) => break,
                _ => brk + 1,
            };
            let line_is_empty = brk == self.line_start;
            self.line_start = next;
            if line_is_empty {
                let raw = self.buf.get(event_start..next).unwrap_or(&[]).to_vec();
                event_start = next;
                out.push(SseEvent::from_raw(raw, true));
            }
        }
        if event_start > 0 {
            self.buf.drain(..event_start);
            self.line_start = self.line_start.saturating_sub(event_start);
            self.scanned = self.scanned.saturating_sub(event_start);
        }
    }

    /// Bytes received but not yet part of a complete event.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }

    /// Ends the stream: returns what is left, if anything, as an event with `complete: false`
    /// (the SSE specification discards such an event, but a proxy must still forward its bytes).
    /// A final lone `\r` counts as a line break here.
    pub fn finish(&mut self) -> Option<SseEvent> {
        self.line_start = 0;
        self.scanned = 0;
        if self.buf.is_empty() {
            return None;
        }
        let raw = std::mem::take(&mut self.buf);
        let complete = raw.ends_with(b"\n\n")
            || raw.ends_with(b"\r\r")
            || raw.ends_with(b"\r\n\r")
            || raw.ends_with(b"\n\r")
            || raw == b"\r"
            || raw == b"\n";
        Some(SseEvent::from_raw(raw, complete))
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn a_chunk_of_many_events_costs_its_length() {
        // One read of a fast upstream may hold thousands of events: each comes out whole and
        // no bigger than itself (a buffer split per event once made every event carry the rest
        // of the chunk, and a 750 KB chunk ran the VM out of memory).
        let event = b"data: {\"choices\":[{\"delta\":{\"content\":\"word \"}}]}\n\n";
        let chunk = event.repeat(20_000);
        let mut parser = SseParser::new();
        let mut events = Vec::new();
        parser.feed_into(&chunk[..chunk.len() - 7], &mut events);
        assert_eq!(events.len(), 19_999);
        assert!(events.iter().all(|e| e.raw == event && e.complete));
        parser.feed_into(&chunk[chunk.len() - 7..], &mut events);
        assert_eq!(events.len(), 20_000);
        assert!(parser.pending().is_empty());
        assert!(parser.buf.capacity() < 2 * chunk.len());
        let held: usize = events.iter().map(|e| e.raw.capacity()).sum();
        assert!(held < 4 * chunk.len(), "{held}");
    }
    use crate::testing::split_at_points;

    /// A stream with every kind of line break, comments, multi-line data, multi-byte UTF-8
    /// (2-, 3- and 4-byte sequences), an `[DONE]` marker and a trailing partial event.
    const STREAM: &[u8] = "data: {\"choices\":[{\"delta\":{\"content\":\"héllo\"}}]}\n\n\
: keep-alive comment\n\n\
event: content_block_delta\r\ndata: {\"text\":\"日本語 🦀\"}\r\n\r\n\
id: 7\rretry: 1500\rdata: line one\rdata: line two\r\r\
data\n\n\
data: [DONE]\n\n\
data: partial"
        .as_bytes();

    fn parse_whole(input: &[u8]) -> (Vec<SseEvent>, Option<SseEvent>) {
        let mut p = SseParser::new();
        let events = p.feed(input);
        (events, p.finish())
    }

    fn parse_chunks(chunks: &[Vec<u8>]) -> (Vec<SseEvent>, Option<SseEvent>) {
        let mut p = SseParser::new();
        let mut events = Vec::new();
        for c in chunks {
            p.feed_into(c, &mut events);
        }
        (events, p.finish())
    }

    fn concat_raw(events: &[SseEvent], tail: &Option<SseEvent>) -> Vec<u8> {
        let mut out: Vec<u8> = events.iter().flat_map(|e| e.raw.clone()).collect();
        if let Some(t) = tail {
            out.extend_from_slice(&t.raw);
        }
        out
    }

    #[test]
    fn parses_fields_of_each_event() {
        let (events, tail) = parse_whole(STREAM);
        assert_eq!(events.len(), 6);
        assert_eq!(
            events[0].data.as_deref(),
            Some("{\"choices\":[{\"delta\":{\"content\":\"héllo\"}}]}")
        );
        assert!(events[1].is_empty(), "comment-only event has no fields");
        assert_eq!(events[2].event.as_deref(), Some("content_block_delta"));
        assert_eq!(events[2].data.as_deref(), Some("{\"text\":\"日本語 🦀\"}"));
        assert_eq!(events[3].id.as_deref(), Some("7"));
        assert_eq!(events[3].retry, Some(1500));
        assert_eq!(events[3].data.as_deref(), Some("line one\nline two"));
        assert_eq!(events[4].data.as_deref(), Some(""), "bare `data` line");
        assert!(events[5].is_done_marker());
        let tail = tail.expect("partial event at end");
        assert!(!tail.complete);
        assert_eq!(tail.data.as_deref(), Some("partial"));
    }

    #[test]
    fn raw_bytes_reassemble_the_input_exactly() {
        let (events, tail) = parse_whole(STREAM);
        assert_eq!(concat_raw(&events, &tail), STREAM);
    }

    #[test]
    fn every_single_split_point_gives_identical_events() {
        let whole = parse_whole(STREAM);
        for cut in 0..=STREAM.len() {
            let chunks = split_at_points(STREAM, &[cut]);
            assert_eq!(parse_chunks(&chunks), whole, "split at {cut}");
        }
    }

    #[test]
    fn every_pair_of_split_points_gives_identical_events() {
        let whole = parse_whole(STREAM);
        for a in 0..=STREAM.len() {
            for b in a..=STREAM.len() {
                let chunks = split_at_points(STREAM, &[a, b]);
                assert_eq!(parse_chunks(&chunks), whole, "split at {a},{b}");
            }
        }
    }

    #[test]
    fn byte_at_a_time_gives_identical_events() {
        let whole = parse_whole(STREAM);
        let points: Vec<usize> = (1..STREAM.len()).collect();
        assert_eq!(parse_chunks(&split_at_points(STREAM, &points)), whole);
    }

    #[test]
    fn random_splits_give_identical_events() {
        let whole = parse_whole(STREAM);
        for seed in 0..500u64 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let n = rng.usize(1..16);
            let mut points: Vec<usize> = (0..n).map(|_| rng.usize(0..=STREAM.len())).collect();
            points.sort_unstable();
            assert_eq!(
                parse_chunks(&split_at_points(STREAM, &points)),
                whole,
                "seed {seed} points {points:?}"
            );
        }
    }

    #[test]
    fn random_streams_reassemble_and_agree_with_one_shot_parse() {
        // Streams built from a vocabulary of awkward pieces, split at random points.
        const PIECES: &[&str] = &[
            "data: ",
            "event: x",
            "\n",
            "\r\n",
            "\r",
            ":c",
            "é",
            "🦀",
            "{\"a\":1}",
            "[DONE]",
            "id: 1",
            "retry: 5",
            "data:no-space",
        ];
        for seed in 0..300u64 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let len = rng.usize(0..40);
            let input: Vec<u8> = (0..len)
                .flat_map(|_| PIECES[rng.usize(0..PIECES.len())].as_bytes().to_vec())
                .collect();
            let whole = parse_whole(&input);
            assert_eq!(concat_raw(&whole.0, &whole.1), input, "seed {seed}");
            let mut points: Vec<usize> = (0..rng.usize(0..8))
                .map(|_| rng.usize(0..=input.len()))
                .collect();
            points.sort_unstable();
            assert_eq!(
                parse_chunks(&split_at_points(&input, &points)),
                whole,
                "seed {seed} points {points:?}"
            );
        }
    }

    #[test]
    fn cr_at_chunk_end_waits_for_a_possible_lf() {
        let mut p = SseParser::new();
        assert!(p.feed(b"data: a\r\n\r").is_empty());
        let events = p.feed(b"\ndata: b\n\n");
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].raw, b"data: a\r\n\r\n");
        assert_eq!(events[1].data.as_deref(), Some("b"));
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let (events, _) = parse_whole(b"data: \xff\xfeok\n\n");
        assert_eq!(events[0].data.as_deref(), Some("\u{fffd}\u{fffd}ok"));
        assert_eq!(events[0].raw, b"data: \xff\xfeok\n\n");
    }

    #[test]
    fn encode_round_trips_through_the_parser() {
        let ev = SseEvent::new(Some("message_delta"), "{\"x\":1}\nsecond");
        let (events, tail) = parse_whole(&ev.raw);
        assert!(tail.is_none());
        assert_eq!(events, vec![ev]);
    }
}
