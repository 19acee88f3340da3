//! Test controls, read from request headers.
//!
//! | header | effect |
//! |---|---|
//! | `x-mock-status: 429` | answer with that status and an error body in the endpoint's dialect; 429 adds `retry-after` |
//! | `x-mock-retry-after: 3` | the `retry-after` value for a forced 429/503 (default 1) |
//! | `x-mock-error-body: …` | use this exact text as the forced error's body |
//! | `x-mock-latency-ms: 250` | wait this long before answering |
//! | `x-mock-reply: …` | the assistant's text (default: echo the last user message) |
//! | `x-mock-reply-repeat: 3` | the assistant's text (or a forced error's `x-mock-error-body`) that many times over (long answers from short requests) |
//! | `x-mock-chunk-bytes: 7` | stream the SSE body in pieces of this many bytes, cutting events anywhere |
//! | `x-mock-chunk-delay-ms: 5` | pause between pieces (default 2 when chunking, so pieces travel apart) |
//! | `x-mock-no-usage: 1` | leave `usage` out of streamed answers even when asked for |
//! | `x-mock-flag-word: …` | `/v1/moderations` flags inputs containing this word |
//! | `x-mock-count: words` | count `usage` by whitespace-separated words, not tiktoken (benchmarks: keeps the mock cheap) |
//! | `x-mock-cached-tokens: 4` | chat `usage` reports this many prompt tokens as cached (at most the prompt) |
//! | `x-mock-reasoning-tokens: 6` | chat `usage` reports this many reasoning tokens, counted in the completion |

use hyper::HeaderMap;

#[derive(Debug, Clone, Default)]
pub struct Controls {
    pub status: Option<u16>,
    pub retry_after: Option<String>,
    pub error_body: Option<String>,
    pub latency_ms: u64,
    pub reply: Option<String>,
    /// The assistant's text is repeated this many times (at least once).
    pub reply_repeat: usize,
    pub chunk_bytes: Option<usize>,
    pub chunk_delay_ms: u64,
    pub no_usage: bool,
    pub flag_word: Option<String>,
    pub count_words: bool,
    pub cached_tokens: u64,
    pub reasoning_tokens: u64,
    /// Answer with a stream even when the request asked for none (a provider that ignores
    /// `stream`).
    pub force_stream: bool,
    /// Send a stream as one body with its length, not piece by piece.
    pub stream_whole: bool,
    /// Send a JSON answer in 64 KiB pieces without its length (chunked).
    pub json_chunked: bool,
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn number<T: std::str::FromStr>(headers: &HeaderMap, name: &str) -> Option<T> {
    header(headers, name).and_then(|v| v.trim().parse().ok())
}

impl Controls {
    /// The assistant's chat text: `text` repeated as `x-mock-reply-repeat` asks.
    pub fn repeated(&self, text: String) -> String {
        match self.reply_repeat {
            0 | 1 => text,
            n => text.repeat(n),
        }
    }

    pub fn from_headers(headers: &HeaderMap) -> Self {
        let chunk_bytes = number::<usize>(headers, "x-mock-chunk-bytes").filter(|&n| n > 0);
        let default_delay = if chunk_bytes.is_some() { 2 } else { 0 };
        Controls {
            status: number(headers, "x-mock-status"),
            retry_after: header(headers, "x-mock-retry-after"),
            error_body: header(headers, "x-mock-error-body"),
            latency_ms: number(headers, "x-mock-latency-ms").unwrap_or(0),
            reply: header(headers, "x-mock-reply"),
            reply_repeat: number(headers, "x-mock-reply-repeat").unwrap_or(1),
            chunk_bytes,
            chunk_delay_ms: number(headers, "x-mock-chunk-delay-ms").unwrap_or(default_delay),
            no_usage: header(headers, "x-mock-no-usage").is_some_and(|v| v == "1" || v == "true"),
            flag_word: header(headers, "x-mock-flag-word"),
            count_words: header(headers, "x-mock-count").is_some_and(|v| v == "words"),
            cached_tokens: number(headers, "x-mock-cached-tokens").unwrap_or(0),
            reasoning_tokens: number(headers, "x-mock-reasoning-tokens").unwrap_or(0),
            force_stream: header(headers, "x-mock-stream")
                .is_some_and(|v| v == "1" || v == "true" || v == "whole"),
            stream_whole: header(headers, "x-mock-stream").is_some_and(|v| v == "whole"),
            json_chunked: header(headers, "x-mock-chunked")
                .is_some_and(|v| v == "1" || v == "true"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunking_defaults_to_a_small_delay() {
        let mut h = HeaderMap::new();
        h.insert("x-mock-chunk-bytes", "7".parse().unwrap());
        let c = Controls::from_headers(&h);
        assert_eq!((c.chunk_bytes, c.chunk_delay_ms), (Some(7), 2));
        assert_eq!(Controls::from_headers(&HeaderMap::new()).chunk_delay_ms, 0);
    }

    #[test]
    fn bad_numbers_are_ignored() {
        let mut h = HeaderMap::new();
        h.insert("x-mock-status", "abc".parse().unwrap());
        h.insert("x-mock-chunk-bytes", "0".parse().unwrap());
        let c = Controls::from_headers(&h);
        assert_eq!((c.status, c.chunk_bytes), (None, None));
    }
}
