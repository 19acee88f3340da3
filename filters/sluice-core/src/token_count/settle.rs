//! What a finished request used, decided once from its count, the answer's status and the
//! answer's usage: the numbers every output carries (answer headers aside, which leave earlier),
//! what the budgets settle to, and the metric labels.
//!
//! The rules: the provider's own numbers win over the count wherever it reported them; an
//! answer that is not a success is not billed, so it uses no tokens, costs nothing and settles
//! budgets to 0; the `model` label of a success is the model served, and an error's is that
//! model only if a provider has served it before, else [`OTHER_MODEL`], so that callers cannot
//! mint label series with made-up names.

use super::recipe::PromptCount;
use super::usage::{Source, Usage};

/// The `model` label of a model no provider has served.
pub const OTHER_MODEL: &str = "other";

/// A 2xx answer.
pub fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

/// Where a request's token numbers come from: `provider` when the provider reported them;
/// else `local` for a prompt counted exactly (a completion, if any, counted from the answer's
/// text), `estimate` for one that can only be estimated (an Anthropic prompt).
pub fn token_source(exact: bool, answer: Option<Source>) -> &'static str {
    match (answer, exact) {
        (Some(Source::Provider), _) => "provider",
        (_, true) => "local",
        (_, false) => "estimate",
    }
}

/// The outcome of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub succeeded: bool,
    /// What was billed (token types the metrics count, and what is priced); all empty for an
    /// answer that is not a success, `prompt` always set for one that is.
    pub billed: Usage,
    /// What the budgets settle to.
    pub budget_used: u64,
    /// The prompt tokens to publish when they differ from the count published with the request.
    pub prompt_correction: Option<u64>,
    /// The completion tokens to publish (also for an error answer that reported some).
    pub completion: Option<u64>,
    pub source: &'static str,
}

/// Settles `prompt` against the answer's `status` and usage (with its source).
pub fn settle(prompt: &PromptCount, status: u16, answer: Option<&(Usage, Source)>) -> Settlement {
    let succeeded = is_success(status);
    let billed = match answer {
        Some((u, _)) if succeeded => Usage {
            prompt: Some(u.prompt.unwrap_or(prompt.tokens)),
            ..u.clone()
        },
        _ if succeeded => Usage {
            prompt: Some(prompt.tokens),
            ..Usage::default()
        },
        _ => Usage::default(),
    };
    let budget_used = match billed.prompt {
        Some(p) => p.saturating_add(billed.completion.unwrap_or(0)),
        None => 0,
    };
    let reported_prompt = answer.and_then(|(u, _)| u.prompt);
    Settlement {
        succeeded,
        prompt_correction: reported_prompt.filter(|p| *p != prompt.tokens && succeeded),
        completion: answer.and_then(|(u, _)| u.completion),
        source: token_source(prompt.exact, answer.map(|(_, s)| *s)),
        billed,
        budget_used,
    }
}

/// The `model` label: the model of a success answer; for an error, the model if
/// `served_before` says a provider has served it, else [`OTHER_MODEL`].
pub fn model_label(
    model: Option<&str>,
    succeeded: bool,
    served_before: impl FnOnce(&str) -> bool,
) -> &str {
    match model {
        Some(m) if succeeded || served_before(m) => m,
        _ => OTHER_MODEL,
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::token_count::config::Encoding;

    fn counted(tokens: u64, exact: bool) -> PromptCount {
        PromptCount {
            tokens,
            model: Some("m".to_owned()),
            encoding: Encoding::O200kBase,
            max_completion: None,
            stream: false,
            exact,
        }
    }

    #[test]
    fn the_providers_numbers_win_and_errors_cost_nothing() {
        let usage = Usage {
            prompt: Some(20),
            completion: Some(5),
            cached: Some(4),
            reasoning: None,
        };
        let s = settle(
            &counted(26, false),
            200,
            Some(&(usage.clone(), Source::Provider)),
        );
        assert_eq!(s.billed, usage);
        assert_eq!((s.budget_used, s.prompt_correction), (25, Some(20)));
        assert_eq!((s.completion, s.source), (Some(5), "provider"));
        // Counted locally: the count stands, and says how it was made.
        let local = Usage {
            completion: Some(3),
            ..Usage::default()
        };
        let s = settle(&counted(9, true), 200, Some(&(local, Source::Local)));
        assert_eq!(
            (s.billed.prompt, s.budget_used, s.prompt_correction),
            (Some(9), 12, None)
        );
        assert_eq!(s.source, "local");
        let s = settle(&counted(9, false), 200, None);
        assert_eq!((s.billed.prompt, s.source), (Some(9), "estimate"));
        // An error answer: nothing billed, budgets settle to 0.
        let s = settle(&counted(9, true), 500, None);
        assert_eq!(
            (s.succeeded, s.billed.clone(), s.budget_used),
            (false, Usage::default(), 0)
        );
        assert_eq!(s.source, "local");
    }

    #[test]
    fn error_labels_are_models_served_before_or_other() {
        assert_eq!(model_label(Some("gpt-4o"), true, |_| false), "gpt-4o");
        assert_eq!(model_label(Some("made-up"), false, |_| false), OTHER_MODEL);
        assert_eq!(
            model_label(Some("gpt-4o"), false, |m| m == "gpt-4o"),
            "gpt-4o"
        );
        assert_eq!(model_label(None, true, |_| true), OTHER_MODEL);
    }
}
