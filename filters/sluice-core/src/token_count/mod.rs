//! Logic of the `token-count` filter (its crate under `filters/token-count` is the host glue).

pub mod config;
