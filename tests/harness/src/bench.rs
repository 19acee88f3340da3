//! `make bench`: bare Envoy against Envoy with Sluice filters, in the same run, on 127.0.0.1.
//!
//! The Envoys (`--concurrency 2`) front the same mock provider: bare; the floors any filter
//! starts from (`tests/floor-filter`: one Wasm entry that does nothing, one that also reads the
//! request body, one that also holds the answer until its body is read, one that also makes ten
//! host calls, and for token-count, model-router, prompt-template and moderation one that makes
//! exactly that filter's host calls and does nothing else); each filter alone; and the whole
//! chain.
//! `wrk` drives each in turn with chat requests carrying the demo key at 16 connections, for a
//! bounded time, in interleaved rounds (bare, floor, …, bare, …; each round starting one config
//! later) so drift on the machine hits all alike. The report gives throughput, Envoy's own CPU
//! time per request (from `/proc`, over each run) and p50/p99 latency, each also as a ratio to
//! bare Envoy; each Envoy's RSS idle and after load, and from Envoy's admin `/memory` how much
//! of its heap is allocated and how much its allocator keeps freed; and counting speed against
//! native tiktoken-rs; and for each speed target an issue sets, the filter's row against the
//! target's floor row, measured side by side (the two loaded at the same time, again and
//! again, each Envoy's CPU read in nanoseconds) with a 95% interval, beside the median of the
//! rounds' per-round differences. It is a measurement, not a test: nothing here passes or
//! fails on a number.
//!
//! Settings (environment): `SLUICE_BENCH_CONFIGS` (default `bare,floor,floor-body,floor-hold,
//! floor-calls,floor-count,floor-route,floor-path,floor-template,floor-moderation,key-injection,
//! token-count,router,moderation,moderation-heavy,template,template-plain,chain`; also
//! `router-anthropic`), `SLUICE_BENCH_SECONDS` per run (default 10), `SLUICE_BENCH_ROUNDS`
//! (default 2, at most 20), `SLUICE_BENCH_CONNECTIONS` (default 16), `SLUICE_BENCH_PAIRS` (the
//! side-by-side runs per target and floor, each `SLUICE_BENCH_SECONDS` long; default 6, at most
//! 40, 0 or 1 skips them), `SLUICE_BENCH_OUT` (default `bench/out/report.md`).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use crate::envoy::{render_template, template_vars, Allocator};
use crate::render::only_filters;
use crate::{http, paths, Envoy, MockProvider, DEMO_AUTH};

/// A configuration to measure: its report name and the filters of the shipped chain it keeps.
struct Scenario {
    key: &'static str,
    name: &'static str,
    /// `None`: envoy/bare.yaml; `Some(&[])`: the whole chain; else only these entries.
    filters: Option<&'static [&'static str]>,
    /// The model the requests name (a `claude-*` model makes model-router translate).
    model: &'static str,
    /// A floor row: the one entry kept runs `tests/floor-filter` in this mode instead.
    floor: Option<&'static str>,
    /// Another JSON config for the moderation entry.
    moderation: Option<fn() -> String>,
    /// Another JSON config for the prompt-template entry.
    prompt_template: Option<fn() -> String>,
    /// The requests name a template (`templated_body`) instead of carrying their messages.
    templated: bool,
}

/// A speed target an issue sets: Envoy CPU per request of `row` at most `max_us` above that of
/// `floor` in the same run (1 KB requests), with the filter's own floor row (its exact host
/// calls) beside it.
struct Target {
    row: &'static str,
    floor: &'static str,
    own_floor: &'static str,
    max_us: f64,
}

const TARGETS: [Target; 3] = [
    Target {
        row: "moderation",
        floor: "floor-hold",
        own_floor: "floor-moderation",
        max_us: 10.0,
    },
    Target {
        row: "template",
        floor: "floor-body",
        own_floor: "floor-template",
        max_us: 8.0,
    },
    Target {
        row: "template-plain",
        floor: "floor",
        own_floor: "floor-path",
        max_us: 3.0,
    },
];

/// The per-round differences of Envoy CPU per request between rows `a` and `b` (each round
/// runs every row once, so a difference within a round is spared the drift between rounds):
/// their median, least and greatest.
fn paired_difference(a: &[WrkResult], b: &[WrkResult]) -> Option<(f64, f64, f64)> {
    let diffs: Vec<f64> = a.iter().zip(b).map(|(x, y)| x.cpu_us - y.cpu_us).collect();
    let least = diffs.iter().copied().reduce(f64::min)?;
    let most = diffs.iter().copied().reduce(f64::max)?;
    Some((median(diffs), least, most))
}

/// Mean, median and the 95% interval of the mean (Student's t) of some differences.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Estimate {
    mean: f64,
    median: f64,
    /// The interval runs from `mean - half_width` to `mean + half_width`.
    half_width: f64,
}

impl Estimate {
    /// `None` for fewer than two values (no spread to read).
    fn of(values: &[f64]) -> Option<Estimate> {
        let n = values.len();
        if n < 2 {
            return None;
        }
        let mean = mean(values);
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        Some(Estimate {
            mean,
            median: median(values.to_vec()),
            half_width: t_975(n - 1) * (variance / n as f64).sqrt(),
        })
    }

    /// Met when all of the interval is at or under `max_us`, not met when all of it is over.
    fn verdict(&self, max_us: f64) -> &'static str {
        if self.mean + self.half_width <= max_us {
            "met"
        } else if self.mean - self.half_width > max_us {
            "not met"
        } else {
            "undecided"
        }
    }

    fn show(&self) -> String {
        format!(
            "{:+.1} ± {:.1} µs (median {:+.1})",
            self.mean, self.half_width, self.median
        )
    }
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom (from a table to 30, then
/// the normal's 1.96 with its first correction).
fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df.checked_sub(1).and_then(|i| TABLE.get(i)) {
        Some(t) => *t,
        None if df == 0 => f64::INFINITY,
        None => 1.96 + 2.4 / df as f64,
    }
}

/// Side-by-side differences by (row, floor): see [`side_by_side`].
type SideBySide = BTreeMap<(&'static str, &'static str), Estimate>;

