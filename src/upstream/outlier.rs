//! Outlier detection (DestinationRule `outlierDetection`, Envoy's outlier detector):
//! consecutive 5xx, gateway errors and local-origin failures eject an endpoint for
//! `baseEjectionTime` times its ejection count. Counters are atomics updated as each
//! attempt ends; no timer thread: an ejection ends when a pick finds its time is up, and
//! the ejection multiplier decays by one per `interval` spent un-ejected (Envoy's sweep).

use crate::snapshot::cluster::Outlier;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Envoy's default `max_ejection_time` (Istio does not set it).
const MAX_EJECTION_TIME: Duration = Duration::from_secs(300);

/// How an attempt to one endpoint ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered with this status.
    Status(u16),
    /// The connection was made (a local-origin success; the request's outcome follows).
    Connected,
    /// A TCP-proxied connection was made: its whole outcome, a success that starts
    /// every count again (Envoy's `LocalOriginConnectSuccessFinal`).
    ConnectedFinal,
    /// Connect failure (refused, unreachable, TLS handshake): local origin.
    ConnectFailed,
    /// No answer in time: local origin.
    TimedOut,
    /// Reset before or while answering: local origin.
    Reset,
}

/// An endpoint's outlier counters and ejection.
#[derive(Debug, Default)]
pub struct HostOutlier {
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    consecutive_local: AtomicU32,
    /// `now_ms` when the ejection ends; 0: not ejected.
    ejected_until: AtomicU64,
    /// The ejection multiplier.
    ejections: AtomicU32,
    /// When the last ejection ended (for the multiplier's decay).
    returned_at: AtomicU64,
}

impl HostOutlier {
    /// Ejected at `now`; an ejection whose time is up ends here.
    pub fn is_ejected(&self, now: u64) -> bool {
        let until = self.ejected_until.load(Ordering::Relaxed);
        if until == 0 {
            return false;
        }
        if now < until {
            return true;
        }
        if self
            .ejected_until
            .compare_exchange(until, 0, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.returned_at.store(until, Ordering::Relaxed);
        }
        false
    }

    /// When the current ejection ends (`now_ms` scale), if ejected at `now`.
    pub fn ejected_until(&self, now: u64) -> Option<u64> {
        self.is_ejected(now)
            .then(|| self.ejected_until.load(Ordering::Relaxed))
    }

    /// Times ejected (after decay).
    pub fn ejections(&self) -> u32 {
        self.ejections.load(Ordering::Relaxed)
    }
}

/// Counts `outcome` for the endpoint whose counters are `h`, of a cluster whose
/// endpoints' counters `all` yields; ejects it when a threshold is reached and
/// `maxEjectionPercent` allows. True: ejected now.
pub fn record<'a, I>(policy: &Outlier, h: &HostOutlier, all: I, outcome: Outcome, now: u64) -> bool
where
    I: ExactSizeIterator<Item = &'a HostOutlier>,
{
    let bump = |c: &AtomicU32, threshold: u32| -> bool {
        let n = c.fetch_add(1, Ordering::Relaxed) + 1;
        threshold > 0 && n >= threshold
    };
    let reset = |c: &AtomicU32| {
        if c.load(Ordering::Relaxed) != 0 {
            c.store(0, Ordering::Relaxed);
        }
    };
    // Without the split, a local-origin failure counts as the gateway error Envoy maps
    // it to (503 for connect failures and resets, 504 for timeouts).
    let status = match outcome {
        Outcome::Status(s) => Some(s),
        Outcome::Connected => {
            reset(&h.consecutive_local);
            return false;
        }
        Outcome::ConnectedFinal => {
            reset(&h.consecutive_local);
            Some(200)
        }
        Outcome::ConnectFailed | Outcome::Reset | Outcome::TimedOut
            if policy.split_external_local_origin_errors =>
        {
            if bump(&h.consecutive_local, policy.consecutive_local_origin) {
                return eject(policy, h, all, now);
            }
            return false;
        }
        Outcome::TimedOut => Some(504),
        Outcome::ConnectFailed | Outcome::Reset => Some(503),
    };
    let Some(status) = status else {
        return false;
    };
    if status < 500 {
        reset(&h.consecutive_5xx);
        reset(&h.consecutive_gateway);
        return false;
    }
    let mut trip = bump(&h.consecutive_5xx, policy.consecutive_5xx);
    if matches!(status, 502..=504) {
        trip |= bump(&h.consecutive_gateway, policy.consecutive_gateway);
    } else {
        reset(&h.consecutive_gateway);
    }
    trip && eject(policy, h, all, now)
}

