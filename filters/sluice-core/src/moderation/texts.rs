//! The texts of a request body, each with the part of the request it comes from, as mutable
//! strings inside the parsed JSON: checking reads them, masking rewrites them in place, and
//! everything else in the body (unknown fields included) stays as it was.

use serde_json::Value;

use super::rules::Segment;
use crate::endpoint::Endpoint;

/// Every text of `body` for `endpoint`, in request order.
pub fn texts_mut(body: &mut Value, endpoint: Endpoint) -> Vec<(Segment, &mut String)> {
    let mut out = Vec::new();
    match endpoint {
        Endpoint::Chat => chat(body, &mut out),
        Endpoint::AnthropicMessages => messages(body, &mut out),
        Endpoint::Completions => inputs(body.get_mut("prompt"), &mut out),
        Endpoint::Embeddings => inputs(body.get_mut("input"), &mut out),
    }
    out
}

fn last_user_index(messages: &[Value]) -> Option<usize> {
    messages
        .iter()
        .rposition(|m| m.get("role").and_then(Value::as_str) == Some("user"))
}

fn chat<'a>(body: &'a mut Value, out: &mut Vec<(Segment, &'a mut String)>) {
    let Some(list) = body.get_mut("messages").and_then(Value::as_array_mut) else {
        return;
    };
    let last_user = last_user_index(list);
    for (i, m) in list.iter_mut().enumerate() {
        let Some(obj) = m.as_object_mut() else {
            continue;
        };
        let segment = match obj.get("role").and_then(Value::as_str) {
            Some("system" | "developer") => Segment::System,
            Some("user") => Segment::User {
                last: Some(i) == last_user,
            },
            Some("assistant") => Segment::Assistant,
            Some("tool" | "function") => Segment::Tool,
            _ => continue,
        };
        for (key, value) in obj.iter_mut() {
            match key.as_str() {
                "content" => content(value, segment, out),
                "tool_calls" => {
                    for call in value.as_array_mut().into_iter().flatten() {
                        if let Some(Value::String(args)) = call
                            .get_mut("function")
                            .and_then(|f| f.get_mut("arguments"))
                        {
                            out.push((segment, args));
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// A content: a string, or a list of parts whose `text` fields are text.
fn content<'a>(value: &'a mut Value, segment: Segment, out: &mut Vec<(Segment, &'a mut String)>) {
    match value {
        Value::String(s) => out.push((segment, s)),
        Value::Array(parts) => {
            for part in parts {
                if let Some(Value::String(s)) = part.get_mut("text") {
                    out.push((segment, s));
                }
            }
        }
        _ => {}
    }
}

fn messages<'a>(body: &'a mut Value, out: &mut Vec<(Segment, &'a mut String)>) {
    let Some(obj) = body.as_object_mut() else {
        return;
    };
    let start = out.len();
    for (key, value) in obj.iter_mut() {
        match key.as_str() {
            "system" => content(value, Segment::System, out),
            "messages" => {
                let Some(list) = value.as_array_mut() else {
                    continue;
                };
                let last_user = last_user_index(list);
                for (i, m) in list.iter_mut().enumerate() {
                    let role = m.get("role").and_then(Value::as_str).map(str::to_owned);
                    let segment = match role.as_deref() {
                        Some("user") => Segment::User {
                            last: Some(i) == last_user,
                        },
                        Some("assistant") => Segment::Assistant,
                        _ => continue,
                    };
                    match m.get_mut("content") {
                        Some(Value::String(s)) => out.push((segment, s)),
                        Some(Value::Array(blocks)) => {
                            for block in blocks {
                                anthropic_block(block, segment, out);
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    // The fields come in key order; `system` comes first in the request's reading order (only
    // the top-level `system` gives `Segment::System` here, and the sort is stable).
    if let Some(texts) = out.get_mut(start..) {
        texts.sort_by_key(|(segment, _)| *segment != Segment::System);
    }
}

fn anthropic_block<'a>(
    block: &'a mut Value,
    segment: Segment,
    out: &mut Vec<(Segment, &'a mut String)>,
) {
    let kind = block.get("type").and_then(Value::as_str).map(str::to_owned);
    match kind.as_deref() {
        Some("tool_result") => {
            if let Some(c) = block.get_mut("content") {
                content(c, Segment::Tool, out);
            }
        }
        _ => {
            if let Some(Value::String(s)) = block.get_mut("text") {
                out.push((segment, s));
            }
        }
    }
}

/// `prompt` / `input`: a string or a list of strings (token-id arrays have no text).
fn inputs<'a>(value: Option<&'a mut Value>, out: &mut Vec<(Segment, &'a mut String)>) {
    match value {
        Some(Value::String(s)) => out.push((Segment::User { last: true }, s)),
        Some(Value::Array(items)) => {
            for item in items {
                if let Value::String(s) = item {
                    out.push((Segment::User { last: true }, s));
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use serde_json::json;

    use super::*;

    fn seen(mut body: Value, endpoint: Endpoint) -> Vec<(Segment, String)> {
        texts_mut(&mut body, endpoint)
            .into_iter()
            .map(|(s, t)| (s, t.clone()))
            .collect()
    }

    #[test]
    fn chat_texts_with_their_segments() {
        let body = json!({"model":"m","messages":[
            {"role":"system","content":"sys"},
            {"role":"user","content":"u1"},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},
            {"role":"tool","tool_call_id":"c","content":"result"},
            {"role":"user","content":[{"type":"text","text":"u2"},{"type":"image_url","image_url":{"url":"data:x"}}]}
        ]});
        assert_eq!(
            seen(body, Endpoint::Chat),
            [
                (Segment::System, "sys".into()),
                (Segment::User { last: false }, "u1".into()),
                (Segment::Assistant, "{\"a\":1}".into()),
                (Segment::Tool, "result".into()),
                (Segment::User { last: true }, "u2".into()),
            ]
        );
    }

    #[test]
    fn anthropic_texts_with_their_segments() {
        let body = json!({"model":"m","system":[{"type":"text","text":"sys"}],"messages":[
            {"role":"user","content":"u1"},
            {"role":"assistant","content":[{"type":"text","text":"a1"},{"type":"tool_use","id":"t","name":"f","input":{}}]},
            {"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"r"},{"type":"text","text":"u2"}]}
        ]});
        assert_eq!(
            seen(body, Endpoint::AnthropicMessages),
            [
                (Segment::System, "sys".into()),
                (Segment::User { last: false }, "u1".into()),
                (Segment::Assistant, "a1".into()),
                (Segment::Tool, "r".into()),
                (Segment::User { last: true }, "u2".into()),
            ]
        );
    }

    #[test]
    fn completions_and_embeddings() {
        assert_eq!(
            seen(json!({"prompt":["a","b"]}), Endpoint::Completions).len(),
            2
        );
        assert_eq!(
            seen(json!({"input":[1,2,3]}), Endpoint::Embeddings).len(),
            0
        );
        assert_eq!(seen(json!({"input":"x"}), Endpoint::Embeddings).len(), 1);
    }

    #[test]
    fn rewriting_keeps_everything_else() {
        let mut body = json!({"messages":[{"role":"user","content":"a","x-extra":1}],"top_p":0.5});
        for (_, t) in texts_mut(&mut body, Endpoint::Chat) {
            t.push('!');
        }
        assert_eq!(
            body,
            json!({"messages":[{"role":"user","content":"a!","x-extra":1}],"top_p":0.5})
        );
    }
}
