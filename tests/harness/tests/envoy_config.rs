//! What the shipped Envoy configs do around the filters, seen by a caller through a real Envoy:
//! Envoy's own errors are JSON in the caller's dialect (the filters' own JSON errors untouched),
//! body limits, only the API paths routed, gzip request bodies, keep-alive after a filter's 400,
//! and envoy/own-envoy.yaml (the README's own-Envoy guide).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value};
use sluice_harness::envoy::{render_template, template_vars, validate, Envoy};
use sluice_harness::{ChainOptions, Gateway, MockProvider};

const MIB: usize = 1 << 20;

/// One HTTP/1.1 connection, written and read by hand: the exact status, headers and body bytes,
/// and whether the connection stays open.
struct Conn {
    reader: BufReader<TcpStream>,
}

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }
}

impl Conn {
    fn open(port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Conn {
            reader: BufReader::new(stream),
        }
    }

    /// Sends one request (`content-length` added when there is a body) and reads its answer.
    fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
        let mut head = format!("{method} {path} HTTP/1.1\r\nhost: sluice.test\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            head.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes()).unwrap();
        // Envoy may answer (and close) before the whole body is written: that is not our error.
        let _ = stream.write_all(body);
        self.read_answer()
    }

    fn read_answer(&mut self) -> Answer {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            self.reader.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap();
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
        let mut answer = Answer {
            status,
            headers,
            body: Vec::new(),
        };
        if status == 100 {
            return self.read_answer();
        }
        if let Some(len) = answer.header("content-length") {
            let mut body = vec![0; len.parse().unwrap()];
            self.reader.read_exact(&mut body).unwrap();
            answer.body = body;
        } else if answer.header("transfer-encoding") == Some("chunked") {
            loop {
                let mut size = String::new();
                self.reader.read_line(&mut size).unwrap();
                let size = usize::from_str_radix(size.trim(), 16).unwrap();
                let mut chunk = vec![0; size + 2];
                self.reader.read_exact(&mut chunk).unwrap();
                if size == 0 {
                    break;
                }
                answer.body.extend_from_slice(&chunk[..size]);
            }
        }
        answer
    }

    /// True when the peer closed the connection (reads end of stream).
    fn closed_by_peer(&mut self) -> bool {
        let mut byte = [0u8; 1];
        self.reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        matches!(self.reader.read(&mut byte), Ok(0))
    }
}

const AUTH: (&str, &str) = ("authorization", "Bearer sk-sluice-demo");
const JSON: (&str, &str) = ("content-type", "application/json");

fn chat_body(content: &str) -> Vec<u8> {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]})
        .to_string()
        .into_bytes()
}

/// A chat request body of exactly `len` bytes (a user message of English words).
fn chat_body_of_len(len: usize) -> Vec<u8> {
    let empty = chat_body("").len();
    let words = "hello world sluice tokens ".repeat(len / 26 + 1);
    let body = chat_body(&words[..len - empty]);
    assert_eq!(body.len(), len);
    body
}

fn upstream_count(mock: &MockProvider) -> u64 {
    mock.last_request().unwrap()["count"].as_u64().unwrap()
}

fn assert_openai_error(a: &Answer, status: u16, kind: &str, code: &str) {
    assert_eq!(a.status, status, "{a:?} {}", a.text());
    assert_eq!(a.header("content-type"), Some("application/json"), "{a:?}");
    let v = a.json();
    assert_eq!(v["error"]["type"], kind, "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert_eq!(v["error"]["param"], Value::Null, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert_eq!(v.as_object().unwrap().len(), 1, "{v}");
}

fn assert_anthropic_error(a: &Answer, status: u16, kind: &str) {
    assert_eq!(a.status, status, "{a:?} {}", a.text());
    assert_eq!(a.header("content-type"), Some("application/json"), "{a:?}");
    let v = a.json();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], kind, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
}

