//! Fixed-bucket histograms for Istio's three distributions (`istio_request_duration_milliseconds`,
//! `istio_request_bytes`, `istio_response_bytes`): one atomic per bucket, so recording is
//! a bucket search and two `fetch_add`s, without a lock.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Buckets, the last being `+Inf`.
pub(crate) const BUCKETS: usize = 20;

/// Envoy's default histogram bounds (`HistogramSettingsImpl::defaultBuckets`); Istio sets
/// none of its own. The first, 0.5, is left out: values are whole numbers, so `v <= 0.5`
/// exactly when `v == 0`.
const BOUNDS: [u64; BUCKETS - 2] = [
    1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000,
    1800000, 3600000,
];

/// The `le` label of each bucket, as Envoy's Prometheus output prints it (`{:.32g}`: plain
/// decimals, never `3.6e+06`).
pub(crate) const LE: [&str; BUCKETS] = [
    "0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000",
    "30000", "60000", "300000", "600000", "1800000", "3600000", "+Inf",
];

/// The bucket a value falls in: the first whose bound is `>= v` (Prometheus' `le`).
fn bucket(v: u64) -> usize {
    if v == 0 {
        0
    } else {
        1 + BOUNDS.partition_point(|&b| b < v)
    }
}

/// Counts per bucket (not cumulative; summed when rendered) and the sum of the values.
/// The count is the sum of the buckets, so `_count` always equals the `+Inf` bucket.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    sum: AtomicU64,
}

impl Histogram {
    pub(crate) fn record(&self, v: u64) {
        self.buckets[bucket(v)].fetch_add(1, Relaxed);
        // Wraps on overflow (after 2^64 bytes or milliseconds), as Envoy's sum would.
        self.sum.fetch_add(v, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Relaxed)),
            sum: self.sum.load(Relaxed),
        }
    }
}

/// A histogram's values read once, so one scrape's `_bucket`, `_count` and the matching
/// `istio_requests_total` agree even while requests are recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HistogramSnapshot {
    /// Per bucket, not cumulative.
    pub(crate) buckets: [u64; BUCKETS],
    pub(crate) sum: u64,
}

impl HistogramSnapshot {
    pub(crate) fn count(&self) -> u64 {
        self.buckets.iter().fold(0u64, |a, &b| a.wrapping_add(b))
    }

    /// `(le, cumulative count)` of each bucket, `+Inf` last.
    pub(crate) fn cumulative(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.buckets
            .iter()
            .scan(0u64, |acc, &b| {
                *acc = acc.wrapping_add(b);
                Some(*acc)
            })
            .zip(LE)
            .map(|(n, le)| (le, n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_fall_in_the_first_bucket_whose_bound_is_not_below_them() {
        let at = |v| LE[bucket(v)];
        assert_eq!(at(0), "0.5");
        assert_eq!(at(1), "1");
        assert_eq!(at(2), "5");
        assert_eq!(at(5), "5");
        assert_eq!(at(6), "10");
        assert_eq!(at(3_600_000), "3600000");
        assert_eq!(at(3_600_001), "+Inf");
        assert_eq!(at(u64::MAX), "+Inf");
    }

    #[test]
    fn bounds_are_envoys_defaults_in_order() {
        let parsed: Vec<f64> = LE[..BUCKETS - 1]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(parsed[0], 0.5);
        assert!(parsed.windows(2).all(|w| w[0] < w[1]));
        for (b, le) in BOUNDS.iter().zip(&parsed[1..]) {
            assert_eq!(*b as f64, *le);
        }
        assert_eq!(LE[BUCKETS - 1], "+Inf");
    }

    #[test]
    fn snapshot_is_cumulative_with_count_equal_to_inf() {
        let h = Histogram::default();
        for v in [0, 1, 3_600_001, 7] {
            h.record(v);
        }
        let s = h.snapshot();
        let cum: Vec<_> = s.cumulative().collect();
        assert_eq!(cum[0], ("0.5", 1));
        assert_eq!(cum[1], ("1", 2));
        assert_eq!(cum[2], ("5", 2));
        assert_eq!(cum[3], ("10", 3));
        assert_eq!(cum[18], ("3600000", 3));
        assert_eq!(cum[19], ("+Inf", 4));
        assert_eq!(s.count(), 4);
        assert_eq!(s.sum, 3_600_009);
    }
}
