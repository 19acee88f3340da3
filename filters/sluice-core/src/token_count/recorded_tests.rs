//! The recipe against OpenAI's bill: requests recorded from live traffic
//! (`testdata/billing/openai_recorded.json`, each with the prompt tokens OpenAI billed). Every
//! request the rules call exact must be counted as billed; the others must say they are
//! estimates.

use serde_json::Value;

use super::counter::tests::counter;
use super::recipe::{count_request, Endpoint};

const RECORDED: &str = include_str!("../../testdata/billing/openai_recorded.json");

pub struct Case {
    pub source: String,
    pub model: String,
    pub features: String,
    pub billed: u64,
    pub counted: u64,
    pub exact: bool,
    /// Why the recorded body is known not to be exactly what was billed.
    pub doubtful: bool,
}

/// Every recorded request, counted.
pub fn cases() -> Vec<Case> {
    let doc: Value = serde_json::from_str(RECORDED).unwrap();
    let mut out = Vec::new();
    for r in doc["requests"].as_array().unwrap() {
        let endpoint = Endpoint::from_path(r["endpoint"].as_str().unwrap()).unwrap();
        let mut req = r["request"].clone();
        let model = r["model"].as_str().unwrap_or_default().to_owned();
        req["model"] = Value::String(model.clone());
        let body = serde_json::to_vec(&req).unwrap();
        let count = count_request(counter(), endpoint, &body, None).unwrap();
        out.push(Case {
            source: r["source"].as_str().unwrap().to_owned(),
            model,
            features: r["features"].to_string(),
            billed: r["billed_prompt_tokens"].as_u64().unwrap(),
            counted: count.tokens,
            exact: count.exact,
            doubtful: r.get("doubtful").is_some(),
        });
    }
    out
}

#[test]
fn every_request_the_rules_call_exact_is_counted_as_billed() {
    let cases = cases();
    let mut wrong = Vec::new();
    let (mut exact, mut exact_right, mut all_right) = (0, 0, 0);
    for c in &cases {
        all_right += usize::from(c.counted == c.billed);
        if c.exact && !c.doubtful {
            exact += 1;
            if c.counted == c.billed {
                exact_right += 1;
            } else {
                wrong.push(format!(
                    "{} {}: counted {} billed {} ({})",
                    c.model, c.features, c.counted, c.billed, c.source
                ));
            }
        }
    }
    println!(
        "{} recorded requests: {} called exact, {} of them as billed; {} as billed in all",
        cases.len(),
        exact,
        exact_right,
        all_right
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The rules' reach: a change that calls fewer requests exact must say so here.
    assert!(
        exact_right >= 120,
        "only {exact_right} recorded requests counted exactly"
    );
}
