//! Headers, bodies, properties, time, shared data and the VM environment, without panics.
//!
//! Every function logs and degrades (`None`, no-op) when the host refuses a call, instead of
//! unwrapping its status as the SDK's trait methods do.

use std::time::UNIX_EPOCH;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};
use sluice_core::{hold, ApiError, Dialect};

fn warn(what: &str, status: proxy_wasm::types::Status) {
    log::warn!("sluice: host refused {what}: {status:?}");
}

fn get_header(map: MapType, name: &str) -> Option<String> {
    hostcalls::get_map_value(map, name).unwrap_or_else(|s| {
        warn("get header", s);
        None
    })
}

fn set_header(map: MapType, name: &str, value: Option<&str>) {
    if let Err(s) = hostcalls::set_map_value(map, name, value) {
        warn("set header", s);
    }
}

pub fn request_header(name: &str) -> Option<String> {
    get_header(MapType::HttpRequestHeaders, name)
}

/// Sets (or with `None` removes) a request header.
pub fn set_request_header(name: &str, value: Option<&str>) {
    set_header(MapType::HttpRequestHeaders, name, value);
}

/// A whole header map in one host call (cheaper than two or more single lookups).
fn header_map(map: MapType) -> Headers {
    Headers(hostcalls::get_map(map).unwrap_or_else(|s| {
        warn("get header map", s);
        Vec::new()
    }))
}

/// All request headers in one host call.
pub fn request_headers() -> Headers {
    header_map(MapType::HttpRequestHeaders)
}

/// A snapshot of a header map; names are lower-case as Envoy stores them.
#[derive(Default)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    /// The length its `content-length` declares, if it declares one.
    pub fn content_length(&self) -> Option<u64> {
        self.get("content-length")
            .and_then(|n| n.trim().parse().ok())
    }

    /// An answer's `:status` (0 if absent or not a number).
    pub fn status(&self) -> u16 {
        status_number(self.get(":status"))
    }
}

