//! When key-injection sends a refusal it decided on the request headers (401, 403).
//!
//! On HTTP/1.1 Envoy closes the connection after a reply sent before the request body was read
//! (it cannot know where the next request starts without draining it), so every auth error
//! would cost a client its keep-alive connection. For a small body, declared by its
//! `content-length`, the refusal waits for the body's end instead: the body is buffered (at
//! most [`WAIT_FOR_BODY_MAX`] bytes of an unauthenticated caller's), then dropped with the
//! reply, and the connection stays open. A larger or undeclared (chunked) body is refused at
//! once, as before: the connection closes.

/// The largest declared body a refusal waits for.
pub const WAIT_FOR_BODY_MAX: u64 = 64 * 1024;

/// Whether a refusal decided on the headers should wait for the body's end.
pub fn wait_for_body(end_of_stream: bool, content_length: Option<&str>) -> bool {
    if end_of_stream {
        return false;
    }
    content_length
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n <= WAIT_FOR_BODY_MAX)
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn small_declared_bodies_are_waited_for() {
        assert!(wait_for_body(false, Some("120")));
        assert!(wait_for_body(false, Some("65536")));
        assert!(!wait_for_body(false, Some("65537")));
        assert!(!wait_for_body(false, None), "chunked: no length declared");
        assert!(!wait_for_body(false, Some("x")));
        assert!(!wait_for_body(true, Some("0")), "no body to wait for");
    }
}
