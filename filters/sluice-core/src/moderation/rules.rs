//! Deny and allow rules: keyword lists and regular expressions, all of a config's rules matched
//! in one pass per text (one Aho-Corasick automaton per case mode for the keywords, one
//! [`RegexSet`] for the patterns, compiled when the config loads).
//!
//! A deny match blocks unless an allow match overlaps it. Each rule has a scope (which messages
//! of a request it reads) and says whether it also reads the answer.

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};

use super::gate;
use regex::{Regex, RegexSet};
use serde::Deserialize;

/// What a rule does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    #[default]
    Deny,
    Allow,
}

/// Which messages of a request a rule reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The last user message only.
    LastUser,
    /// Every user message.
    #[default]
    User,
    /// Tool results (`role: tool` messages, Anthropic `tool_result` blocks).
    Tool,
    /// Every message: system and developer, user, assistant, tool.
    All,
}

/// Which part of a request a text comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    System,
    User {
        last: bool,
    },
    Assistant,
    Tool,
    /// The answer's text (the response side).
    Answer,
}

impl Scope {
    pub fn covers(self, segment: Segment) -> bool {
        match (self, segment) {
            (_, Segment::Answer) => false,
            (Scope::All, _) => true,
            (Scope::User, Segment::User { .. }) => true,
            (Scope::LastUser, Segment::User { last }) => last,
            (Scope::Tool, Segment::Tool) => true,
            _ => false,
        }
    }
}

/// Which requests a rule is for; every list that is given must match (an empty one matches
/// all). Read once per request: the route name only when some rule names routes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct When {
    /// Envoy route names (the route's `name` in the route config).
    #[serde(default)]
    pub routes: Vec<String>,
    /// Request hosts (`:authority` without its port), compared case-insensitively.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Request path prefixes.
    #[serde(default)]
    pub path_prefixes: Vec<String>,
}

/// What a [`When`] is matched against.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestInfo<'a> {
    pub route: Option<&'a str>,
    pub host: &'a str,
    pub path: &'a str,
}

impl When {
    pub fn matches(&self, req: &RequestInfo<'_>) -> bool {
        let host = req.host.rsplit_once(':').map_or(req.host, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') {
                h
            } else {
                req.host
            }
        });
        (self.routes.is_empty()
            || req
                .route
                .is_some_and(|r| self.routes.iter().any(|x| x == r)))
            && (self.hosts.is_empty() || self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)))
            && (self.path_prefixes.is_empty()
                || self
                    .path_prefixes
                    .iter()
                    .any(|p| req.path.starts_with(p.as_str())))
    }
}

/// The rules that apply to one request (from their `when`); `None` inside: all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection(Option<Vec<bool>>);

impl Selection {
    pub fn all() -> Selection {
        Selection(None)
    }

    fn has(&self, rule: usize) -> bool {
        match &self.0 {
            None => true,
            Some(active) => active.get(rule).copied().unwrap_or(false),
        }
    }
}

/// One rule as the config gives it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Named in the error a caller gets and in metrics; never the matched text.
    pub id: String,
    #[serde(default)]
    pub action: RuleAction,
    /// Literal phrases.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Regular expressions (the `regex` crate's syntax).
    #[serde(default)]
    pub patterns: Vec<String>,
    /// Keywords match regardless of ASCII case (patterns use `(?i)` for that).
    #[serde(default)]
    pub case_insensitive: bool,
    /// Keywords match only as whole words (not `ass` in `class`).
    #[serde(default)]
    pub whole_words: bool,
    #[serde(default)]
    pub scope: Scope,
    /// Whether the rule also reads the answer's text.
    #[serde(default = "yes")]
    pub response: bool,
    /// Which requests the rule is for (default: all).
    #[serde(default)]
    pub when: Option<When>,
}

fn yes() -> bool {
    true
}

/// A match of a deny rule nothing allowed: the rule's id and where it matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation<'a> {
    pub rule: &'a str,
    pub start: usize,
    pub end: usize,
}

#[derive(Debug)]
struct Keywords {
    finder: AhoCorasick,
    /// Rule index of each keyword.
    owner: Vec<usize>,
}

/// All rules of a config, compiled.
#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
    exact: Option<Keywords>,
    folded: Option<Keywords>,
    set: RegexSet,
    /// The patterns again, one `Regex` each (a `RegexSet` says which matched, not where), and
    /// the rule each belongs to.
    regexes: Vec<(Regex, usize)>,
    /// The longest keyword, in bytes.
    longest_keyword: usize,
}

