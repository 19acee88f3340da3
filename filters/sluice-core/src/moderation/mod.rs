//! Logic of the `moderation` filter (its crate under `filters/moderation` is the host glue).

pub mod answer;
pub mod config;
pub mod engine;
pub mod external;
pub mod gate;
pub mod guard;
pub mod injection;
pub mod mask;
pub mod pii;
pub mod rules;
pub mod texts;
