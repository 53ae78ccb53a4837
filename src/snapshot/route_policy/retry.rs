//! `retries`: Istio's retry policy as Envoy applies it (`retryOn` conditions, attempts,
//! per-try timeout, back-off).

use crate::config::duration;
use crate::config::model::*;
use std::time::Duration;

/// Envoy `retry_on` conditions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryOn(u32);

impl RetryOn {
    pub const FIVE_XX: RetryOn = RetryOn(1);
    pub const GATEWAY_ERROR: RetryOn = RetryOn(1 << 1);
    pub const RESET: RetryOn = RetryOn(1 << 2);
    pub const CONNECT_FAILURE: RetryOn = RetryOn(1 << 3);
    pub const RETRIABLE_4XX: RetryOn = RetryOn(1 << 4);
    pub const REFUSED_STREAM: RetryOn = RetryOn(1 << 5);
    pub const RETRIABLE_STATUS_CODES: RetryOn = RetryOn(1 << 6);
    pub const CANCELLED: RetryOn = RetryOn(1 << 7);
    pub const DEADLINE_EXCEEDED: RetryOn = RetryOn(1 << 8);
    pub const INTERNAL: RetryOn = RetryOn(1 << 9);
    pub const RESOURCE_EXHAUSTED: RetryOn = RetryOn(1 << 10);
    pub const UNAVAILABLE: RetryOn = RetryOn(1 << 11);

    fn by_name(n: &str) -> Option<RetryOn> {
        Some(match n {
            "5xx" => Self::FIVE_XX,
            "gateway-error" => Self::GATEWAY_ERROR,
            "reset" | "reset-before-request" => Self::RESET,
            "connect-failure" => Self::CONNECT_FAILURE,
            "retriable-4xx" => Self::RETRIABLE_4XX,
            "refused-stream" => Self::REFUSED_STREAM,
            "retriable-status-codes" => Self::RETRIABLE_STATUS_CODES,
            "cancelled" => Self::CANCELLED,
            "deadline-exceeded" => Self::DEADLINE_EXCEEDED,
            "internal" => Self::INTERNAL,
            "resource-exhausted" => Self::RESOURCE_EXHAUSTED,
            "unavailable" => Self::UNAVAILABLE,
            _ => return None,
        })
    }

    fn insert(&mut self, o: RetryOn) {
        self.0 |= o.0;
    }

    pub fn has(self, o: RetryOn) -> bool {
        self.0 & o.0 != 0
    }
}

/// Istio `HTTPRetry` as Envoy runs it.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first try (`attempts`).
    pub attempts: u32,
    pub per_try_timeout: Option<Duration>,
    pub on: RetryOn,
    /// Numeric `retryOn` entries (for `retriable-status-codes`; a number alone also
    /// enables it, as Istio does).
    pub codes: Vec<u16>,
    /// `backoff`: the base interval between retries (Envoy's default 25 ms), doubling per
    /// retry up to ten times the base, jittered.
    pub backoff: Duration,
}

/// Envoy's default retry back-off base interval.
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(25);

/// gRPC status codes by number, for `retryOn`'s gRPC conditions.
pub(super) const GRPC_CANCELLED: u32 = 1;

pub(super) const GRPC_DEADLINE_EXCEEDED: u32 = 4;

pub(super) const GRPC_RESOURCE_EXHAUSTED: u32 = 8;

pub(super) const GRPC_INTERNAL: u32 = 13;

pub(super) const GRPC_UNAVAILABLE: u32 = 14;

impl Default for RetryPolicy {
    /// Istio's default: 2 retries on connect-failure, refused-stream, unavailable,
    /// cancelled and retriable-status-codes (with no codes, so a plain 503 is not retried).
    fn default() -> RetryPolicy {
        let mut on = RetryOn::default();
        for o in [
            RetryOn::CONNECT_FAILURE,
            RetryOn::REFUSED_STREAM,
            RetryOn::UNAVAILABLE,
            RetryOn::CANCELLED,
            RetryOn::RETRIABLE_STATUS_CODES,
        ] {
            on.insert(o);
        }
        RetryPolicy {
            attempts: 2,
            per_try_timeout: None,
            on,
            codes: Vec::new(),
            backoff: DEFAULT_RETRY_BACKOFF,
        }
    }
}

impl RetryPolicy {
    pub fn compile(r: Option<&HttpRetry>) -> RetryPolicy {
        let Some(r) = r else {
            return RetryPolicy::default();
        };
        let mut p = RetryPolicy {
            attempts: r.attempts.clamp(0, MAX_RETRIES as i32) as u32,
            per_try_timeout: r
                .per_try_timeout
                .as_deref()
                .and_then(|d| duration::parse(d).ok()),
            on: RetryOn::default(),
            codes: Vec::new(),
            backoff: r
                .backoff
                .as_deref()
                .and_then(|d| duration::parse(d).ok())
                .filter(|d| !d.is_zero())
                .unwrap_or(DEFAULT_RETRY_BACKOFF),
        };
        match r.retry_on.as_deref().filter(|s| !s.is_empty()) {
            None => p.on = RetryPolicy::default().on,
            Some(list) => {
                for item in list.split(',').map(str::trim) {
                    if let Ok(code) = item.parse::<u16>() {
                        p.codes.push(code);
                        p.on.insert(RetryOn::RETRIABLE_STATUS_CODES);
                    } else if let Some(o) = RetryOn::by_name(item) {
                        p.on.insert(o);
                    }
                }
            }
        }
        p
    }

