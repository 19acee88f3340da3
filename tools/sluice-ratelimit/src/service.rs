//! `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit` on limitador.

use std::collections::HashMap;
use std::time::Duration;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::rate_limit::Unit;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    Code, DescriptorStatus, RateLimit,
};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitService;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::Duration as PbDuration;
use limitador::counter::Counter;
use limitador::limit::Namespace;
use limitador::AsyncRateLimiter;
use tonic::{Request, Response, Status};

use crate::config::{CHARGE_KEY, STREAM_DONE};

pub struct TokenLimits {
    pub limiter: AsyncRateLimiter,
    /// Bound on one limitador call (its Redis round trips), the wait for `checks` included.
    pub timeout: Duration,
    /// limitador's check and its add are two Redis round trips, not one atomic step: one check
    /// at a time in this process, so that two requests cannot both pass on the same remaining
    /// budget (several instances of the service sharing one Redis still can).
    pub checks: tokio::sync::Mutex<()>,
}

/// What to do with one descriptor.
#[derive(Debug, PartialEq, Eq)]
pub enum Charge {
    /// Check the budget and add the hits if they fit (refuse when current + hits > max).
    CheckAndAdd(i64),
    /// Add without checking: completion tokens charged when the stream is done (the answer is
    /// already sent), or a refund (`is_negative_hits`, a negative amount).
    Add(i64),
}

/// The descriptor's entries as limitador's values (the `charge` marker left out) and its charge:
/// the descriptor's own `hits_addend`, else the request's (0 counts as 1, as in Envoy's API).
pub fn plan(d: &RateLimitDescriptor, request_hits: u32) -> (HashMap<String, String>, Charge) {
    let hits = d
        .hits_addend
        .as_ref()
        .map_or(u64::from(request_hits.max(1)), |h| h.value);
    let hits = i64::try_from(hits).unwrap_or(i64::MAX);
    let mut stream_done = false;
    let mut values = HashMap::with_capacity(d.entries.len());
    for e in &d.entries {
        if e.key == CHARGE_KEY {
            stream_done |= e.value == STREAM_DONE;
        } else {
            values.insert(e.key.clone(), e.value.clone());
        }
    }
    let charge = if d.is_negative_hits {
        Charge::Add(-hits)
    } else if stream_done {
        Charge::Add(hits)
    } else {
        Charge::CheckAndAdd(hits)
    };
    (values, charge)
}

fn unit(seconds: u64) -> Unit {
    match seconds {
        1 => Unit::Second,
        60 => Unit::Minute,
        3600 => Unit::Hour,
        86_400 => Unit::Day,
        604_800 => Unit::Week,
        _ => Unit::Unknown,
    }
}

/// The status of a checked descriptor, from the counter with the least left (limitador fills
/// `remaining` and `expires_in` when asked to load the counters).
fn status(limited: bool, counters: &[Counter]) -> DescriptorStatus {
    let code = if limited { Code::OverLimit } else { Code::Ok };
    let tightest = counters
        .iter()
        .min_by_key(|c| c.remaining().unwrap_or(c.max_value()));
    let Some(c) = tightest else {
        return DescriptorStatus {
            code: code.into(),
            ..Default::default()
        };
    };
    let clamp = |v: i64| u32::try_from(v.max(0)).unwrap_or(u32::MAX);
    DescriptorStatus {
        code: code.into(),
        current_limit: Some(RateLimit {
            name: c.limit().name().unwrap_or_default().to_owned(),
            requests_per_unit: clamp(c.max_value()),
            unit: unit(c.seconds()).into(),
        }),
        limit_remaining: clamp(c.remaining().unwrap_or(c.max_value())),
        duration_until_reset: c.expires_in().map(|d| PbDuration {
            seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
        }),
        ..Default::default()
    }
}

impl TokenLimits {
    async fn descriptor(
        &self,
        namespace: &Namespace,
        values: &HashMap<String, String>,
        charge: Charge,
    ) -> Result<DescriptorStatus, String> {
        match charge {
            Charge::Add(delta) => {
                tokio::time::timeout(
                    self.timeout,
                    self.limiter.update_counters(namespace, values, delta),
                )
                .await
                .map_err(|_| format!("Redis did not answer within {:?}", self.timeout))?
                .map_err(|e| format!("update failed: {e}"))?;
                Ok(DescriptorStatus {
                    code: Code::Ok.into(),
                    ..Default::default()
                })
            }
            Charge::CheckAndAdd(delta) => {
                let check = async {
                    let _one_at_a_time = self.checks.lock().await;
                    self.limiter
                        .check_rate_limited_and_update(namespace, values, delta, true)
                        .await
                };
                let result = tokio::time::timeout(self.timeout, check)
                    .await
                    .map_err(|_| format!("Redis did not answer within {:?}", self.timeout))?
                    .map_err(|e| format!("check failed: {e}"))?;
                Ok(status(result.limited, &result.counters))
            }
        }
    }
}

#[tonic::async_trait]
impl RateLimitService for TokenLimits {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        let request = request.into_inner();
        let namespace = Namespace::from(request.domain.as_str());
        let mut over = false;
        let mut statuses = Vec::with_capacity(request.descriptors.len());
        for d in &request.descriptors {
            let (values, charge) = plan(d, request.hits_addend);
            let status = self
                .descriptor(&namespace, &values, charge)
                .await
                .map_err(|e| {
                    eprintln!("sluice-ratelimit: {e}");
                    Status::unavailable(e)
                })?;
            over |= status.code == i32::from(Code::OverLimit);
            statuses.push(status);
        }
        let overall = if over { Code::OverLimit } else { Code::Ok };
        Ok(Response::new(RateLimitResponse {
            overall_code: overall.into(),
            statuses,
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
    use envoy_types::pb::google::protobuf::UInt64Value;

    fn descriptor(entries: &[(&str, &str)], hits: Option<u64>) -> RateLimitDescriptor {
        RateLimitDescriptor {
            entries: entries
                .iter()
                .map(|(k, v)| Entry {
                    key: k.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            hits_addend: hits.map(|value| UInt64Value { value }),
            ..Default::default()
        }
    }

    #[test]
    fn prompt_charges_are_checked_stream_done_charges_are_added() {
        let (values, charge) = plan(
            &descriptor(&[("consumer", "a"), ("model", "m")], Some(12)),
            0,
        );
        assert_eq!(charge, Charge::CheckAndAdd(12));
        assert_eq!(values.len(), 2);
        let (values, charge) = plan(
            &descriptor(
                &[("consumer", "a"), ("model", "m"), ("charge", "stream_done")],
                Some(7),
            ),
            0,
        );
        assert_eq!(charge, Charge::Add(7));
        assert!(!values.contains_key("charge"));
        assert_eq!(values["model"], "m");
    }

    #[test]
    fn hits_default_to_the_request_then_one() {
        let d = descriptor(&[("consumer", "a")], None);
        assert_eq!(plan(&d, 5).1, Charge::CheckAndAdd(5));
        assert_eq!(plan(&d, 0).1, Charge::CheckAndAdd(1));
        let mut refund = descriptor(&[("consumer", "a")], Some(3));
        refund.is_negative_hits = true;
        assert_eq!(plan(&refund, 0).1, Charge::Add(-3));
    }

    #[test]
    fn units_follow_the_window() {
        assert_eq!(unit(60), Unit::Minute);
        assert_eq!(unit(86_400), Unit::Day);
        assert_eq!(unit(90), Unit::Unknown);
    }
}
