//! Logic of the `key-injection` filter (its crate under `filters/key-injection` is the host glue).

pub mod config;
