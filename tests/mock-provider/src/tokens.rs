//! Token counts for the `usage` fields, with the same tiktoken encodings as OpenAI.

use std::sync::OnceLock;

use sluice_core::openai::ChatMessage;
use tiktoken_rs::CoreBPE;

static O200K: OnceLock<Option<CoreBPE>> = OnceLock::new();
static CL100K: OnceLock<Option<CoreBPE>> = OnceLock::new();

/// The encoding OpenAI uses for a model: `cl100k_base` for gpt-4 / gpt-3.5 / embeddings,
/// `o200k_base` otherwise (gpt-4o, gpt-4.1, o-series, gpt-5, and unknown models).
fn encoding_for(model: &str) -> Option<&'static CoreBPE> {
    let cl100k = (model.starts_with("gpt-4")
        && !model.starts_with("gpt-4o")
        && !model.starts_with("gpt-4.1"))
        || model.starts_with("gpt-3.5")
        || model.starts_with("text-embedding");
    if cl100k {
        CL100K
            .get_or_init(|| tiktoken_rs::cl100k_base().ok())
            .as_ref()
    } else {
        O200K
            .get_or_init(|| tiktoken_rs::o200k_base().ok())
            .as_ref()
    }
}

/// Tokens in a plain text.
pub fn count_text(model: &str, text: &str) -> u64 {
    match encoding_for(model) {
        Some(bpe) => bpe.encode_with_special_tokens(text).len() as u64,
        None => text.split_whitespace().count() as u64,
    }
}

/// Prompt tokens of a chat request by OpenAI's recipe: 3 per message, the role and content
/// tokens, 1 more for a `name`, and 3 to prime the reply. (Tool definitions are not counted by
/// the mock.)
pub fn count_chat(model: &str, messages: &[ChatMessage]) -> u64 {
    let mut total = 3;
    for m in messages {
        total += 3 + count_text(model, &m.role) + count_text(model, &m.text());
        if let Some(name) = &m.name {
            total += 1 + count_text(model, name);
        }
    }
    total
}

/// Warms the tables so the first request is not slow.
pub fn warm_up() {
    let _ = encoding_for("gpt-4o");
    let _ = encoding_for("gpt-4");
}
