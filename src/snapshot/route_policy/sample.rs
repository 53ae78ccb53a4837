//! Sampling a share of requests (fault and mirror `percentage`): a low-discrepancy
//! sequence per rule, so a 50% fault hits 50% ± 1 of any run of requests.

use crate::config::model::*;

/// Istio `Percent` (0–100) or the deprecated integer form, as a fraction of requests.
/// Envoy applies a fault whose percentage is unset to no request.
pub(super) fn fraction(p: Option<&Percent>, deprecated: Option<i32>) -> f64 {
    match (p, deprecated) {
        (Some(p), _) => (p.value / 100.0).clamp(0.0, 1.0),
        (None, Some(n)) => (f64::from(n) / 100.0).clamp(0.0, 1.0),
        (None, None) => 0.0,
    }
}

/// Whether a request with uniform number `r` falls in `fraction` of requests.
pub fn sampled(fraction: f64, r: u64) -> bool {
    fraction >= 1.0 || (r as f64 / u64::MAX as f64) < fraction
}

/// Picks `fraction` of requests (fault delays and aborts, mirrors) with its own
/// low-discrepancy sequence: over any run of requests the share is within a request or
/// two of the fraction, where Envoy's random draw wanders (a deliberate difference).
#[derive(Debug)]
pub struct Sampler {
    pub fraction: f64,
    seq: std::sync::atomic::AtomicU64,
}

impl Sampler {
    pub fn new(fraction: f64) -> Sampler {
        // Start at a per-process point so restarts do not repeat one pattern.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as u64);
        Sampler {
            fraction: fraction.clamp(0.0, 1.0),
            seq: std::sync::atomic::AtomicU64::new(seed),
        }
    }

    /// Whether this request is in the fraction.
    pub fn sample(&self) -> bool {
        if self.fraction <= 0.0 {
            return false;
        }
        let n = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        sampled(self.fraction, n.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }
}

impl PartialEq for Sampler {
    fn eq(&self, other: &Sampler) -> bool {
        self.fraction == other.fraction
    }
}
