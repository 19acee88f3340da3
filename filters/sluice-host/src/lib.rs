//! Host glue shared by every Sluice filter.
//!
//! `sluice-core` holds the logic and knows nothing of proxy-wasm; this crate is the thin layer
//! between it and the host. The SDK's trait methods (`self.send_http_response(…)` and friends)
//! `unwrap()` the host's status and would panic — killing the VM — on an unexpected one, so the
//! wrappers here call `proxy_wasm::hostcalls` directly and turn failures into logged errors.
//!
//! - [`plugin`]: the root context every filter uses: loads, parses and validates the plugin
//!   config, refuses a bad one (Envoy then keeps the config it had), creates HTTP contexts.
//! - [`reply`]: sends an [`sluice_core::ApiError`] to the caller.
//! - [`http`]: headers, bodies, properties, time, shared data, environment.
//! - [`held`]: an answer held whole to be rewritten, within what Envoy holds.
//! - [`callbacks`]: the SDK callbacks a filter does not use, named so `make wasm` drops them.
//! - [`clock`]: host time cached per VM, refreshed on tick (no host call per request).
//! - [`metrics`]: counters and histograms with labels encoded in their names.
//! - [`state`]: reads and writes Sluice filter state.

pub mod callbacks;
pub mod clock;
pub mod held;
pub mod http;
pub mod metrics;
pub mod plugin;
pub mod reply;
pub mod state;

pub use plugin::{install, Filter};
