//! Built-in PII detectors: where in a text an e-mail address, a phone number, a payment card, an
//! IBAN, a US SSN, an IP address or a secret is.
//!
//! Each detector is a pattern that finds candidates plus, where the kind has one, the check that
//! real values pass: payment cards the Luhn checksum (a 16-digit order number that fails it is
//! not a card), IBANs the ISO 13616 mod-97 checksum, IP addresses the standard library's parser,
//! SSNs the number ranges never issued. All patterns are compiled once, when the config loads;
//! one [`RegexSet`] pass says which detectors have candidates at all, so a text without any costs
//! one scan.

use std::net::{Ipv4Addr, Ipv6Addr};

use regex::{Regex, RegexSet};

use super::gate;
use serde::Deserialize;

/// The kinds of built-in detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    Email,
    Phone,
    PaymentCard,
    Iban,
    UsSsn,
    Ipv4,
    Ipv6,
    Secret,
}

impl Detector {
    pub const ALL: [Detector; 8] = [
        Detector::Email,
        Detector::Phone,
        Detector::PaymentCard,
        Detector::Iban,
        Detector::UsSsn,
        Detector::Ipv4,
        Detector::Ipv6,
        Detector::Secret,
    ];

    /// The name used in config, metrics and filter state.
    pub fn name(self) -> &'static str {
        match self {
            Detector::Email => "email",
            Detector::Phone => "phone",
            Detector::PaymentCard => "payment_card",
            Detector::Iban => "iban",
            Detector::UsSsn => "us_ssn",
            Detector::Ipv4 => "ipv4",
            Detector::Ipv6 => "ipv6",
            Detector::Secret => "secret",
        }
    }

    /// The word a masked value's placeholder carries: `[EMAIL_1]`.
    pub fn label(self) -> &'static str {
        match self {
            Detector::Email => "EMAIL",
            Detector::Phone => "PHONE",
            Detector::PaymentCard => "CARD",
            Detector::Iban => "IBAN",
            Detector::UsSsn => "SSN",
            Detector::Ipv4 => "IPV4",
            Detector::Ipv6 => "IPV6",
            Detector::Secret => "SECRET",
        }
    }

    /// The candidate pattern. Candidates are then checked by [`Detector::accepts`].
    fn pattern(self) -> &'static str {
        match self {
            Detector::Email => {
                r"(?i)\b[a-z0-9._%+-]+@[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.[a-z]{2,63}\b"
            }
            // International numbers written with a leading `+` (E.164 and the usual groupings:
            // spaces, dots, dashes, one parenthesised area code), and North American numbers
            // written 3-3-4 with separators. Bare digit runs are not phone numbers here: they are
            // too often ids, amounts or dates.
            Detector::Phone => {
                r"(?:\+[1-9][0-9]{0,2}(?:[ .-]?\(?[0-9]{1,5}\)?){1,5}[0-9]\b|(?:\([0-9]{3}\)\s?|\b[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}\b)"
            }
            // 13 to 19 digits, as one run or in the groups cards are printed in: 4-4-4-4(-3),
            // 4-6-5 (Amex), 4-6-4 (Diners), by spaces or dashes.
            Detector::PaymentCard => {
                r"\b(?:[0-9]{13,19}|[0-9]{4}(?:[ -][0-9]{4}){2}(?:[ -][0-9]{1,4}){1,2}|[0-9]{4}[ -][0-9]{6}[ -][0-9]{4,5})\b"
            }
            Detector::Iban => r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}\b",
            Detector::UsSsn => r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b",
            Detector::Ipv4 => r"\b[0-9]{1,3}(?:\.[0-9]{1,3}){3}\b",
            Detector::Ipv6 => {
                r"(?i)(?:[0-9a-f]{1,4}|:)?(?::[0-9a-f]{0,4}){2,7}(?:(?::|\b)[0-9]{1,3}(?:\.[0-9]{1,3}){3})?"
            }
            Detector::Secret => concat!(
                r"\bsk-ant-[a-z]{2,8}[0-9]{2}-[A-Za-z0-9_-]{20,}",
                r"|\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",
                r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
                r"|\bgh[pousr]_[A-Za-z0-9]{36,}\b|\bgithub_pat_[A-Za-z0-9_]{22,}",
                r"|\bxox[abposr]-[A-Za-z0-9-]{10,}",
                r"|-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----",
            ),
        }
    }

    /// Whether a candidate is a real value of this kind; `Some(len)` trims it to its first
    /// `len` bytes (an IBAN candidate may run into the next word).
    fn accepts(self, candidate: &str) -> Option<usize> {
        let whole = Some(candidate.len());
        match self {
            Detector::Email | Detector::Secret => whole,
            Detector::Phone => {
                let digits = candidate.bytes().filter(u8::is_ascii_digit).count();
                (7..=15).contains(&digits).then_some(candidate.len())
            }
            Detector::PaymentCard => luhn_valid(candidate).then_some(candidate.len()),
            Detector::Iban => iban_prefix(candidate),
            Detector::UsSsn => ssn_valid(candidate).then_some(candidate.len()),
            Detector::Ipv4 => candidate.parse::<Ipv4Addr>().ok().and(whole),
            Detector::Ipv6 => {
                // At least two groups or a `::`, so `a:b` (a time, a ratio) is never an address.
                let addr = candidate.parse::<Ipv6Addr>().ok()?;
                let ok = candidate.contains("::") || candidate.matches(':').count() >= 7;
                (ok && !addr.is_unspecified()).then_some(candidate.len())
            }
        }
    }
}

