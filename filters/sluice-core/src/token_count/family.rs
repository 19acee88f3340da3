//! How OpenAI frames a chat prompt, by model family, and which requests a gateway can count
//! exactly before they leave.
//!
//! The evidence is the prompt tokens OpenAI billed for recorded live requests
//! (`testdata/billing/openai_recorded.json`; `recorded_tests.rs` checks every rule here against
//! it):
//! - gpt-3.5, gpt-4, gpt-4o, gpt-4.1, gpt-4.5 bill the cookbook's recipe exactly for text
//!   messages: 3 per message, the tokens of its role and content, 3 to prime the reply.
//! - The reasoning families (gpt-5 and later, o3, o4, codex) prime the reply with 2: one token
//!   less, on every plain request recorded. An assistant message in their history bills a few
//!   tokens more than the recipe says (too few recordings to say how many): an estimate.
//! - o1 bills a hidden preamble (+7 on the one recording): an estimate.
//! - Tool definitions are counted as OpenAI renders them (`tools.rs`): exact on the classic
//!   families for flat parameters (strings, numbers, booleans, string enums, one-line
//!   descriptions) without a named `tool_choice`, and on gpt-5 and later for one function with
//!   undescribed parameters and no system message (o3, o4: no recording); every other shape is an estimate
//!   (counted by the same rendering).
//! - Tool calls and results in the history (`tools.rs`): exact on the classic families for one
//!   call per assistant message, without text beside it, and results whose call is in the
//!   history; parallel calls and a reasoning model's calls are estimates.
//! - A `response_format` JSON schema (`response_format.rs`): exact for a strict schema of flat
//!   string and number properties on the classic families, without tools; others estimates.
//! - Audio and files: estimates (not counted).
//! - Images sent as data URLs are priced by their size (`image.rs`): exact on the families whose
//!   image rule the bills settle, estimates on the others and for images behind an http URL.
//! - Search models add hidden context: estimates.

use super::image;
use super::request::{Chat, Content, Message, Part};
use super::response_format;
use super::tools;

/// How a model frames a chat prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// gpt-3.5, gpt-4, gpt-4o, gpt-4.1, gpt-4.5.
    Classic,
    /// A name the rules do not know (a fine-tune, an Azure deployment named freely): counted
    /// as Classic, marked estimate.
    Unknown,
    /// gpt-5 and later, o3, o4, codex, computer-use.
    Reasoning,
    /// o1: a hidden preamble.
    O1,
}

impl Family {
    pub fn of(model: Option<&str>) -> Family {
        let model = model.unwrap_or_default();
        let model = model.rsplit('/').next().unwrap_or(model);
        let starts = |p: &str| model.starts_with(p);
        let reasoning = ["gpt-5", "o3", "o4", "codex", "computer-use"];
        let classic = ["gpt-3.5", "gpt-35", "gpt-4", "chatgpt-4o"];
        if starts("o1") {
            Family::O1
        } else if reasoning.iter().any(|p| starts(p)) {
            Family::Reasoning
        } else if classic.iter().any(|p| starts(p)) {
            Family::Classic
        } else {
            Family::Unknown
        }
    }

    /// Tokens that prime the reply, after the last message.
    pub fn reply_priming(self) -> u64 {
        match self {
            Family::Reasoning => 2,
            Family::Classic | Family::Unknown | Family::O1 => 3,
        }
    }
}

/// Why a chat request's count is only an estimate, or `None` when the rules count it as
/// OpenAI bills it.
pub fn estimate_reason(model: Option<&str>, req: &Chat) -> Option<&'static str> {
    let family = Family::of(model);
    if family == Family::O1 {
        return Some("o1 adds a hidden preamble");
    }
    if family == Family::Unknown {
        return Some("a model the rules do not know");
    }
    if model.is_some_and(|m| m.contains("search")) {
        return Some("search models add hidden context");
    }
    if let Some(reason) = tools::estimate_reason(model, family, req) {
        return Some(reason);
    }
    if let Some(reason) = response_format::estimate_reason(family == Family::Classic, req) {
        return Some(reason);
    }
    for m in &req.messages {
        if let Some(reason) = tools::history_estimate(family, req, m) {
            return Some(reason);
        }
        if let Some(reason) = message_estimate(family, model, m) {
            return Some(reason);
        }
    }
    None
}

fn message_estimate(family: Family, model: Option<&str>, m: &Message) -> Option<&'static str> {
    match m.role.as_ref() {
        "system" | "developer" | "user" => {}
        "assistant" if family == Family::Reasoning => {
            return Some("an assistant message in a reasoning model's history")
        }
        "assistant" => {}
        "tool" => {}
        "function" => return Some("legacy function results in the history"),
        _ => return Some("an unknown role"),
    }
    if m.function_call.is_some() {
        return Some("a legacy function call in the history");
    }
    if m.audio.is_some() {
        return Some("audio");
    }
    match &m.content {
        Some(Content::Parts(parts)) => parts.iter().find_map(|p| part_estimate(model, p)),
        _ => None,
    }
}

