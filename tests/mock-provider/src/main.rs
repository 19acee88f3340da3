//! The Sluice mock provider: a deterministic OpenAI- and Anthropic-compatible HTTP server.
//!
//! `mock-provider [--port N] [--flag-word WORD] [--ratelimit-headers]` (`--help` says more) listens on 127.0.0.1 (port 0 picks a free
//! one) and prints `mock-provider listening on 127.0.0.1:PORT` once it accepts connections.
//!
//! Endpoints: `POST /v1/chat/completions` (JSON, or SSE with `"stream": true`),
//! `POST /v1/completions` and `POST /v1/embeddings` (JSON),
//! `POST /v1/messages` (Anthropic, JSON or SSE), `POST /v1/moderations`, `GET /v1/models`,
//! `GET /__last` (the last request received, as JSON), `GET /healthz`.
//! The assistant echoes the last user message; `usage` is counted with tiktoken.
//! Test controls are request headers: see `controls.rs`.

mod anthropic;
mod controls;
mod openai;
mod recorder;
mod reply;
mod tokens;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;

use controls::Controls;
use recorder::{Recorded, Recorder};
use reply::{Body, Reply};

struct Mock {
    recorder: Recorder,
    flag_word: String,
    ratelimit_headers: bool,
}

/// The text after the options in `--help`: what it serves and the test controls.
const AFTER_HELP: &str = "\
Endpoints (127.0.0.1 only):
  POST /v1/chat/completions   OpenAI chat: JSON, or SSE with \"stream\": true (a final usage
                              chunk with stream_options.include_usage, then data: [DONE]);
                              also under /openai/deployments/{d}/ (Azure OpenAI paths)
  POST /v1/messages           Anthropic Messages: JSON, or SSE with \"stream\": true
  POST /v1/completions        OpenAI completions (JSON)
  POST /v1/embeddings         OpenAI embeddings (JSON; strings, token ids, arrays of either)
  POST /v1/moderations        flags inputs containing the flag word
  GET  /v1/models             a short model list
  GET  /__last                the last request received (method, path, headers, body), as JSON
  GET  /healthz               {\"ok\": true}
The assistant echoes the last user message; usage is counted with tiktoken. Answers are
deterministic: the same request gives the same bytes.

Test controls (request headers):
  x-mock-status: N            (N >= 400) answer with this status and an error body in the
                              endpoint's dialect (429 and 503 add retry-after)
  x-mock-retry-after: S       the retry-after of a forced 429/503 (default 1)
  x-mock-error-body: TEXT     the forced error's exact body
  x-mock-latency-ms: MS       wait this long before answering
  x-mock-reply: TEXT          the assistant's text instead of the echo
  x-mock-reply-repeat: N      the assistant's text (or x-mock-error-body) N times over
  x-mock-chunk-bytes: N       cut the SSE body into pieces of N bytes, anywhere
  x-mock-chunk-delay-ms: MS   pause between pieces (default 2 when chunking)
  x-mock-no-usage: 1          no usage in streamed answers, even when asked for
  x-mock-flag-word: WORD      /v1/moderations flags this word instead
  x-mock-count: words         count usage by words, not tiktoken (cheap, for benchmarks)
  x-mock-cached-tokens: N     chat usage reports N prompt tokens as cached
  x-mock-reasoning-tokens: N  chat usage reports N reasoning tokens
  x-mock-stream: 1|whole      a stream even when the request asked for none (whole: one
                              body with its length)
  x-mock-chunked: 1           a JSON answer in 64 KiB pieces without its length

Environment: none is read. On start it prints `mock-provider listening on 127.0.0.1:PORT`
once it accepts connections (the harness and `make run` wait for that line).";

/// A deterministic OpenAI- and Anthropic-compatible provider for `make run`, the integration
/// tests and the benchmarks.
#[derive(clap::Parser)]
#[command(name = "mock-provider", version, after_help = AFTER_HELP)]
struct Args {
    /// Port to listen on, on 127.0.0.1 (0: the OS picks a free one; the banner names it).
    #[arg(long, value_name = "N", default_value_t = 0)]
    port: u16,
    /// The word `POST /v1/moderations` flags (a request's `x-mock-flag-word` overrides it).
    #[arg(long, value_name = "WORD", default_value = "forbidden")]
    flag_word: String,
    /// Put OpenAI-style rate-limit headers on every API answer, errors included, with fixed
    /// values (`reply::RATELIMIT_HEADERS`). A flag, not a request header: it holds for
    /// requests the test does not write itself, such as a gateway's fallback call-outs.
    #[arg(long)]
    ratelimit_headers: bool,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = <Args as clap::Parser>::parse();
    let listener = match TcpListener::bind(("127.0.0.1", args.port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "mock-provider: cannot listen on 127.0.0.1:{}: {e}",
                args.port
            );
            std::process::exit(1);
        }
    };
    // Build the tokenizer tables before announcing readiness.
    let _ = tokio::task::spawn_blocking(tokens::warm_up).await;
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(args.port);
    println!("mock-provider listening on 127.0.0.1:{port}");
    let _ = std::io::stdout().flush();

    let mock = Arc::new(Mock {
        recorder: Recorder::default(),
        flag_word: args.flag_word,
        ratelimit_headers: args.ratelimit_headers,
    });
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                eprintln!("mock-provider: accept failed: {e}");
                continue;
            }
        };
        // Streamed answers are many small writes: without this, Nagle's algorithm holds each
        // one back until the previous is ACKed, and the client delays its ACKs (~40 ms).
        if let Err(e) = stream.set_nodelay(true) {
            eprintln!("mock-provider: cannot set TCP_NODELAY: {e}");
        }
        let mock = mock.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, mock.clone()));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    req: Request<Incoming>,
    mock: Arc<Mock>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let controls = Controls::from_headers(req.headers());
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| path.clone());
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body: Bytes = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };

    if path == "/__last" {
        let last = mock.recorder.last();
        return Ok(reply::into_response(
            Reply::json(200, &serde_json::to_value(last).unwrap_or_default()),
            &Controls::default(),
        ));
    }
    if path == "/healthz" {
        return Ok(reply::into_response(
            Reply::json(200, &json!({"ok": true})),
            &controls,
        ));
    }
    mock.recorder.record(Recorded {
        method: method.to_string(),
        path: path_and_query,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        count: 0,
    });

    if controls.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(controls.latency_ms)).await;
    }
    let anthropic = path.ends_with("/v1/messages");
    let reply = if let Some(status) = controls.status.filter(|s| *s >= 400) {
        reply::forced_error(status, &controls, anthropic)
    } else {
        route(&method, &path, &body, &controls, &mock)
    };
    let mut response = reply::into_response(reply, &controls);
    if mock.ratelimit_headers {
        reply::add_ratelimit_headers(response.headers_mut());
    }
    Ok(response)
}