/// Luhn's checksum over the digits of `text` (separators ignored).
pub fn luhn_valid(text: &str) -> bool {
    let digits: Vec<u32> = text.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) || digits.iter().all(|&d| d == 0) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

/// ISO 13616: move the first four characters to the end, letters to numbers (A = 10), mod 97 = 1.
pub fn iban_valid(compact: &str) -> bool {
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut rem: u32 = 0;
    for c in tail.chars().chain(head.chars()) {
        let value = match c.to_digit(36) {
            Some(v) => v,
            None => return false,
        };
        rem = if value < 10 {
            (rem * 10 + value) % 97
        } else {
            (rem * 100 + value) % 97
        };
    }
    rem == 1
}

/// The longest prefix of an IBAN candidate that ends where a group ends and passes the
/// checksum: `DE89 3704 0044 0532 0130 00 AND` → the part before ` AND`.
fn iban_prefix(candidate: &str) -> Option<usize> {
    let mut compact = String::with_capacity(candidate.len());
    // (compact length, byte length in `candidate`) at each group end.
    let mut ends = Vec::new();
    for (i, c) in candidate.char_indices() {
        if c == ' ' {
            ends.push((compact.len(), i));
        } else {
            compact.push(c);
        }
    }
    ends.push((compact.len(), candidate.len()));
    ends.iter()
        .rev()
        .find(|(n, _)| compact.get(..*n).is_some_and(iban_valid))
        .map(|&(_, bytes)| bytes)
}

/// `AAA-GG-SSSS` with the ranges the SSA never issues left out.
fn ssn_valid(text: &str) -> bool {
    let mut parts = text.split('-');
    let (Some(area), Some(group), Some(serial)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    area != "000" && area != "666" && !area.starts_with('9') && group != "00" && serial != "0000"
}

/// Where a value was found: byte range in the scanned text, and what found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    pub start: usize,
    pub end: usize,
    /// Index into the scanner's detectors.
    pub detector: usize,
}

/// One detector as the scanner runs it: built-in or custom.
#[derive(Debug)]
pub struct Compiled {
    /// `email`, … or the custom detector's name.
    pub name: String,
    /// The placeholder word: `EMAIL`, … or the custom name upper-cased.
    pub label: String,
    kind: Option<Detector>,
    regex: Regex,
}

