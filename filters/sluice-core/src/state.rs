//! Filter-state keys: how Sluice filters talk to each other through Envoy.
//!
//! A key is written with a single-segment property path, `set_property(["sluice.consumer"])`,
//! which Envoy stores as filter state `wasm.sluice.consumer`: another Wasm filter reads it with
//! `get_property(["sluice.consumer"])`, and an access log with
//! `%FILTER_STATE(wasm.sluice.consumer:PLAIN)%`. (A multi-segment path is joined with a NUL byte
//! and cannot be named from a log format, so never use one.) Values are UTF-8 strings.

/// Every key a Sluice filter writes, with the filter that owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StateKey {
    /// key-injection (authenticate): the caller's consumer id.
    Consumer,
    /// key-injection (authenticate): the caller's tenant.
    Tenant,
    /// key-injection (authenticate): the models a consumer whose models are restricted may
    /// use, when its request named none (a template or REST endpoint names it later): the
    /// inject role checks the model the request is routed with against them.
    ModelGrant,
    /// prompt-template: template name and version used.
    Template,
    /// prompt-template: the REST endpoint's path when a REST call was turned into a chat
    /// request (its `x-envoy-original-path` is then prompt-template's own, not a caller's).
    RestPath,
    /// moderation: `pass`, `masked`, `flagged` or `blocked`.
    Moderation,
    /// The first filter that parsed the body: the model the caller asked for.
    Model,
    /// token-count: prompt tokens.
    PromptTokens,
    /// token-count: completion tokens.
    CompletionTokens,
    /// token-count: where the numbers in `prompt_tokens` and `completion_tokens` come from:
    /// `provider` (its usage report), `local` (counted here exactly), `estimate`.
    TokenSource,
    /// token-count: the tightest token budget's standing after the request's reservation,
    /// `limit;remaining;reset_secs` (`token_count::budget::Standing::encode`), written only
    /// when a budget applies. Its `x-ratelimit-*-tokens` headers tell the same; model-router
    /// puts them on a fallback's answer, which replaces the one token-count wrote them on.
    Budget,
    /// model-router: provider kind of the chosen target.
    Provider,
    /// model-router: Envoy cluster of the chosen target.
    Cluster,
    /// model-router: model name sent upstream.
    UpstreamModel,
    /// model-router: fallback attempts and the target that answered.
    Fallback,
    /// model-router: status and usage of a fallback answer it delivered itself
    /// (`token_count::usage::Delivered`), for token-count to settle with.
    AnswerUsage,
}

impl StateKey {
    pub const ALL: [StateKey; 16] = [
        StateKey::Consumer,
        StateKey::Tenant,
        StateKey::ModelGrant,
        StateKey::Template,
        StateKey::RestPath,
        StateKey::Moderation,
        StateKey::Model,
        StateKey::PromptTokens,
        StateKey::CompletionTokens,
        StateKey::TokenSource,
        StateKey::Budget,
        StateKey::Provider,
        StateKey::Cluster,
        StateKey::UpstreamModel,
        StateKey::Fallback,
        StateKey::AnswerUsage,
    ];

    /// The single-segment property path to pass to `set_property` / `get_property`.
    pub const fn property(self) -> &'static str {
        match self {
            StateKey::Consumer => "sluice.consumer",
            StateKey::Tenant => "sluice.tenant",
            StateKey::ModelGrant => "sluice.model_grant",
            StateKey::Template => "sluice.template",
            StateKey::RestPath => "sluice.rest_path",
            StateKey::Moderation => "sluice.moderation",
            StateKey::Model => "sluice.model",
            StateKey::PromptTokens => "sluice.prompt_tokens",
            StateKey::CompletionTokens => "sluice.completion_tokens",
            StateKey::TokenSource => "sluice.token_source",
            StateKey::Budget => "sluice.budget",
            StateKey::Provider => "sluice.provider",
            StateKey::Cluster => "sluice.cluster",
            StateKey::UpstreamModel => "sluice.upstream_model",
            StateKey::Fallback => "sluice.fallback",
            StateKey::AnswerUsage => "sluice.answer_usage",
        }
    }

    /// The name Envoy stores it under, as used in `%FILTER_STATE(<name>:PLAIN)%`.
    pub fn filter_state_name(self) -> String {
        format!("wasm.{}", self.property())
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn property_paths_are_single_segment_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for key in StateKey::ALL {
            let p = key.property();
            assert!(p.starts_with("sluice.") && !p.contains('\0'), "{p}");
            assert!(seen.insert(p), "duplicate {p}");
        }
        assert_eq!(
            StateKey::PromptTokens.filter_state_name(),
            "wasm.sluice.prompt_tokens"
        );
    }
}
