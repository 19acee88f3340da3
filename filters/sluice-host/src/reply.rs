//! Local replies to the caller.

use proxy_wasm::hostcalls;
use sluice_core::{ApiError, Dialect};

/// Sends `err` as the response, in the caller's dialect, instead of forwarding the request.
/// The filter must then return `Action::Pause` from the current callback.
pub fn send_error(err: &ApiError, dialect: Dialect) {
    let body = err.body(dialect);
    let headers = err.response_headers();
    if let Err(status) =
        hostcalls::send_http_response(u32::from(err.status()), headers, Some(&body))
    {
        log::error!(
            "sluice: cannot send local reply {}: {status:?}",
            err.status()
        );
    }
}
