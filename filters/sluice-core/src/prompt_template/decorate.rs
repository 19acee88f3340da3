//! Enforced messages around a request, and what happens to the caller's own system prompt.
//!
//! OpenAI chat: system (and developer) messages are messages. Anthropic Messages: the system
//! prompt is the top-level `system` (a string or text blocks); a decoration's system messages
//! go there, its other messages around `messages`.

use serde_json::{Map, Value};

use super::config::{Decoration, SystemPolicy};
use super::expand::text_block;
use crate::{ApiError, Dialect};

fn is_system(m: &Value) -> bool {
    matches!(
        m.get("role").and_then(Value::as_str),
        Some("system" | "developer")
    )
}

fn refused(param: &str) -> ApiError {
    ApiError::invalid_request(format!(
        "$.{param}: this route sets the system prompt itself and takes none from the caller"
    ))
    .with_code("system_message_not_allowed")
    .with_param(param)
}

/// Applies `d` to a request. `caller_authored`: the messages are the caller's (not a
/// template's), so the system policy applies to them.
pub fn decorate(
    request: &mut Map<String, Value>,
    d: &Decoration,
    dialect: Dialect,
    caller_authored: bool,
) -> Result<(), ApiError> {
    let Some(Value::Array(messages)) = request.get_mut("messages") else {
        return Ok(()); // not a chat request: the next filters say what is wrong with it
    };
    if dialect == Dialect::OpenAi {
        if caller_authored {
            match d.system {
                SystemPolicy::Keep => {}
                SystemPolicy::Replace => messages.retain(|m| !is_system(m)),
                SystemPolicy::Refuse => {
                    if let Some(i) = messages.iter().position(is_system) {
                        return Err(refused(&format!("messages[{i}]")));
                    }
                }
            }
        }
        let mut out: Vec<Value> = d.prepend.iter().cloned().map(Value::Object).collect();
        out.append(messages);
        out.extend(d.append.iter().cloned().map(Value::Object));
        *messages = out;
        return Ok(());
    }
    // Anthropic.
    let (pre_system, pre): (Vec<Value>, Vec<Value>) = d
        .prepend
        .iter()
        .cloned()
        .map(Value::Object)
        .partition(is_system);
    let (post_system, post): (Vec<Value>, Vec<Value>) = d
        .append
        .iter()
        .cloned()
        .map(Value::Object)
        .partition(is_system);
    let mut out = pre;
    out.append(messages);
    out.extend(post);
    *messages = out;
    if caller_authored {
        let has_own = match request.get("system") {
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            _ => false,
        };
        match d.system {
            SystemPolicy::Keep => {}
            SystemPolicy::Replace => {
                request.remove("system");
            }
            SystemPolicy::Refuse if has_own => return Err(refused("system")),
            SystemPolicy::Refuse => {}
        }
    }
    if pre_system.is_empty() && post_system.is_empty() {
        return Ok(());
    }
    let blocks = |msgs: Vec<Value>| -> Vec<Value> {
        msgs.into_iter()
            .flat_map(|m| match m.get("content") {
                Some(Value::String(s)) => vec![text_block(s)],
                Some(Value::Array(parts)) => parts.clone(),
                _ => Vec::new(),
            })
            .collect()
    };
    let mut system = blocks(pre_system);
    match request.remove("system") {
        Some(Value::String(s)) if !s.is_empty() => system.push(text_block(&s)),
        Some(Value::Array(mut a)) => system.append(&mut a),
        _ => {}
    }
    system.extend(blocks(post_system));
    request.insert("system".to_owned(), Value::Array(system));
    Ok(())
}