impl RuleSet {
    /// Compiles the rules. An invalid pattern is reported as `(rule index, pattern index,
    /// message)`; the config's validation turns it into a path.
    pub fn new(rules: &[Rule]) -> Result<RuleSet, (usize, usize, String)> {
        let mut exact = (Vec::new(), Vec::new());
        let mut folded = (Vec::new(), Vec::new());
        let mut regexes = Vec::new();
        for (r, rule) in rules.iter().enumerate() {
            let (words, owner) = if rule.case_insensitive {
                (&mut folded.0, &mut folded.1)
            } else {
                (&mut exact.0, &mut exact.1)
            };
            for k in &rule.keywords {
                words.push(k.clone());
                owner.push(r);
            }
            for (p, pattern) in rule.patterns.iter().enumerate() {
                let regex = Regex::new(pattern).map_err(|e| (r, p, e.to_string()))?;
                regexes.push((regex, r));
            }
        }
        let longest_keyword = exact.0.iter().chain(&folded.0).map(String::len).max();
        let build = |(words, owner): (Vec<String>, Vec<usize>), fold: bool| {
            if words.is_empty() {
                return Ok(None);
            }
            AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                // A DFA. The prefilter only for a single keyword: over prose, one keyword's
                // rarest byte skips most of the text (measured in V8 on the bench's 1 KB
                // answer: 2.9x faster), while many keywords' bytes are at almost every byte
                // (3 keywords: no gain; 10: slower; 100: 2.5x slower).
                .kind(Some(AhoCorasickKind::DFA))
                .prefilter(words.len() == 1)
                .ascii_case_insensitive(fold)
                .build(&words)
                .map(|finder| Some(Keywords { finder, owner }))
                .map_err(|e| (0, 0, e.to_string()))
        };
        let set = RegexSet::new(regexes.iter().map(|(r, _)| r.as_str()))
            .map_err(|e| (0, 0, e.to_string()))?;
        Ok(RuleSet {
            rules: rules.to_vec(),
            exact: build(exact, false)?,
            folded: build(folded, true)?,
            set,
            regexes,
            longest_keyword: longest_keyword.unwrap_or(0),
        })
    }