// ---- 1. Envoy's own errors as JSON; the filters' own errors untouched ----

#[test]
fn filter_errors_keep_their_exact_bytes() {
    let gw = Gateway::start().unwrap();
    let mut c = Conn::open(gw.envoy.port);
    // key-injection's 401 (no key), as it was before Envoy's local replies were mapped.
    let a = c.send("POST", "/v1/chat/completions", &[JSON], &chat_body("hi"));
    assert_eq!(a.status, 401);
    assert_eq!(
        a.text(),
        r#"{"error":{"code":"missing_api_key","message":"Missing API key: send it as `Authorization: Bearer <key>`, `api-key` or `x-api-key`.","param":null,"type":"authentication_error"}}"#
    );
    assert_eq!(a.header("content-type"), Some("application/json"));
    assert_eq!(a.header("content-length"), Some("176"));
    // (No `connection: close`: the refusal waited for the small body, see below.)
    let names: Vec<&str> = a.headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["content-type", "content-length", "date", "server"]);
    // A filter's 400 for a body that is not JSON, OpenAI and Anthropic callers.
    let a =
        Conn::open(gw.envoy.port).send("POST", "/v1/chat/completions", &[AUTH, JSON], b"{not json");
    assert_eq!(a.status, 400);
    assert_eq!(
        a.text(),
        r#"{"error":{"code":"invalid_json","message":"request body is not valid JSON: key must be a string at line 1 column 2","param":null,"type":"invalid_request_error"}}"#
    );
    assert_eq!(a.header("content-type"), Some("application/json"));
    let a = Conn::open(gw.envoy.port).send("POST", "/v1/messages", &[AUTH, JSON], b"{not json");
    assert_eq!(a.status, 400);
    assert_eq!(
        a.text(),
        r#"{"error":{"message":"request body is not valid JSON: key must be a string at line 1 column 2","type":"invalid_request_error"},"type":"error"}"#
    );
    // model-router's 404 (unknown model) keeps its own code, not Envoy's not_found.
    let a = Conn::open(gw.envoy.port).send(
        "POST",
        "/v1/chat/completions",
        &[AUTH, JSON],
        br#"{"model":"llama-3","messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["error"]["code"], "model_not_found");
}

#[test]
fn bodies_up_to_4_mib_pass_and_larger_get_a_json_413_in_both_dialects() {
    let gw = Gateway::start().unwrap();
    let reply_ok = ("x-mock-reply", "ok");
    // Exactly 4 MiB: read whole by the filters, counted, sent upstream.
    let exact = chat_body_of_len(4 * MIB);
    for path in ["/v1/chat/completions", "/v1/messages"] {
        let a = Conn::open(gw.envoy.port).send("POST", path, &[AUTH, JSON, reply_ok], &exact);
        assert_eq!(a.status, 200, "{path}: {}", a.text());
        assert!(a.header("x-sluice-prompt-tokens").is_some(), "{path}");
    }
    let upstream = gw.mock.last_request().unwrap();
    assert_eq!(upstream["body"].as_str().unwrap().len(), 4 * MIB);
    // One byte more: Envoy's own 413, as JSON in the caller's dialect.
    let over = chat_body_of_len(4 * MIB + 1);
    let before = upstream_count(&gw.mock);
    let a = Conn::open(gw.envoy.port).send("POST", "/v1/chat/completions", &[AUTH, JSON], &over);
    assert_openai_error(&a, 413, "invalid_request_error", "request_too_large");
    let a = Conn::open(gw.envoy.port).send("POST", "/v1/messages", &[AUTH, JSON], &over);
    assert_anthropic_error(&a, 413, "request_too_large");
    // Well over it, and with a query string.
    let big = chat_body_of_len(6 * MIB);
    let a = Conn::open(gw.envoy.port).send("POST", "/v1/messages?beta=true", &[AUTH, JSON], &big);
    assert_anthropic_error(&a, 413, "request_too_large");
    assert_eq!(upstream_count(&gw.mock), before);
}

