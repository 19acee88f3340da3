//! moderation's plugin config.
//!
//! ```json
//! {
//!   "rules": [{"id": "no-bombs", "keywords": ["build a bomb"], "case_insensitive": true}],
//!   "pii": {"detectors": {"email": "mask", "payment_card": "mask", "secret": "block"}},
//!   "injection": {"action": "flag", "threshold": 1.0},
//!   "external": {"kind": "openai", "cluster": "moderation", "timeout_ms": 500,
//!                "failure_mode": "open", "thresholds": {"violence": 0.5}}
//! }
//! ```

use std::collections::BTreeMap;

use crate::config::{require_non_empty, require_range, ConfigError, JsonPath, Validate};
use serde::Deserialize;

use super::injection::Heuristic;
use super::pii::Detector;
use super::rules::{Rule, Scope};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModerationConfig {
    /// Shorthand for one deny rule per phrase, matched regardless of ASCII case; rule ids are
    /// `deny[0]`, `deny[1]`, ….
    #[serde(default)]
    pub deny: Vec<String>,
    /// Deny and allow rules: keywords and patterns.
    #[serde(default)]
    pub rules: Vec<Rule>,
    #[serde(default)]
    pub pii: PiiConfig,
    /// Prompt-injection heuristics; off when absent.
    #[serde(default)]
    pub injection: Option<InjectionConfig>,
    /// A moderation service called before the request goes upstream; off when absent.
    #[serde(default)]
    pub external: Option<ExternalConfig>,
    /// Characters of a streamed answer held back so that a pattern match spanning events is
    /// caught: at least the longest match a pattern rule should catch (keywords extend it to
    /// their own length by themselves).
    #[serde(default = "default_window")]
    pub stream_window_chars: usize,
    /// Request bodies over this are refused with 413 (the body is read whole).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
}

fn default_max_body_bytes() -> u64 {
    4 << 20
}

impl Default for ModerationConfig {
    fn default() -> Self {
        ModerationConfig {
            deny: Vec::new(),
            rules: Vec::new(),
            pii: PiiConfig::default(),
            injection: None,
            external: None,
            stream_window_chars: default_window(),
            max_body_bytes: default_max_body_bytes(),
        }
    }
}

fn default_window() -> usize {
    64
}

/// What a detector's findings do to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiAction {
    /// Refuse the request (400, code `content_filter`).
    Block,
    /// Replace each value by a placeholder upstream (restored in the answer unless
    /// `restore: false`).
    Mask,
    /// Leave it (the default for every detector not listed).
    Allow,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PiiConfig {
    /// Built-in detectors and their action; those not listed are off.
    #[serde(default)]
    pub detectors: BTreeMap<Detector, PiiAction>,
    /// Detectors of the operator's own, from a pattern.
    #[serde(default)]
    pub custom: Vec<CustomDetector>,
    /// Placeholders in the answer become the original values again.
    #[serde(default = "yes")]
    pub restore: bool,
    /// Which messages are scanned.
    #[serde(default = "all")]
    pub scope: Scope,
}

impl Default for PiiConfig {
    fn default() -> Self {
        PiiConfig {
            detectors: BTreeMap::new(),
            custom: Vec::new(),
            restore: true,
            scope: Scope::All,
        }
    }
}

fn yes() -> bool {
    true
}

fn all() -> Scope {
    Scope::All
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomDetector {
    /// `[a-z0-9_]+`; the placeholder is its upper case: `employee_id` → `[EMPLOYEE_ID_1]`.
    pub name: String,
    pub pattern: String,
    pub action: PiiAction,
}

/// What an injection attempt does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum InjectionAction {
    /// Pass it, marked `flagged` in filter state and counted.
    #[default]
    Flag,
    /// Refuse it (400, code `content_filter`, rule `injection`).
    Block,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InjectionConfig {
    #[serde(default)]
    pub action: InjectionAction,
    /// A text whose heuristics' weights add up to this is an attempt.
    #[serde(default = "one")]
    pub threshold: f64,
    /// The operator's heuristics instead of the shipped set.
    #[serde(default)]
    pub heuristics: Option<Vec<Heuristic>>,
    /// Which messages are read (default: user messages; `all` adds system and tool results).
    #[serde(default)]
    pub scope: Scope,
}

fn one() -> f64 {
    1.0
}

/// The moderation service's API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExternalKind {
    /// OpenAI-compatible `POST /v1/moderations`.
    #[serde(rename = "openai")]
    OpenAi,
    /// Azure AI Content Safety `POST /contentsafety/text:analyze`.
    AzureContentSafety,
}