/// The targets whose rows ran, against their floors: read from the side-by-side runs when
/// they ran, and beside them the wrk rounds' per-round differences.
fn targets_report(keys: &[&str], results: &[Vec<WrkResult>], side: &SideBySide) -> String {
    let rounds = |key: &str| {
        keys.iter()
            .position(|k| *k == key)
            .and_then(|i| results.get(i))
    };
    let wrk = |row: &str, floor: &str| {
        let (Some(row), Some(floor)) = (rounds(row), rounds(floor)) else {
            return None;
        };
        paired_difference(row, floor)
    };
    let mut out = String::new();
    for t in &TARGETS {
        let Some((d, lo, hi)) = wrk(t.row, t.floor) else {
            continue;
        };
        let pair = side.get(&(t.row, t.floor));
        let (difference, verdict) = match pair {
            Some(e) => (e.show(), e.verdict(t.max_us)),
            None => (
                "-".to_owned(),
                if d <= t.max_us { "met" } else { "not met" },
            ),
        };
        let own = side
            .get(&(t.row, t.own_floor))
            .map_or("-".to_owned(), Estimate::show);
        let wrk_own = wrk(t.row, t.own_floor).map_or("-".to_owned(), |(d, lo, hi)| {
            format!("{d:+.1} ({lo:+.0} … {hi:+.0})")
        });
        out.push_str(&format!(
            "| `{}` | `{}` | {difference} | ≤ +{:.0} µs | {verdict} | `{}`: {own} | {d:+.1} ({lo:+.0} … {hi:+.0}) | {wrk_own} |\n",
            t.row, t.floor, t.max_us, t.own_floor
        ));
    }
    if out.is_empty() {
        return out;
    }
    format!(
        "\n### Speed targets (1 KB)\n\nEnvoy CPU per request of a filter's row minus its floor \
         row's, and beside it the same against the filter's own floor row (its exact host \
         calls): what its own code costs. Side by side: the row and the floor loaded by wrk at \
         the same time (half the connections each) for the same seconds, again and again, each \
         Envoy's CPU read in nanoseconds from its threads' run time: the machine's drift and \
         the other tenants hit both alike, so the pairs agree to a few µs. Their mean ± the \
         half-width of its 95% interval, and the median; met when the whole interval is at or \
         under the target, not met when all of it is over, undecided otherwise. The last two \
         columns are the interleaved rounds' per-round differences (median, least … greatest), \
         which spread by tens of µs: each round runs alone, and Envoy's CPU per request moves \
         with how many requests each wake-up serves.\n\n\
         | row | target's floor row | side by side | target | | against its own floor | rounds | rounds, own floor |\n\
         |---|---|---|---|---|---|---|---|\n{out}"
    )
}

