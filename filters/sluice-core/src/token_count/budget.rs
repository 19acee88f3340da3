//! Token budgets that cannot overshoot: reserve before forwarding, settle after the answer.
//!
//! A request reserves its prompt tokens plus the completion it may produce in every budget that
//! applies to it (per consumer, per tenant). The reservation is a compare-and-swap on a counter
//! that all workers share (Envoy shared data), so concurrent requests cannot both take the last
//! tokens. When the answer is done the reservation is settled to what was really used.
//!
//! Windows are fixed (`used` resets at each window start) or sliding (the sliding-window
//! counter: the previous window's use, weighted by how much of it still overlaps, plus the
//! current one's). Each budget and scope id keeps two slots, for the current and the previous
//! window, reused forever: shared data does not grow with time.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::{require_non_empty, require_range, ConfigError, JsonPath};

/// Whose tokens a budget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Consumer,
    Tenant,
}

/// One budget rule of the config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// Names the budget in shared-data keys and logs.
    pub name: String,
    pub scope: Scope,
    /// Window length in seconds: 60 per minute, 86400 per day.
    pub window_seconds: u64,
    /// Sliding instead of fixed window.
    #[serde(default)]
    pub sliding: bool,
    /// Tokens per window for every consumer (or tenant) …
    pub tokens: u64,
    /// … except these.
    #[serde(default)]
    pub overrides: BTreeMap<String, u64>,
}

impl BudgetConfig {
    pub fn validate(&self, path: &JsonPath) -> Result<(), ConfigError> {
        require_non_empty(&path.field("name"), &self.name)?;
        if !self
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
        {
            return Err(path.field("name").error("use letters, digits, '-' and '_'"));
        }
        require_range(
            &path.field("window_seconds"),
            self.window_seconds,
            1,
            31 * 86_400,
        )?;
        require_range(&path.field("tokens"), self.tokens, 1, u64::MAX / 4)?;
        for (id, n) in &self.overrides {
            require_range(&path.field("overrides").key(id), *n, 0, u64::MAX / 4)?;
        }
        Ok(())
    }

    fn limit_for(&self, id: &str) -> u64 {
        self.overrides.get(id).copied().unwrap_or(self.tokens)
    }
}

/// Shared counters with compare-and-swap (Envoy shared data in the filter, a map in tests).
pub trait Store {
    /// The value and its CAS token.
    fn get(&self, key: &str) -> (Option<String>, Option<u32>);
    /// Writes if nobody wrote since `cas` was read; false when the race was lost.
    fn set(&self, key: &str, value: &str, cas: Option<u32>) -> bool;
}

/// One slot: the window it counts and the tokens used in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Slot {
    start: u64,
    used: u64,
}

impl Slot {
    fn parse(text: Option<&str>) -> Slot {
        text.and_then(|t| {
            let (start, used) = t.split_once(':')?;
            Some(Slot {
                start: start.parse().ok()?,
                used: used.parse().ok()?,
            })
        })
        .unwrap_or_default()
    }

    fn encode(self) -> String {
        format!("{}:{}", self.start, self.used)
    }
}

fn slot_key(budget: &str, id: &str, window_start: u64, window: u64) -> String {
    let parity = (window_start / window.max(1)) % 2;
    format!("sluice.token_count.budget.{budget}.{id}.{parity}")
}

/// What one budget says about a request: its limit, what is left, seconds until reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub limit: u64,
    pub remaining: u64,
    pub reset_secs: u64,
}

/// The answer headers a budget's standing is told in (OpenAI's names): limit, remaining, reset.
pub const RATELIMIT_TOKEN_HEADERS: [&str; 3] = [
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
];

