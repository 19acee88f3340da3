//! Headers, bodies, properties, time, shared data and the VM environment, without panics.
//!
//! Every function logs and degrades (`None`, no-op) when the host refuses a call, instead of
//! unwrapping its status as the SDK's trait methods do.

use std::time::UNIX_EPOCH;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};

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

pub fn response_header(name: &str) -> Option<String> {
    get_header(MapType::HttpResponseHeaders, name)
}

pub fn set_response_header(name: &str, value: Option<&str>) {
    set_header(MapType::HttpResponseHeaders, name, value);
}

pub fn response_headers() -> Vec<(String, String)> {
    hostcalls::get_map(MapType::HttpResponseHeaders).unwrap_or_else(|s| {
        warn("get response headers", s);
        Vec::new()
    })
}

fn buffer(kind: BufferType, len: usize) -> Option<Vec<u8>> {
    hostcalls::get_buffer(kind, 0, len).unwrap_or_else(|s| {
        warn("get body", s);
        None
    })
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

/// Writes a shared value (last writer wins).
pub fn shared_set(key: &str, value: &str) {
    if let Err(s) = hostcalls::set_shared_data(key, Some(value.as_bytes()), None) {
        warn("set shared data", s);
    }
}

/// A variable of the VM's environment (Envoy `vm_config.environment_variables`,
/// Istio `vmConfig.env`).
pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}
