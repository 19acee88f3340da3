//! What the mock sends back: a full body or an SSE stream, and how the stream is cut up.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Response;
use serde_json::{json, Value};

use crate::controls::Controls;

pub type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

pub enum Reply {
    Json {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Whole SSE events, already encoded; sent one event per frame unless chunking is asked for.
    Sse { events: Vec<Vec<u8>> },
}

impl Reply {
    pub fn json(status: u16, value: &Value) -> Reply {
        Reply::Json {
            status,
            headers: Vec::new(),
            body: serde_json::to_vec(value).unwrap_or_default(),
        }
    }
}

/// A `data: <json>` event.
pub fn data_event(value: &Value) -> Vec<u8> {
    format!("data: {value}\n\n").into_bytes()
}

/// An `event: <name>` + `data: <json>` event (Anthropic style).
pub fn named_event(name: &str, value: &Value) -> Vec<u8> {
    format!("event: {name}\ndata: {value}\n\n").into_bytes()
}

/// The error a forced `x-mock-status` produces, in the endpoint's dialect.
pub fn forced_error(status: u16, controls: &Controls, anthropic: bool) -> Reply {
    let body = match &controls.error_body {
        Some(text) => controls.repeated(text.clone()).into_bytes(),
        None => {
            let message = format!("mock provider: forced status {status}");
            let value = if anthropic {
                let kind = match status {
                    400 => "invalid_request_error",
                    401 => "authentication_error",
                    403 => "permission_error",
                    404 => "not_found_error",
                    429 => "rate_limit_error",
                    529 | 503 => "overloaded_error",
                    _ => "api_error",
                };
                json!({"type": "error", "error": {"type": kind, "message": message}})
            } else {
                let kind = match status {
                    400 | 404 => "invalid_request_error",
                    401 => "authentication_error",
                    403 => "permission_error",
                    429 => "rate_limit_exceeded",
                    _ => "server_error",
                };
                json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
            };
            serde_json::to_vec(&value).unwrap_or_default()
        }
    };
    let mut headers = Vec::new();
    if status == 429 || status == 503 {
        let after = controls
            .retry_after
            .clone()
            .unwrap_or_else(|| "1".to_owned());
        headers.push(("retry-after".to_owned(), after));
    }
    Reply::Json {
        status,
        headers,
        body,
    }
}

/// The rate-limit headers `--ratelimit-headers` puts on every API answer: OpenAI's names, fixed
/// values (a provider's own limits, far from any gateway budget a test sets).
pub const RATELIMIT_HEADERS: [(&str, &str); 6] = [
    ("x-ratelimit-limit-requests", "10000"),
    ("x-ratelimit-remaining-requests", "9999"),
    ("x-ratelimit-reset-requests", "6ms"),
    ("x-ratelimit-limit-tokens", "30000000"),
    ("x-ratelimit-remaining-tokens", "29999000"),
    ("x-ratelimit-reset-tokens", "2ms"),
];

pub fn add_ratelimit_headers(headers: &mut hyper::HeaderMap) {
    for (name, value) in RATELIMIT_HEADERS {
        headers.insert(name, hyper::header::HeaderValue::from_static(value));
    }
}

/// Turns a [`Reply`] into a hyper response, streaming SSE as the controls ask.
pub fn into_response(reply: Reply, controls: &Controls) -> Response<Body> {
    match reply {
        Reply::Json {
            status,
            headers,
            body,
        } => {
            let mut builder = Response::builder()
                .status(status)
                .header("content-type", "application/json");
            for (k, v) in &headers {
                builder = builder.header(k, v);
            }
            if controls.json_chunked {
                let pieces: Vec<Bytes> =
                    body.chunks(64 * 1024).map(Bytes::copy_from_slice).collect();
                return builder
                    .body(send_pieces(pieces, Duration::ZERO))
                    .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()));
            }
            builder
                .body(Full::new(Bytes::from(body)).boxed())
                .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
        }
        Reply::Sse { events } if controls.stream_whole => Response::builder()
            .status(200)
            .header("content-type", "text/event-stream")
            .body(Full::new(Bytes::from(events.concat())).boxed())
            .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed())),
        Reply::Sse { events } => {
            let pieces: Vec<Bytes> = match controls.chunk_bytes {
                Some(n) => events
                    .concat()
                    .chunks(n)
                    .map(Bytes::copy_from_slice)
                    .collect(),
                None => events.into_iter().map(Bytes::from).collect(),
            };
            let delay = Duration::from_millis(controls.chunk_delay_ms);
            Response::builder()
                .status(200)
                .header("content-type", "text/event-stream")
                .header("cache-control", "no-cache")
                .body(send_pieces(pieces, delay))
                .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
        }
    }
}

/// A body sent piece by piece (chunked, no length), `delay` between pieces.
fn send_pieces(pieces: Vec<Bytes>, delay: Duration) -> Body {
    let (mut tx, body) = http_body_util::channel::Channel::<Bytes, Infallible>::new(4);
    tokio::spawn(async move {
        for piece in pieces {
            if tx.send_data(piece).await.is_err() {
                return; // client went away
            }
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
        }
    });
    body.boxed()
}
