//! Metric names with labels, the way Envoy can expose them.
//!
//! The proxy-wasm ABI has no metric labels: a Wasm filter defines flat, dot-separated stat
//! names, and Envoy's `stats_config.stats_tags` regexes turn `.<label>.<value>` pairs into
//! Prometheus labels (see envoy/sluice.yaml). So a label value must not contain a dot: dots and
//! anything outside `[A-Za-z0-9_:-]` become `_` (`gpt-4.1` is exported as `gpt-4_1`).

/// `base.k1.v1.k2.v2…` with values sanitised.
pub fn stat_name(base: &str, labels: &[(&str, &str)]) -> String {
    let mut name = base.to_owned();
    for (k, v) in labels {
        name.push('.');
        name.push_str(k);
        name.push('.');
        name.push_str(&label_value(v));
    }
    name
}

/// A label value safe inside a stat name (never empty).
pub fn label_value(v: &str) -> String {
    let clean: String = v
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_:-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() {
        "none".to_owned()
    } else {
        clean
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
    }
}
