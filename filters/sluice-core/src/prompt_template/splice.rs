//! The fast path of [`super::Engine::apply`]: a templated request written out by splicing,
//! without building or re-serialising the caller's body.
//!
//! The body is parsed once into its top-level fields as raw JSON text ([`RawValue`]); the
//! fields the expanded request keeps are copied into it byte for byte. The template's messages
//! are written from the parsed template, and each placeholder in one of their strings gets its
//! value as JSON string content, escaped exactly once: a caller's string value is decoded (to
//! check it: valid, within `max_length`, `allowed`) and its own escaped text, which decodes to
//! the same string, is copied; any other value (a default, a number's text) is escaped here.
//! Nothing written is scanned again, so a value stays text inside its one string whatever it
//! holds (quotes, `"}]`, role names, `{{other}}`).
//!
//! Whenever a request is not plainly fine — any error, a form other than `template` /
//! `template_name`, a `\uD800`-style escape anywhere (a lone surrogate is refused by the full
//! parse) — this path answers `None` and the full path (`expand`, with its field paths in
//! errors) decides, so refusals are the same on both paths. A request that names no template
//! passes untouched here when its rule lets it and its `messages` cannot be Kong's
//! `{template://name}` form.
//!
//! Fields the template does not touch are passed through as the caller wrote them (a number's
//! text is not normalised).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use serde_json::Value;

use super::config::{Template, Untemplated};
use super::expand::{kong_reference, text_block, used_variables};
use super::render::next_placeholder;
use super::Outcome;
use crate::Dialect;

/// A body's top-level fields (or a variables object's), each as its raw JSON text.
type Fields<'a> = BTreeMap<String, &'a RawValue>;

/// A variable's value: its text (what the template's rules check) and the same text as JSON
/// string content (what is written).
#[derive(Debug)]
struct Val<'a> {
    text: Cow<'a, str>,
    escaped: Cow<'a, str>,
}

impl<'a> Val<'a> {
    fn owned(text: String) -> Val<'a> {
        let escaped = escape(&text);
        Val {
            text: Cow::Owned(text),
            escaped: Cow::Owned(escaped),
        }
    }
}

/// What a request became on the fast path.
pub(super) enum Fast {
    /// Expanded: the new body and the template's `name@version`.
    Expanded(Outcome),
    /// Names no template and may pass untouched.
    Untouched,
}

/// The fast path. `allowed`: the rule's template list (`None`: all); `untemplated`: what the
/// rule does with a request that names none. `None`: let the full path decide.
pub(super) fn apply(
    templates: &BTreeMap<String, Template>,
    compiled: &BTreeMap<String, Compiled>,
    allowed: Option<&[String]>,
    untemplated: Untemplated,
    dialect: Dialect,
    body: &[u8],
) -> Option<Fast> {
    let text = std::str::from_utf8(body).ok()?;
    let escapes = Escapes::of(text);
    if escapes.surrogate {
        return None;
    }
    let Top(mut request) = serde_json::from_str(text).ok()?;
    let Some((name, supplied)) = named(&mut request)? else {
        return match untemplated {
            Untemplated::Refuse => None,
            _ if may_be_kong(&request) => None,
            _ => Some(Fast::Untouched),
        };
    };
    if allowed.is_some_and(|list| !list.contains(&name)) {
        return None;
    }
    let (name, t) = templates.get_key_value(name.as_str())?;
    let c = compiled.get(name)?;
    let values = resolve(t, &c.used, supplied, &mut request, escapes.any)?;
    let body = write(t, c.shape(dialect), &request, &values)?;
    Some(Fast::Expanded(Outcome {
        body: Some(body),
        template: Some(super::state_value(name, t)),
    }))
}

/// The keys that may hold a call's variables: parsed into their fields as the body is.
const VARIABLE_KEYS: [&str; 3] = ["variables", "properties", "template_variables"];

