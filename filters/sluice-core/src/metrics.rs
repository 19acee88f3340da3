//! Metric names with labels, the way Envoy can expose them.
//!
//! The proxy-wasm ABI has no metric labels: a Wasm filter defines flat, dot-separated stat
//! names, and Envoy's `stats_config.stats_tags` regexes turn `.<label>.<value>` pairs into
//! Prometheus labels (see envoy/sluice.yaml). So a label value must not contain a dot: dots and
//! anything outside `[A-Za-z0-9_:-]` become `_` (`gpt-4.1` is exported as `gpt-4_1`).

/// `base.k1.v1.k2.v2…` with values sanitised.
pub fn stat_name(base: &str, labels: &[(&str, &str)]) -> String {
    let mut name = String::with_capacity(
        base.len()
            + labels
                .iter()
                .map(|(k, v)| k.len() + v.len() + 2)
                .sum::<usize>(),
    );
    name.push_str(base);
    for (k, v) in labels {
        name.push('.');
        name.push_str(k);
        name.push('.');
        push_label_value(&mut name, v);
    }
    name
}

/// A label value safe inside a stat name (never empty).
pub fn label_value(v: &str) -> String {
    let mut clean = String::with_capacity(v.len().min(64));
    push_label_value(&mut clean, v);
    clean
}

fn safe_in_label(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_:-".contains(c)
}

/// Appends `v` sanitised: at most 64 characters, each outside `[A-Za-z0-9_:-]` as `_`;
/// `none` for an empty value. A value already clean (the usual case) is copied whole.
fn push_label_value(out: &mut String, v: &str) {
    let v = match v.char_indices().nth(64) {
        Some((cut, _)) => v.get(..cut).unwrap_or(v),
        None => v,
    };
    if v.is_empty() {
        out.push_str("none");
    } else if v.chars().all(safe_in_label) {
        out.push_str(v);
    } else {
        out.extend(v.chars().map(|c| if safe_in_label(c) { c } else { '_' }));
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn names_carry_sanitised_labels() {
        assert_eq!(
            stat_name("sluice_x", &[("model", "gpt-4.1"), ("consumer", "")]),
            "sluice_x.model.gpt-4_1.consumer.none"
        );
        assert_eq!(label_value("a b/c.d"), "a_b_c_d");
        assert_eq!(label_value(&"x".repeat(100)).len(), 64);
        // Cut at 64 characters, not bytes, and never inside one.
        assert_eq!(label_value(&"é".repeat(100)), "_".repeat(64));
        assert_eq!(label_value("gpt-4o-mini"), "gpt-4o-mini");
    }
}
