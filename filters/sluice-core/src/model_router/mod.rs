//! Logic of the `model-router` filter (its crate under `filters/model-router` is the host glue).

pub mod config;