/// A top-level field of a body.
#[derive(Debug)]
enum Field<'a> {
    /// As the caller wrote it.
    Raw(&'a RawValue),
    /// An object under one of [`VARIABLE_KEYS`], its fields as written.
    Map(Fields<'a>),
    /// `null` under one of [`VARIABLE_KEYS`].
    Null,
    /// Anything else under one of [`VARIABLE_KEYS`] (the full path handles it).
    Other,
}

/// A body's top-level fields, those that may hold variables parsed one level further, so
/// that the body is scanned once.
struct Top<'a>(BTreeMap<String, Field<'a>>);

impl<'de> Deserialize<'de> for Top<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(TopVisitor)
    }
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Top<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'de>, A::Error> {
        let mut fields = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = if VARIABLE_KEYS.contains(&key.as_str()) {
                map.next_value::<Nested>()?.0
            } else {
                Field::Raw(map.next_value()?)
            };
            fields.insert(key, value);
        }
        Ok(Top(fields))
    }
}

/// The value under one of [`VARIABLE_KEYS`].
struct Nested<'a>(Field<'a>);

impl<'de> Deserialize<'de> for Nested<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NestedVisitor)
    }
}

struct NestedVisitor;

impl<'de> Visitor<'de> for NestedVisitor {
    type Value = Nested<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Nested<'de>, A::Error> {
        let mut fields = Fields::new();
        while let Some((k, v)) = map.next_entry()? {
            fields.insert(k, v);
        }
        Ok(Nested(Field::Map(fields)))
    }

    fn visit_unit<E>(self) -> Result<Nested<'de>, E> {
        Ok(Nested(Field::Null))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Nested<'de>, E> {
        Ok(Nested(Field::Other))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Nested<'de>, E> {
        Ok(Nested(Field::Other))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Nested<'de>, E> {
        Ok(Nested(Field::Other))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Nested<'de>, E> {
        Ok(Nested(Field::Other))
    }

    fn visit_str<E>(self, _: &str) -> Result<Nested<'de>, E> {
        Ok(Nested(Field::Other))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Nested<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Nested(Field::Other))
    }
}

/// The top-level fields of a body.
type Request<'a> = BTreeMap<String, Field<'a>>;

/// The variables of a call: in an object, or at the top level beside `template_name`.
enum Supplied<'a> {
    Map(Fields<'a>),
    TopLevel,
}

/// The template a body names and its variables, the naming fields taken out of `request`
/// (as `expand::named_template`). `None`: a refusal (the full path words it); `Some(None)`:
/// neither `template` nor `template_name`.
fn named<'a>(request: &mut Request<'a>) -> Option<Option<(String, Supplied<'a>)>> {
    if let Some(field) = request.remove("template") {
        let name = string_of(&field)?;
        let variables = match take_map(request, "variables")? {
            Some(m) => {
                if request.contains_key("properties") {
                    return None;
                }
                m
            }
            None => take_map(request, "properties")?.unwrap_or_default(),
        };
        return Some(Some((name, Supplied::Map(variables))));
    }
    if let Some(field) = request.remove("template_name") {
        let name = string_of(&field)?;
        let variables = match take_map(request, "template_variables")? {
            Some(m) => Supplied::Map(m),
            None => Supplied::TopLevel,
        };
        return Some(Some((name, variables)));
    }
    Some(None)
}

/// A template name. `None`: not a string.
fn string_of(field: &Field) -> Option<String> {
    match field {
        Field::Raw(raw) => serde_json::from_str(raw.get()).ok(),
        _ => None,
    }
}

/// An object of variables taken out of `request` (`null` or absent: none). `None`: not an
/// object.
fn take_map<'a>(request: &mut Request<'a>, key: &str) -> Option<Option<Fields<'a>>> {
    match request.remove(key) {
        None | Some(Field::Null) => Some(None),
        Some(Field::Map(m)) => Some(Some(m)),
        Some(_) => None,
    }
}