fn route(method: &Method, path: &str, body: &[u8], controls: &Controls, mock: &Mock) -> Reply {
    // Azure OpenAI puts the deployment in the path: /openai/deployments/{d}/chat/completions.
    let is_chat = path.ends_with("/chat/completions");
    match (method, path) {
        (&Method::POST, _) if is_chat => openai::chat(body, controls),
        (&Method::POST, p) if p.ends_with("/v1/messages") => anthropic::messages(body, controls),
        (&Method::POST, p) if p.ends_with("/v1/completions") => openai::completions(body, controls),
        (&Method::POST, p) if p.ends_with("/embeddings") => openai::embeddings(body),
        (&Method::POST, p) if p.ends_with("/moderations") => {
            openai::moderations(body, controls, &mock.flag_word)
        }
        (&Method::GET, "/v1/models") => Reply::json(
            200,
            &json!({"object": "list", "data": [
                {"id": "gpt-4o-mini", "object": "model", "created": openai::CREATED, "owned_by": "mock"},
                {"id": "gpt-4o", "object": "model", "created": openai::CREATED, "owned_by": "mock"},
                {"id": "claude-sonnet-5-5", "object": "model", "created": openai::CREATED, "owned_by": "mock"}
            ]}),
        ),
        _ => Reply::json(
            404,
            &json!({"error": {"message": format!("mock provider: no route for {method} {path}"),
                              "type": "invalid_request_error", "param": null, "code": "unknown_url"}}),
        ),
    }
}