/// What happens when the service is down, slow, or answers something unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureMode {
    /// Let the request through (counted as `external_failed_open`).
    Open,
    /// Refuse it with 503.
    Closed,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalConfig {
    pub kind: ExternalKind,
    /// The Envoy cluster the service is on.
    pub cluster: String,
    /// Default: `/v1/moderations` or `/contentsafety/text:analyze?api-version=2024-09-01`.
    #[serde(default)]
    pub path: Option<String>,
    /// The `:authority` sent; default: the cluster name.
    #[serde(default)]
    pub authority: Option<String>,
    /// Sent as `authorization: Bearer …` (OpenAI) or `Ocp-Apim-Subscription-Key` (Azure).
    #[serde(default)]
    pub api_key: Option<String>,
    /// OpenAI's moderation model, e.g. `omni-moderation-latest`.
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// Category → the score at or over which the request is refused. OpenAI scores are 0..1;
    /// Azure severities 0..7. Empty: OpenAI's own `flagged`, Azure severity 4.
    #[serde(default)]
    pub thresholds: BTreeMap<String, f64>,
    /// Required: the policy must be a decision, not a default.
    pub failure_mode: FailureMode,
    /// Which messages are sent to the service (after masking: masked values never leave).
    #[serde(default)]
    pub scope: Scope,
    /// Also check the assistant's text of JSON answers (as the provider wrote it: placeholders
    /// are restored only after the check). Streamed answers are checked by the rules only.
    #[serde(default)]
    pub answers: bool,
}

fn default_timeout() -> u64 {
    1000
}

impl ExternalConfig {
    pub fn path(&self) -> &str {
        self.path.as_deref().unwrap_or(match self.kind {
            ExternalKind::OpenAi => "/v1/moderations",
            ExternalKind::AzureContentSafety => {
                "/contentsafety/text:analyze?api-version=2024-09-01"
            }
        })
    }
}

fn check_pattern(at: &JsonPath, pattern: &str) -> Result<(), ConfigError> {
    regex::Regex::new(pattern)
        .map(|_| ())
        .map_err(|e| at.error(format!("not a valid pattern: {e}")))
}