/// Ejects `h` unless it is ejected already or `maxEjectionPercent` of `all` are (one
/// endpoint may always be ejected, as in Envoy).
fn eject<'a, I>(policy: &Outlier, h: &HostOutlier, all: I, now: u64) -> bool
where
    I: ExactSizeIterator<Item = &'a HostOutlier>,
{
    // One ejection decision at a time (Envoy makes them on its main thread): threads
    // tripping together must not each see "none ejected" and eject past the percentage.
    // Taken only when a threshold trips, never on the request path otherwise.
    static EJECTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = EJECTING.lock().unwrap_or_else(|p| p.into_inner());
    if h.is_ejected(now) {
        return false;
    }
    let total = all.len().max(1) as u64;
    let ejected = all.filter(|e| e.is_ejected(now)).count() as u64;
    if ejected > 0 && (ejected + 1) * 100 > u64::from(policy.max_ejection_percent) * total {
        return false;
    }
    // The multiplier loses one per interval spent un-ejected since the last ejection.
    let interval = policy.interval.as_millis().max(1) as u64;
    let since = now.saturating_sub(h.returned_at.load(Ordering::Relaxed));
    let decayed = h
        .ejections
        .load(Ordering::Relaxed)
        .saturating_sub((since / interval).min(u64::from(u32::MAX)) as u32);
    let times = decayed + 1;
    let cap = MAX_EJECTION_TIME.max(policy.base_ejection_time);
    let length = policy.base_ejection_time.saturating_mul(times).min(cap);
    let until = now + length.as_millis() as u64;
    if h.ejected_until
        .compare_exchange(0, until, Ordering::Relaxed, Ordering::Relaxed)
        .is_err()
    {
        return false; // another thread ejected it first
    }
    h.ejections.store(times, Ordering::Relaxed);
    h.consecutive_5xx.store(0, Ordering::Relaxed);
    h.consecutive_gateway.store(0, Ordering::Relaxed);
    h.consecutive_local.store(0, Ordering::Relaxed);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::OutlierDetection;
    use crate::snapshot::cluster::policy;

    fn eps(n: u16) -> Vec<HostOutlier> {
        (0..n).map(|_| HostOutlier::default()).collect()
    }

    fn record(p: &Outlier, h: &HostOutlier, all: &[HostOutlier], o: Outcome, now: u64) -> bool {
        super::record(p, h, all.iter(), o, now)
    }

    fn policy(yaml: &str) -> Outlier {
        policy::outlier(&serde_yaml::from_str::<OutlierDetection>(yaml).unwrap())
    }

    #[test]
    fn consecutive_5xx_ejects_for_base_time_times_count() {
        let p = policy("{consecutive5xxErrors: 3, baseEjectionTime: 1s, maxEjectionPercent: 100}");
        let all = eps(2);
        let e = &all[0];
        assert!(!record(&p, e, &all, Outcome::Status(500), 10));
        assert!(!record(&p, e, &all, Outcome::Status(500), 10));
        // A success in between starts the count again.
        assert!(!record(&p, e, &all, Outcome::Status(200), 10));
        assert!(!record(&p, e, &all, Outcome::Status(500), 10));
        assert!(!record(&p, e, &all, Outcome::Status(503), 10));
        assert!(record(&p, e, &all, Outcome::Status(500), 10));
        assert!(e.is_ejected(10));
        assert!(e.is_ejected(1009));
        assert!(!e.is_ejected(1010), "returned after baseEjectionTime");
        // Ejected again at once: twice as long (the multiplier has not decayed).
        for _ in 0..3 {
            record(&p, e, &all, Outcome::Status(500), 1100);
        }
        assert_eq!(e.ejected_until(1100), Some(3100));
        assert_eq!(e.ejections(), 2);
    }

    #[test]
    fn gateway_errors_and_local_origin_failures() {
        let p = policy("{consecutive5xxErrors: 0, consecutiveGatewayErrors: 2}");
        let all = eps(1);
        assert!(!record(&p, &all[0], &all, Outcome::Status(502), 1));
        // A 500 is not a gateway error: the count starts again.
        assert!(!record(&p, &all[0], &all, Outcome::Status(500), 1));
        assert!(!record(&p, &all[0], &all, Outcome::ConnectFailed, 1));
        assert!(record(&p, &all[0], &all, Outcome::TimedOut, 1));
        // Split: local-origin failures count on their own, not as gateway errors.
        let s = policy(
            "{consecutive5xxErrors: 0, consecutiveGatewayErrors: 1, splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 2}",
        );
        let all = eps(1);
        assert!(!record(&s, &all[0], &all, Outcome::ConnectFailed, 1));
        assert!(!record(&s, &all[0], &all, Outcome::Connected, 1));
        assert!(!record(&s, &all[0], &all, Outcome::ConnectFailed, 1));
        assert!(record(&s, &all[0], &all, Outcome::Reset, 1));
    }

    #[test]
    fn max_ejection_percent_bounds_ejections_but_one_is_always_allowed() {
        let p = policy("{consecutive5xxErrors: 1, maxEjectionPercent: 10}");
        let all = eps(4);
        assert!(record(&p, &all[0], &all, Outcome::Status(500), 1));
        assert!(!record(&p, &all[1], &all, Outcome::Status(500), 1));
        let p50 = policy("{consecutive5xxErrors: 1, maxEjectionPercent: 50}");
        let all = eps(4);
        assert!(record(&p50, &all[0], &all, Outcome::Status(500), 1));
        assert!(record(&p50, &all[1], &all, Outcome::Status(500), 1));
        assert!(!record(&p50, &all[2], &all, Outcome::Status(500), 1));
    }

    #[test]
    fn the_multiplier_decays_per_interval_un_ejected() {
        let p = policy("{consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 1s}");
        let all = eps(1);
        let e = &all[0];
        assert!(record(&p, e, &all, Outcome::Status(500), 1));
        assert!(!e.is_ejected(1001));
        assert!(record(&p, e, &all, Outcome::Status(500), 1001));
        assert_eq!(e.ejections(), 2);
        // Returned at 3001; 5 intervals later the multiplier is back to 0: 1 s again.
        assert!(!e.is_ejected(3001));
        assert!(record(&p, e, &all, Outcome::Status(500), 8001));
        assert_eq!(e.ejected_until(8001), Some(9001));
    }
}
