//! Weights: the round-robin schedule (each endpoint `weight` times per cycle, spread
//! out), weighted random draws, and slow start's time factor. Pure functions.

use std::time::Duration;

/// The longest round-robin cycle; larger weight sums are scaled down to fit.
const MAX_SCHEDULE: u64 = 1 << 16;

/// A cycle of endpoint indices in which each index appears in proportion to its weight,
/// interleaved (smooth weighted round robin); equal weights give plain rotation.
pub fn schedule(weights: &[u32]) -> Vec<u32> {
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    let scale = total.div_ceil(MAX_SCHEDULE).max(1);
    let w: Vec<i64> = weights
        .iter()
        .map(|w| (u64::from(*w) / scale).max(1) as i64)
        .collect();
    let sum: i64 = w.iter().sum();
    let mut current = vec![0i64; w.len()];
    let mut out = Vec::with_capacity(sum as usize);
    for _ in 0..sum {
        let mut best = 0;
        for i in 0..w.len() {
            current[i] += w[i];
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= sum;
        out.push(best as u32);
    }
    out
}

/// Cumulative weights, for weighted draws (`draw`).
pub fn cumulative(weights: &[u32]) -> Vec<u64> {
    weights
        .iter()
        .scan(0u64, |acc, w| {
            *acc += u64::from((*w).max(1));
            Some(*acc)
        })
        .collect()
}

/// The index a uniform `random` lands on, weighted by `cumulative`.
pub fn draw(cumulative: &[u64], random: u64) -> Option<usize> {
    let total = *cumulative.last()?;
    let point = ((u128::from(random) * u128::from(total)) >> 64) as u64;
    Some(cumulative.partition_point(|c| *c <= point))
}

/// Envoy's slow-start factor for an endpoint `age` into a `window`:
/// `max(min_percent, (age / window)^(1 / aggression))`, as a fraction of its weight.
pub fn slow_start_factor(
    age: Duration,
    window: Duration,
    aggression: f64,
    min_percent: f64,
) -> f64 {
    if age >= window || window.is_zero() {
        return 1.0;
    }
    let t = age.as_secs_f64() / window.as_secs_f64();
    t.powf(1.0 / aggression.max(0.001))
        .max(min_percent / 100.0)
        .min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_weights_rotate_and_unequal_weights_interleave() {
        assert_eq!(schedule(&[1, 1, 1]), vec![0, 1, 2]);
        let s = schedule(&[1, 3]);
        assert_eq!(s.len(), 4);
        assert_eq!(s.iter().filter(|i| **i == 1).count(), 3);
        assert_eq!(schedule(&[2, 1]), vec![0, 1, 0]);
        // Huge weights are scaled, never a cycle of billions.
        let big = schedule(&[u32::MAX, u32::MAX / 2]);
        assert!(big.len() <= 2 * MAX_SCHEDULE as usize, "{}", big.len());
        assert!(schedule(&[]).is_empty());
    }

    #[test]
    fn draws_follow_weights() {
        let c = cumulative(&[1, 3]);
        let n = 10_000u64;
        let step = u64::MAX / n;
        let ones = (0..n).filter(|i| draw(&c, i * step) == Some(1)).count();
        assert!((7400..7600).contains(&ones), "{ones}");
        assert_eq!(draw(&c, u64::MAX), Some(1));
        assert_eq!(draw(&c, 0), Some(0));
        assert_eq!(draw(&[], 5), None);
    }

    #[test]
    fn slow_start_grows_from_the_minimum() {
        let w = Duration::from_secs(10);
        assert_eq!(slow_start_factor(Duration::ZERO, w, 1.0, 10.0), 0.1);
        assert!((slow_start_factor(Duration::from_secs(5), w, 1.0, 10.0) - 0.5).abs() < 1e-9);
        assert!(
            (slow_start_factor(Duration::from_secs(5), w, 2.0, 10.0) - 0.5f64.sqrt()).abs() < 1e-9
        );
        assert_eq!(
            slow_start_factor(Duration::from_secs(10), w, 1.0, 10.0),
            1.0
        );
    }
}