/// Compiled detectors and the set that pre-screens a text for all of them in one pass.
#[derive(Debug)]
pub struct Scanner {
    detectors: Vec<Compiled>,
    set: RegexSet,
}

impl Scanner {
    /// Built-ins (in the given order) and custom detectors `(name, pattern)`. Custom patterns
    /// were validated by the config; a pattern that fails here is reported by its position.
    pub fn new(builtins: &[Detector], custom: &[(String, String)]) -> Result<Scanner, String> {
        let mut detectors = Vec::with_capacity(builtins.len() + custom.len());
        for &kind in builtins {
            detectors.push(Compiled {
                name: kind.name().to_owned(),
                label: kind.label().to_owned(),
                kind: Some(kind),
                // ASCII word boundaries: the lazy DFA runs them; Unicode ones would send every
                // text with a non-ASCII letter to the slower engine.
                regex: Regex::new(&kind.pattern().replace(r"\b", r"(?-u:\b)"))
                    .map_err(|e| e.to_string())?,
            });
        }
        for (name, pattern) in custom {
            detectors.push(Compiled {
                name: name.clone(),
                label: name.to_ascii_uppercase(),
                kind: None,
                regex: Regex::new(pattern).map_err(|e| format!("{name}: {e}"))?,
            });
        }
        let set =
            RegexSet::new(detectors.iter().map(|d| d.regex.as_str())).map_err(|e| e.to_string())?;
        Ok(Scanner { detectors, set })
    }

    /// Patterns matching at least what the detectors match (see `gate.rs`).
    pub fn gate_patterns(&self) -> Vec<String> {
        self.detectors
            .iter()
            .map(|d| match d.kind {
                Some(_) => gate::without_word_boundaries(d.regex.as_str()),
                None => d.regex.as_str().to_owned(),
            })
            .collect()
    }

    pub fn detectors(&self) -> &[Compiled] {
        &self.detectors
    }