/// prompt-template's bench config: the template the templated rows name (no length limit), for
/// any route but `/v1/chat/completions?plain`, which has no template, decoration or REST rule.
pub fn bench_template_config() -> String {
    serde_json::json!({
        "templates": {"bench": {"model": OPENAI_MODEL, "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "{{text}}"}]}},
        "rules": [{"path_prefix": "/v1/chat/completions?plain", "templates": []}, {}]
    })
    .to_string()
}

/// A request of about `size` bytes naming the bench template.
pub fn templated_body(size: usize) -> String {
    let head = r#"{"template":"bench","variables":{"text":""#;
    let tail = r#""}}"#;
    let filler = "The quick brown fox jumps over the lazy dog. ";
    let want = size.saturating_sub(head.len() + tail.len());
    let text: String = filler.chars().cycle().take(want).collect();
    format!("{head}{text}{tail}")
}

/// The heavy moderation row's config: 100 keyword rules, 20 pattern rules, every PII detector.
pub fn heavy_moderation_config() -> String {
    let mut rules: Vec<serde_json::Value> = (0..100)
        .map(|i| {
            serde_json::json!({"id": format!("kw-{i}"),
                               "keywords": [format!("blocked phrase number {i}")],
                               "case_insensitive": true})
        })
        .collect();
    rules.extend((0..20).map(|i| {
        serde_json::json!({"id": format!("re-{i}"),
                           "patterns": [format!("(?i)project[ -]codename[ -]{i}[0-9]{{3}}")]})
    }));
    let detectors: serde_json::Map<String, serde_json::Value> = [
        "email",
        "phone",
        "payment_card",
        "iban",
        "us_ssn",
        "ipv4",
        "ipv6",
        "secret",
    ]
    .iter()
    .map(|d| ((*d).to_owned(), serde_json::json!("mask")))
    .collect();
    serde_json::json!({"rules": rules, "pii": {"detectors": detectors},
                       "injection": {"action": "flag"}})
    .to_string()
}

const OPENAI_MODEL: &str = "gpt-4o-mini";

/// The shipped chain's entry whose place a floor row takes (any one entry would do).
const FLOOR_ENTRY: &str = "sluice.moderation";

const SCENARIOS: [Scenario; 19] = [
    Scenario {
        key: "bare",
        name: "bare Envoy",
        filters: None,
        model: OPENAI_MODEL,
        floor: None,
        moderation: None,
        prompt_template: None,
        templated: false,
    },
    // The floors (tests/floor-filter): one Wasm entry that does nothing on traffic, though
    // Envoy still calls it for every stream event; then one that also waits for the request
    // body and copies it in (every body-reading filter's first step); then one that also holds
    // the answer until its body is whole (what a filter pays to set headers from the body).
    Scenario {
        key: "floor",
        name: "one pass-through Wasm entry (the floor)",
        filters: Some(&[FLOOR_ENTRY]),
        model: OPENAI_MODEL,
        floor: Some("pass"),
        moderation: None,
        prompt_template: None,
        templated: false,
    },
    Scenario {
        key: "floor-body",
        name: "floor + request body read",
        filters: Some(&[FLOOR_ENTRY]),
        model: OPENAI_MODEL,
        floor: Some("read-body"),
        moderation: None,
        prompt_template: None,
        templated: false,
    },
    Scenario {
        key: "floor-hold",
        name: "floor + body read + answer held",
        filters: Some(&[FLOOR_ENTRY]),
        model: OPENAI_MODEL,
        floor: Some("hold-answer"),
        moderation: None,
        prompt_template: None,
        templated: false,
    },
    // The unit the filters' other work costs: ten host calls more than floor-hold.
    Scenario {
        key: "floor-calls",
        name: "floor + body read + answer held + 10 host calls",
        filters: Some(&[FLOOR_ENTRY]),
        model: OPENAI_MODEL,
        floor: Some("ten-calls"),
        moderation: None,
        prompt_template: None,
        templated: false,
    },
    // A filter's own floor: the floor-filter making exactly the host calls that filter makes on
    // these requests, and nothing else; with the filter's Wasm entries too (`@lean`: without
    // `on_log` and `on_done`, as the filters), but for token-count's, whose `on_log` the
    // floor's `count-calls` needs (token-count lacks only `on_done`: its floor row has one
    // entry more). What a filter loses beyond it is its own code's.
    Scenario {
        key: "floor-count",
        name: "token-count's host calls only",
        filters: Some(&[FLOOR_ENTRY]),
        model: OPENAI_MODEL,
        floor: Some("count-calls"),
        moderation: None,
        prompt_template: None,
        templated: false,
    },
    Scenario {
        key: "floor-route",
        name: "model-router's host calls only (routing)",
        filters: Some(&[FLOOR_ENTRY]),
        model: OPENAI_MODEL,
        floor: Some("route-calls@lean"),
        moderation: None,
        prompt_template: None,
        templated: false,
    },
    // prompt-template's host calls: on a request no rule of its route could change (the
    // `template-plain` row's floor), and on a templated one (the `template` row's).
    Scenario {
        key: "floor-path",
        name: "prompt-template's host calls only (untemplated: :path read)",
        filters: Some(&[FLOOR_ENTRY]),
        model: OPENAI_MODEL,
        floor: Some("path-read@lean"),
        moderation: None,
        prompt_template: None,
        templated: false,
    },
    Scenario {
        key: "floor-template",
        name: "prompt-template's host calls only (templated)",
        filters: Some(&[FLOOR_ENTRY]),
        model: OPENAI_MODEL,
        floor: Some("template-calls@lean"),
        moderation: None,
        prompt_template: None,
        templated: false,
    },
    Scenario {
        key: "floor-moderation",
        name: "moderation's host calls only (demo config, clean request)",
        filters: Some(&[FLOOR_ENTRY]),
        model: OPENAI_MODEL,
        floor: Some("moderation-calls@lean"),
        moderation: None,
        prompt_template: None,
        templated: false,
    },
    Scenario {
        key: "key-injection",
        name: "key-injection (authenticate + inject)",
        filters: Some(&[
            "sluice.key_injection.authenticate",
            "sluice.key_injection.inject",
        ]),
        model: OPENAI_MODEL,
        floor: None,
        moderation: None,
        prompt_template: None,
        templated: false,
    },
    Scenario {
        key: "token-count",
        name: "token-count alone",
        filters: Some(&["sluice.token_count"]),
        model: OPENAI_MODEL,
        floor: None,
        moderation: None,
        prompt_template: None,
        templated: false,
    },
    Scenario {
        key: "router",
        name: "model-router alone (routing only)",
        filters: Some(&["sluice.model_router"]),
        model: OPENAI_MODEL,
        floor: None,
        moderation: None,
        prompt_template: None,
        templated: false,
    },
    Scenario {
        key: "router-anthropic",
        name: "model-router alone (OpenAI → Anthropic translation)",
        filters: Some(&["sluice.model_router"]),
        model: "claude-sonnet-5-5",
        floor: None,
        moderation: None,
        prompt_template: None,
        templated: false,
    },
    // moderation: the make-run demo config (two detectors masking, one deny rule, injection
    // flagged), and a heavy one (100 keyword rules, 20 patterns, every detector).
    Scenario {
        key: "moderation",
        name: "moderation alone (demo config)",
        filters: Some(&["sluice.moderation"]),
        model: OPENAI_MODEL,
        floor: None,
        moderation: None,
        prompt_template: None,
        templated: false,
    },
    Scenario {
        key: "moderation-heavy",
        name: "moderation alone (100 keywords, 20 patterns, every detector)",
        filters: Some(&["sluice.moderation"]),
        model: OPENAI_MODEL,
        floor: None,
        moderation: Some(heavy_moderation_config),
        prompt_template: None,
        templated: false,
    },
    // prompt-template: a templated request (expanded, written back), and an untemplated one on
    // a route no rule could change (its body is never read).
    Scenario {
        key: "template",
        name: "prompt-template alone (templated request)",
        filters: Some(&["sluice.prompt_template"]),
        model: OPENAI_MODEL,
        floor: None,
        moderation: None,
        prompt_template: Some(bench_template_config),
        templated: true,
    },
    Scenario {
        key: "template-plain",
        name: "prompt-template alone (untemplated, no rule of its route applies)",
        filters: Some(&["sluice.prompt_template"]),
        model: OPENAI_MODEL,
        floor: None,
        moderation: None,
        prompt_template: Some(bench_template_config),
        templated: false,
    },
    Scenario {
        key: "chain",
        name: "whole Sluice chain",
        filters: Some(&[]),
        model: OPENAI_MODEL,
        floor: None,
        moderation: None,
        prompt_template: None,
        templated: false,
    },
];

/// Starts the Envoy of the scenario named `key` (e.g. `floor-body`) in front of the mock.
pub fn start_scenario(key: &str, mock_port: u16) -> Result<Envoy, String> {
    let scenario = SCENARIOS
        .iter()
        .find(|s| s.key == key)
        .ok_or_else(|| format!("no bench scenario {key}"))?;
    start(scenario, mock_port)
}

fn start(scenario: &Scenario, mock_port: u16) -> Result<Envoy, String> {
    match scenario.filters {
        None => Envoy::start_template("envoy/bare.yaml", mock_port, &BTreeMap::new()),
        Some(keep) => Envoy::start_config(|port, admin| {
            let mut overrides = BTreeMap::new();
            if let Some(config) = scenario.moderation {
                overrides.insert("moderation".to_owned(), config());
            }
            if let Some(config) = scenario.prompt_template {
                overrides.insert("prompt_template".to_owned(), config());
            }
            let config = render_template(
                "envoy/sluice.yaml",
                &template_vars(port, admin, mock_port),
                &overrides,
            )?;
            let config = if keep.is_empty() {
                config
            } else {
                only_filters(&config, keep)
            };
            Ok(match scenario.floor {
                Some(mode) => floor_entry(&config, mode)?,
                None => config,
            })
        }),
    }
}

/// The config with its moderation entry running `tests/floor-filter` in `mode` instead; a
/// mode ending in `@lean` runs its copy without the `on_log` and `on_done` exports
/// (`floor_filter_lean.wasm`, made by `make wasm`), as the filters have them: the rows
/// standing for one filter's own calls.
fn floor_entry(config: &str, mode: &str) -> Result<String, String> {
    let code = "/moderation.wasm\"";
    if !config.contains(code) {
        return Err(
            "envoy/sluice.yaml's moderation entry changed: update bench::floor_entry".into(),
        );
    }
    let (mode, module) = match mode.strip_suffix("@lean") {
        Some(mode) => (mode, "/floor_filter_lean.wasm\""),
        None => (mode, "/floor_filter.wasm\""),
    };
    let config = crate::render::set_plugin_config(config, "moderation", mode)?;
    Ok(config
        .replace(code, module)
        .replace("vm_id: moderation", "vm_id: floor"))
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A chat request of about `size` bytes.
pub fn chat_body(size: usize) -> String {
    chat_body_for(OPENAI_MODEL, size)
}

/// A chat request for `model` of about `size` bytes.
pub fn chat_body_for(model: &str, size: usize) -> String {
    let head = format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":""#);
    let tail = r#""}]}"#;
    let filler = "The quick brown fox jumps over the lazy dog. ";
    let want = size.saturating_sub(head.len() + tail.len());
    let text: String = filler.chars().cycle().take(want).collect();
    format!("{head}{text}{tail}")
}

/// One wrk run's figures.
#[derive(Debug, Clone, Default)]
pub struct WrkResult {
    pub rps: f64,
    /// Requests completed in the run.
    pub requests: u64,
    /// The Envoy's CPU time (user and system) per request, in microseconds.
    pub cpu_us: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub non_2xx: u64,
    pub socket_errors: bool,
}

fn parse_duration_ms(text: &str) -> Option<f64> {
    let t = text.trim();
    let (num, factor) = if let Some(n) = t.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (t, 1.0)
    };
    num.parse::<f64>().ok().map(|v| v * factor)
}

/// Reads the figures out of `wrk --latency` output.
pub fn parse_wrk(output: &str) -> WrkResult {
    let mut r = WrkResult::default();
    for line in output.lines() {
        let line = line.trim();
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            r.rps = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = line.strip_prefix("50%") {
            r.p50_ms = parse_duration_ms(v).unwrap_or(0.0);
        } else if let Some(v) = line.strip_prefix("99%") {
            r.p99_ms = parse_duration_ms(v).unwrap_or(0.0);
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            r.non_2xx = v.trim().parse().unwrap_or(0);
        } else if let Some((n, _)) = line.split_once(" requests in ") {
            r.requests = n.trim().parse().unwrap_or(0);
        } else if line.starts_with("Socket errors:") {
            r.socket_errors = true;
        }
    }
    r
}

fn wrk(
    url: &str,
    script: &std::path::Path,
    seconds: u64,
    connections: u64,
) -> Result<WrkResult, String> {
    let out = Command::new("wrk")
        .args([
            "-t",
            "2",
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{seconds}s"),
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(url)
        .output()
        .map_err(|e| format!("cannot run wrk (make bench installs it): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "wrk failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(parse_wrk(&text))
}

fn mib(kib: Option<u64>) -> String {
    kib.map(|k| format!("{:.0} MB", k as f64 / 1024.0))
        .unwrap_or_else(|| "?".to_owned())
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

/// About `size` bytes of mixed text (the token corpus: many scripts, emoji, code, whitespace).
fn mixed_text(size: usize) -> String {
    let corpus = std::fs::read_to_string(
        paths::repo().join("filters/sluice-core/testdata/tokens/corpus.json"),
    )
    .unwrap_or_default();
    let parsed: serde_json::Value = serde_json::from_str(&corpus).unwrap_or_default();
    let pieces: Vec<&str> = parsed["entries"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["text"].as_str()).collect())
        .unwrap_or_default();
    let mut text = String::with_capacity(size + 1024);
    while text.len() < size && !pieces.is_empty() {
        for p in &pieces {
            text.push_str(p);
            text.push(' ');
        }
    }
    text
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Counting speed, native `tiktoken-rs` against the token-count filter inside Envoy, on the same
/// 512 KB chat request: native is timed in this process; in the filter it is the extra latency
/// of Envoy with token-count over bare Envoy (so it includes reading and parsing the body).
/// Sluice's tokenizer compiled natively is shown too.
fn tokenizer_speed(bare: &Envoy, counting: &Envoy) -> Result<String, String> {
    use sluice_core::token_count::tokenizer::Tokenizer;
    let filler = "The quick brown fox jumps over the lazy dog. ";
    let texts = [
        ("mixed", mixed_text(512 * 1024)),
        ("English", filler.repeat(512 * 1024 / filler.len())),
    ];
    let mut rows = String::from(
        "\n## Counting speed (512 KB of text, one chat message)\n\n\
         Mixed: the token corpus repeated (many scripts, emoji, code, long runs). English: the \
         throughput runs' filler.\n\n\
         | encoding (model) | text | native tiktoken-rs | Sluice's tokenizer, native | in the filter through Envoy | filter vs tiktoken-rs |\n|---|---|---|---|---|---|\n",
    );
    let encodings = [
        (
            "gpt-4o",
            "o200k_base",
            Tokenizer::o200k_base()?,
            tiktoken_rs::o200k_base().map_err(|e| e.to_string())?,
        ),
        (
            "gpt-4",
            "cl100k_base",
            Tokenizer::cl100k_base()?,
            tiktoken_rs::cl100k_base().map_err(|e| e.to_string())?,
        ),
    ];
    for ((model, encoding, ours, tiktoken), (kind, text)) in encodings
        .iter()
        .flat_map(|e| texts.iter().map(move |t| (e, t)))
    {
        let mb = text.len() as f64 / 1e6;
        let body =
            serde_json::json!({"model": model, "messages": [{"role": "user", "content": text}]})
                .to_string();
        let (mut native, mut sluice) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            let t = std::time::Instant::now();
            let theirs = tiktoken.encode_ordinary(text).len() as u64;
            native.push(t.elapsed().as_secs_f64());
            let t = std::time::Instant::now();
            let mine = ours.count(text);
            sluice.push(t.elapsed().as_secs_f64());
            if theirs != mine {
                return Err(format!(
                    "{encoding}: tiktoken-rs {theirs} tokens, Sluice {mine}"
                ));
            }
        }
        let headers = [DEMO_AUTH, ("x-mock-reply", "ok"), ("x-mock-count", "words")];
        let (mut via_bare, mut via_filter) = (Vec::new(), Vec::new());
        for _ in 0..7 {
            for (envoy, times) in [(bare, &mut via_bare), (counting, &mut via_filter)] {
                let t = std::time::Instant::now();
                let resp = http::post(
                    &envoy.url("/v1/chat/completions"),
                    body.as_bytes(),
                    &headers,
                )?;
                if resp.status != 200 {
                    return Err(format!(
                        "512 KB request answered {}: {}",
                        resp.status,
                        resp.text()
                    ));
                }
                times.push(t.elapsed().as_secs_f64());
            }
        }
        let native_mbs = mb / median(native).max(1e-9);
        let sluice_mbs = mb / median(sluice).max(1e-9);
        let extra = (median(via_filter) - median(via_bare)).max(1e-9);
        let filter_mbs = mb / extra;
        rows.push_str(&format!(
            "| {encoding} ({model}) | {kind} | {native_mbs:.1} MB/s | {sluice_mbs:.1} MB/s | {filter_mbs:.1} MB/s | {:.2}x |\n",
            filter_mbs / native_mbs
        ));
    }
    Ok(rows)
}

/// moderation's scanning speed: the heavy config's whole request moderation (rules, injection
/// heuristics, every PII detector) natively in this process, and inside Envoy as the CPU per
/// 32 KB request it adds over bare Envoy (body read and JSON parse included).
fn moderation_speed(extra_cpu_us: Option<f64>) -> Result<String, String> {
    use sluice_core::endpoint::Endpoint;
    use sluice_core::moderation::config::ModerationConfig;
    use sluice_core::moderation::engine::Engine;
    let config: ModerationConfig = sluice_core::parse_config(heavy_moderation_config().as_bytes())
        .map_err(|e| e.to_string())?;
    let engine = Engine::new(&config).map_err(|e| e.to_string())?;
    let body = chat_body(32 * 1024);
    let value: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    let mb = body.len() as f64 / 1e6;
    let mut times = Vec::new();
    for _ in 0..21 {
        let mut v = value.clone();
        let t = std::time::Instant::now();
        let report = engine.moderate_request(&mut v, Endpoint::Chat, &Default::default());
        times.push(t.elapsed().as_secs_f64());
        if report.blocked.is_some() {
            return Err("the heavy config blocked the benchmark text".to_owned());
        }
    }
    let native = mb / median(times).max(1e-9);
    let in_filter = extra_cpu_us
        .filter(|us| *us > 0.0)
        .map_or("-".to_owned(), |us| format!("{:.1} MB/s", mb / (us / 1e6)));
    Ok(format!(
        "\n## Moderation scanning speed (32 KB chat request, 100 keyword rules, 20 patterns, every PII detector, injection heuristics)\n\n\
         | native (`regex` + `aho-corasick` in this process, the filter's own engine) | in the filter (Envoy CPU per request over bare Envoy) |\n|---|---|\n\
         | {native:.1} MB/s | {in_filter} |\n"
    ))
}

/// Streamed answers through bare Envoy and through moderation with rules on answers: the time
/// to the first body byte and to the end, medians of sequential requests.
fn stream_delay(bare: &Envoy, moderated: &Envoy) -> Result<String, String> {
    use std::io::{Read, Write};
    let body = serde_json::json!({"model": OPENAI_MODEL, "stream": true,
        "messages": [{"role": "user", "content": "Tell me a story about the river and the sea, in forty words or so."}]})
    .to_string();
    let measure = |envoy: &Envoy| -> Result<(f64, f64, f64), String> {
        let (mut first, mut event, mut whole) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..60 {
            let mut conn = std::net::TcpStream::connect(("127.0.0.1", envoy.port))
                .map_err(|e| e.to_string())?;
            conn.set_nodelay(true).map_err(|e| e.to_string())?;
            let request = format!(
                "POST /v1/chat/completions HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n\
                 {}: {}\r\nx-mock-chunk-delay-ms: 1\r\nx-mock-chunk-bytes: 40\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
                DEMO_AUTH.0,
                DEMO_AUTH.1,
                body.len()
            );
            let t = std::time::Instant::now();
            conn.write_all(request.as_bytes())
                .map_err(|e| e.to_string())?;
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            let mut first_at = None;
            let mut event_at = None;
            loop {
                let n = conn.read(&mut buf).map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                got.extend_from_slice(buf.get(..n).unwrap_or_default());
                if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                    let body = got.get(end + 4..).unwrap_or_default();
                    if first_at.is_none() && !body.is_empty() {
                        first_at = Some(t.elapsed().as_secs_f64());
                    }
                    // The first whole event: an empty line inside the (chunked) body.
                    if event_at.is_none() && body.windows(2).any(|w| w == b"\n\n") {
                        event_at = Some(t.elapsed().as_secs_f64());
                    }
                }
            }
            whole.push(t.elapsed().as_secs_f64());
            first.push(first_at.unwrap_or(0.0));
            event.push(event_at.unwrap_or(0.0));
            // Whole: a 200, and the chunked body's last (empty) chunk.
            if !got.starts_with(b"HTTP/1.1 200") || !got.ends_with(b"0\r\n\r\n") {
                return Err(format!(
                    "a streamed bench answer was not whole: {}",
                    String::from_utf8_lossy(&got)
                ));
            }
        }
        Ok((
            median(first) * 1000.0,
            median(event) * 1000.0,
            median(whole) * 1000.0,
        ))
    };
    let (bare_first, bare_event, bare_whole) = measure(bare)?;
    let (mod_first, mod_event, mod_whole) = measure(moderated)?;
    Ok(format!(
        "\n## Streamed answer through moderation (demo config: a rule on answers, masking on)\n\n\
         60 sequential requests each, the mock sending 40-byte pieces 1 ms apart; medians. \
         The filter passes events, not bytes: its first byte is its first whole event.\n\n\
         | config | first body byte | first whole event | whole stream |\n|---|---|---|---|\n\
         | bare Envoy | {bare_first:.2} ms | {bare_event:.2} ms | {bare_whole:.2} ms |\n\
         | moderation alone (demo config) | {mod_first:.2} ms (+{:.2}) | {mod_event:.2} ms (+{:.2}) | {mod_whole:.2} ms (+{:.2}) |\n",
        mod_first - bare_first,
        mod_event - bare_event,
        mod_whole - bare_whole
    ))
}

/// One config for [`side_by_side`].
struct Run<'a> {
    key: &'a str,
    envoy: &'a Envoy,
    url: String,
    script: &'a std::path::Path,
}

/// Each target's row against its floor row and its own floor row, loaded by wrk at the same
/// time (half the connections each) for `seconds`, `pairs` times: both share the machine's
/// state over the same seconds, so its drift is common to both. Envoy CPU per request of
/// each from its threads' run time in nanoseconds.
fn side_by_side(
    runs: &[Run],
    pairs: u64,
    seconds: u64,
    connections: u64,
) -> Result<SideBySide, String> {
    let find = |key: &str| runs.iter().find(|r| r.key == key);
    let measure = |r: &Run| -> Result<f64, String> {
        let cpu = || {
            r.envoy
                .cpu_ns()
                .ok_or_else(|| format!("cannot read the CPU time of {}", r.key))
        };
        let before = cpu()?;
        let w = wrk(&r.url, r.script, seconds, (connections / 2).max(1))?;
        // A thread's run time is brought up to date when it next sleeps.
        std::thread::sleep(Duration::from_millis(20));
        Ok(cpu()?.saturating_sub(before) as f64 / 1000.0 / w.requests.max(1) as f64)
    };
    let mut out = SideBySide::new();
    for t in &TARGETS {
        for floor in [t.floor, t.own_floor] {
            let (Some(row), Some(base)) = (find(t.row), find(floor)) else {
                continue;
            };
            let mut diffs = Vec::new();
            for pair in 0..pairs {
                let (a, b) = std::thread::scope(|scope| {
                    let a = scope.spawn(|| measure(row));
                    let b = measure(base);
                    (a.join(), b)
                });
                let a = a.map_err(|_| "side by side: a wrk thread panicked".to_owned())??;
                let b = b?;
                eprintln!(
                    "bench: side by side {}/{pairs}: {} {a:.1} µs, {floor} {b:.1} µs: {:+.1}",
                    pair + 1,
                    t.row,
                    a - b
                );
                diffs.push(a - b);
            }
            if let Some(e) = Estimate::of(&diffs) {
                out.insert((t.row, floor), e);
            }
        }
    }
    Ok(out)
}

/// The wrk script for one request body.
fn wrk_script(dir: &std::path::Path, body: &str) -> Result<std::path::PathBuf, String> {
    let script = dir.join(format!(
        "post-{}-{}.lua",
        body.len(),
        body.find("claude").is_some()
    ));
    let lua = format!(
        "wrk.method = \"POST\"\n\
         wrk.headers[\"content-type\"] = \"application/json\"\n\
         wrk.headers[\"{}\"] = \"{}\"\n\
         wrk.headers[\"x-mock-reply\"] = \"ok\"\n\
         wrk.headers[\"x-mock-count\"] = \"words\"\n\
         wrk.body = {}\n",
        DEMO_AUTH.0,
        DEMO_AUTH.1,
        serde_json::to_string(body).map_err(|e| e.to_string())?
    );
    std::fs::write(&script, lua).map_err(|e| format!("cannot write wrk script: {e}"))?;
    Ok(script)
}

/// Averages of one config's rounds.
#[derive(Clone, Copy)]
struct Summary {
    rps: f64,
    cpu_us: f64,
    p50: f64,
    p99: f64,
    errors: u64,
}

fn summarise(rs: &[WrkResult]) -> Summary {
    Summary {
        rps: mean(&rs.iter().map(|r| r.rps).collect::<Vec<_>>()),
        cpu_us: mean(&rs.iter().map(|r| r.cpu_us).collect::<Vec<_>>()),
        p50: mean(&rs.iter().map(|r| r.p50_ms).collect::<Vec<_>>()),
        p99: mean(&rs.iter().map(|r| r.p99_ms).collect::<Vec<_>>()),
        errors: rs.iter().map(|r| r.non_2xx).sum(),
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    a / b.max(f64::MIN_POSITIVE)
}

pub fn run() -> Result<(), String> {
    let seconds = env_num("SLUICE_BENCH_SECONDS", 10).clamp(1, 120);
    let rounds = env_num("SLUICE_BENCH_ROUNDS", 2).clamp(1, 20);
    let connections = env_num("SLUICE_BENCH_CONNECTIONS", 16).clamp(1, 256);
    let sizes: Vec<usize> = std::env::var("SLUICE_BENCH_SIZES_KB")
        .unwrap_or_else(|_| "1,32".to_owned())
        .split(',')
        .filter_map(|s| s.trim().parse::<usize>().ok())
        .filter(|kb| (1..=1024).contains(kb))
        .collect();
    let out_path = std::env::var("SLUICE_BENCH_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| paths::repo().join("bench/out/report.md"));

    let wanted = std::env::var("SLUICE_BENCH_CONFIGS").unwrap_or_else(|_| {
        "bare,floor,floor-body,floor-hold,floor-calls,floor-count,floor-route,floor-path,\
         floor-template,floor-moderation,key-injection,token-count,router,moderation,moderation-heavy,template,\
         template-plain,chain"
            .to_owned()
    });
    let mock = MockProvider::start()?;
    let mut configs = Vec::new();
    let mut keys = Vec::new();
    let mut models = Vec::new();
    for scenario in SCENARIOS
        .iter()
        .filter(|s| wanted.split(',').any(|w| w.trim() == s.key))
    {
        configs.push((scenario.name, start(scenario, mock.port)?));
        keys.push(scenario.key);
        models.push((
            scenario.model,
            scenario.templated,
            scenario.key == "template-plain",
        ));
    }
    if configs.first().map(|(n, _)| *n) != Some("bare Envoy") {
        return Err("SLUICE_BENCH_CONFIGS must include bare (the baseline)".to_owned());
    }
    // The first request each Envoy serves, timed: a filter that builds tables lazily stalls it.
    let first_body = chat_body(1024);
    let mut first_ms = Vec::new();
    for (name, envoy) in &configs {
        let t = std::time::Instant::now();
        let resp = http::post(
            &envoy.url("/v1/chat/completions"),
            first_body.as_bytes(),
            &[DEMO_AUTH],
        )?;
        first_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        if resp.status != 200 {
            return Err(format!("{name} answered {}: {}", resp.status, resp.text()));
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    let idle: Vec<Option<u64>> = configs.iter().map(|(_, e)| e.rss_kib()).collect();
    let heaps: Vec<Option<Allocator>> = configs.iter().map(|(_, e)| e.allocator()).collect();
    let dir = tempfile::tempdir().map_err(|e| format!("no temp dir: {e}"))?;

    let mut report = format!(
        "# Sluice benchmark\n\nChat requests (`POST /v1/chat/completions`, demo key, one user message of \
         the given size), `wrk -t2 -c{connections}`, {rounds} interleaved round(s) of {seconds} s per \
         config, all on 127.0.0.1; Envoy `--concurrency 2`; the mock provider answers `ok` and counts \
         usage by words so that it stays cheap. Ratios are to bare Envoy in the same run. The floor \
         rows run `tests/floor-filter`, which does only what its row says: read one against the \
         next to see what Envoy charges for a Wasm entry, for reading the body, for holding the \
         answer, and for ten host calls. The rows \"token-count's host calls only\" and \
         \"model-router's host calls only\" make exactly the host calls that filter makes on \
         these requests and do nothing else: the most a filter doing that job can reach, and \
         what the filter's own row loses beyond it is its own code's. The floor rows keep every \
         callback the SDK exports; the filters' modules do not export `on_log` and `on_done` \
         (token-count keeps `on_log`), and the rows standing for one filter's calls but \
         token-count's run a copy of the floor filter without them too.\n\n\
         RSS idle is after the first request; of it, Envoy's heap (its allocator's own figures, \
         admin `/memory`): what is allocated, and what the allocator keeps freed without giving it \
         back (already there before the first request: left from loading the modules).\n\n\
         | config | ready after start | first request | RSS idle | Envoy heap allocated | Envoy heap kept free |\n|---|---|---|---|---|---|\n"
    );
    for (i, (name, envoy)) in configs.iter().enumerate() {
        let heap = heaps.get(i).copied().flatten();
        report.push_str(&format!(
            "| {name} | {} ms | {:.1} ms | {} | {} | {} |\n",
            envoy.ready_after.as_millis(),
            first_ms.get(i).copied().unwrap_or(0.0),
            mib(idle.get(i).copied().flatten()),
            mib(heap.map(|h| h.allocated / 1024)),
            mib(heap.map(|h| h.held_free / 1024)),
        ));
    }
    let bare = configs
        .iter()
        .find(|(n, _)| *n == "bare Envoy")
        .map(|(_, e)| e);
    let counting = configs
        .iter()
        .find(|(n, _)| *n == "token-count alone")
        .map(|(_, e)| e);
    if let (Some(bare), Some(counting)) = (bare, counting) {
        eprintln!("bench: counting speed, native and in the filter");
        report.push_str(&tokenizer_speed(bare, counting)?);
    }
    let moderating = configs
        .iter()
        .find(|(n, _)| *n == "moderation alone (demo config)")
        .map(|(_, e)| e);
    if let (Some(bare), Some(moderating)) = (bare, moderating) {
        eprintln!("bench: streamed answers through moderation");
        report.push_str(&stream_delay(bare, moderating)?);
    }
    let mut heavy_extra_cpu = None;
    let ticks_per_second = crate::envoy::clock_ticks_per_second().max(1) as f64;
    for kb in &sizes {
        let mut scripts = Vec::new();
        for (model, templated, _) in &models {
            let body = if *templated {
                templated_body(kb * 1024)
            } else {
                chat_body_for(model, kb * 1024)
            };
            scripts.push(wrk_script(dir.path(), &body)?);
        }
        // The untemplated prompt-template row calls the route its rules leave alone.
        let paths: Vec<&str> = models
            .iter()
            .map(|(_, _, plain)| {
                if *plain {
                    "/v1/chat/completions?plain"
                } else {
                    "/v1/chat/completions"
                }
            })
            .collect();
        eprintln!("bench: {kb} KB body, {rounds} round(s) of {seconds} s per config, {connections} connections");
        for (((_, envoy), script), path) in configs.iter().zip(&scripts).zip(&paths) {
            wrk(&envoy.url(path), script, 2, connections)?; // warm-up
        }
        let mut results: Vec<Vec<WrkResult>> = vec![Vec::new(); configs.len()];
        let count = configs.len();
        for round in 0..rounds {
            // Each round starts one config later, so that no row always runs last in a round:
            // on a loaded machine a row's place in the round moved its figure by 20 µs.
            for k in 0..count {
                let i = (k + usize::try_from(round).unwrap_or(0)) % count;
                let (Some((name, envoy)), Some(script), Some(path)) =
                    (configs.get(i), scripts.get(i), paths.get(i))
                else {
                    continue;
                };
                let cpu_before = envoy.cpu_ticks();
                let mut r = wrk(&envoy.url(path), script, seconds, connections)?;
                if let (Some(before), Some(after)) = (cpu_before, envoy.cpu_ticks()) {
                    let us = (after.saturating_sub(before)) as f64 * 1e6 / ticks_per_second;
                    r.cpu_us = us / r.requests.max(1) as f64;
                }
                eprintln!(
                    "bench: {kb} KB round {} {name}: {:.0} req/s ({:.0} us Envoy CPU each) p50 {:.2} ms p99 {:.2} ms",
                    round + 1,
                    r.rps,
                    r.cpu_us,
                    r.p50_ms,
                    r.p99_ms
                );
                if let Some(slot) = results.get_mut(i) {
                    slot.push(r);
                }
            }
        }
        let summary: Vec<Summary> = results.iter().map(|r| summarise(r)).collect();
        if *kb == 32 {
            let heavy = configs
                .iter()
                .position(|(n, _)| n.starts_with("moderation alone (100"))
                .and_then(|i| summary.get(i));
            if let (Some(heavy), Some(base)) = (heavy, summary.first()) {
                heavy_extra_cpu = Some(heavy.cpu_us - base.cpu_us);
            }
        }
        let base = summary.first().copied().unwrap_or(Summary {
            rps: 1.0,
            cpu_us: 1.0,
            p50: 1.0,
            p99: 1.0,
            errors: 0,
        });
        report.push_str(&format!(
            "\n## {kb} KB request\n\n| config | req/s | vs bare | Envoy CPU per request | vs bare | p50 ms | vs bare | p99 ms | vs bare | non-2xx | RSS after load |\n\
             |---|---|---|---|---|---|---|---|---|---|---|\n"
        ));
        for ((name, envoy), s) in configs.iter().zip(&summary) {
            report.push_str(&format!(
                "| {name} | {:.0} | {:.2}x | {:.0} µs | {:.2}x | {:.2} | {:.2}x | {:.2} | {:.2}x | {} | {} |\n",
                s.rps,
                ratio(s.rps, base.rps),
                s.cpu_us,
                ratio(s.cpu_us, base.cpu_us),
                s.p50,
                ratio(s.p50, base.p50),
                s.p99,
                ratio(s.p99, base.p99),
                s.errors,
                mib(envoy.rss_kib()),
            ));
        }
        if *kb == 1 {
            let runs: Vec<Run> = configs
                .iter()
                .zip(&scripts)
                .zip(&paths)
                .zip(&keys)
                .map(|((((_, envoy), script), path), key)| Run {
                    key,
                    envoy,
                    url: envoy.url(path),
                    script: script.as_path(),
                })
                .collect();
            let pairs = env_num("SLUICE_BENCH_PAIRS", 6).min(40);
            let side = if pairs > 1 {
                eprintln!("bench: the speed targets side by side, {pairs} pairs of {seconds} s");
                side_by_side(&runs, pairs, seconds, connections)?
            } else {
                SideBySide::new()
            };
            report.push_str(&targets_report(&keys, &results, &side));
        }
    }
    if configs
        .iter()
        .any(|(n, _)| n.starts_with("moderation alone (100"))
    {
        report.push_str(&moderation_speed(heavy_extra_cpu)?);
    }
    if let Some(parent) = out_path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    std::fs::write(&out_path, &report).map_err(|e| format!("cannot write report: {e}"))?;
    println!("{report}\nwritten to {}", out_path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_read_from_per_round_differences() {
        let run = |cpu: &[f64]| -> Vec<WrkResult> {
            cpu.iter()
                .map(|&c| WrkResult {
                    cpu_us: c,
                    ..WrkResult::default()
                })
                .collect()
        };
        // The floor drifts between rounds; the row stays 5 µs above it in each.
        let floor = run(&[100.0, 140.0, 120.0]);
        let row = run(&[105.0, 144.0, 126.0]);
        assert_eq!(paired_difference(&row, &floor), Some((5.0, 4.0, 6.0)));
        let keys = ["bare", "floor", "template-plain", "floor-body", "template"];
        let results = vec![
            run(&[90.0, 90.0, 90.0]),
            floor,
            row,
            run(&[100.0, 100.0, 100.0]),
            run(&[107.0, 109.0, 108.0]),
        ];
        // Without side-by-side figures, the rounds' median decides.
        let none = SideBySide::new();
        let report = targets_report(&keys, &results, &none);
        assert!(
            report.contains("| `template-plain` | `floor` | - | ≤ +3 µs | not met | `floor-path`: - | +5.0 (+4 … +6) | - |"),
            "{report}"
        );
        assert!(
            report.contains("| `template` | `floor-body` | - | ≤ +8 µs | met |"),
            "{report}"
        );
        assert!(!report.contains("`moderation`"), "{report}");
        assert_eq!(targets_report(&keys[..2], &results, &none), "");
        // With them, their interval decides.
        let mut side = SideBySide::new();
        side.insert(
            ("template", "floor-body"),
            Estimate::of(&[9.0, 10.0, 11.0]).unwrap(),
        );
        side.insert(
            ("template-plain", "floor"),
            Estimate::of(&[1.0, 2.0, 3.0]).unwrap(),
        );
        let report = targets_report(&keys, &results, &side);
        assert!(
            report.contains("| `template` | `floor-body` | +10.0 ± 2.5 µs (median +10.0) | ≤ +8 µs | undecided |"),
            "{report}"
        );
        assert!(
            report.contains("| `template-plain` | `floor` | +2.0 ± 2.5 µs (median +2.0) | ≤ +3 µs | undecided |"),
            "{report}"
        );
    }

    #[test]
    fn estimates_give_a_t_interval_and_a_verdict() {
        // Five values 1..5: mean 3, sd 1.58, t(4) 2.776: half-width 1.96.
        let e = Estimate::of(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        assert_eq!(e.mean, 3.0);
        assert_eq!(e.median, 3.0);
        assert!((e.half_width - 1.963).abs() < 0.001, "{e:?}");
        assert_eq!(e.verdict(5.0), "met");
        assert_eq!(e.verdict(0.9), "not met");
        assert_eq!(e.verdict(3.0), "undecided");
        assert!(Estimate::of(&[1.0]).is_none());
        assert_eq!(t_975(1), 12.706);
        assert_eq!(t_975(30), 2.042);
        assert!(t_975(0).is_infinite());
        assert!((t_975(120) - 1.98).abs() < 0.001);
    }

    #[test]
    fn parses_wrk_latency_output() {
        let out = "Running 2s test @ http://127.0.0.1:1/\n  Latency Distribution\n     50%  470.00us\n     75%    1.00ms\n     90%    2.00ms\n     99%    1.23s\n  1000 requests in 2.00s\n  Non-2xx or 3xx responses: 3\nRequests/sec:  12345.67\n";
        let r = parse_wrk(out);
        assert_eq!(r.rps, 12345.67);
        assert!((r.p50_ms - 0.47).abs() < 1e-9);
        assert!((r.p99_ms - 1230.0).abs() < 1e-9);
        assert_eq!(r.non_2xx, 3);
        assert_eq!(r.requests, 1000);
    }

    #[test]
    fn chat_body_is_about_the_asked_size_and_valid_json() {
        let b = chat_body(1024);
        assert_eq!(b.len(), 1024);
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["model"], "gpt-4o-mini");
    }
}