impl Standing {
    /// The `x-ratelimit-*-tokens` headers that tell it, as OpenAI writes them (the reset as
    /// [`reset_text`]).
    pub fn headers(&self) -> [(&'static str, String); 3] {
        let [limit, remaining, reset] = RATELIMIT_TOKEN_HEADERS;
        [
            (limit, self.limit.to_string()),
            (remaining, self.remaining.to_string()),
            (reset, reset_text(self.reset_secs)),
        ]
    }

    /// Its filter-state text (`sluice.budget`): `limit;remaining;reset_secs`, in numbers.
    pub fn encode(&self) -> String {
        format!("{};{};{}", self.limit, self.remaining, self.reset_secs)
    }

    /// Reads [`Standing::encode`]'s text; `None` for anything else.
    pub fn decode(text: &str) -> Option<Standing> {
        let mut parts = text.split(';').map(|p| p.parse::<u64>().ok());
        let standing = Standing {
            limit: parts.next()??,
            remaining: parts.next()??,
            reset_secs: parts.next()??,
        };
        parts.next().is_none().then_some(standing)
    }
}

/// Tokens taken from one budget, to settle later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    key: String,
    window_start: u64,
    pub amount: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Reserved in every budget; `standing` is the tightest one after the reservation.
    Allowed {
        reservations: Vec<Reservation>,
        standing: Option<Standing>,
    },
    /// Over a budget: nothing is held.
    Denied {
        budget: String,
        standing: Standing,
        retry_after_secs: u64,
    },
}

/// Who is asking.
pub struct Who<'a> {
    pub consumer: &'a str,
    pub tenant: &'a str,
}

const CAS_TRIES: usize = 64;

fn window_start(now: u64, window: u64) -> u64 {
    now - now % window.max(1)
}

/// Tokens counted against the budget now: the current window's, plus for a sliding window the
/// previous window's share that still overlaps.
fn effective_use(rule: &BudgetConfig, current: Slot, previous: Slot, now: u64) -> u64 {
    let w = rule.window_seconds.max(1);
    let start = window_start(now, w);
    let cur = if current.start == start {
        current.used
    } else {
        0
    };
    if !rule.sliding {
        return cur;
    }
    let prev = if previous.start + w == start {
        previous.used
    } else {
        0
    };
    let elapsed = now - start;
    let weighted = (u128::from(prev) * u128::from(w - elapsed)) / u128::from(w);
    cur.saturating_add(u64::try_from(weighted).unwrap_or(u64::MAX))
}

/// Tries to reserve `amount` tokens in every budget that applies.
pub fn reserve(
    rules: &[BudgetConfig],
    store: &dyn Store,
    who: &Who<'_>,
    amount: u64,
    now: u64,
) -> Decision {
    let mut reservations = Vec::new();
    let mut tightest: Option<Standing> = None;
    for rule in rules {
        let id = match rule.scope {
            Scope::Consumer => who.consumer,
            Scope::Tenant => who.tenant,
        };
        let limit = rule.limit_for(id);
        let w = rule.window_seconds.max(1);
        let start = window_start(now, w);
        let reset_secs = start + w - now;
        let key = slot_key(&rule.name, id, start, w);
        let prev_key = slot_key(&rule.name, id, start.saturating_sub(w), w);
        let mut outcome = None;
        for _ in 0..CAS_TRIES {
            let previous = Slot::parse(store.get(&prev_key).0.as_deref());
            let (text, cas) = store.get(&key);
            let current = Slot::parse(text.as_deref());
            let used = effective_use(rule, current, previous, now);
            if used.saturating_add(amount) > limit {
                outcome = Some(Err(Standing {
                    limit,
                    remaining: limit.saturating_sub(used),
                    reset_secs,
                }));
                break;
            }
            let base = if current.start == start {
                current.used
            } else {
                0
            };
            let next = Slot {
                start,
                used: base + amount,
            };
            if store.set(&key, &next.encode(), cas) {
                outcome = Some(Ok(Standing {
                    limit,
                    remaining: limit.saturating_sub(used + amount),
                    reset_secs,
                }));
                break;
            }
        }
        match outcome {
            Some(Ok(standing)) => {
                reservations.push(Reservation {
                    key,
                    window_start: start,
                    amount,
                });
                if tightest.is_none_or(|t| standing.remaining < t.remaining) {
                    tightest = Some(standing);
                }
            }
            Some(Err(standing)) => {
                settle(store, &reservations, 0);
                return Decision::Denied {
                    budget: rule.name.clone(),
                    retry_after_secs: standing.reset_secs.max(1),
                    standing,
                };
            }
            None => {
                // Contention beyond every retry: refuse rather than overshoot.
                settle(store, &reservations, 0);
                let standing = Standing {
                    limit,
                    remaining: 0,
                    reset_secs,
                };
                return Decision::Denied {
                    budget: rule.name.clone(),
                    retry_after_secs: 1,
                    standing,
                };
            }
        }
    }
    Decision::Allowed {
        reservations,
        standing: tightest,
    }
}

