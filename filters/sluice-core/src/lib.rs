//! Sluice's shared library.
//!
//! Everything here is plain Rust: no `proxy-wasm`, no host calls. It builds for the host (where
//! its unit tests run with `cargo test`) and for wasm32 (where the same tests run under Node with
//! `wasm-bindgen-test`, so 32-bit `usize` and other wasm differences are caught by tests).
//!
//! One idea per module:
//! - [`openai`], [`anthropic`]: wire types of the two API dialects, tolerant of unknown fields and
//!   keeping them on re-serialisation.
//! - [`body`]: request bodies parsed as JSON, refused with errors that name the field.
//! - [`hold`]: how much of a body a filter may hold whole in Envoy.
//! - [`sse`]: an incremental Server-Sent Events parser that survives any chunk split.
//! - [`endpoint`]: which API a request path is for.
//! - [`error`]: the caller-facing error bodies (OpenAI and Anthropic dialects) and their statuses.
//! - [`config`]: JSON filter config to typed struct, with validation that names the bad field.
//! - [`state`]: the filter-state keys the filters use to talk to each other.
//! - [`translate`]: OpenAI chat requests served by Anthropic providers, and the answers back.
//!
//! And one module per filter, holding that filter's config and logic; the filter's own crate is
//! only the glue between this and the host: [`token_count`], [`prompt_template`],
//! [`moderation`], [`key_injection`], [`model_router`].

pub mod anthropic;
pub mod body;
pub mod config;
pub mod endpoint;
pub mod error;
pub mod hold;
pub mod metrics;
pub mod openai;
pub mod sse;
pub mod state;

pub mod key_injection;
pub mod model_router;
pub mod moderation;
pub mod prompt_template;
pub mod token_count;
pub mod translate;

#[cfg(test)]
pub(crate) mod testing;

pub use config::{parse_config, ConfigError, Validate};
pub use error::{ApiError, Dialect, ErrorKind};
pub use sse::{SseEvent, SseParser};
pub use state::StateKey;
