//! Logic of the `moderation` filter (its crate under `filters/moderation` is the host glue).

pub mod config;
pub mod engine;
pub mod guard;
pub mod injection;
pub mod mask;
pub mod pii;
pub mod texts;
pub mod rules;