impl Validate for ModerationConfig {
    fn validate(&self, path: &JsonPath) -> Result<(), ConfigError> {
        let deny = path.field("deny");
        for (i, phrase) in self.deny.iter().enumerate() {
            require_non_empty(&deny.index(i), phrase)?;
        }
        let rules = path.field("rules");
        let mut ids: Vec<&str> = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let at = rules.index(i);
            require_non_empty(&at.field("id"), &rule.id)?;
            if ids.contains(&rule.id.as_str()) {
                return Err(at
                    .field("id")
                    .error(format!("duplicate rule id {:?}", rule.id)));
            }
            ids.push(&rule.id);
            if rule.keywords.is_empty() && rule.patterns.is_empty() {
                return Err(at.error("needs at least one of keywords, patterns"));
            }
            for (k, keyword) in rule.keywords.iter().enumerate() {
                require_non_empty(&at.field("keywords").index(k), keyword)?;
            }
            for (p, pattern) in rule.patterns.iter().enumerate() {
                check_pattern(&at.field("patterns").index(p), pattern)?;
            }
        }
        let custom = path.field("pii").field("custom");
        for (i, c) in self.pii.custom.iter().enumerate() {
            let at = custom.index(i);
            let name_ok = !c.name.is_empty()
                && c.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !name_ok {
                return Err(at.field("name").error("must be [a-z0-9_]+"));
            }
            if Detector::ALL.iter().any(|d| d.name() == c.name) {
                return Err(at.field("name").error("is a built-in detector's name"));
            }
            check_pattern(&at.field("pattern"), &c.pattern)?;
        }
        if let Some(inj) = &self.injection {
            let at = path.field("injection");
            if !(inj.threshold > 0.0 && inj.threshold.is_finite()) {
                return Err(at.field("threshold").error("must be a number above 0"));
            }
            for (i, h) in inj.heuristics.iter().flatten().enumerate() {
                let at = at.field("heuristics").index(i);
                require_non_empty(&at.field("id"), &h.id)?;
                check_pattern(&at.field("pattern"), &h.pattern)?;
                if !h.weight.is_finite() {
                    return Err(at.field("weight").error("must be a number"));
                }
            }
        }
        if let Some(ext) = &self.external {
            let at = path.field("external");
            require_non_empty(&at.field("cluster"), &ext.cluster)?;
            if !(1..=60_000).contains(&ext.timeout_ms) {
                return Err(at.field("timeout_ms").error("must be 1..=60000"));
            }
            if let Some(p) = &ext.path {
                if !p.starts_with('/') {
                    return Err(at.field("path").error("must start with /"));
                }
            }
            for (category, score) in &ext.thresholds {
                if !(score.is_finite() && *score >= 0.0) {
                    return Err(at
                        .field("thresholds")
                        .key(category)
                        .error("must be a number of at least 0"));
                }
            }
        }
        require_range(
            &path.field("max_body_bytes"),
            self.max_body_bytes,
            1,
            64 << 20,
        )?;
        if !(1..=4096).contains(&self.stream_window_chars) {
            return Err(path.field("stream_window_chars").error("must be 1..=4096"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::parse_config;

    fn refused(json: &str) -> String {
        parse_config::<ModerationConfig>(json.as_bytes())
            .unwrap_err()
            .path
    }

    #[test]
    fn empty_pattern_names_its_index() {
        assert_eq!(refused(r#"{"deny":["ok",""]}"#), "$.deny[1]");
    }

    #[test]
    fn unknown_field_is_refused() {
        let err = parse_config::<ModerationConfig>(br#"{"denny":[]}"#).unwrap_err();
        assert!(err.message.contains("denny"), "{err}");
    }

    #[test]
    fn a_whole_config() {
        let c: ModerationConfig = parse_config(
            br#"{"rules":[{"id":"a","keywords":["x"]},{"id":"b","action":"allow","patterns":["y+"]}],
                 "pii":{"detectors":{"email":"mask","payment_card":"mask","secret":"block"},
                        "custom":[{"name":"employee_id","pattern":"EMP-[0-9]{6}","action":"mask"}]},
                 "injection":{"action":"block","threshold":0.8},
                 "external":{"kind":"openai","cluster":"mock","failure_mode":"closed",
                             "thresholds":{"violence":0.5}}}"#,
        )
        .unwrap();
        assert_eq!(c.pii.detectors[&Detector::Secret], PiiAction::Block);
        assert!(c.pii.restore);
        assert_eq!(c.external.unwrap().path(), "/v1/moderations");
    }

    #[test]
    fn bad_fields_are_named() {
        assert_eq!(
            refused(r#"{"rules":[{"id":"a","patterns":["ok","("]}]}"#),
            "$.rules[0].patterns[1]"
        );
        assert_eq!(
            refused(r#"{"rules":[{"id":"a","keywords":["x"]},{"id":"a","keywords":["y"]}]}"#),
            "$.rules[1].id"
        );
        assert_eq!(refused(r#"{"rules":[{"id":"a"}]}"#), "$.rules[0]");
        assert_eq!(
            refused(r#"{"pii":{"custom":[{"name":"Bad Name","pattern":"x","action":"mask"}]}}"#),
            "$.pii.custom[0].name"
        );
        assert!(refused(r#"{"pii":{"detectors":{"passport":"mask"}}}"#).starts_with("$.pii"));
        assert_eq!(
            refused(r#"{"injection":{"threshold":0}}"#),
            "$.injection.threshold"
        );
        // The failure policy is required.
        assert_eq!(
            refused(r#"{"external":{"kind":"openai","cluster":"m"}}"#),
            "$.external"
        );
        assert_eq!(
            refused(
                r#"{"external":{"kind":"openai","cluster":"m","failure_mode":"open","timeout_ms":0}}"#
            ),
            "$.external.timeout_ms"
        );
        assert_eq!(
            refused(r#"{"stream_window_chars":0}"#),
            "$.stream_window_chars"
        );
    }
}
