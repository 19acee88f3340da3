//! Tool definitions as OpenAI renders them into the prompt, and what they cost.
//!
//! OpenAI turns function definitions into TypeScript-like text in the system (or developer)
//! part of the prompt (OpenAI's statement "functions are injected into the system message in a
//! syntax the model has been trained on"; the layout as OpenAI's harmony format guide publishes
//! it and as users have drawn it out of the models):
//!
//! ```text
//! # Tools
//!
//! ## functions
//!
//! namespace functions {
//!
//! // Get the current weather
//! type get_weather = (_: {
//! // The city and state, e.g. San Francisco, CA
//! location: string,
//! unit?: "celsius" | "fahrenheit", // default: celsius
//! }) => any;
//!
//! type get_time = () => any;
//!
//! } // namespace functions
//! ```
//!
//! What the recorded bills (`testdata/billing/openai_recorded.json`, checked by
//! `recorded_tests.rs`) settle, on top of that text counted with the model's encoding:
//! - gpt-3.5, gpt-4, gpt-4o, gpt-4.1: the text joins the first message when it is a system or
//!   developer message (after a blank line, one token less than the two counted apart);
//!   otherwise it is a system message of its own (3 tokens of framing). A function whose
//!   parameters carry no description at all bills one token less than its text (on every such
//!   recording; why is not known).
//! - gpt-5 and later (the harmony layout): 82 tokens more than the text alone, 85 beside a
//!   system message (a hidden system message names the channels); one less for each function
//!   whose parameters carry no description, and for each with neither parameters nor a
//!   description: every recorded request with flat parameters and no history (67) and any
//!   `tool_choice`. o3 / o4: the same rendering is 74 to 90 over (estimates).
//! - `parallel_tool_calls` and `tool_choice` `auto` / `none` / `required` change nothing on
//!   gpt-4o / gpt-4.1; `required` on gpt-3.5 was 2 over once (an estimate there); a named
//!   `tool_choice` adds tokens on the classic families: an estimate.

// `serde_json::Value` indexing never panics (a missing key yields `Value::Null`).
#![allow(clippy::indexing_slicing)]

use std::fmt::Write;

use serde_json::Value;

use super::config::Encoding;
use super::counter::Counter;
use super::family::Family;
use super::request::{Chat, Content, Message, ToolCall};

/// Tokens the harmony layout adds for tools (its hidden system message and the framing of the
/// tools' own): without a system message of the request's, and with one.
const HARMONY_TOOLS: (i64, i64) = (82, 85);

/// A function definition, from `tools` or legacy `functions`.
#[derive(Clone, Copy)]
pub struct Def<'r> {
    name: &'r str,
    description: Option<&'r str>,
    /// `Null` when there are none.
    parameters: &'r Value,
}

static NONE: Value = Value::Null;

/// The request's function definitions: `tools` of type `function`, or legacy `functions`.
pub fn functions<'r>(req: &'r Chat) -> Vec<Def<'r>> {
    let mut out = Vec::new();
    for t in req.tools.as_deref().unwrap_or_default() {
        if let Some(f) = &t.function {
            out.push(Def {
                name: &f.name,
                description: f.description.as_deref(),
                parameters: f.parameters.as_ref().unwrap_or(&NONE),
            });
        }
    }
    let legacy = req.functions.as_ref().and_then(Value::as_array);
    for f in legacy.map(Vec::as_slice).unwrap_or_default() {
        out.push(Def {
            name: f["name"].as_str().unwrap_or_default(),
            description: f["description"].as_str(),
            parameters: &f["parameters"],
        });
    }
    out
}

/// The `namespace functions` text.
pub fn render(functions: &[Def]) -> String {
    let mut out = String::from("# Tools\n\n## functions\n\nnamespace functions {\n\n");
    for f in functions {
        comment(&mut out, f.description);
        let params = f.parameters;
        if has_properties(params) {
            let _ = writeln!(out, "type {} = (_: {{", f.name);
            properties(&mut out, params);
            out.push_str("}) => any;\n\n");
        } else {
            let _ = write!(out, "type {} = () => any;\n\n", f.name);
        }
    }
    out.push_str("} // namespace functions");
    out
}

fn comment(out: &mut String, text: Option<&str>) {
    if let Some(t) = text.filter(|t| !t.is_empty()) {
        let _ = writeln!(out, "// {t}");
    }
}

fn has_properties(schema: &Value) -> bool {
    schema["properties"]
        .as_object()
        .is_some_and(|p| !p.is_empty())
}