/// Whether `messages` is (or may be) Kong's form, `{template://name}` as the string or as the
/// content of its one message: the full path takes it.
fn may_be_kong(request: &Request) -> bool {
    let Some(field) = request.get("messages") else {
        return false;
    };
    let Field::Raw(raw) = field else {
        return true;
    };
    let is_reference = |s: &RawValue| {
        serde_json::from_str::<String>(s.get()).map_or(true, |s| kong_reference(&s).is_some())
    };
    match raw.get().as_bytes().first() {
        Some(b'[') => match serde_json::from_str::<Vec<&RawValue>>(raw.get()) {
            Ok(items) if items.len() == 1 => {
                let Some(item) = items.first() else {
                    return true;
                };
                match serde_json::from_str::<OneMessage>(item.get()) {
                    Ok(OneMessage { content: Some(c) }) if c.get().starts_with('"') => {
                        is_reference(c)
                    }
                    Ok(_) => false,
                    Err(_) => true,
                }
            }
            Ok(_) => false,
            Err(_) => true,
        },
        Some(b'"') => is_reference(raw),
        _ => false,
    }
}

/// A message's `content`, the rest skipped.
#[derive(Deserialize)]
struct OneMessage<'a> {
    #[serde(borrow)]
    content: Option<&'a RawValue>,
}

/// What escapes a body holds.
struct Escapes {
    /// Any `\`: a string may need decoding to be checked.
    any: bool,
    /// One that could be half of a surrogate pair (`\uD800`-`\uDFFF`): the full parse refuses
    /// a lone one, so such a body takes the full path.
    surrogate: bool,
}

impl Escapes {
    fn of(text: &str) -> Escapes {
        let bytes = text.as_bytes();
        let mut at = memchr::memchr_iter(b'\\', bytes).peekable();
        let any = at.peek().is_some();
        let surrogate = at.any(|i| {
            matches!(
                bytes.get(i + 1..i + 4),
                Some([b'u', b'd' | b'D', b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F'])
            )
        });
        Escapes { any, surrogate }
    }
}

/// A caller's value as text (as `expand::as_text`): `Some(None)` for `null`; `None`: not
/// valid (the full path refuses it). `escapes`: whether the body holds any escape at all.
fn value_of(raw: &RawValue, escapes: bool) -> Option<Option<Val<'_>>> {
    let json = raw.get();
    if json == "null" {
        return Some(None);
    }
    if let Some(inner) = json.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        let text = if escapes && inner.contains('\\') {
            Cow::Owned(serde_json::from_str::<String>(json).ok()?)
        } else {
            Cow::Borrowed(inner)
        };
        return Some(Some(Val {
            text,
            escaped: Cow::Borrowed(inner),
        }));
    }
    let value: Value = serde_json::from_str(json).ok()?;
    Some(Some(Val::owned(value.to_string())))
}

/// Every variable's value, checked against the template's rules (as `expand::resolve`).
fn resolve<'a>(
    t: &'a Template,
    used: &'a BTreeSet<String>,
    supplied: Supplied<'a>,
    request: &mut Request<'a>,
    escapes: bool,
) -> Option<BTreeMap<&'a str, Val<'a>>> {
    let supplied = match supplied {
        Supplied::Map(m) => m,
        Supplied::TopLevel => {
            let mut picked = Fields::new();
            for var in used {
                match request.remove(var) {
                    None | Some(Field::Null) => {}
                    Some(Field::Raw(v)) => {
                        picked.insert(var.clone(), v);
                    }
                    Some(_) => return None, // an object as a value: the full path
                }
            }
            picked
        }
    };
    if t.strict && supplied.keys().any(|k| !used.contains(k)) {
        return None;
    }
    let mut values = BTreeMap::new();
    for var in used {
        let rule = t.variables.get(var);
        let given = match supplied.get(var) {
            Some(raw) => value_of(raw, escapes)?,
            None => None,
        };
        let value = match given {
            Some(v) => {
                if let Some(max) = rule.and_then(|r| r.max_length) {
                    if v.text.chars().count() > max {
                        return None;
                    }
                }
                if let Some(allowed) = rule.and_then(|r| r.allowed.as_ref()) {
                    if !allowed.iter().any(|a| *a == v.text) {
                        return None;
                    }
                }
                v
            }
            None => match rule.and_then(|r| r.default.as_ref()) {
                Some(d) => Val {
                    text: Cow::Borrowed(d),
                    escaped: Cow::Owned(escape(d)),
                },
                None if rule.is_none_or(|r| r.is_required()) => return None,
                None => Val::owned(String::new()),
            },
        };
        values.insert(var.as_str(), value);
    }
    Some(values)
}

