//! Who made an answer model-router sees on its way back: the provider, Envoy's router on the
//! provider's behalf, or a filter (or Envoy) that refused the request before it left.
//!
//! Only a provider's answer is in the provider's dialect and may be translated; a refusal by a
//! filter later in the chain (token-count's context-length 400 or budget 429) is already in the
//! caller's dialect and must pass untouched, and must not set off a fallback. Envoy tells them
//! apart in the response-code details (`%RESPONSE_CODE_DETAILS%`): `via_upstream` for a
//! provider's answer, `response_timeout`, `upstream_…`, `no_healthy_upstream` for its router's replies about the
//! provider (`response_timeout`, a reset: worth a fallback), anything else (empty for a Wasm filter's
//! reply) for a refusal.

/// The origin of an answer, from Envoy's response-code details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The provider answered: translate it, fall back on its status.
    Provider,
    /// Envoy's router answered for a provider that failed (timeout, reset, no host): fall back
    /// on its status; its body is Envoy's, already in the caller's dialect.
    ProviderFailure,
    /// A filter or Envoy refused the request before it went upstream: leave it as it is.
    Refusal,
}

impl Origin {
    pub fn from_details(details: &str) -> Origin {
        if details == "via_upstream" {
            Origin::Provider
        } else if details.contains("upstream")
            || details.ends_with("timeout")
            || details == "maintenance_mode"
            || details == "cluster_not_found"
        {
            Origin::ProviderFailure
        } else {
            Origin::Refusal
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn details_tell_who_answered() {
        assert_eq!(Origin::from_details("via_upstream"), Origin::Provider);
        for d in [
            "response_timeout",
            "upstream_per_try_timeout",
            "upstream_reset_before_response_started{connection_failure}",
            "no_healthy_upstream",
            "cluster_not_found",
        ] {
            assert_eq!(Origin::from_details(d), Origin::ProviderFailure, "{d}");
        }
        for d in ["", "request_payload_too_large", "direct_response"] {
            assert_eq!(Origin::from_details(d), Origin::Refusal, "{d}");
        }
    }
}