/// An object's properties, one a line, each after its description.
fn properties(out: &mut String, schema: &Value) {
    let Some(props) = schema["properties"].as_object() else {
        return;
    };
    let required = schema["required"].as_array();
    for (name, prop) in props {
        comment(out, prop["description"].as_str());
        let optional = !required.is_some_and(|r| r.iter().any(|n| n == name.as_str()));
        let _ = write!(out, "{name}{}: ", if optional { "?" } else { "" });
        ts_type(out, prop);
        out.push(',');
        match &prop["default"] {
            Value::Null => {}
            Value::String(s) => {
                let _ = write!(out, " // default: {s}");
            }
            other => {
                let _ = write!(out, " // default: {other}");
            }
        }
        out.push('\n');
    }
}

/// A JSON schema as a TypeScript type.
fn ts_type(out: &mut String, schema: &Value) {
    let (items, kinds) = match (&schema["enum"], &schema["anyOf"], &schema["oneOf"]) {
        (Value::Array(values), _, _) => (values, false),
        (_, Value::Array(alts), _) | (_, _, Value::Array(alts)) => (alts, false),
        _ => match &schema["type"] {
            Value::Array(kinds) => (kinds, true),
            kind => return ts_kind(out, schema, kind.as_str()),
        },
    };
    let is_enum = schema["enum"].is_array();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(" | ");
        }
        if is_enum {
            let _ = write!(out, "{item}");
        } else if kinds {
            ts_kind(out, schema, item.as_str());
        } else {
            ts_type(out, item);
        }
    }
}

fn ts_kind(out: &mut String, schema: &Value, kind: Option<&str>) {
    match kind {
        Some("string") => out.push_str("string"),
        Some("number" | "integer") => out.push_str("number"),
        Some("boolean") => out.push_str("boolean"),
        Some("null") => out.push_str("null"),
        Some("array") => {
            match &schema["items"] {
                Value::Null => out.push_str("any"),
                items => ts_type(out, items),
            }
            out.push_str("[]");
        }
        Some("object") if has_properties(schema) => {
            out.push_str("{\n");
            properties(out, schema);
            out.push('}');
        }
        Some("object") => out.push_str("object"),
        _ => out.push_str("any"),
    }
}

/// The tokens tool definitions add to a chat prompt (0 without any).
pub fn count(counter: &Counter, enc: Encoding, family: Family, req: &Chat) -> u64 {
    let functions = functions(req);
    if functions.is_empty() {
        return 0;
    }
    let text = render(&functions);
    let mut n = system_part(counter, enc, req, &text);
    let harmony = family == Family::Reasoning;
    if harmony {
        // Joined or alone, the same in all.
        n += if system_text(req).is_some() {
            HARMONY_TOOLS.1
        } else {
            HARMONY_TOOLS.0
        };
    }
    // One token less for a function whose parameters carry no description; on the harmony
    // families also for one with neither parameters nor a description.
    let less = |f: &&Def| undocumented(f) || (harmony && bare(f));
    n -= functions.iter().filter(less).count() as i64;
    u64::try_from(n).unwrap_or(0)
}

/// The tokens of text OpenAI puts in the system part of the prompt: joined to the first
/// message after a blank line when that is a system or developer message (one token less than
/// the two counted apart), else a system message of its own (3 tokens of framing).
#[inline(never)]
pub fn system_part(counter: &Counter, enc: Encoding, req: &Chat, text: &str) -> i64 {
    match system_text(req) {
        Some(system) => {
            let joined = format!("{system}\n\n{text}");
            tokens(counter, enc, &joined) - tokens(counter, enc, system) - 1
        }
        None => tokens(counter, enc, text) + 3,
    }
}

/// One call site for the counter (the module stays smaller).
#[inline(never)]
pub fn tokens(counter: &Counter, enc: Encoding, text: &str) -> i64 {
    counter.count(enc, text) as i64
}

/// The first message's text when it is a system or developer message (the tools join it).
pub fn system_text<'r>(req: &'r Chat) -> Option<&'r str> {
    let first = req.messages.first()?;
    if !matches!(first.role.as_ref(), "system" | "developer") {
        return None;
    }
    match &first.content {
        Some(Content::Text(t)) => Some(t),
        _ => None,
    }
}

/// A function with neither parameters nor a description.
fn bare(f: &Def) -> bool {
    !has_properties(f.parameters) && f.description.is_none_or(str::is_empty)
}

/// A function with parameters none of which is described.
fn undocumented(f: &Def) -> bool {
    let params = f.parameters;
    has_properties(params)
        && params["properties"]
            .as_object()
            .is_some_and(|p| p.values().all(|v| v["description"].is_null()))
}