#[test]
fn too_many_or_too_large_headers_get_a_json_431() {
    let gw = Gateway::start().unwrap();
    let many: Vec<(String, String)> = (0..200)
        .map(|i| (format!("x-extra-{i}"), "v".to_owned()))
        .collect();
    let mut headers: Vec<(&str, &str)> =
        many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    headers.extend([AUTH, JSON]);
    let a =
        Conn::open(gw.envoy.port).send("POST", "/v1/chat/completions", &headers, &chat_body("hi"));
    assert_openai_error(
        &a,
        431,
        "invalid_request_error",
        "request_header_fields_too_large",
    );
    let huge = "a".repeat(100 * 1024);
    let a = Conn::open(gw.envoy.port).send(
        "POST",
        "/v1/chat/completions",
        &[AUTH, JSON, ("x-huge", &huge)],
        &chat_body("hi"),
    );
    assert_openai_error(
        &a,
        431,
        "invalid_request_error",
        "request_header_fields_too_large",
    );
    // A request Envoy's codec cannot parse: 400, JSON.
    let mut c = Conn::open(gw.envoy.port);
    let a = c.send("GET", "/v1/models", &[AUTH, ("bad header", "x")], b"");
    assert_openai_error(&a, 400, "invalid_request_error", "bad_request");
}