/// A `:status` value as a number (0 if absent or not one).
fn status_number(value: Option<&str>) -> u16 {
    value.and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// The headers of the answer to this VM's HTTP call-out, in one host call.
pub fn call_response_headers() -> Headers {
    header_map(MapType::HttpCallResponseHeaders)
}

/// The first `len` bytes of the answer to this VM's HTTP call-out.
pub fn call_response_body(len: usize) -> Option<Vec<u8>> {
    buffer(BufferType::HttpCallResponseBody, len)
}

pub fn response_header(name: &str) -> Option<String> {
    get_header(MapType::HttpResponseHeaders, name)
}

/// The answer's status (0 if the host has none).
pub fn response_status() -> u16 {
    status_number(response_header(":status").as_deref())
}

pub fn set_response_header(name: &str, value: Option<&str>) {
    set_header(MapType::HttpResponseHeaders, name, value);
}

/// Replaces all of the answer's headers (pseudo-headers such as `:status` included) in one
/// host call.
pub fn set_response_headers(headers: &[(&str, &str)]) {
    if let Err(s) = hostcalls::set_map(MapType::HttpResponseHeaders, headers.to_vec()) {
        warn("set response headers", s);
    }
}

/// Writes `body` in place of a held answer (`held` bytes in Envoy's buffer, its headers not
/// sent yet), with its `content-length`. A body over `max` bytes is not written: Envoy holds no
/// more than its buffer limit, and a held answer written over it takes Envoy down (1.40: the
/// stream is torn down inside the host call). The answer then becomes
/// [`ApiError::answer_too_large`] in `dialect`. Returns whether `body` was written.
pub fn replace_held_answer(held: usize, body: &[u8], max: u64, dialect: Dialect) -> bool {
    if hold::fits(body.len(), max) {
        set_response_body(held, body);
        set_response_header("content-length", Some(&body.len().to_string()));
        return true;
    }
    log::warn!(
        "sluice: an answer rewritten to {} bytes is over {max}: answered 502 answer_too_large",
        body.len()
    );
    let out = too_large_head(max, dialect);
    set_response_body(held, &out);
    false
}

/// Makes a held answer's head (not sent yet) that of 502 [`ApiError::answer_too_large`] in
/// `dialect`; returns the body to send in place of the answer's.
pub fn too_large_head(max: u64, dialect: Dialect) -> Vec<u8> {
    let err = ApiError::answer_too_large(max);
    let body = err.body(dialect);
    set_response_header(":status", Some(&err.status().to_string()));
    set_response_header("content-type", Some("application/json"));
    set_response_header("content-length", Some(&body.len().to_string()));
    body
}

/// All of the answer's headers in one host call.
pub fn response_headers() -> Headers {
    header_map(MapType::HttpResponseHeaders)
}

fn buffer(kind: BufferType, len: usize) -> Option<Vec<u8>> {
    hostcalls::get_buffer(kind, 0, len).unwrap_or_else(|s| {
        warn("get body", s);
        None
    })
}

/// Where reading a whole request body stands, in a body callback.
pub enum BodyRead {
    /// More is coming: return `Action::Pause` (Envoy keeps buffering).
    Partial,
    /// Over the limit: refuse with this error.
    TooLarge(sluice_core::ApiError),
    /// All of it.
    Whole(Vec<u8>),
}

/// Reads the request body once it is whole, refusing one over `max` bytes as soon as it is.
pub fn whole_request_body(body_size: usize, end_of_stream: bool, max: u64) -> BodyRead {
    if body_size as u64 > max {
        return BodyRead::TooLarge(sluice_core::ApiError::body_too_large(max));
    }
    if !end_of_stream {
        return BodyRead::Partial;
    }
    BodyRead::Whole(request_body(body_size).unwrap_or_default())
}

/// The first `len` bytes of the (buffered) request body.
pub fn request_body(len: usize) -> Option<Vec<u8>> {
    buffer(BufferType::HttpRequestBody, len)
}

pub fn response_body(len: usize) -> Option<Vec<u8>> {
    buffer(BufferType::HttpResponseBody, len)
}

/// Replaces the first `len` bytes of the response body with `bytes`.
pub fn set_response_body(len: usize, bytes: &[u8]) {
    if let Err(s) = hostcalls::set_buffer(BufferType::HttpResponseBody, 0, len, bytes) {
        warn("set response body", s);
    }
}

/// Replaces the first `len` bytes of the (buffered) request body with `bytes`.
pub fn set_request_body(len: usize, bytes: &[u8]) {
    if let Err(s) = hostcalls::set_buffer(BufferType::HttpRequestBody, 0, len, bytes) {
        warn("set request body", s);
    }
}

/// Writes `body` over the request body Envoy holds (`held` bytes), with its
/// `content-length`; refuses ([`ApiError::rewritten_too_large`], `how` it was rewritten) a
/// body over `max` bytes, which Envoy would not send on.
pub fn replace_request_body(held: usize, body: &[u8], max: u64, how: &str) -> Result<(), ApiError> {
    if !hold::fits(body.len(), max) {
        return Err(ApiError::rewritten_too_large(max, how));
    }
    set_request_body(held, body);
    set_request_header("content-length", Some(&body.len().to_string()));
    Ok(())
}

/// Tells Envoy to pick the route again: needed after changing a header that routes match on
/// (Envoy >= 1.33 has this foreign function).
pub fn clear_route_cache() {
    if let Err(s) = hostcalls::call_foreign_function("clear_route_cache", None) {
        warn("clear_route_cache", s);
    }
}

/// An Envoy attribute as text, e.g. `["xds", "cluster_name"]`.
pub fn property(path: &[&str]) -> Option<String> {
    match hostcalls::get_property(path.to_vec()) {
        Ok(Some(bytes)) => String::from_utf8(bytes).ok(),
        _ => None,
    }
}

/// Host time, in Unix seconds.
pub fn now_secs() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Reads a value shared by all VMs of this `vm_id` (every worker).
pub fn shared_get(key: &str) -> Option<String> {
    match hostcalls::get_shared_data(key) {
        Ok((Some(bytes), _)) => String::from_utf8(bytes).ok(),
        _ => None,
    }
}

/// Reads a shared value with its compare-and-swap token.
pub fn shared_get_cas(key: &str) -> (Option<String>, Option<u32>) {
    match hostcalls::get_shared_data(key) {
        Ok((bytes, cas)) => (bytes.and_then(|b| String::from_utf8(b).ok()), cas),
        Err(_) => (None, None),
    }
}

/// Writes a shared value; with `cas`, only if nobody wrote it since it was read with that
/// token. Returns false when the write lost the race (read again and retry).
pub fn shared_set(key: &str, value: &str, cas: Option<u32>) -> bool {
    match hostcalls::set_shared_data(key, Some(value.as_bytes()), cas) {
        Ok(()) => true,
        Err(proxy_wasm::types::Status::CasMismatch) => false,
        Err(s) => {
            warn("set shared data", s);
            false
        }
    }
}

/// A variable of the VM's environment (Envoy `vm_config.environment_variables`,
/// Istio `vmConfig.env`).
pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}