/// Why tool definitions make a count an estimate, or `None` when the bills settle their shape
/// for this family: flat parameters (strings, numbers, booleans, string enums; no nested
/// objects, arrays, unions, defaults or references), one-line descriptions, no named
/// `tool_choice`; on the harmony families only gpt-5 and later (the recorded ones; o3 and o4
/// are estimates), a single function with undescribed parameters and no system message.
pub fn estimate_reason(model: Option<&str>, family: Family, req: &Chat) -> Option<&'static str> {
    let functions = functions(req);
    if functions.is_empty() {
        return if req.tools.as_ref().is_some_and(|t| !t.is_empty()) {
            Some("tools other than functions")
        } else {
            None
        };
    }
    if req
        .tools
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|t| t.function.is_none())
    {
        return Some("tools other than functions");
    }
    let harmony = family == Family::Reasoning;
    let choice = req.tool_choice.as_ref();
    if !harmony && choice.is_some_and(Value::is_object) {
        return Some("a named tool_choice");
    }
    if cl100k(model) && choice.is_some_and(|c| c == "required") {
        return Some("tool_choice `required` on gpt-3.5 / gpt-4 (+2 on one recorded bill)");
    }
    if !functions.iter().all(|f| flat(f)) {
        return Some("tool parameters of a shape the bills do not settle");
    }
    if first_system(req) && system_text(req).is_none() {
        return Some("tools joined to a system message given as parts");
    }
    if harmony && !gpt5(model) {
        return Some("tool definitions on o3 / o4 (off by +74 to +90 on the recorded bills)");
    }
    None
}

/// The first message is a system or developer message.
pub fn first_system(req: &Chat) -> bool {
    req.messages
        .first()
        .is_some_and(|m| matches!(m.role.as_ref(), "system" | "developer"))
}

fn bare_model(model: Option<&str>) -> &str {
    let m = model.unwrap_or_default();
    m.rsplit('/').next().unwrap_or(m)
}

/// gpt-5 and later: the harmony models whose tools the bills settle.
pub fn gpt5(model: Option<&str>) -> bool {
    bare_model(model).starts_with("gpt-5")
}

/// gpt-3.5 and gpt-4 (not gpt-4o, gpt-4.1, gpt-4.5).
fn cl100k(model: Option<&str>) -> bool {
    let m = bare_model(model);
    let newer = ["gpt-4o", "gpt-4.1", "gpt-4.5"];
    m.starts_with("gpt-3.5") || (m.starts_with("gpt-4") && !newer.iter().any(|p| m.starts_with(p)))
}

/// One line per description, and parameters the recordings settle.
/// Whether every entry of an object (none if it is not one) passes.
fn all_entries(v: &Value, pass: &dyn Fn(&str, &Value) -> bool) -> bool {
    v.as_object()
        .is_none_or(|o| o.iter().all(|(k, x)| pass(k, x)))
}

fn flat(f: &Def) -> bool {
    let one_line = |t: Option<&str>| !t.is_some_and(|t| t.contains('\n'));
    let top = all_entries(f.parameters, &|k, _| {
        matches!(
            k,
            "type" | "properties" | "required" | "additionalProperties"
        )
    });
    let props = all_entries(&f.parameters["properties"], &|_, p| {
        p["type"].is_string()
            && all_entries(p, &|k, v| match k {
                "type" => matches!(
                    v.as_str(),
                    Some("string" | "number" | "integer" | "boolean")
                ),
                "description" => one_line(v.as_str()),
                "enum" => v.as_array().is_some_and(|e| e.iter().all(Value::is_string)),
                _ => false,
            })
    });
    one_line(f.description) && top && props
}

/// Tokens a harmony model's tool call and result each add over the classic layout (channel
/// and recipient in the header): a call and its result bill 6 together on every recorded
/// gpt-5 history; the even split is inference.
const HARMONY_CALL: u64 = 3;

/// An assistant message's tool calls. One call is a message of its own,
/// `assistant to=functions.{name}`, its arguments as compact JSON; on every recording it bills
/// 4 tokens of framing plus `assistant to=functions.` and the name counted apart. Several calls
/// in one message (OpenAI wraps them in one `multi_tool_use.parallel` call) bill 7 more per
/// call than as many single calls on the one recording: an estimate.
pub fn calls_tokens(counter: &Counter, enc: Encoding, family: Family, calls: &[ToolCall]) -> u64 {
    let harmony = if family == Family::Reasoning {
        HARMONY_CALL
    } else {
        0
    };
    let parallel = if calls.len() > 1 { 7 } else { 0 };
    let one = |c: &ToolCall| {
        let (name, args) = function(c);
        let n = tokens(counter, enc, "assistant to=functions.")
            + tokens(counter, enc, name)
            + tokens(counter, enc, &compact(args));
        4 + harmony + parallel + n as u64
    };
    calls.iter().map(one).sum()
}

fn function<'r>(c: &'r ToolCall) -> (&'r str, &'r str) {
    let f = c.function.as_ref();
    let name = f.and_then(|f| f.name.as_deref()).unwrap_or_default();
    let args = f.and_then(|f| f.arguments.as_deref()).unwrap_or_default();
    (name, args)
}

