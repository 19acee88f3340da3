//! Logic of the `token-count` filter (its crate under `filters/token-count` is the host glue):
//! prompt tokens counted before the request leaves, completion tokens read from the answer.

pub mod budget;
pub mod config;
pub mod cost;
pub mod counter;
pub mod recipe;
pub mod tokenizer;
pub mod usage;