    /// Whether an upstream answer with `status` (and `grpc-status`, if any) is retried.
    pub fn retries_response(&self, status: u16, grpc: Option<u32>) -> bool {
        let on = self.on;
        (on.has(RetryOn::FIVE_XX) && status >= 500)
            || (on.has(RetryOn::GATEWAY_ERROR) && matches!(status, 502..=504))
            || (on.has(RetryOn::RETRIABLE_4XX) && status == 409)
            || (on.has(RetryOn::RETRIABLE_STATUS_CODES) && self.codes.contains(&status))
            || grpc.is_some_and(|g| {
                (on.has(RetryOn::CANCELLED) && g == GRPC_CANCELLED)
                    || (on.has(RetryOn::DEADLINE_EXCEEDED) && g == GRPC_DEADLINE_EXCEEDED)
                    || (on.has(RetryOn::INTERNAL) && g == GRPC_INTERNAL)
                    || (on.has(RetryOn::RESOURCE_EXHAUSTED) && g == GRPC_RESOURCE_EXHAUSTED)
                    || (on.has(RetryOn::UNAVAILABLE) && g == GRPC_UNAVAILABLE)
            })
    }

    /// How long to wait before retry number `n` (1 for the first retry), given a uniform
    /// random `r`: the base doubled per retry, capped at ten times the base, then a random
    /// point in its upper half.
    pub fn backoff_before(&self, n: u32, r: u64) -> Duration {
        let cap = self
            .backoff
            .saturating_mul(1 << n.clamp(1, 8).saturating_sub(1))
            .min(self.backoff.saturating_mul(10));
        cap / 2 + cap.mul_f64((r % 1000) as f64 / 2000.0)
    }

    /// Whether a failed connection attempt is retried.
    pub fn retries_connect_failure(&self) -> bool {
        self.on.has(RetryOn::CONNECT_FAILURE)
            || self.on.has(RetryOn::FIVE_XX)
            || self.on.has(RetryOn::GATEWAY_ERROR)
            || self.on.has(RetryOn::RESET)
    }

    /// Whether a reset or timed-out attempt (no response) is retried.
    pub fn retries_reset(&self) -> bool {
        self.on.has(RetryOn::RESET)
            || self.on.has(RetryOn::FIVE_XX)
            || self.on.has(RetryOn::GATEWAY_ERROR)
    }
}

/// The most retries meshgate makes for one request (Pingora needs a fixed cap).
pub const MAX_RETRIES: u32 = 10;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_policies() {
        let d = RetryPolicy::default();
        assert_eq!(d.attempts, 2);
        assert!(
            !d.retries_response(503, None),
            "the default does not retry a plain 503"
        );
        assert!(
            d.retries_response(200, Some(14)),
            "but does retry gRPC unavailable"
        );
        assert!(d.retries_connect_failure());
        let p = |y: &str| RetryPolicy::compile(Some(&serde_yaml::from_str(y).unwrap()));
        let r = p("{attempts: 3, perTryTimeout: 2s, retryOn: \"gateway-error,connect-failure,refused-stream\"}");
        assert_eq!(
            (r.attempts, r.per_try_timeout),
            (3, Some(Duration::from_secs(2)))
        );
        assert!(r.retries_response(503, None) && !r.retries_response(500, None));
        let r = p("{attempts: 2, retryOn: \"5xx\"}");
        assert!(r.retries_response(500, None) && !r.retries_response(404, None));
        let r = p("{attempts: 2, retryOn: \"retriable-status-codes,418\"}");
        assert!(r.retries_response(418, None) && !r.retries_response(503, None));
        let r = p("{attempts: 2, retryOn: \"retriable-4xx\"}");
        assert!(r.retries_response(409, None) && !r.retries_response(404, None));
        assert_eq!(p("{attempts: 0}").attempts, 0);
        let b = p("{attempts: 5, backoff: 100ms}");
        assert_eq!(b.backoff_before(1, 0), Duration::from_millis(50));
        assert_eq!(b.backoff_before(3, 999), Duration::from_micros(399_800));
        assert_eq!(
            b.backoff_before(9, 0),
            Duration::from_millis(500),
            "capped at 10x base"
        );
        assert_eq!(d.backoff_before(1, 0), Duration::from_micros(12_500));
        let r = p(
            "{attempts: 1, retryOn: \"cancelled,deadline-exceeded,internal,resource-exhausted\"}",
        );
        assert!([1, 4, 13, 8]
            .iter()
            .all(|g| r.retries_response(200, Some(*g))));
        assert!(!r.retries_response(200, Some(14)));
    }
}
