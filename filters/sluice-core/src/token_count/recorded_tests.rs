//! The recipe against OpenAI's bill: requests recorded from live traffic
//! (`testdata/billing/openai_recorded.json`, each with the prompt tokens OpenAI billed). Every
//! request the rules call exact must be counted as billed; the others must say they are
//! estimates.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use serde_json::Value;

use super::counter::tests::counter;
use super::recipe::{count_request, Endpoint};

const RECORDED: &str = include_str!("../../testdata/billing/openai_recorded.json");

pub struct Case {
    pub source: String,
    pub model: String,
    pub features: String,
    /// Has tool definitions (`tools` / `functions`).
    pub tools: bool,
    /// Has a `response_format` JSON schema.
    pub schema: bool,
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
            tools: req.get("tools").or(req.get("functions")).is_some(),
            schema: req["response_format"]["type"] == "json_schema",
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
        exact_right >= 755,
        "only {exact_right} recorded requests counted exactly"
    );
}

/// How tool definitions and `response_format` schemas are counted, per model: the requests
/// counted as billed, how many the rules call exact, and how far off the rest are.
#[test]
fn tool_definitions_against_the_bills() {
    use std::collections::BTreeMap;
    let cases = cases();
    for (kind, pick) in [
        (
            "tool definitions",
            (|c: &Case| c.tools) as fn(&Case) -> bool,
        ),
        ("response_format JSON schemas", |c: &Case| c.schema),
    ] {
        // Recorded, as billed, called exact, and how many are off by how much.
        type Tally = (usize, usize, usize, BTreeMap<i64, usize>);
        let mut by_model: BTreeMap<&str, Tally> = BTreeMap::new();
        for c in cases.iter().filter(|c| pick(c) && !c.doubtful) {
            let e = by_model.entry(&c.model).or_default();
            e.0 += 1;
            let off = c.counted as i64 - c.billed as i64;
            if off == 0 {
                e.1 += 1;
            } else {
                *e.3.entry(off).or_default() += 1;
            }
            e.2 += usize::from(c.exact);
            assert!(
                !c.exact || off == 0,
                "{} {} called exact",
                c.model,
                c.source
            );
        }
        println!("{kind}: model: as billed / recorded (called exact); the rest, counted - billed: requests");
        for (model, (all, right, exact, off)) in &by_model {
            let rest: Vec<String> = off.iter().map(|(o, n)| format!("{o:+}: {n}")).collect();
            println!("  {model}: {right} / {all} ({exact}); {}", rest.join(", "));
        }
    }
}

/// Exploration aid (not part of the suite): every case as a JSON line, into
/// `$SLUICE_DUMP`.
#[test]
#[ignore]
fn dump_cases() {
    let Ok(path) = std::env::var("SLUICE_DUMP") else {
        return;
    };
    let doc: Value = serde_json::from_str(RECORDED).unwrap();
    let mut out = String::new();
    for (i, r) in doc["requests"].as_array().unwrap().iter().enumerate() {
        let endpoint = Endpoint::from_path(r["endpoint"].as_str().unwrap()).unwrap();
        let mut req = r["request"].clone();
        req["model"] = r["model"].clone();
        let body = serde_json::to_vec(&req).unwrap();
        match count_request(counter(), endpoint, &body, None) {
            Ok(c) => out.push_str(&format!(
                "{{\"i\":{i},\"counted\":{},\"exact\":{}}}\n",
                c.tokens, c.exact
            )),
            Err(e) => out.push_str(&format!(
                "{{\"i\":{i},\"error\":{}}}\n",
                serde_json::to_string(&e.message).unwrap()
            )),
        }
    }
    std::fs::write(path, out).unwrap();
}
