//! Logic of the `prompt-template` filter (its crate under `filters/prompt-template` is the host glue).

pub mod config;