/// One field of the expanded request.
enum Piece<'a> {
    Json(&'a Value),
    Raw(&'a RawValue),
    Map(&'a Fields<'a>),
    Null,
    Text(&'a str),
    Segs(&'a [Seg]),
}

/// Variables' values by name.
type Values<'a> = BTreeMap<&'a str, Val<'a>>;

/// The expanded request (as `expand::expand`): the template's defaults and model, the caller's
/// other fields as they came, the rendered messages (system messages in Anthropic's top-level
/// `system` for that dialect). `None`: a field the template holds (the full path refuses it).
fn write(t: &Template, shape: &Shape, request: &Request, values: &Values) -> Option<Vec<u8>> {
    if request.contains_key("messages") || request.contains_key("system") {
        return None;
    }
    let may = |f: &str| t.overridable.iter().any(|o| o == f);
    if t.model.is_some() && request.contains_key("model") && !may("model") {
        return None;
    }
    if request
        .keys()
        .any(|k| t.defaults.contains_key(k) && !may(k))
    {
        return None;
    }
    let mut fields: BTreeMap<&str, Piece> = BTreeMap::new();
    for (k, v) in &t.defaults {
        fields.insert(k, Piece::Json(v));
    }
    if let Some(model) = &t.model {
        fields.insert("model", Piece::Text(model));
    }
    for (k, v) in request {
        let piece = match v {
            Field::Raw(raw) => Piece::Raw(raw),
            Field::Map(m) => Piece::Map(m),
            Field::Null => Piece::Null,
            Field::Other => return None,
        };
        fields.insert(k, piece);
    }
    if let Some(system) = &shape.system {
        fields.insert("system", Piece::Segs(system));
    }
    fields.insert("messages", Piece::Segs(&shape.messages));

    let size = request
        .values()
        .map(|v| match v {
            Field::Raw(raw) => raw.get().len() + 8,
            _ => 64,
        })
        .sum::<usize>()
        + values.values().map(|v| v.escaped.len()).sum::<usize>()
        + shape.size
        + 256;
    let mut out = Vec::with_capacity(size);
    out.push(b'{');
    for (i, (k, piece)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(&mut out, k);
        out.push(b':');
        match piece {
            Piece::Json(v) => serde_json::to_writer(&mut out, v).ok()?,
            Piece::Raw(raw) => out.extend_from_slice(raw.get().as_bytes()),
            Piece::Null => out.extend_from_slice(b"null"),
            Piece::Map(m) => {
                out.push(b'{');
                for (i, (k, raw)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_str(&mut out, k);
                    out.push(b':');
                    out.extend_from_slice(raw.get().as_bytes());
                }
                out.push(b'}');
            }
            Piece::Text(s) => write_str(&mut out, s),
            Piece::Segs(segs) => fill(&mut out, segs, values),
        }
    }
    out.push(b'}');
    Some(out)
}

/// Compiled JSON text with each hole filled with its variable's escaped value.
fn fill(out: &mut Vec<u8>, segs: &[Seg], values: &Values) {
    for seg in segs {
        match seg {
            Seg::Lit(bytes) => out.extend_from_slice(bytes),
            Seg::Var { name, placeholder } => match values.get(name.as_str()) {
                Some(v) => out.extend_from_slice(v.escaped.as_bytes()),
                None => out.extend_from_slice(placeholder.as_bytes()),
            },
        }
    }
}

/// A template's messages as JSON text with a hole for each placeholder, for each dialect:
/// built once at config load, filled per request.
#[derive(Debug, Clone, Default)]
pub(super) struct Compiled {
    /// Every variable the messages use.
    pub used: BTreeSet<String>,
    openai: Shape,
    anthropic: Shape,
}

/// The `messages` array (and for Anthropic, the top-level `system`) of a template.
#[derive(Debug, Clone, Default)]
struct Shape {
    messages: Vec<Seg>,
    system: Option<Vec<Seg>>,
    /// Bytes of the literal text.
    size: usize,
}

/// JSON text, or a placeholder's place.
#[derive(Debug, Clone)]
enum Seg {
    Lit(Vec<u8>),
    /// A variable's escaped value goes here; `placeholder` (escaped) if it has none.
    Var {
        name: String,
        placeholder: String,
    },
}

impl Compiled {
    pub fn new(t: &Template) -> Compiled {
        Compiled {
            used: used_variables(t),
            openai: Shape::new(t, Dialect::OpenAi),
            anthropic: Shape::new(t, Dialect::Anthropic),
        }
    }

    fn shape(&self, dialect: Dialect) -> &Shape {
        match dialect {
            Dialect::Anthropic => &self.anthropic,
            _ => &self.openai,
        }
    }
}

impl Shape {
    /// As `expand::expand` renders: system messages in Anthropic's top-level `system` (a
    /// string content as a text block, a list of blocks as they are).
    fn new(t: &Template, dialect: Dialect) -> Shape {
        let mut messages = Segs::default();
        let mut system = Segs::default();
        let mut any_system = false;
        messages.lit.push(b'[');
        system.lit.push(b'[');
        let mut first = true;
        for m in &t.messages {
            let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
            if dialect == Dialect::Anthropic && matches!(role, "system" | "developer") {
                let blocks: Vec<Value> = match m.get("content") {
                    Some(Value::String(s)) => vec![text_block(s)],
                    Some(Value::Array(parts)) => parts.clone(),
                    _ => Vec::new(),
                };
                for b in &blocks {
                    if any_system {
                        system.lit.push(b',');
                    }
                    any_system = true;
                    system.value(b);
                }
            } else {
                if !first {
                    messages.lit.push(b',');
                }
                first = false;
                messages.object(m);
            }
        }
        messages.lit.push(b']');
        system.lit.push(b']');
        let messages = messages.finish();
        let system = any_system.then(|| system.finish());
        let size = [Some(&messages), system.as_ref()]
            .into_iter()
            .flatten()
            .flatten()
            .map(|s| match s {
                Seg::Lit(b) => b.len(),
                Seg::Var { .. } => 0,
            })
            .sum();
        Shape {
            messages,
            system,
            size,
        }
    }
}

/// Segments being built: the literal text so far, and what came before it.
#[derive(Default)]
struct Segs {
    done: Vec<Seg>,
    lit: Vec<u8>,
}

impl Segs {
    fn finish(mut self) -> Vec<Seg> {
        if !self.lit.is_empty() {
            self.done.push(Seg::Lit(self.lit));
        }
        self.done
    }

    fn var(&mut self, name: &str, placeholder: &str) {
        if !self.lit.is_empty() {
            self.done.push(Seg::Lit(std::mem::take(&mut self.lit)));
        }
        self.done.push(Seg::Var {
            name: name.to_owned(),
            placeholder: escape(placeholder),
        });
    }

    /// A template value with every string rendered (as `render::render_value`: keys as they
    /// are).
    fn value(&mut self, v: &Value) {
        match v {
            Value::String(s) => self.rendered(s),
            Value::Array(items) => {
                self.lit.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.lit.push(b',');
                    }
                    self.value(item);
                }
                self.lit.push(b']');
            }
            Value::Object(map) => self.object(map),
            other => self.lit.extend_from_slice(other.to_string().as_bytes()),
        }
    }

    fn object(&mut self, map: &serde_json::Map<String, Value>) {
        self.lit.push(b'{');
        for (i, (k, v)) in map.iter().enumerate() {
            if i > 0 {
                self.lit.push(b',');
            }
            write_str(&mut self.lit, k);
            self.lit.push(b':');
            self.value(v);
        }
        self.lit.push(b'}');
    }

    /// `s` as a JSON string with a hole for each placeholder (as `render::render_str`).
    fn rendered(&mut self, s: &str) {
        self.lit.push(b'"');
        let mut at = 0;
        while let Some((start, end, name)) = next_placeholder(s, at) {
            escape_into(&mut self.lit, s.get(at..start).unwrap_or_default());
            self.var(name, s.get(start..end).unwrap_or_default());
            at = end;
        }
        escape_into(&mut self.lit, s.get(at..).unwrap_or_default());
        self.lit.push(b'"');
    }
}

/// `s` as a JSON string (quoted, escaped).
fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    escape_into(out, s);
    out.push(b'"');
}