/// A tool result's header, `functions.{name}`, in place of its role.
pub fn result_tokens(counter: &Counter, enc: Encoding, family: Family, name: &str) -> u64 {
    let harmony = if family == Family::Reasoning {
        HARMONY_CALL
    } else {
        0
    };
    harmony + tokens(counter, enc, &format!("functions.{name}")) as u64
}

/// The name of the function a tool result answers, from the call with its id.
pub fn called<'r>(req: &'r Chat, result: &Message) -> Option<&'r str> {
    let id = result.tool_call_id.as_deref()?;
    for m in &req.messages {
        for c in m.tool_calls.as_deref().unwrap_or_default() {
            if c.id.as_deref() == Some(id) {
                return c.function.as_ref().and_then(|f| f.name.as_deref());
            }
        }
    }
    None
}

/// JSON text without the whitespace between its tokens (key order kept).
fn compact(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if !c.is_whitespace() {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}

/// Why a message of the history makes the count an estimate, for tool calls and results:
/// exact on the classic families for one call per message (arguments JSON, no text beside
/// it) and results whose call is in the history.
pub fn history_estimate(
    family: Family,
    model: Option<&str>,
    req: &Chat,
    m: &Message,
) -> Option<&'static str> {
    let calls = m.tool_calls.as_deref().unwrap_or_default();
    // gpt-5 and later settle without a system message (-3 on the one recorded with one).
    let reasoning = family == Family::Reasoning && (!gpt5(model) || first_system(req));
    if !calls.is_empty() {
        let text = match &m.content {
            Some(Content::Text(t)) => !t.is_empty(),
            Some(Content::Parts(p)) => !p.is_empty(),
            None => false,
        };
        // Empty arguments (`{}`): 4 of the 29 recorded are off by -1 to +3.
        let json = calls.iter().all(|c| {
            let args = c.function.as_ref().and_then(|f| f.arguments.as_deref());
            serde_json::from_slice::<Value>(args.unwrap_or_default().as_bytes())
                .is_ok_and(|v| v.as_object().is_none_or(|o| !o.is_empty()))
        });
        return (reasoning || text || calls.len() > 1 || !json).then_some(
            "tool calls in the history (parallel, beside text, empty arguments, or on o3 / o4 or with a system message)",
        );
    }
    if m.role == "tool" {
        return (reasoning || called(req, m).is_none())
            .then_some("tool results in the history (of an unknown call, or on o3 / o4 or with a system message)");
    }
    None
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn chat(v: serde_json::Value) -> Chat<'static> {
        // Test bodies live for the whole test run.
        serde_json::from_str(v.to_string().leak()).unwrap()
    }

    #[test]
    fn functions_render_as_a_typescript_namespace() {
        let req = chat(serde_json::json!({"messages": [], "tools": [
            {"type": "function", "function": {"name": "get_weather", "description": "Get the weather",
                "parameters": {"type": "object", "required": ["city"], "properties": {
                    "city": {"type": "string", "description": "The city"},
                    "days": {"type": "array", "items": {"type": "integer"}},
                    "unit": {"type": "string", "enum": ["c", "f"], "default": "c"},
                    "where": {"type": "object", "properties": {"lat": {"type": ["number", "null"]}}}}}}},
            {"type": "function", "function": {"name": "now"}}]}));
        assert_eq!(
            render(&functions(&req)),
            "# Tools\n\n## functions\n\nnamespace functions {\n\n// Get the weather\n\
             type get_weather = (_: {\n// The city\ncity: string,\ndays?: number[],\n\
             unit?: \"c\" | \"f\", // default: c\nwhere?: {\nlat?: number | null,\n},\n\
             }) => any;\n\ntype now = () => any;\n\n} // namespace functions"
        );
    }

    #[test]
    fn arguments_are_compacted_in_order() {
        assert_eq!(
            compact("{ \"b\": \"x y\\\" z\",\n  \"a\" : [1, 2] }"),
            "{\"b\":\"x y\\\" z\",\"a\":[1,2]}"
        );
    }

    #[test]
    fn results_name_their_call() {
        let req = chat(serde_json::json!({"messages": [
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"},
            {"role": "tool", "tool_call_id": "c2", "content": "ok"}]}));
        assert_eq!(called(&req, &req.messages[1]), Some("f"));
        assert_eq!(called(&req, &req.messages[2]), None);
        let h = |f, model, i: usize| history_estimate(f, Some(model), &req, &req.messages[i]);
        assert!(h(Family::Classic, "gpt-4o", 1).is_none());
        assert!(h(Family::Classic, "gpt-4o", 2).is_some());
        assert!(h(Family::Reasoning, "gpt-5-mini", 0).is_none());
        assert!(h(Family::Reasoning, "o4-mini", 0).is_some());
    }
}
