//! Envoy metrics from a Wasm filter: counters and histograms by name, defined on first use.
//!
//! Names come from `sluice_core::metrics::stat_name`. Each distinct name is a separate Envoy
//! stat, so label values that callers control (a model name) could grow the set without bound:
//! past `max_series` names per VM, new ones are folded into the base name's `overflow` series.
//!
//! Each increment is a host call, and host calls are a Wasm filter's main per-request cost. A
//! filter with a tick can make its counters batched: increments add up in the VM and go to
//! Envoy once per tick ([`Metrics::flush`]), so Envoy's counters trail by at most one tick (a
//! VM torn down between ticks loses at most that much). Histograms record each value at once.

use std::cell::RefCell;
use std::collections::HashMap;

use foldhash::fast::FixedState;

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

/// Looked up on every request: foldhash, not std's SipHash. Label values callers choose (a
/// model name) could be made to collide, but at most `max_series` names are ever kept, which
/// bounds the worst lookup.
type Map<K, V> = HashMap<K, V, FixedState>;

pub struct Metrics {
    ids: RefCell<Map<String, u32>>,
    max_series: usize,
    /// Counter increments not yet sent, by metric id (`None`: sent at once).
    pending: Option<RefCell<Map<u32, u64>>>,
}

impl Metrics {
    /// Counters sent to Envoy at each increment.
    pub fn new(max_series: usize) -> Self {
        Metrics {
            ids: RefCell::new(Map::default()),
            max_series,
            pending: None,
        }
    }

    /// Counters added up in the VM until [`Metrics::flush`] (call it on every tick).
    pub fn batched(max_series: usize) -> Self {
        Metrics {
            pending: Some(RefCell::new(Map::default())),
            ..Metrics::new(max_series)
        }
    }

    /// Sends the batched counter increments.
    pub fn flush(&self) {
        let Some(pending) = &self.pending else {
            return;
        };
        for (id, by) in pending.borrow_mut().drain() {
            increment(id, by);
        }
    }

    fn id(&self, kind: MetricType, name: &str, base: &str) -> Option<u32> {
        if let Some(id) = self.ids.borrow().get(name) {
            return Some(*id);
        }
        let full = self.ids.borrow().len() >= self.max_series;
        let name = if full {
            format!("{base}.overflow.true")
        } else {
            name.to_owned()
        };
        if let Some(id) = self.ids.borrow().get(&name) {
            return Some(*id);
        }
        match hostcalls::define_metric(kind, &name) {
            Ok(id) => {
                self.ids.borrow_mut().insert(name, id);
                Some(id)
            }
            Err(status) => {
                log::warn!("sluice: cannot define metric {name}: {status:?}");
                None
            }
        }
    }

    /// The id of counter `name` (of metric `base`), defined at 0 on first use; `None` when
    /// Envoy refused it. For a caller that keeps ids, so that it builds a name only once.
    pub fn counter_id(&self, base: &str, name: &str) -> Option<u32> {
        self.id(MetricType::Counter, name, base)
    }

    /// The id of histogram `name` (of metric `base`), as [`Metrics::counter_id`].
    pub fn histogram_id(&self, base: &str, name: &str) -> Option<u32> {
        self.id(MetricType::Histogram, name, base)
    }

    /// Adds `by` to counter `id` (Envoy refuses a 0 increment, so none is sent).
    pub fn add(&self, id: u32, by: u64) {
        if by == 0 {
            return;
        }
        match &self.pending {
            Some(pending) => {
                let mut pending = pending.borrow_mut();
                let sum = pending.entry(id).or_insert(0);
                *sum = sum.saturating_add(by);
            }
            None => increment(id, by),
        }
    }

    /// Records `value` in histogram `id`.
    pub fn record_in(&self, id: u32, value: u64) {
        if let Err(status) = hostcalls::record_metric(id, value) {
            log::warn!("sluice: cannot record in metric {id}: {status:?}");
        }
    }

    /// Adds `by` to counter `name` (defining it at 0 on first use).
    pub fn count(&self, base: &str, name: &str, by: u64) {
        if let Some(id) = self.counter_id(base, name) {
            self.add(id, by);
        }
    }

    /// Records one value in histogram `name`.
    pub fn record(&self, base: &str, name: &str, value: u64) {
        if let Some(id) = self.histogram_id(base, name) {
            self.record_in(id, value);
        }
    }
}

fn increment(id: u32, by: u64) {
    let by = i64::try_from(by).unwrap_or(i64::MAX);
    if let Err(status) = hostcalls::increment_metric(id, by) {
        log::warn!("sluice: cannot increment metric {id}: {status:?}");
    }
}
