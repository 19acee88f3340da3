//! Logic of the `token-count` filter (its crate under `filters/token-count` is the host glue):
//! prompt tokens counted before the request leaves, completion tokens read from the answer.

pub mod budget;
pub mod config;
pub mod cost;
pub mod counter;
pub mod family;
pub mod image;
pub mod recipe;
pub mod request;
pub mod response_format;
pub mod settle;
pub mod tokenizer;
pub mod tools;
pub mod usage;

#[cfg(test)]
mod recorded_tests;

/// Prompt tokens: on the request upstream (the count) and on the answer (the provider's number
/// once its usage is read, else the count).
pub const PROMPT_HEADER: &str = "x-sluice-prompt-tokens";
/// Completion tokens, on JSON answers.
pub const COMPLETION_HEADER: &str = "x-sluice-completion-tokens";
/// Where the answer's token numbers come from: `provider`, `local` or `estimate`.
pub const SOURCE_HEADER: &str = "x-sluice-token-source";