    /// Every value found in `text`, in order, none overlapping: where two overlap, the one that
    /// starts first wins, then the longer, then the detector listed first.
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        let mut found = Vec::new();
        if !self.set.is_match(text) {
            return found;
        }
        for index in self.set.matches(text).iter() {
            let Some(d) = self.detectors.get(index) else {
                continue;
            };
            for m in d.regex.find_iter(text) {
                let len = match d.kind {
                    Some(kind) => kind.accepts(m.as_str()),
                    None => Some(m.len()),
                };
                if let Some(len) = len.filter(|&l| l > 0) {
                    found.push(Finding {
                        start: m.start(),
                        end: m.start() + len,
                        detector: index,
                    });
                }
            }
        }
        found.sort_by(|a, b| {
            a.start
                .cmp(&b.start)
                .then(b.end.cmp(&a.end))
                .then(a.detector.cmp(&b.detector))
        });
        let mut kept: Vec<Finding> = Vec::with_capacity(found.len());
        for f in found {
            if kept.last().is_none_or(|last| f.start >= last.end) {
                kept.push(f);
            }
        }
        kept
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn found(text: &str) -> Vec<(&'static str, String)> {
        let scanner = Scanner::new(&Detector::ALL, &[]).unwrap();
        scanner
            .scan(text)
            .into_iter()
            .map(|f| {
                (
                    Detector::ALL[f.detector].name(),
                    text[f.start..f.end].to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn emails() {
        assert_eq!(
            found("write to Jane.Doe+x@mail.example.co.uk, please"),
            [("email", "Jane.Doe+x@mail.example.co.uk".to_owned())]
        );
        assert!(found("not@an-address and @home").is_empty());
    }

    #[test]
    fn cards_pass_luhn_or_are_not_cards() {
        assert_eq!(
            found("card 4111 1111 1111 1111 ok"),
            [("payment_card", "4111 1111 1111 1111".to_owned())]
        );
        assert_eq!(
            found("card 5555-5555-5555-4444."),
            [("payment_card", "5555-5555-5555-4444".to_owned())]
        );
        assert_eq!(
            found("amex 378282246310005"),
            [("payment_card", "378282246310005".to_owned())]
        );
        assert_eq!(
            found("amex 3782 822463 10005"),
            [("payment_card", "3782 822463 10005".to_owned())]
        );
        // A 16-digit order number that fails Luhn is not a card.
        assert!(found("order 1234567812345678 shipped").is_empty());
        assert!(luhn_valid("4012888888881881"));
        assert!(!luhn_valid("4012888888881882"));
        assert!(!luhn_valid("0000000000000000"));
    }

    #[test]
    fn ibans_pass_the_checksum() {
        assert_eq!(
            found("pay to DE89 3704 0044 0532 0130 00 AND thanks"),
            [("iban", "DE89 3704 0044 0532 0130 00".to_owned())]
        );
        assert_eq!(
            found("GB82WEST12345698765432"),
            [("iban", "GB82WEST12345698765432".to_owned())]
        );
        // One digit changed: the checksum fails.
        assert!(found("GB82WEST12345698765433").is_empty());
    }

    #[test]
    fn phones_international_and_north_american() {
        for number in [
            "+1 415 555 2671",
            "+44 20 7946 0958",
            "+33 1 23 45 67 89",
            "+49 (30) 901820",
            "+14155552671",
            "(415) 555-2671",
            "415-555-2671",
            "415.555.2671",
        ] {
            let text = format!("call {number} now");
            assert_eq!(found(&text), [("phone", number.to_owned())], "{text}");
        }
        // Dates, versions and short numbers are not phones.
        assert!(found("on 2024-01-15 v1.2.3 room 42").is_empty());
    }

    #[test]
    fn ssn_ranges() {
        assert_eq!(
            found("ssn 123-45-6789"),
            [("us_ssn", "123-45-6789".to_owned())]
        );
        let none = found("000-12-3456 666-12-3456 923-45-6789 123-00-6789");
        assert!(none.is_empty(), "{none:?}");
    }

    #[test]
    fn ip_addresses() {
        assert_eq!(
            found("from 192.168.10.254 to 2001:db8::8a2e:370:7334."),
            [
                ("ipv4", "192.168.10.254".to_owned()),
                ("ipv6", "2001:db8::8a2e:370:7334".to_owned())
            ]
        );
        assert_eq!(
            found("fe80:0:0:0:202:b3ff:fe1e:8329"),
            [("ipv6", "fe80:0:0:0:202:b3ff:fe1e:8329".to_owned())]
        );
        assert!(found("999.1.1.1 at 12:30:45, ratio 3:2").is_empty());
    }

    #[test]
    fn secrets() {
        for secret in [
            "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
            "sk-ant-api03-abcdefghijklmnopqrstuvwxyz_0123",
            "AKIAIOSFODNN7EXAMPLE",
            "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            "xoxb-1234567890-abcdefghij",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAK\n-----END RSA PRIVATE KEY-----",
        ] {
            let text = format!("key: {secret} end");
            assert_eq!(found(&text), [("secret", secret.to_owned())], "{text}");
        }
        assert!(found("sk-short and task-force").is_empty());
    }

    #[test]
    fn custom_detectors_use_their_name() {
        let scanner = Scanner::new(
            &[Detector::Email],
            &[("employee_id".to_owned(), r"\bEMP-[0-9]{6}\b".to_owned())],
        )
        .unwrap();
        let text = "EMP-123456 is a@b.io";
        let f = scanner.scan(text);
        assert_eq!(f.len(), 2);
        assert_eq!(scanner.detectors()[f[0].detector].label, "EMPLOYEE_ID");
        assert_eq!(&text[f[1].start..f[1].end], "a@b.io");
    }

    #[test]
    fn overlaps_keep_the_first_and_longest() {
        assert_eq!(
            found("call +1 415 555 2671 or pay 4111 1111 1111 1111"),
            [
                ("phone", "+1 415 555 2671".to_owned()),
                ("payment_card", "4111 1111 1111 1111".to_owned())
            ]
        );
    }
}
