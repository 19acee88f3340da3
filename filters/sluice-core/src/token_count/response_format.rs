//! A `response_format` JSON schema as OpenAI renders it into the prompt.
//!
//! Structured outputs put the schema in the system part of the prompt, under a
//! `# Response Formats` / `## {name}` header (the layout OpenAI's harmony format guide
//! publishes), here as compact JSON without its `title`s, +6 with `strict: true`, +5 without.
//! Against every recorded bill (239 requests with a schema and no tools) that rendering is
//! -14 to +43 off, 24 as billed, and no variant tried (titles kept, keys sorted, TypeScript types) settles them: every
//! schema is an estimate. JSON mode too: 67 of 68 recorded bills are the messages alone, one is
//! 9 over.

// `serde_json::Value` indexing never panics (a missing key yields `Value::Null`).
#![allow(clippy::indexing_slicing)]

use std::fmt::Write;

use serde_json::Value;

use super::config::Encoding;
use super::counter::Counter;
use super::request::Chat;
use super::tools;

/// The `json_schema` of a `response_format` of that type.
fn json_schema<'r>(req: &'r Chat) -> Option<&'r Value> {
    let format = req.response_format.as_ref()?;
    (format["type"] == "json_schema").then_some(&format["json_schema"])
}

/// The text of the schema.
pub fn render(json_schema: &Value) -> String {
    let mut out = String::from("# Response Formats\n\n## ");
    out.push_str(json_schema["name"].as_str().unwrap_or_default());
    out.push_str("\n\n");
    if let Some(d) = json_schema["description"].as_str() {
        out.push_str("// ");
        out.push_str(d);
        out.push('\n');
    }
    untitled(&mut out, &json_schema["schema"], Kind::Schema);
    out
}

/// What a JSON value is to [`untitled`].
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Data,
    Schema,
    /// `properties`, `$defs`: names to schemas.
    Schemas,
}

/// A schema as compact JSON without its `title`s (a property named `title` stays).
fn untitled(out: &mut String, v: &Value, kind: Kind) {
    match v {
        Value::Object(map) => {
            out.push('{');
            let mut first = true;
            for (k, x) in map {
                if kind == Kind::Schema && k == "title" {
                    continue;
                }
                if !first {
                    out.push(',');
                }
                first = false;
                let _ = write!(out, "{}:", Value::String(k.clone()));
                let child = match (kind, k.as_str()) {
                    (Kind::Schemas, _) => Kind::Schema,
                    (Kind::Schema, "properties" | "$defs" | "definitions") => Kind::Schemas,
                    (Kind::Schema, "enum" | "const" | "default" | "examples") => Kind::Data,
                    _ => kind,
                };
                untitled(out, x, child);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                untitled(out, x, kind);
            }
            out.push(']');
        }
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

/// The tokens a `response_format` JSON schema adds to a chat prompt (0 without one).
pub fn count(counter: &Counter, enc: Encoding, req: &Chat) -> u64 {
    let Some(js) = json_schema(req) else {
        return 0;
    };
    let text = render(js);
    let framing: i64 = if js["strict"] == true { 6 } else { 5 };
    let n = tools::system_part(counter, enc, req, &text);
    u64::try_from(n + framing).unwrap_or(0)
}

/// Why a `response_format` makes the count an estimate: every JSON schema is one (the
/// recorded bills are -14 to +43 off the rendering, with no rule that settles them), and JSON
/// mode.
pub fn estimate_reason(req: &Chat) -> Option<&'static str> {
    if req.response_format_type() == Some("json_object") {
        // 67 of 68 recorded bills match the messages alone; one is 9 over.
        return Some("JSON mode (one recorded bill is 9 over the messages)");
    }
    json_schema(req).map(|_| "a response_format JSON schema (the bills settle no rendering)")
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn schemas_render_as_compact_json_without_titles() {
        let js = serde_json::json!({"name": "Answer", "strict": true, "schema": {"title": "Answer",
            "type": "object", "properties": {"title": {"title": "Title", "type": "string"}},
            "required": ["title"]}});
        assert_eq!(
            render(&js),
            "# Response Formats\n\n## Answer\n\n{\"properties\":{\"title\":{\"type\":\"string\"}},\
             \"required\":[\"title\"],\"type\":\"object\"}"
        );
    }
}