#[test]
fn upstream_down_or_late_is_json() {
    // Route timeouts of 1 s instead of 300 s.
    let mut gw = Gateway::start_with(&ChainOptions {
        edit: Some(|c: String| c.replace("timeout: 300s", "timeout: 1s")),
        ..ChainOptions::default()
    })
    .unwrap();
    let late = ("x-mock-latency-ms", "3000");
    let a = Conn::open(gw.envoy.port).send(
        "POST",
        "/v1/chat/completions",
        &[AUTH, JSON, late],
        &chat_body("hi"),
    );
    assert_openai_error(&a, 504, "server_error", "upstream_timeout");
    let a = Conn::open(gw.envoy.port).send("GET", "/v1/models", &[AUTH, late], b"");
    assert_openai_error(&a, 504, "server_error", "upstream_timeout");
    // The mock stops: nobody listens on the upstream's port any more.
    drop(std::mem::replace(
        &mut gw.mock,
        MockProvider::start().unwrap(),
    ));
    let a = Conn::open(gw.envoy.port).send(
        "POST",
        "/v1/chat/completions",
        &[AUTH, JSON],
        &chat_body("hi"),
    );
    assert_openai_error(&a, 503, "server_error", "upstream_unavailable");
    let a = Conn::open(gw.envoy.port).send(
        "POST",
        "/v1/messages",
        &[AUTH, JSON],
        br#"{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_anthropic_error(&a, 503, "overloaded_error");
}

// ---- 2. Only the API is routed ----

#[test]
fn only_api_paths_reach_the_upstream() {
    let gw = Gateway::start().unwrap();
    let before = upstream_count(&gw.mock);
    let mut c = Conn::open(gw.envoy.port);
    // The mock's own /__last (it shows the injected provider key) and any other path: 404.
    for path in [
        "/__last",
        "/",
        "/v2/chat/completions",
        "/v1/chat/completions/x",
        "/v1/files",
    ] {
        let a = c.send("GET", path, &[AUTH], b"");
        assert_openai_error(&a, 404, "invalid_request_error", "not_found");
    }
    // A caller's own x-sluice-cluster does not open another path either.
    let a = c.send("GET", "/__last", &[AUTH, ("x-sluice-cluster", "mock")], b"");
    assert_openai_error(&a, 404, "invalid_request_error", "not_found");
    let a = c.send(
        "POST",
        "/__last",
        &[AUTH, JSON, ("x-sluice-cluster", "mock")],
        &chat_body("hi"),
    );
    assert_eq!(a.status, 404, "{}", a.text());
    // Anthropic's paths answer in Anthropic's shape.
    let mut c = Conn::open(gw.envoy.port);
    for path in ["/v1/messages/batches", "/v1/messagesx"] {
        let a = c.send("GET", path, &[AUTH], b"");
        assert_anthropic_error(&a, 404, "not_found_error");
    }
    // Wrong methods on the API paths: 405 with `allow`.
    for (method, path, allow) in [
        ("GET", "/v1/chat/completions", "POST"),
        ("GET", "/v1/chat/completions?stream=true", "POST"),
        ("PUT", "/v1/embeddings", "POST"),
        (
            "GET",
            "/openai/deployments/my-deployment/chat/completions?api-version=2024-10-21",
            "POST",
        ),
        ("DELETE", "/v1/models", "GET"),
        ("POST", "/v1/models/gpt-4o", "GET"),
    ] {
        let a = c.send(method, path, &[AUTH, JSON], b"");
        assert_openai_error(&a, 405, "invalid_request_error", "method_not_allowed");
        assert_eq!(a.header("allow"), Some(allow), "{method} {path}");
    }
    let a = c.send("GET", "/v1/messages", &[AUTH], b"");
    assert_anthropic_error(&a, 405, "invalid_request_error");
    assert_eq!(a.header("allow"), Some("POST"));
    assert_eq!(
        upstream_count(&gw.mock),
        before,
        "nothing reached the upstream"
    );

    // The API paths are served, a query string does not change the match.
    let a = c.send(
        "POST",
        "/v1/chat/completions?x=1",
        &[AUTH, JSON],
        &chat_body("hi"),
    );
    assert_eq!(a.status, 200, "{}", a.text());
    let a = c.send(
        "POST",
        "/v1/embeddings",
        &[AUTH, JSON],
        br#"{"model":"text-embedding-3-small","input":"hi"}"#,
    );
    assert_eq!(a.status, 200, "{}", a.text());
    let a = c.send("GET", "/v1/models", &[AUTH], b"");
    assert_eq!(a.status, 200, "{}", a.text());
    let azure = "/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21";
    let a = c.send("POST", azure, &[AUTH, JSON], &chat_body("hi"));
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(gw.mock.last_request().unwrap()["path"], azure);
    // Paths the mock does not serve but the gateway routes reach it (its own 404 comes back).
    for (method, path) in [
        ("GET", "/v1/models/gpt-4o"),
        ("POST", "/apis/summarise"),
        ("POST", "/v1/moderations"),
    ] {
        let n = upstream_count(&gw.mock);
        let a = c.send(method, path, &[AUTH, JSON], br#"{"input":"hi"}"#);
        assert_eq!(
            upstream_count(&gw.mock),
            n + 1,
            "{method} {path}: {}",
            a.text()
        );
        assert_eq!(gw.mock.last_request().unwrap()["path"], path);
    }
}

// ---- 3. gzip request bodies ----

/// `data` as a gzip member (RFC 1952) around a raw deflate stream.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    out.extend(miniz_oxide::deflate::compress_to_vec(data, 6));
    out.extend((!crc).to_le_bytes());
    out.extend((data.len() as u32).to_le_bytes());
    out
}

#[test]
fn gzip_bodies_are_counted_and_routed_like_plain_ones() {
    let gw = Gateway::start().unwrap();
    let gz = ("content-encoding", "gzip");
    let mut c = Conn::open(gw.envoy.port);
    for (path, body) in [
        (
            "/v1/chat/completions",
            chat_body("Hello from a gzip body, ünïcödé 🦀"),
        ),
        (
            "/v1/messages",
            json!({"model": "claude-sonnet-4-5", "max_tokens": 64,
                   "messages": [{"role": "user", "content": "Hello again"}]})
            .to_string()
            .into_bytes(),
        ),
    ] {
        let plain = c.send("POST", path, &[AUTH, JSON], &body);
        assert_eq!(plain.status, 200, "{}", plain.text());
        let plain_upstream = gw.mock.last_request().unwrap();
        let zipped = gzip(&body);
        assert!(zipped.len() != body.len());
        let a = c.send("POST", path, &[AUTH, JSON, gz], &zipped);
        assert_eq!(a.status, 200, "{}", a.text());
        assert_eq!(a.body, plain.body, "{path}");
        let tokens = a.header("x-sluice-prompt-tokens");
        assert!(tokens.is_some());
        assert_eq!(tokens, plain.header("x-sluice-prompt-tokens"));
        // The provider got the same plain JSON, routed and keyed the same way.
        let upstream = gw.mock.last_request().unwrap();
        assert_eq!(upstream["body"], plain_upstream["body"]);
        assert_eq!(upstream["path"], plain_upstream["path"]);
        let header = |v: &Value, name: &str| {
            v["headers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|h| h[0] == name)
                .map(|h| h[1].clone())
        };
        assert_eq!(header(&upstream, "content-encoding"), None);
        assert!(header(&upstream, "authorization").is_some());
        assert_eq!(
            header(&upstream, "x-sluice-prompt-tokens"),
            header(&plain_upstream, "x-sluice-prompt-tokens")
        );
    }
    // The filters' answers to a gzip body are theirs: not JSON, no key.
    let a = c.send(
        "POST",
        "/v1/chat/completions",
        &[AUTH, JSON, gz],
        &gzip(b"{not json"),
    );
    assert_eq!(a.status, 400);
    assert_eq!(a.json()["error"]["code"], "invalid_json");
    let a = Conn::open(gw.envoy.port).send(
        "POST",
        "/v1/chat/completions",
        &[JSON, gz],
        &gzip(&chat_body("hi")),
    );
    assert_eq!(a.status, 401);
    assert_eq!(a.json()["error"]["code"], "missing_api_key");
    // Inflated over 4 MiB: the JSON 413. (Letters that do not repeat: the decompressor stops
    // at 100 times the compressed size, its default max_inflate_ratio.)
    let mut seed = 1u32;
    let letters: String = (0..5 * MIB)
        .map(|_| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            char::from(b'a' + ((seed >> 16) % 26) as u8)
        })
        .collect();
    let a = Conn::open(gw.envoy.port).send(
        "POST",
        "/v1/chat/completions",
        &[AUTH, JSON, gz],
        &gzip(&chat_body(&letters)),
    );
    assert_openai_error(&a, 413, "invalid_request_error", "request_too_large");
    // One access-log line per request, with what the filters recorded.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while gw.access_log().len() < 7 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300)); // no eighth line comes
    let log = gw.access_log();
    assert_eq!(log.len(), 7, "{log:#?}");
    assert_eq!(log[1]["prompt_tokens"], log[0]["prompt_tokens"]);
    assert_eq!(log[1]["consumer"], "demo");
}

// ---- 6. keep-alive ----

#[test]
fn a_filter_400_after_the_body_keeps_the_connection() {
    let gw = Gateway::start().unwrap();
    let mut c = Conn::open(gw.envoy.port);
    let a = c.send("POST", "/v1/chat/completions", &[AUTH, JSON], b"{not json");
    assert_eq!(a.status, 400);
    assert_eq!(a.header("connection"), None);
    let a = c.send(
        "POST",
        "/v1/chat/completions",
        &[AUTH, JSON],
        &chat_body("hi"),
    );
    assert_eq!(a.status, 200, "the same connection serves the next request");
    // A request Envoy cannot parse still closes the connection, and nothing after it is read.
    let mut c = Conn::open(gw.envoy.port);
    let a = c.send("GET", "/v1/models", &[AUTH, ("bad header", "x")], b"");
    assert_eq!(a.status, 400);
    assert_eq!(a.header("connection"), Some("close"));
    assert!(c.closed_by_peer());
}

/// key-injection's 401 (decided on the headers) waits for a small body's end, so the client
/// keeps its connection; a large one is refused at once and the connection closes.
#[test]
fn an_auth_refusal_of_a_small_body_keeps_the_connection() {
    let gw = Gateway::start().unwrap();
    let mut c = Conn::open(gw.envoy.port);
    let a = c.send("POST", "/v1/chat/completions", &[JSON], &chat_body("hi"));
    assert_eq!(a.status, 401);
    assert_eq!(a.json()["error"]["code"], "missing_api_key");
    assert_eq!(a.header("connection"), None);
    let a = c.send(
        "POST",
        "/v1/chat/completions",
        &[AUTH, JSON],
        &chat_body("hi"),
    );
    assert_eq!(a.status, 200, "the same connection serves the next request");
    let a = c.send(
        "POST",
        "/v1/messages",
        &[JSON, ("x-api-key", "sk-wrong")],
        &chat_body("hi"),
    );
    assert_eq!(a.status, 401);
    assert_eq!(a.json()["type"], "error");
    assert_eq!(a.header("connection"), None);
    // Over 64 KiB: refused before the body is read; Envoy closes the connection.
    let mut c = Conn::open(gw.envoy.port);
    let big = chat_body(&"x".repeat(100 * 1024));
    let a = c.send("POST", "/v1/chat/completions", &[JSON], &big);
    assert_eq!(a.status, 401);
    assert_eq!(a.header("connection"), Some("close"));
}

// ---- 4. envoy/own-envoy.yaml ----

#[test]
fn own_envoy_config_counts_labels_metrics_and_takes_long_prompts() {
    let rendered = render_template(
        "envoy/own-envoy.yaml",
        &template_vars(10000, 9901, 18000),
        &BTreeMap::new(),
    )
    .unwrap();
    validate(&rendered).unwrap_or_else(|log| panic!("{log}"));
    let mock = MockProvider::start().unwrap();
    let envoy = Envoy::start_template("envoy/own-envoy.yaml", mock.port, &BTreeMap::new()).unwrap();
    let consumer = ("x-consumer-id", "alice");
    let mut c = Conn::open(envoy.port);
    let a = c.send(
        "POST",
        "/v1/chat/completions",
        &[JSON, consumer],
        &chat_body("hello world"),
    );
    assert_eq!(a.status, 200, "{}", a.text());
    let usage = a.json()["usage"].clone();
    assert_eq!(
        a.header("x-sluice-prompt-tokens"),
        Some(usage["prompt_tokens"].to_string().as_str())
    );
    // A 2 MiB prompt (over Envoy's default 1 MiB buffer) is accepted and counted.
    let long = chat_body_of_len(2 * MIB);
    let a = c.send(
        "POST",
        "/v1/chat/completions",
        &[JSON, consumer, ("x-mock-reply", "ok")],
        &long,
    );
    assert_eq!(a.status, 200, "{}", a.text());
    assert!(a.header("x-sluice-prompt-tokens").is_some());
    // Labelled Prometheus metrics, not labels baked into names.
    assert_eq!(
        envoy.metric_reaching(
            r#"sluice_token_count_requests_total{model="gpt-4o-mini",consumer="alice"}"#,
            2.0
        ),
        Some(2.0),
        "{}",
        envoy.prometheus().unwrap_or_default()
    );
    // Envoy's own errors are JSON here too; the filter's own are untouched.
    let a = Conn::open(envoy.port).send(
        "POST",
        "/v1/messages",
        &[JSON],
        &chat_body_of_len(4 * MIB + 1),
    );
    assert_anthropic_error(&a, 413, "request_too_large");
    let a = c.send("POST", "/v1/chat/completions", &[JSON], b"{not json");
    assert_eq!(a.json()["error"]["code"], "invalid_json");
}