/// `s` as JSON string content (no quotes).
pub fn escape(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len() + 2);
    escape_into(&mut out, s);
    // Only ASCII was added to valid UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` as JSON string content: `"`, `\` and control characters escaped (as serde_json
/// writes them), everything else as it is.
pub fn escape_into(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(bytes.get(start..i).unwrap_or_default());
        if short.is_empty() {
            let hi = HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0');
            let lo = HEX.get(usize::from(b & 0xf)).copied().unwrap_or(b'0');
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', hi, lo]);
        } else {
            out.extend_from_slice(short);
        }
        start = i + 1;
    }
    out.extend_from_slice(bytes.get(start..).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn escapes_as_serde_json_does() {
        let mut all = String::new();
        for c in (0u8..0x80).map(char::from) {
            all.push(c);
        }
        all.push_str("ü ✓ 😀 \u{7f} \u{2028}");
        for s in [
            "",
            "plain",
            "\"",
            "\\",
            "a\"b\\c",
            "\\u0000",
            "line\nbreak\u{0}\u{1f}",
            all.as_str(),
        ] {
            let ours = format!("\"{}\"", escape(s));
            assert_eq!(ours, serde_json::to_string(s).unwrap(), "{s:?}");
            assert_eq!(serde_json::from_str::<String>(&ours).unwrap(), s);
        }
    }

    #[test]
    fn finds_surrogate_escapes() {
        let surrogate = |s: &str| Escapes::of(s).surrogate;
        assert!(surrogate(r#"{"a":"\ud800"}"#));
        assert!(surrogate(r#"{"a":"x\uDC00"}"#));
        assert!(surrogate(r#"{"a":"\ud83d\ude00"}"#));
        assert!(!surrogate(r#"{"a":"\u00e9 \ud7ff \ue000 \\ud"}"#));
        assert!(!surrogate("no escapes"));
        assert!(Escapes::of(r#""\n""#).any);
        assert!(!Escapes::of("plain").any);
    }

    #[test]
    fn a_caller_value_is_copied_as_it_was_escaped() {
        let raw: &RawValue = serde_json::from_str(r#""q\"uote \\ \n \u00e9 {{x}}""#).unwrap();
        let v = value_of(raw, true).unwrap().unwrap();
        assert_eq!(v.text, "q\"uote \\ \n é {{x}}");
        assert_eq!(v.escaped, r#"q\"uote \\ \n \u00e9 {{x}}"#);
        let raw: &RawValue = serde_json::from_str(r#""\ud800""#).unwrap();
        assert!(value_of(raw, true).is_none());
        let raw: &RawValue = serde_json::from_str(r#"{"a": [1, "\""]}"#).unwrap();
        let v = value_of(raw, true).unwrap().unwrap();
        assert_eq!(v.text, r#"{"a":[1,"\""]}"#);
        assert_eq!(v.escaped, r#"{\"a\":[1,\"\\\"\"]}"#);
        let raw: &RawValue = serde_json::from_str("null").unwrap();
        assert!(value_of(raw, true).unwrap().is_none());
    }

    #[test]
    fn rendered_strings_hold_their_values_once() {
        let mut values = Values::new();
        values.insert("a", Val::owned("{{b}} \"}]".to_owned()));
        values.insert("b", Val::owned("B\\".to_owned()));
        let mut segs = Segs::default();
        segs.rendered("[{{a}}|{{ b }}|{{c}}] \"q\"");
        let mut out = Vec::new();
        fill(&mut out, &segs.finish(), &values);
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, "[{{b}} \"}]|B\\|{{c}}] \"q\"");
    }
}
