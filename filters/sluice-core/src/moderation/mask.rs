//! Masking with restore: values found in a request become placeholders (`[EMAIL_1]`) in what goes
//! upstream, and the placeholders in the answer become the values again before the caller sees
//! them, also when a placeholder arrives cut across stream events at any byte.
//!
//! The mapping lives in one [`Masker`] per request and nowhere else: it is never logged, counted
//! or written to filter state.

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, MatchKind};

use super::pii::{Finding, Scanner};

/// One request's placeholders and the values they stand for.
#[derive(Debug, Default)]
pub struct Masker {
    /// `(placeholder, original)` in the order they were made.
    entries: Vec<(String, String)>,
    /// Per label, how many placeholders were made: the next number.
    counts: Vec<(String, usize)>,
    /// `(label, original)` → its entry: a request with many values stays linear.
    index: HashMap<(String, String), usize>,
}

impl Masker {
    pub fn new() -> Masker {
        Masker::default()
    }

    /// The placeholder for `value`: the same value gets the same placeholder within a request.
    pub fn placeholder(&mut self, label: &str, value: &str) -> &str {
        let key = (label.to_owned(), value.to_owned());
        let index = match self.index.get(&key) {
            Some(&i) => i,
            None => {
                let n = match self.counts.iter_mut().find(|(l, _)| l == label) {
                    Some((_, n)) => {
                        *n += 1;
                        *n
                    }
                    None => {
                        self.counts.push((label.to_owned(), 1));
                        1
                    }
                };
                self.entries.push((format!("[{label}_{n}]"), key.1.clone()));
                let i = self.entries.len() - 1;
                self.index.insert(key, i);
                i
            }
        };
        self.entries.get(index).map_or("", |(p, _)| p.as_str())
    }

    /// `text` with each finding replaced by its placeholder. `label_of` gives a finding's label.
    pub fn mask<'a>(
        &mut self,
        text: &str,
        findings: &[Finding],
        label_of: impl Fn(&Finding) -> &'a str,
    ) -> String {
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for f in findings {
            let (Some(before), Some(value)) = (text.get(last..f.start), text.get(f.start..f.end))
            else {
                continue;
            };
            out.push_str(before);
            let placeholder = self.placeholder(label_of(f), value).to_owned();
            out.push_str(&placeholder);
            last = f.end;
        }
        out.push_str(text.get(last..).unwrap_or(""));
        out
    }

    /// Scans and masks in one step; `mask(label)` says whether a detector's findings are masked.
    pub fn mask_with(&mut self, scanner: &Scanner, text: &str) -> Option<String> {
        let findings = scanner.scan(text);
        if findings.is_empty() {
            return None;
        }
        let detectors = scanner.detectors();
        Some(self.mask(text, &findings, |f| {
            detectors
                .get(f.detector)
                .map_or("PII", |d| d.label.as_str())
        }))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many distinct values were masked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// A restorer for the answer; `None` when nothing was masked.
    pub fn restorer(&self) -> Option<Restorer> {
        if self.entries.is_empty() {
            return None;
        }
        let finder = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(self.entries.iter().map(|(p, _)| p.as_str()))
            .ok()?;
        Some(Restorer {
            finder,
            placeholders: self.entries.iter().map(|(p, _)| p.clone()).collect(),
            originals: self.entries.iter().map(|(_, v)| v.clone()).collect(),
            longest: self.entries.iter().map(|(p, _)| p.len()).max().unwrap_or(0),
            pending: String::new(),
        })
    }
}

/// Turns placeholders back into values in text that arrives in pieces. Text that might be the
/// start of a placeholder is held back until the next piece shows whether it is one; nothing else
/// is held.
#[derive(Debug, Clone)]
pub struct Restorer {
    finder: AhoCorasick,
    placeholders: Vec<String>,
    originals: Vec<String>,
    longest: usize,
    pending: String,
}

impl Restorer {
    /// Restores a whole text at once (a JSON answer's content).
    pub fn restore_all(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let done = self.replace_complete(text, &mut out);
        out.push_str(text.get(done..).unwrap_or(""));
        out
    }

    /// Takes the next piece of a stream's text; appends to `out` what can be released now.
    pub fn push(&mut self, piece: &str, out: &mut String) {
        self.pending.push_str(piece);
        let pending = std::mem::take(&mut self.pending);
        let released = self.replace_until_hold(&pending, out);
        self.pending = pending.get(released..).unwrap_or("").to_owned();
    }

    /// The stream ended: whatever was held back goes out as it is.
    pub fn finish(&mut self, out: &mut String) {
        out.push_str(&self.pending);
        self.pending.clear();
    }

    /// Bytes held back, waiting for the next piece.
    pub fn held(&self) -> usize {
        self.pending.len()
    }

    /// Appends `text` up to the end of its last complete placeholder, each one replaced by its
    /// value; returns how many bytes of `text` that consumed.
    fn replace_complete(&self, text: &str, out: &mut String) -> usize {
        let mut last = 0;
        for m in self.finder.find_iter(text) {
            out.push_str(text.get(last..m.start()).unwrap_or(""));
            out.push_str(
                self.originals
                    .get(m.pattern().as_usize())
                    .map_or("", String::as_str),
            );
            last = m.end();
        }
        last
    }

