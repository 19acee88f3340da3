//! The Sluice mock provider: a deterministic OpenAI- and Anthropic-compatible HTTP server.
//!
//! `mock-provider [--port N] [--flag-word WORD]` listens on 127.0.0.1 (port 0 picks a free
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
}

struct Args {
    port: u16,
    flag_word: String,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        port: 0,
        flag_word: "forbidden".to_owned(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--port" => {
                args.port = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--port needs a number")?;
            }
            "--flag-word" => args.flag_word = it.next().ok_or("--flag-word needs a word")?,
            "-h" | "--help" => {
                return Err("usage: mock-provider [--port N] [--flag-word WORD]".to_owned())
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
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
    Ok(reply::into_response(reply, &controls))
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
                {"id": "claude-sonnet-4-5", "object": "model", "created": openai::CREATED, "owned_by": "mock"}
            ]}),
        ),
        _ => Reply::json(
            404,
            &json!({"error": {"message": format!("mock provider: no route for {method} {path}"),
                              "type": "invalid_request_error", "param": null, "code": "unknown_url"}}),
        ),
    }
}
