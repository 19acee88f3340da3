//! Callbacks a filter leaves to the SDK, named so that `make wasm` can drop their exports.
//!
//! The proxy-wasm SDK exports every callback of the ABI, and Envoy enters the module for each
//! one it exports on every request, even when the filter left it to the SDK's default, which
//! does nothing (`on_log`) or answers what the host assumes anyway (`on_done`: done). The ABI
//! makes every callback optional: a host skips one the module does not export. A filter names
//! the callbacks it does not use with [`unused_callbacks!`], which writes their export names
//! into the module's custom section [`SECTION`]; `make wasm` (`tools/sluice-trim`) then drops
//! those exports and the section. Built by `cargo build` alone, the module keeps every export
//! and works the same, a few Wasm entries per request slower.

/// The custom section [`unused_callbacks!`] writes: export names separated by spaces.
pub const SECTION: &str = "sluice.unused_callbacks";

/// Names the proxy-wasm callbacks (their export names, separated by spaces, as a byte string)
/// this filter leaves to the SDK: `make wasm` drops their exports. Only `proxy_on_log` and
/// `proxy_on_done` can be named (sluice-trim refuses any other), and only when the filter does
/// not implement the trait method.
#[macro_export]
macro_rules! unused_callbacks {
    ($names:literal) => {
        #[used]
        #[link_section = "sluice.unused_callbacks"]
        static SLUICE_UNUSED_CALLBACKS: [u8; { $names.len() }] = *$names;
    };
}
