//! The gate: one pass over a request text that says whether any rule, PII detector or
//! injection heuristic could find anything in it.
//!
//! Each of those runs its own search (Aho-Corasick for keywords, a `RegexSet` per module) and
//! most texts hold nothing for any of them. The gate is a single lazy DFA over all of their
//! patterns, built without the literal prefilter: ordinary prose holds the rare bytes a
//! prefilter looks for at almost every position, so it costs more than it saves. Its patterns
//! match a superset of what the modules match (keywords as case-insensitive literals, word
//! boundaries of the built-in patterns dropped), so a text it passes over is one where every
//! module would find nothing; a text it stops on is searched by each module as before.

use regex_automata::meta::Regex;

#[derive(Debug)]
pub struct Gate {
    regex: Regex,
}

impl Gate {
    /// A gate over `patterns` (regex syntax); None when there are none.
    pub fn new(patterns: &[String]) -> Result<Option<Gate>, String> {
        if patterns.is_empty() {
            return Ok(None);
        }
        let regex = Regex::builder()
            .configure(Regex::config().auto_prefilter(false))
            .build_many(patterns)
            .map_err(|e| e.to_string())?;
        Ok(Some(Gate { regex }))
    }

    /// Whether any module could find something in `text`.
    pub fn may_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }

    /// Whether any module could find something in any string of a raw JSON `body`, told
    /// without parsing it. Only meaningful when [`raw_body_is_verbatim`] holds and no gate
    /// pattern is anchored ([`is_anchored`]): every string's text is then a run of the body's
    /// bytes, and an unanchored pattern matching inside a string matches inside the body.
    pub fn may_match_raw(&self, body: &[u8]) -> bool {
        self.regex.is_match(body)
    }
}

/// A JSON body whose strings are their bytes as written: no escape (`\`) anywhere.
pub fn raw_body_is_verbatim(body: &[u8]) -> bool {
    !body.contains(&b'\\')
}

/// Whether a pattern may hold a line or text anchor (`^`, `$`, `\A`, `\z`), which would match
/// at a string's edge but not inside a raw body. Conservative: any `^` or `$` counts.
pub fn is_anchored(pattern: &str) -> bool {
    pattern.contains(['^', '$']) || pattern.contains(r"\A") || pattern.contains(r"\z")
}

/// A built-in pattern for the gate: word-boundary assertions and line-start anchors dropped
/// (the pattern then matches where it did and more). Only for patterns written here, where
/// `\b` is never escaped.
pub fn without_word_boundaries(pattern: &str) -> String {
    pattern
        .replace(r"(?-u:\b)", "")
        .replace(r"\b", "")
        .replace("(?m)^", "")
}

/// A keyword for the gate: the literal, case-insensitively (a superset of ASCII case folding
/// and of exact matching).
pub fn keyword(k: &str) -> String {
    format!("(?i:{})", regex::escape(k))
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn keywords_are_literals_and_boundaries_are_dropped() {
        let gate = Gate::new(&[keyword("a.b (c"), without_word_boundaries(r"\bx(?-u:\b)y")])
            .unwrap()
            .unwrap();
        assert!(gate.may_match("say A.B (C now"));
        assert!(!gate.may_match("a-b (c"));
        // Without the boundaries, `xy` inside a word still stops the gate (a superset).
        assert!(gate.may_match("abxyz"));
        assert!(!gate.may_match("nothing here"));
        assert!(Gate::new(&[]).unwrap().is_none());
    }

    #[test]
    fn raw_bodies_and_anchors() {
        assert!(raw_body_is_verbatim(br#"{"a":"b c"}"#));
        assert!(!raw_body_is_verbatim(br#"{"a":"b\nc"}"#));
        assert!(
            is_anchored("^x") && is_anchored("x$") && is_anchored(r"\Ax") && is_anchored("[^x]")
        );
        assert!(!is_anchored(r"\bx\d+"));
        assert_eq!(
            without_word_boundaries(r"(?m)^\s*system:|\bx"),
            r"\s*system:|x"
        );
        let gate = Gate::new(&[keyword("forbidden topic")]).unwrap().unwrap();
        assert!(gate.may_match_raw(br#"{"messages":[{"content":"a Forbidden Topic"}]}"#));
        assert!(!gate.may_match_raw(br#"{"messages":[{"content":"fine"}]}"#));
    }
}