    /// Patterns matching at least what the rules match (see `gate.rs`).
    pub fn gate_patterns(&self) -> Vec<String> {
        let keywords = self.rules.iter().flat_map(|r| r.keywords.iter());
        keywords
            .map(|k| gate::keyword(k))
            .chain(self.regexes.iter().map(|(r, _)| r.as_str().to_owned()))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether some rule names Envoy routes (the glue then reads the route name).
    pub fn needs_route_name(&self) -> bool {
        self.rules
            .iter()
            .any(|r| r.when.as_ref().is_some_and(|w| !w.routes.is_empty()))
    }

    /// Whether some rule names request hosts (the glue then reads `:authority`).
    pub fn needs_host(&self) -> bool {
        self.rules
            .iter()
            .any(|r| r.when.as_ref().is_some_and(|w| !w.hosts.is_empty()))
    }

    /// The rules that apply to this request.
    pub fn select(&self, req: &RequestInfo<'_>) -> Selection {
        if self.rules.iter().all(|r| r.when.is_none()) {
            return Selection::all();
        }
        Selection(Some(
            self.rules
                .iter()
                .map(|r| r.when.as_ref().is_none_or(|w| w.matches(req)))
                .collect(),
        ))
    }

    /// The longest keyword in bytes: a stream check holds back at least this much minus one.
    pub fn longest_keyword(&self) -> usize {
        self.longest_keyword
    }

    /// Where, in a streamed answer's unreleased `text`, the part to hold back starts: with a
    /// pattern rule on answers, the last `window` characters (a pattern's matches cannot be
    /// foreseen); with keyword rules only, just the longest end of `text` that could still
    /// grow into a keyword, so that most events pass as they came.
    pub fn hold_start(&self, text: &str, window: usize, sel: &Selection) -> usize {
        let answer_rule = |r: usize| self.reads_answer(r, sel);
        if self.regexes.iter().any(|(_, r)| answer_rule(*r)) {
            return start_of_last_chars(text, window);
        }
        let bytes = text.as_bytes();
        let mut hold = 0;
        for (_, rule) in self
            .rules
            .iter()
            .enumerate()
            .filter(|(i, _)| answer_rule(*i))
        {
            for k in &rule.keywords {
                let k = k.as_bytes();
                let longest = k.len().saturating_sub(1).min(bytes.len());
                for len in (hold + 1..=longest).rev() {
                    let (Some(tail), Some(head)) = (bytes.get(bytes.len() - len..), k.get(..len))
                    else {
                        continue;
                    };
                    let same = if rule.case_insensitive {
                        tail.eq_ignore_ascii_case(head)
                    } else {
                        tail == head
                    };
                    if same {
                        hold = len;
                        break;
                    }
                }
            }
        }
        let mut start = text.len() - hold;
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        start
    }

    /// Whether a rule could match the text inside a raw JSON answer, judged on its bytes
    /// without parsing it: false only when no selected pattern rule reads answers, the body
    /// has no `\u` escape, and no selected keyword of an answer rule occurs in the bytes. A
    /// keyword is printable text JSON never escapes otherwise, so it appears verbatim in the
    /// string that holds it; a hit anywhere (a field that is not the text) just means the answer
    /// is parsed and checked properly.
    pub fn answer_may_match_raw(&self, body: &[u8], sel: &Selection) -> bool {
        let answer_rule = |r: usize| self.reads_answer(r, sel);
        if !self.reads_answers(sel) {
            return false;
        }
        if self.regexes.iter().any(|(_, r)| answer_rule(*r)) {
            return true;
        }
        if memchr::memmem::find(body, b"\\u").is_some() {
            return true;
        }
        // A keyword JSON writes escaped (a quote, a backslash, a control character) is not
        // verbatim in the bytes.
        let escaped = |k: &String| k.chars().any(|c| c == '"' || c == '\\' || c.is_control());
        if self
            .rules
            .iter()
            .enumerate()
            .any(|(i, r)| answer_rule(i) && r.keywords.iter().any(escaped))
        {
            return true;
        }
        // One plain pass first: most answers hold no keyword at all, and an overlapping search
        // costs several times more per byte.
        [&self.exact, &self.folded].into_iter().flatten().any(|k| {
            k.finder.is_match(body)
                && k.finder.find_overlapping_iter(body).any(|m| {
                    k.owner
                        .get(m.pattern().as_usize())
                        .is_some_and(|&r| answer_rule(r))
                })
        })
    }

    /// Whether any selected rule reads the answer.
    pub fn reads_answers(&self, sel: &Selection) -> bool {
        (0..self.rules.len()).any(|i| self.reads_answer(i, sel))
    }

    /// Whether rule `r` is selected for this request and denies text in the answer.
    fn reads_answer(&self, r: usize, sel: &Selection) -> bool {
        sel.has(r)
            && self
                .rules
                .get(r)
                .is_some_and(|rule| rule.response && rule.action == RuleAction::Deny)
    }

    fn applies(&self, rule: usize, segment: Segment, sel: &Selection) -> bool {
        sel.has(rule)
            && self.rules.get(rule).is_some_and(|r| match segment {
                Segment::Answer => r.response,
                s => r.scope.covers(s),
            })
    }

    /// The first deny match in `text` (a text of `segment`) that no allow match overlaps.
    pub fn check(&self, segment: Segment, text: &str) -> Option<Violation<'_>> {
        self.check_after(segment, text, 0, &Selection::all())
    }