/// Settles reservations to `actual` tokens used (0 gives everything back). A reservation whose
/// window has been reused since is left alone: that window's count already reset.
pub fn settle(store: &dyn Store, reservations: &[Reservation], actual: u64) {
    for r in reservations {
        for _ in 0..CAS_TRIES {
            let (text, cas) = store.get(&r.key);
            let slot = Slot::parse(text.as_deref());
            if slot.start != r.window_start {
                break;
            }
            let used = slot.used.saturating_sub(r.amount).saturating_add(actual);
            if store.set(
                &r.key,
                &Slot {
                    start: slot.start,
                    used,
                }
                .encode(),
                cas,
            ) {
                break;
            }
        }
    }
}

/// OpenAI's reset format: `1s`, `6m0s`, `1h2m3s`.
pub fn reset_text(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use std::cell::RefCell;
    use std::collections::HashMap;

    use super::*;

    /// Shared data as Envoy keeps it: a value and a CAS counter per key.
    #[derive(Default)]
    struct MemStore(RefCell<HashMap<String, (String, u32)>>);

    impl Store for MemStore {
        fn get(&self, key: &str) -> (Option<String>, Option<u32>) {
            match self.0.borrow().get(key) {
                Some((v, cas)) => (Some(v.clone()), Some(*cas)),
                None => (None, None),
            }
        }

        fn set(&self, key: &str, value: &str, cas: Option<u32>) -> bool {
            let mut map = self.0.borrow_mut();
            let current = map.get(key).map(|(_, c)| *c);
            if cas.is_some() && cas != current {
                return false;
            }
            let next = current.unwrap_or(0) + 1;
            map.insert(key.to_owned(), (value.to_owned(), next));
            true
        }
    }

    fn rule(sliding: bool) -> BudgetConfig {
        BudgetConfig {
            name: "b".into(),
            scope: Scope::Consumer,
            window_seconds: 60,
            sliding,
            tokens: 100,
            overrides: [("vip".to_owned(), 1000)].into_iter().collect(),
        }
    }

    const WHO: Who<'static> = Who {
        consumer: "c",
        tenant: "t",
    };

    fn allowed(d: &Decision) -> Vec<Reservation> {
        match d {
            Decision::Allowed { reservations, .. } => reservations.clone(),
            Decision::Denied { .. } => panic!("denied: {d:?}"),
        }
    }

    #[test]
    fn reservations_never_overshoot_and_settling_frees_tokens() {
        let store = MemStore::default();
        let rules = [rule(false)];
        let now = 6000;
        let a = allowed(&reserve(&rules, &store, &WHO, 40, now));
        let _b = allowed(&reserve(&rules, &store, &WHO, 40, now));
        match reserve(&rules, &store, &WHO, 40, now) {
            Decision::Denied {
                standing,
                retry_after_secs,
                ..
            } => {
                assert_eq!((standing.limit, standing.remaining), (100, 20));
                assert_eq!(retry_after_secs, 60);
            }
            d => panic!("{d:?}"),
        }
        // The first request used only 10 of its 40.
        settle(&store, &a, 10);
        allowed(&reserve(&rules, &store, &WHO, 40, now + 1));
        // A new window starts afresh.
        allowed(&reserve(&rules, &store, &WHO, 100, now + 60));
    }

    #[test]
    fn overrides_and_the_tightest_standing() {
        let store = MemStore::default();
        let mut tenant = rule(false);
        tenant.name = "t".into();
        tenant.scope = Scope::Tenant;
        tenant.tokens = 50;
        let rules = [rule(false), tenant];
        let vip = Who {
            consumer: "vip",
            tenant: "t",
        };
        match reserve(&rules, &store, &vip, 30, 0) {
            Decision::Allowed {
                standing,
                reservations,
            } => {
                assert_eq!(reservations.len(), 2);
                assert_eq!(standing.map(|s| (s.limit, s.remaining)), Some((50, 20)));
            }
            d => panic!("{d:?}"),
        }
        // Denied by the tenant budget: the consumer reservation is given back.
        assert!(
            matches!(reserve(&rules, &store, &vip, 30, 0), Decision::Denied { ref budget, .. } if budget == "t")
        );
        match reserve(&rules[..1], &store, &vip, 970, 0) {
            Decision::Allowed { standing, .. } => {
                assert_eq!(standing.map(|s| s.remaining), Some(0))
            }
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn sliding_window_weighs_the_previous_window() {
        let store = MemStore::default();
        let rules = [rule(true)];
        allowed(&reserve(&rules, &store, &WHO, 100, 0));
        // 15 s into the next window, 75% of the previous 100 still counts.
        assert!(matches!(
            reserve(&rules, &store, &WHO, 30, 75),
            Decision::Denied { .. }
        ));
        allowed(&reserve(&rules, &store, &WHO, 25, 75));
        // A fixed window would have admitted the 30.
        let fixed = MemStore::default();
        allowed(&reserve(&[rule(false)], &fixed, &WHO, 100, 0));
        allowed(&reserve(&[rule(false)], &fixed, &WHO, 30, 75));
    }

    #[test]
    fn a_lost_race_is_retried() {
        struct Flaky {
            inner: MemStore,
            fail_next: RefCell<u32>,
        }
        impl Store for Flaky {
            fn get(&self, key: &str) -> (Option<String>, Option<u32>) {
                self.inner.get(key)
            }
            fn set(&self, key: &str, value: &str, cas: Option<u32>) -> bool {
                if *self.fail_next.borrow() > 0 {
                    *self.fail_next.borrow_mut() -= 1;
                    // Someone else took 50 meanwhile.
                    let (text, c) = self.inner.get(key);
                    let mut slot = Slot::parse(text.as_deref());
                    slot.start = 0;
                    slot.used += 50;
                    self.inner.set(key, &slot.encode(), c);
                    return false;
                }
                self.inner.set(key, value, cas)
            }
        }
        let store = Flaky {
            inner: MemStore::default(),
            fail_next: RefCell::new(1),
        };
        let rules = [rule(false)];
        allowed(&reserve(&rules, &store, &WHO, 40, 0));
        assert!(
            matches!(
                reserve(&rules, &store, &WHO, 20, 0),
                Decision::Denied { .. }
            ),
            "50 + 40 used"
        );
    }

    #[test]
    fn a_standing_is_told_in_openais_headers_and_survives_filter_state() {
        let standing = Standing {
            limit: 500,
            remaining: 391,
            reset_secs: 360,
        };
        assert_eq!(
            standing.headers(),
            [
                ("x-ratelimit-limit-tokens", "500".to_owned()),
                ("x-ratelimit-remaining-tokens", "391".to_owned()),
                ("x-ratelimit-reset-tokens", "6m0s".to_owned()),
            ]
        );
        assert_eq!(standing.encode(), "500;391;360");
        assert_eq!(Standing::decode(&standing.encode()), Some(standing));
        let zero = Standing {
            limit: 0,
            remaining: 0,
            reset_secs: 0,
        };
        assert_eq!(Standing::decode("0;0;0"), Some(zero));
        for bad in [
            "",
            "500",
            "500;391",
            "500;391;",
            "500;391;360;",
            "500;391;360;1",
            "a;1;2",
            "500;-1;360",
            " 500;391;360",
            "500,391,360",
        ] {
            assert_eq!(Standing::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn reset_text_matches_openai() {
        assert_eq!(reset_text(1), "1s");
        assert_eq!(reset_text(360), "6m0s");
        assert_eq!(reset_text(3723), "1h2m3s");
    }
}
