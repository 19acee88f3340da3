//! The mock must not hold back the last small pieces of a stream (Nagle's algorithm against
//! the client's delayed ACKs adds about 40 ms to every streamed answer): it sets `TCP_NODELAY`
//! on the connections it accepts.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Mock(Child);

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_mock() -> (Mock, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mock-provider"))
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().rsplit(':').next().unwrap().parse().unwrap();
    (Mock(child), port)
}

/// Reads one chunked HTTP/1.1 answer off a kept-alive connection, up to its last chunk.
fn read_chunked_answer(conn: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(b"\r\n0\r\n\r\n") {
        let n = conn.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "connection closed mid-answer: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(got).unwrap()
}

#[test]
fn streamed_answers_on_one_connection_are_not_held_back() {
    let (_mock, port) = start_mock();
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // Several small events: the role chunk, a few content deltas, finish, usage, [DONE].
    let body = r#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"one two three four five six seven eight"}]}"#;
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
         x-mock-count: words\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut times = Vec::new();
    for _ in 0..12 {
        let start = Instant::now();
        conn.write_all(request.as_bytes()).unwrap();
        let answer = read_chunked_answer(&mut conn);
        times.push(start.elapsed());
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("data: [DONE]"), "{answer}");
        assert!(answer.matches("data: ").count() >= 4, "{answer}");
    }
    // With Nagle on, every answer after the first few waits ~40 ms for the client's delayed
    // ACK; without, each takes a millisecond or two. The median of 12 is judged, with room
    // for a busy shared machine.
    times.sort();
    let median = times[times.len() / 2];
    assert!(
        median < Duration::from_millis(20),
        "a streamed answer took {median:?} (median; all: {times:?}): TCP_NODELAY not set?"
    );
}
