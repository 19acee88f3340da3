//! Logic of the `key-injection` filter (its crate under `filters/key-injection` is the host
//! glue): authenticate callers by gateway-issued keys, then inject the provider's credential.

pub mod auth;
pub mod config;
pub mod inject;
pub mod refusal;
pub mod scrub;

/// SHA-256 of a caller key, as hex: what a consumer's `key_sha256` holds.
pub fn key_digest_hex(key: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
