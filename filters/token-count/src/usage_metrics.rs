//! token-count's metrics, by model and consumer: a request counter, a token counter per token
//! type reported, the input/output histogram (OpenTelemetry's `gen_ai.client.token.usage`),
//! and the cost.
//!
//! Labels travel in the stat names (`sluice_core::metrics::stat_name`), so each series is a
//! name to build and look up. A (model, consumer) pair's series are named once, when the pair
//! first needs them, and their ids kept: a later request of the pair costs one lookup instead
//! of eight names built and looked up (measured under Node: about as long as counting the
//! prompt of a 1 KB request).

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;

use sluice_core::metrics::stat_name;
use sluice_host::metrics::Metrics;

const REQUESTS: &str = "sluice_token_count_requests_total";
const TOKENS: &str = "sluice_token_count_tokens_total";
const COST: &str = "sluice_token_count_cost_microdollars_total";
/// OpenTelemetry's `gen_ai.client.token.usage`, input and output only.
const USAGE: &str = "gen_ai_client_token_usage";

/// Token types, in the order of [`Used::by_type`].
const TOKEN_TYPES: [&str; 4] = ["input", "output", "cached_input", "reasoning"];

/// Distinct series a VM may define (beyond, `Metrics` folds new names into `overflow`).
const MAX_SERIES: usize = 2000;
/// (model, consumer) pairs whose ids are kept; past it the kept ids are dropped and named again.
const MAX_PAIRS: usize = 1024;
/// Longest model or consumer kept as a key. A model name is the caller's to choose and has no
/// bound; a stat name keeps 64 characters of a label value anyway. A longer pair is named on
/// every request instead, so what is kept stays under about 200 KB.
const MAX_KEY_BYTES: usize = 64;

/// A metric's id once named (`None` inside: Envoy refused it).
type Slot = OnceCell<Option<u32>>;

/// The ids of one (model, consumer) pair's series, each named on first use.
#[derive(Default)]
struct Series {
    requests: Slot,
    tokens: [Slot; 4],
    usage: [Slot; 2],
    cost: Slot,
}

/// What one request used, as its metrics record it.
pub struct Used<'a> {
    pub model: &'a str,
    pub consumer: &'a str,
    pub input: u64,
    pub output: Option<u64>,
    pub cached: Option<u64>,
    pub reasoning: Option<u64>,
    /// Set for a successful answer whose model has a price.
    pub cost_micros: Option<u64>,
}

impl Used<'_> {
    fn by_type(&self) -> [Option<u64>; 4] {
        [Some(self.input), self.output, self.cached, self.reasoning]
    }
}

pub struct UsageMetrics {
    metrics: Metrics,
    /// Model → consumer → ids.
    kept: RefCell<HashMap<String, HashMap<String, Series>>>,
    pairs: Cell<usize>,
}

impl UsageMetrics {
    /// Counters add up in the VM until [`UsageMetrics::flush`].
    pub fn batched() -> Self {
        UsageMetrics {
            metrics: Metrics::batched(MAX_SERIES),
            kept: RefCell::new(HashMap::new()),
            pairs: Cell::new(0),
        }
    }

    /// Sends the batched counter increments (on every tick).
    pub fn flush(&self) {
        self.metrics.flush();
    }

    /// Adds one request's usage.
    pub fn add(&self, used: &Used) {
        if used.model.len() > MAX_KEY_BYTES || used.consumer.len() > MAX_KEY_BYTES {
            self.add_to(&Series::default(), used);
            return;
        }
        let mut kept = self.kept.borrow_mut();
        if let Some(series) = kept.get(used.model).and_then(|c| c.get(used.consumer)) {
            self.add_to(series, used);
            return;
        }
        // A pair not seen yet: named now, then kept.
        let series = Series::default();
        self.add_to(&series, used);
        if self.pairs.get() >= MAX_PAIRS {
            kept.clear();
            self.pairs.set(0);
        }
        self.pairs.set(self.pairs.get() + 1);
        kept.entry(used.model.to_owned())
            .or_default()
            .insert(used.consumer.to_owned(), series);
    }

    fn add_to(&self, series: &Series, used: &Used) {
        let m = &self.metrics;
        let (model, consumer) = (used.model, used.consumer);
        let who = [("model", model), ("consumer", consumer)];
        let requests = series
            .requests
            .get_or_init(|| m.counter_id(REQUESTS, &stat_name(REQUESTS, &who)));
        if let Some(id) = requests {
            m.add(*id, 1);
        }
        let usage = series.usage.iter().map(Some).chain([None, None]);
        for (((kind, value), slot), usage_slot) in TOKEN_TYPES
            .iter()
            .zip(used.by_type())
            .zip(&series.tokens)
            .zip(usage)
        {
            let Some(value) = value else { continue };
            let labels = [
                ("token_type", *kind),
                ("model", model),
                ("consumer", consumer),
            ];
            if let Some(id) = slot.get_or_init(|| m.counter_id(TOKENS, &stat_name(TOKENS, &labels)))
            {
                m.add(*id, value);
            }
            let Some(usage_slot) = usage_slot else {
                continue; // the histogram is input and output only
            };
            let otel = [
                ("gen_ai_token_type", *kind),
                ("gen_ai_request_model", model),
                ("consumer", consumer),
            ];
            if let Some(id) =
                usage_slot.get_or_init(|| m.histogram_id(USAGE, &stat_name(USAGE, &otel)))
            {
                m.record_in(*id, value);
            }
        }
        if let Some(micros) = used.cost_micros {
            let cost = series
                .cost
                .get_or_init(|| m.counter_id(COST, &stat_name(COST, &who)));
            if let Some(id) = cost {
                m.add(*id, micros);
            }
        }
    }
}