/// Why a content part makes the count an estimate: text is exact; an image is exact when it
/// is a data URL whose header gives its size and the model's image rule rests on bills
/// (`image.rs`); audio and files are estimates.
fn part_estimate(model: Option<&str>, p: &Part) -> Option<&'static str> {
    match p.kind.as_ref() {
        "text" => None,
        "image_url" | "image" => {
            let url = p.image_url.as_ref().and_then(|u| u.url.as_deref());
            match url {
                Some(u) if u.starts_with("data:") => {
                    let priced = model.is_some_and(image::rule_rests_on_bills)
                        && image::data_url_image_size(u).is_some();
                    (!priced).then_some("an image priced by an unproven rule or of unknown size")
                }
                _ => Some("an image behind a URL (its size is not known here)"),
            }
        }
        _ => Some("audio or files"),
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use serde_json::Value;

    #[test]
    fn families_by_model_name() {
        for m in [
            "gpt-4o",
            "gpt-4.1-nano",
            "gpt-3.5-turbo",
            "gpt-4",
            "gpt-35-turbo",
        ] {
            assert_eq!(Family::of(Some(m)), Family::Classic, "{m}");
        }
        for m in ["my-model", "ft:o4-mini:acme", "prod-deployment"] {
            assert_eq!(Family::of(Some(m)), Family::Unknown, "{m}");
        }
        for m in [
            "gpt-5",
            "gpt-5-nano",
            "gpt-5.4-mini",
            "o3-mini",
            "o4-mini",
            "openai/gpt-5",
        ] {
            assert_eq!(Family::of(Some(m)), Family::Reasoning, "{m}");
        }
        assert_eq!(Family::of(Some("o1-mini")), Family::O1);
        assert_eq!(Family::of(None), Family::Unknown);
    }

    #[test]
    fn what_makes_a_count_an_estimate() {
        // Test bodies live for the whole test run.
        let req = |v: Value| serde_json::from_str::<Chat>(v.to_string().leak()).unwrap();
        let plain = req(serde_json::json!({"messages": [
            {"role": "developer", "content": "d"}, {"role": "user", "content": [{"type": "text", "text": "u"}]},
            {"role": "assistant", "content": "a"}, {"role": "user", "content": "u"}]}));
        assert_eq!(estimate_reason(Some("gpt-4o"), &plain), None);
        assert!(estimate_reason(Some("gpt-5"), &plain).is_some());
        assert!(estimate_reason(Some("o1-mini"), &plain).is_some());
        assert!(estimate_reason(Some("gpt-4o-search-preview"), &plain).is_some());
        let with = |extra: Value| {
            let mut v = serde_json::json!({"messages": [{"role": "user", "content": "u"}]});
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            req(v)
        };
        // Flat function definitions are exact on the families the bills settle.
        let flat = serde_json::json!({"tools": [{"type": "function", "function": {"name": "f",
            "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}}]});
        assert_eq!(estimate_reason(Some("gpt-4o"), &with(flat.clone())), None);
        assert_eq!(
            estimate_reason(Some("gpt-5-mini"), &with(flat.clone())),
            None
        );
        assert!(estimate_reason(Some("o4-mini"), &with(flat)).is_some());
        let legacy = serde_json::json!({"functions": [{"name": "f", "description": "d"}]});
        assert_eq!(estimate_reason(Some("gpt-3.5-turbo"), &with(legacy)), None);
        for extra in [
            serde_json::json!({"tools": [{"type": "function", "function": {"name": "f",
                "parameters": {"type": "object", "properties": {"a": {"type": "array"}}}}}]}),
            serde_json::json!({"tools": [{"type": "function", "function": {"name": "f"}}],
                "tool_choice": {"type": "function", "function": {"name": "f"}}}),
            serde_json::json!({"tools": [{"type": "function", "function": {"name": "f"}},
                {"type": "function", "function": {"name": "g"}}], "model": "gpt-5"}),
            serde_json::json!({"response_format": {"type": "json_schema", "json_schema": {}}}),
        ] {
            let mut v = serde_json::json!({"messages": [{"role": "user", "content": "u"}]});
            for (k, x) in extra.as_object().unwrap() {
                v[k] = x.clone();
            }
            let model = v["model"].as_str().unwrap_or("gpt-4o").to_owned();
            assert!(
                estimate_reason(Some(&model), &req(v.clone())).is_some(),
                "{v}"
            );
        }
        let json_object = req(
            serde_json::json!({"messages": [{"role": "user", "content": "u"}],
            "response_format": {"type": "json_object"}}),
        );
        assert_eq!(estimate_reason(Some("gpt-4o"), &json_object), None);
        let image = req(
            serde_json::json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}),
        );
        assert!(estimate_reason(Some("gpt-4o"), &image).is_some());
    }
}
