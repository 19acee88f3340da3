//! The answer checked as it streams: text is released as it arrives, except for a held-back
//! tail just long enough to catch a match that spans pieces. On a match, what comes before it is
//! released and the rest never is.

use super::rules::{start_of_last_chars, RuleSet, Segment, Selection};

/// One streamed text's check (one choice, or one content block).
#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// Received, checked, not released: the tail a match could still start in.
    held: String,
    /// The last released text, up to the window: re-read with `held` so a match across the
    /// release point is seen.
    context: String,
    /// How many characters are held back and re-read.
    window: usize,
    stopped: bool,
    /// The rules of this request.
    selection: Selection,
}

/// A match was found: the rule's id; nothing from the match on is released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    pub rule: String,
}

impl Guard {
    /// `window`: characters held back; at least the longest keyword's length minus one, and as
    /// long as the longest match a pattern rule should catch across pieces.
    pub fn new(window: usize) -> Guard {
        Guard {
            window,
            ..Guard::default()
        }
    }

    /// A guard that checks only the rules `selection` keeps.
    pub fn with_selection(window: usize, selection: Selection) -> Guard {
        Guard {
            window,
            selection,
            ..Guard::default()
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Takes the next piece; appends what may be released to `out`. After a stop, every piece
    /// is dropped.
    pub fn push(&mut self, rules: &RuleSet, piece: &str, out: &mut String) -> Option<Stopped> {
        if self.stopped {
            return None;
        }
        self.held.push_str(piece);
        self.release(rules, out, false)
    }

    /// The text ended: checks and releases what was held.
    pub fn finish(&mut self, rules: &RuleSet, out: &mut String) -> Option<Stopped> {
        if self.stopped {
            return None;
        }
        self.release(rules, out, true)
    }

    fn release(&mut self, rules: &RuleSet, out: &mut String, all: bool) -> Option<Stopped> {
        let text = format!("{}{}", self.context, self.held);
        let base = self.context.len();
        if let Some(v) = rules.check_after(Segment::Answer, &text, base, &self.selection) {
            // Release what comes before the match, if any of it is still held.
            let keep = v.start.saturating_sub(base);
            out.push_str(self.held.get(..keep).unwrap_or(""));
            let rule = v.rule.to_owned();
            self.held.clear();
            self.context.clear();
            self.stopped = true;
            return Some(Stopped { rule });
        }
        let cut = if all {
            self.held.len()
        } else {
            rules.hold_start(&self.held, self.window, &self.selection)
        };
        let (released, kept) = self.held.split_at(cut);
        out.push_str(released);
        let mut context = std::mem::take(&mut self.context);
        context.push_str(released);
        let from = start_of_last_chars(&context, self.window);
        self.context = context.get(from..).unwrap_or("").to_owned();
        self.held = kept.to_owned();
        None
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::super::rules::Rule;
    use super::*;

    fn rules() -> RuleSet {
        let rules: Vec<Rule> = serde_json::from_str(
            r#"[{"id":"bomb","keywords":["build a bomb"],"case_insensitive":true},
                {"id":"code","patterns":["falcon-[0-9]{4}"]}]"#,
        )
        .unwrap();
        RuleSet::new(&rules).unwrap()
    }

    fn run(pieces: &[&str], window: usize) -> (String, Option<Stopped>) {
        let rules = rules();
        let mut g = Guard::new(window);
        let mut out = String::new();
        for p in pieces {
            if let Some(s) = g.push(&rules, p, &mut out) {
                return (out, Some(s));
            }
        }
        let s = g.finish(&rules, &mut out);
        (out, s)
    }

    #[test]
    fn clean_text_passes_whole() {
        let (out, stop) = run(&["Hello, ", "wörld", "! ", "fine"], 11);
        assert_eq!(out, "Hello, wörld! fine");
        assert!(stop.is_none());
    }

    #[test]
    fn only_the_window_is_held() {
        let rules = rules();
        let mut g = Guard::new(3);
        let mut out = String::new();
        g.push(&rules, "abcdefé", &mut out);
        assert_eq!(out, "abcd");
        g.push(&rules, "g", &mut out);
        assert_eq!(out, "abcde");
    }

    /// A match cut at every point into two and three pieces: nothing from the match on is
    /// released, everything before it is.
    #[test]
    fn a_match_across_pieces_at_any_split() {
        let answer = "Sure. Here is how to Build a bomb: step one, falcon-1234.";
        let before = "Sure. Here is how to ";
        let cuts: Vec<usize> = (0..=answer.len()).collect();
        for &a in &cuts {
            for &b in cuts.iter().filter(|&&b| b >= a) {
                let (out, stop) = run(&[&answer[..a], &answer[a..b], &answer[b..]], 11);
                assert_eq!(out, before, "cut at {a}, {b}");
                assert_eq!(stop.unwrap().rule, "bomb");
            }
        }
    }

    /// The window bounds what a pattern can catch across pieces: a match longer than the
    /// window, cut so that its start was already released, is not seen; within it, it is.
    #[test]
    fn the_window_bounds_pattern_matches_across_pieces() {
        let pieces = ["code falcon-", "12", "34 done"];
        let (out, stop) = run(&pieces, 11);
        assert_eq!(
            (out.as_str(), stop.unwrap().rule.as_str()),
            ("code ", "code")
        );
        let (out, stop) = run(&pieces, 3);
        assert!(stop.is_none());
        assert_eq!(out, "code falcon-1234 done");
    }
}