    /// Replaces the complete placeholders in `text`, appends everything up to a tail that could
    /// still become one, and returns how many bytes of `text` were consumed.
    fn replace_until_hold(&self, text: &str, out: &mut String) -> usize {
        let last = self.replace_complete(text, out);
        let rest = text.get(last..).unwrap_or("");
        let hold = self.partial_start(rest).unwrap_or(rest.len());
        out.push_str(rest.get(..hold).unwrap_or(""));
        last + hold
    }

    /// Where, in `rest`, a suffix starts that is a proper prefix of some placeholder.
    fn partial_start(&self, rest: &str) -> Option<usize> {
        let window = rest.len().saturating_sub(self.longest.saturating_sub(1));
        rest.char_indices()
            .filter(|&(i, c)| i >= window && c == '[')
            .map(|(i, _)| i)
            .find(|&i| {
                let tail = rest.get(i..).unwrap_or("");
                self.placeholders
                    .iter()
                    .any(|p| p.len() > tail.len() && p.starts_with(tail))
            })
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::super::pii::Detector;
    use super::*;

    #[test]
    #[cfg(not(target_arch = "wasm32"))] // no clock there
    fn many_distinct_values_cost_linear_time() {
        // 100,000 distinct values (a 1.5 MB prompt holds more): a linear search per value took
        // minutes; a map takes milliseconds.
        let mut masker = Masker::new();
        let started = std::time::Instant::now();
        for i in 0..100_000 {
            let value = format!("u{i}@x.io");
            assert_eq!(
                masker.placeholder("EMAIL", &value),
                format!("[EMAIL_{}]", i + 1)
            );
        }
        assert_eq!(masker.placeholder("EMAIL", "u7@x.io"), "[EMAIL_8]");
        assert_eq!(masker.placeholder("PHONE", "u7@x.io"), "[PHONE_1]");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    fn scanner() -> Scanner {
        Scanner::new(&Detector::ALL, &[]).unwrap()
    }

    #[test]
    fn same_value_same_placeholder_numbered_per_label() {
        let mut m = Masker::new();
        let masked = m
            .mask_with(
                &scanner(),
                "a@x.io, b@x.io and a@x.io; card 4111111111111111",
            )
            .unwrap();
        assert_eq!(masked, "[EMAIL_1], [EMAIL_2] and [EMAIL_1]; card [CARD_1]");
        assert_eq!(m.len(), 3);
        assert!(m.mask_with(&scanner(), "nothing here").is_none());
    }

    #[test]
    fn placeholders_continue_across_texts_of_one_request() {
        let mut m = Masker::new();
        let s = scanner();
        assert_eq!(m.mask_with(&s, "a@x.io").unwrap(), "[EMAIL_1]");
        assert_eq!(
            m.mask_with(&s, "b@x.io a@x.io").unwrap(),
            "[EMAIL_2] [EMAIL_1]"
        );
    }

    #[test]
    fn restore_whole_text() {
        let mut m = Masker::new();
        m.mask_with(&scanner(), "a@x.io b@x.io").unwrap();
        let r = m.restorer().unwrap();
        assert_eq!(
            r.restore_all("mail [EMAIL_2] and [EMAIL_1], not [EMAIL_3] or [EMAIL_1"),
            "mail b@x.io and a@x.io, not [EMAIL_3] or [EMAIL_1"
        );
        assert!(Masker::new().restorer().is_none());
    }

    /// Every split of the answer into two and into three pieces restores the same text.
    #[test]
    fn restore_survives_every_split() {
        let mut m = Masker::new();
        let s = scanner();
        m.mask_with(
            &s,
            "a@x.io b@x.io c@x.io d@x.io e@x.io f@x.io g@x.io h@x.io i@x.io j@x.io k@x.io",
        )
        .unwrap();
        let answer = "[EMAIL_1][EMAIL_11] x [EMAIL_1 [[EMAIL_10]] é[CARD_1] ü[EMAIL_2]";
        let expected = "a@x.iok@x.io x [EMAIL_1 [j@x.io] é[CARD_1] üb@x.io";
        let cuts: Vec<usize> = (0..=answer.len())
            .filter(|&i| answer.is_char_boundary(i))
            .collect();
        for &a in &cuts {
            for &b in cuts.iter().filter(|&&b| b >= a) {
                let mut r = m.restorer().unwrap();
                let mut out = String::new();
                for piece in [&answer[..a], &answer[a..b], &answer[b..]] {
                    r.push(piece, &mut out);
                }
                r.finish(&mut out);
                assert_eq!(out, expected, "cut at {a}, {b}");
            }
        }
    }

    #[test]
    fn only_a_possible_placeholder_is_held() {
        let mut m = Masker::new();
        m.mask_with(&scanner(), "a@x.io").unwrap();
        let mut r = m.restorer().unwrap();
        let mut out = String::new();
        r.push("hello [EMA", &mut out);
        assert_eq!(out, "hello ");
        assert_eq!(r.held(), 4);
        r.push("IL_1] [not", &mut out);
        assert_eq!(out, "hello a@x.io [not");
        assert_eq!(r.held(), 0);
    }
}