    /// [`RuleSet::check`] with only the selected rules.
    pub fn check_in(&self, segment: Segment, text: &str, sel: &Selection) -> Option<Violation<'_>> {
        self.check_after(segment, text, 0, sel)
    }

    /// [`RuleSet::check`] for the matches that end after byte `min_end`: a stream check
    /// re-reads the tail it already released, for matches that span it, and only those count.
    pub fn check_after(
        &self,
        segment: Segment,
        text: &str,
        min_end: usize,
        sel: &Selection,
    ) -> Option<Violation<'_>> {
        // (start, end, rule) of every match of a rule that applies here.
        let mut hits: Vec<(usize, usize, usize)> = Vec::new();
        for keywords in [&self.exact, &self.folded].into_iter().flatten() {
            // A plain scan first: the overlapping search costs more per byte, and usually
            // finds nothing.
            if !keywords.finder.is_match(text) {
                continue;
            }
            for m in keywords.finder.find_overlapping_iter(text) {
                let Some(&rule) = keywords.owner.get(m.pattern().as_usize()) else {
                    continue;
                };
                let whole = self.rules.get(rule).is_some_and(|r| r.whole_words);
                if self.applies(rule, segment, sel)
                    && (!whole || at_word_edges(text, m.start(), m.end()))
                {
                    hits.push((m.start(), m.end(), rule));
                }
            }
        }
        // `is_match` first: with nothing to find (the usual case) it is one fast forward scan,
        // where `matches` runs the slower overlapping search.
        if !self.regexes.is_empty() && self.set.is_match(text) {
            for i in self.set.matches(text).iter() {
                let Some((regex, rule)) = self.regexes.get(i) else {
                    continue;
                };
                if self.applies(*rule, segment, sel) {
                    hits.extend(regex.find_iter(text).map(|m| (m.start(), m.end(), *rule)));
                }
            }
        }
        if hits.is_empty() {
            return None;
        }
        let is_allow = |rule: usize| {
            self.rules
                .get(rule)
                .is_some_and(|r| r.action == RuleAction::Allow)
        };
        let allowed: Vec<(usize, usize)> = hits
            .iter()
            .filter(|h| is_allow(h.2))
            .map(|h| (h.0, h.1))
            .collect();
        hits.iter()
            .filter(|h| !is_allow(h.2) && h.1 > min_end)
            .filter(|h| !allowed.iter().any(|a| a.0 < h.1 && h.0 < a.1))
            .min_by_key(|h| (h.0, h.2))
            .and_then(|&(start, end, rule)| {
                self.rules.get(rule).map(|r| Violation {
                    rule: r.id.as_str(),
                    start,
                    end,
                })
            })
    }
}

/// Byte index where the last `n` characters of `text` start (0 if it is shorter).
pub fn start_of_last_chars(text: &str, n: usize) -> usize {
    if n == 0 {
        return text.len();
    }
    text.char_indices().rev().nth(n - 1).map_or(0, |(i, _)| i)
}

