//! Keeping provider keys out of what the caller sees.

/// What a leaked key is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Replaces every occurrence of any of `secrets` in `bytes`; `None` when there was none.
pub fn scrub(bytes: &[u8], secrets: &[&str]) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        let current = out.as_deref().unwrap_or(bytes);
        if let Some(replaced) = replace_all(current, secret.as_bytes(), REDACTED.as_bytes()) {
            out = Some(replaced);
        }
    }
    out
}

fn replace_all(haystack: &[u8], needle: &[u8], with: &[u8]) -> Option<Vec<u8>> {
    let first = find(haystack, needle, 0)?;
    let mut out = Vec::with_capacity(haystack.len());
    let mut from = 0;
    let mut at = Some(first);
    while let Some(i) = at {
        out.extend_from_slice(haystack.get(from..i).unwrap_or_default());
        out.extend_from_slice(with);
        from = i + needle.len();
        at = find(haystack, needle, from);
    }
    out.extend_from_slice(haystack.get(from..).unwrap_or_default());
    Some(out)
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Same, for a header value.
pub fn scrub_str(text: &str, secrets: &[&str]) -> Option<String> {
    scrub(text.as_bytes(), secrets).map(|b| String::from_utf8_lossy(&b).into_owned())
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn replaces_every_occurrence_of_every_secret() {
        let body = br#"{"error":{"message":"key sk-one is bad; sk-one again; also sk-two"}}"#;
        let out = scrub(body, &["sk-one", "sk-two"]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"error":{"message":"key [REDACTED] is bad; [REDACTED] again; also [REDACTED]"}}"#
        );
    }

    #[test]
    fn untouched_when_absent() {
        assert_eq!(scrub(b"nothing here", &["sk-one", ""]), None);
        assert_eq!(
            scrub_str("Bearer sk-one", &["sk-one"]).as_deref(),
            Some("Bearer [REDACTED]")
        );
    }
}
