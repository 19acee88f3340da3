//! Envoy metrics from a Wasm filter: counters and histograms by name, defined on first use.
//!
//! Names come from `sluice_core::metrics::stat_name`. Each distinct name is a separate Envoy
//! stat, so label values that callers control (a model name) could grow the set without bound:
//! past `max_series` names per VM, new ones are folded into the base name's `overflow` series.

use std::cell::RefCell;
use std::collections::HashMap;

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

pub struct Metrics {
    ids: RefCell<HashMap<String, u32>>,
    max_series: usize,
}

impl Metrics {
    pub fn new(max_series: usize) -> Self {
        Metrics {
            ids: RefCell::new(HashMap::new()),
            max_series,
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

    /// Adds `by` to a counter (defining it at 0 on first use; Envoy refuses a 0 increment,
    /// so none is sent).
    pub fn count(&self, base: &str, name: &str, by: u64) {
        if let Some(id) = self.id(MetricType::Counter, name, base) {
            if by == 0 {
                return;
            }
            let by = i64::try_from(by).unwrap_or(i64::MAX);
            if let Err(status) = hostcalls::increment_metric(id, by) {
                log::warn!("sluice: cannot increment {name}: {status:?}");
            }
        }
    }

    /// Records one value in a histogram.
    pub fn record(&self, base: &str, name: &str, value: u64) {
        if let Some(id) = self.id(MetricType::Histogram, name, base) {
            if let Err(status) = hostcalls::record_metric(id, value) {
                log::warn!("sluice: cannot record {name}: {status:?}");
            }
        }
    }
}