/// Whether `start..end` of `text` neither starts nor ends inside a word.
fn at_word_edges(text: &str, start: usize, end: usize) -> bool {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let before = text.get(..start).and_then(|t| t.chars().next_back());
    let after = text.get(end..).and_then(|t| t.chars().next());
    !before.is_some_and(word) && !after.is_some_and(word)
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn rules(json: &str) -> RuleSet {
        let rules: Vec<Rule> = serde_json::from_str(json).unwrap();
        RuleSet::new(&rules).unwrap()
    }

    const USER: Segment = Segment::User { last: true };

    #[test]
    fn keywords_and_patterns_in_one_pass() {
        let r = rules(
            r#"[{"id":"kw","keywords":["build a bomb"],"case_insensitive":true},
                {"id":"re","patterns":["(?i)project\\s+falcon"]}]"#,
        );
        assert_eq!(r.check(USER, "how to BUILD A BOMB?").unwrap().rule, "kw");
        let v = r.check(USER, "about Project   Falcon").unwrap();
        assert_eq!((v.rule, v.start, v.end), ("re", 6, 22));
        assert!(r.check(USER, "build a house").is_none());
    }

    #[test]
    fn case_sensitive_keywords_stay_so() {
        let r = rules(r#"[{"id":"kw","keywords":["SECRET"]}]"#);
        assert!(r.check(USER, "a secret").is_none());
        assert!(r.check(USER, "a SECRET").is_some());
    }

    #[test]
    fn allow_exempts_an_overlapping_deny() {
        let r = rules(
            r#"[{"id":"cards","patterns":["\\b4[0-9]{15}\\b"]},
                {"id":"test-card","action":"allow","keywords":["4111111111111111"]}]"#,
        );
        assert!(r.check(USER, "test with 4111111111111111").is_none());
        let v = r
            .check(USER, "4111111111111111 and 4012888888881881")
            .unwrap();
        assert_eq!((v.rule, v.start), ("cards", 21));
    }

    #[test]
    fn whole_words() {
        let r = rules(r#"[{"id":"w","keywords":["ass"],"whole_words":true}]"#);
        assert!(r.check(USER, "a class act").is_none());
        assert!(r.check(USER, "an ass.").is_some());
    }

    #[test]
    fn scopes_pick_the_messages() {
        let r = rules(
            r#"[{"id":"last","keywords":["x"],"scope":"last_user"},
                {"id":"tool","keywords":["y"],"scope":"tool"},
                {"id":"all","keywords":["z"],"scope":"all","response":false}]"#,
        );
        assert!(r.check(Segment::User { last: false }, "x").is_none());
        assert_eq!(r.check(USER, "x").unwrap().rule, "last");
        assert!(r.check(USER, "y").is_none());
        assert_eq!(r.check(Segment::Tool, "y").unwrap().rule, "tool");
        assert_eq!(r.check(Segment::System, "z").unwrap().rule, "all");
        // The answer: rules that read it (the default), not "all" (response: false).
        assert_eq!(r.check(Segment::Answer, "x").unwrap().rule, "last");
        assert!(r.check(Segment::Answer, "z").is_none());
        assert!(r.reads_answers(&Selection::all()));
    }

    #[test]
    fn only_what_could_grow_into_a_keyword_is_held() {
        let r = rules(
            r#"[{"id":"k","keywords":["forbidden topic"],"case_insensitive":true},{"id":"q","keywords":["xyz"],"response":false}]"#,
        );
        let all = Selection::all();
        assert_eq!(r.hold_start("hello world", 64, &all), 11);
        assert_eq!(r.hold_start("this is FOR", 64, &all), 8);
        assert_eq!(r.hold_start("the forbidden t", 64, &all), 4);
        // Rules that do not read answers hold nothing.
        assert_eq!(r.hold_start("xy", 64, &all), 2);
        let p = rules(r#"[{"id":"p","patterns":["a+"]}]"#);
        assert_eq!(p.hold_start("héllo", 3, &all), 3);
    }

    #[test]
    fn when_selects_rules_per_request() {
        let r = rules(
            r#"[{"id":"r","keywords":["x"],"when":{"routes":["internal"]}},
                {"id":"h","keywords":["y"],"when":{"hosts":["api.example.com"],"path_prefixes":["/v1/chat"]}},
                {"id":"any","keywords":["z"]}]"#,
        );
        assert!(r.needs_route_name());
        let req = RequestInfo {
            route: Some("internal"),
            host: "API.example.com:443",
            path: "/v1/chat/completions",
        };
        let sel = r.select(&req);
        for (text, rule) in [("x", "r"), ("y", "h"), ("z", "any")] {
            assert_eq!(r.check_in(USER, text, &sel).unwrap().rule, rule);
        }
        let other = r.select(&RequestInfo {
            route: None,
            host: "api.example.com",
            path: "/v1/embeddings",
        });
        assert!(r.check_in(USER, "x", &other).is_none());
        assert!(r.check_in(USER, "y", &other).is_none());
        assert!(r.check_in(USER, "z", &other).is_some());
        assert!(!rules(r#"[{"id":"a","keywords":["x"]}]"#).needs_route_name());
    }

    #[test]
    fn raw_answers_are_ruled_out_only_when_nothing_could_match() {
        let all = Selection::all();
        let r = rules(
            r#"[{"id":"k","keywords":["forbidden topic"],"case_insensitive":true},{"id":"q","keywords":["model"],"response":false}]"#,
        );
        assert!(!r.answer_may_match_raw(br#"{"model":"m","content":"fine"}"#, &all));
        assert!(r.answer_may_match_raw(br#"{"content":"the FORBIDDEN topic"}"#, &all));
        // An escape could spell a keyword: parse then.
        assert!(r.answer_may_match_raw(br#"{"content":"forbidden topic"}"#, &all));
        let p = rules(r#"[{"id":"p","patterns":["x"]}]"#);
        assert!(p.answer_may_match_raw(b"{}", &all));
        let quoted = rules(r#"[{"id":"q","keywords":["say \"hi\""]}]"#);
        assert!(quoted.answer_may_match_raw(br#"{"content":"fine"}"#, &all));
        let off = rules(r#"[{"id":"p","patterns":["x"],"response":false}]"#);
        assert!(!off.answer_may_match_raw(b"{}", &all));
    }

    #[test]
    fn the_first_match_in_the_text_is_reported() {
        let r = rules(r#"[{"id":"b","keywords":["bbb"]},{"id":"a","keywords":["aaa"]}]"#);
        assert_eq!(r.check(USER, "aaa bbb").unwrap().rule, "a");
        assert_eq!(r.longest_keyword(), 3);
    }

    #[test]
    fn a_bad_pattern_names_rule_and_pattern() {
        let rules: Vec<Rule> = serde_json::from_str(
            r#"[{"id":"a","patterns":["ok"]},{"id":"b","patterns":["x","("]}]"#,
        )
        .unwrap();
        let (r, p, _) = RuleSet::new(&rules).unwrap_err();
        assert_eq!((r, p), (1, 1));
    }
}
