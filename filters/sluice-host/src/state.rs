//! Reading and writing Sluice filter state (see `sluice_core::state` for the naming rules).

use proxy_wasm::hostcalls;
use sluice_core::StateKey;

/// Stores `value` under `wasm.sluice.<key>`. A failure is logged, never fatal.
pub fn set(key: StateKey, value: &str) {
    if let Err(status) = hostcalls::set_property(vec![key.property()], Some(value.as_bytes())) {
        log::warn!(
            "sluice: cannot set filter state {}: {status:?}",
            key.property()
        );
    }
}

/// Reads `wasm.sluice.<key>` as written by another Sluice filter on this request.
pub fn get(key: StateKey) -> Option<String> {
    match hostcalls::get_property(vec![key.property()]) {
        Ok(Some(bytes)) => String::from_utf8(bytes).ok(),
        Ok(None) => None,
        Err(status) => {
            log::debug!(
                "sluice: cannot read filter state {}: {status:?}",
                key.property()
            );
            None
        }
    }
}
