//! Choosing an endpoint (DestinationRule `loadBalancer`): least request (power of two
//! choices on requests in flight, Istio's default), weighted round robin, weighted random,
//! and consistent hashing (ring hash, Maglev). Every balancer honours endpoint weights,
//! skips ejected endpoints (unless fewer than `minHealthPercent` are left: Envoy's panic
//! mode) and, while another is left, endpoints a request already tried (Istio's retries go
//! to other hosts). Pure logic over atomics: no lock on the request path.

pub mod hash;
pub mod weighted;

use super::endpoint::EndpointState;
use crate::snapshot::cluster::{ClusterPolicy, HashTable, LbPolicy};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Ring points per unit of endpoint weight: each endpoint's points then do not depend on
/// the other endpoints, so removing one of N moves only its keys (Envoy spreads
/// `minimumRingSize` over the endpoints instead, which moves some others too).
const RING_POINTS_PER_WEIGHT: u64 = 1024;

/// The most points that rule gives a ring (16 MiB); beyond it (weights summing over
/// 1,024) points are spread as Envoy does. A larger `minimumRingSize` is honoured.
const RING_POINTS_MAX: u64 = 1 << 20;

/// A cluster's endpoints as the balancer sees them, with the tables its policy needs.
/// Replaced whole when the endpoints change (a DNS refresh).
#[derive(Debug)]
pub struct EndpointSet {
    pub endpoints: Vec<Arc<EndpointState>>,
    /// Cumulative weights; `None` when all weights are equal.
    cumulative: Option<Vec<u64>>,
    /// Round robin's cycle of indices.
    schedule: Vec<u32>,
    table: Table,
}

#[derive(Debug)]
enum Table {
    None,
    Ring(hash::RingHash),
    Maglev(hash::Maglev),
}

impl EndpointSet {
    pub fn new(endpoints: Vec<Arc<EndpointState>>, lb: &LbPolicy) -> EndpointSet {
        let weights: Vec<u32> = endpoints.iter().map(|e| e.weight).collect();
        let equal = weights.windows(2).all(|w| w[0] == w[1]);
        let keys: Vec<String> = match lb {
            LbPolicy::ConsistentHash { .. } => {
                endpoints.iter().map(|e| e.address.to_string()).collect()
            }
            _ => Vec::new(),
        };
        let named: Vec<(&str, u32)> = keys
            .iter()
            .map(String::as_str)
            .zip(weights.iter().copied())
            .collect();
        let table = match lb {
            LbPolicy::ConsistentHash { table, .. } if !endpoints.is_empty() => match table {
                HashTable::RingHash { minimum_ring_size } => {
                    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
                    let size = (*minimum_ring_size)
                        .max((total * RING_POINTS_PER_WEIGHT).min(RING_POINTS_MAX));
                    Table::Ring(hash::RingHash::new(&named, size as usize))
                }
                HashTable::Maglev { table_size } => {
                    Table::Maglev(hash::Maglev::new(&named, *table_size as usize))
                }
            },
            _ => Table::None,
        };
        let schedule = match lb {
            LbPolicy::RoundRobin | LbPolicy::Passthrough if !equal => weighted::schedule(&weights),
            _ => Vec::new(),
        };
        EndpointSet {
            cumulative: (!equal).then(|| weighted::cumulative(&weights)),
            schedule,
            table,
            endpoints,
        }
    }

    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// A weighted draw.
    fn draw(&self, random: u64) -> usize {
        match &self.cumulative {
            Some(c) => weighted::draw(c, random).unwrap_or(0),
            None => ((u128::from(random) * self.len() as u128) >> 64) as usize,
        }
    }
}

/// What a pick knows of the request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    /// The consistent-hash key's hash (`None`: the key is absent; a random point then).
    pub hash: Option<u64>,
    /// Endpoints earlier tries of this request went to.
    pub tried: &'a [SocketAddr],
    /// A uniform random number.
    pub random: u64,
}

/// The balancer's own state: round robin's position, kept across reloads and DNS changes.
#[derive(Debug, Default)]
pub struct Position(AtomicUsize);

/// The endpoint for one try, or `None` when every endpoint is ejected (UH).
pub fn pick<'s>(
    set: &'s EndpointSet,
    policy: &ClusterPolicy,
    position: &Position,
    req: Request,
    now: u64,
) -> Option<&'s Arc<EndpointState>> {
    let n = set.len();
    if n == 0 {
        return None;
    }
    let eps = &set.endpoints;
    let outlier = policy.outlier_detection.as_ref();
    let mut check_ejection = outlier.is_some();
    if let Some(o) = outlier.filter(|o| o.min_health_percent > 0) {
        let healthy = eps.iter().filter(|e| !e.outlier.is_ejected(now)).count();
        // Envoy's panic threshold: too few healthy endpoints, use them all.
        check_ejection = healthy * 100 >= o.min_health_percent as usize * n;
    }
    let live = |i: usize| !(check_ejection && eps[i].outlier.is_ejected(now));
    let fresh = |i: usize| live(i) && !req.tried.contains(&eps[i].address);
    let warm = |i: usize, r: u64| -> bool {
        match &policy.warmup {
            Some(w) => {
                let f = warmup_factor(&eps[i], w, now);
                f >= 1.0 || (r >> 11) as f64 / (1u64 << 53) as f64 <= f
            }
            None => true,
        }
    };
    let scan_from = |start: usize, ok: &dyn Fn(usize) -> bool| -> Option<usize> {
        (0..n).map(|k| (start + k) % n).find(|i| ok(*i))
    };
    let chosen = match &policy.load_balancer {
        LbPolicy::RoundRobin | LbPolicy::Passthrough => {
            let pos = position.0.fetch_add(1, Ordering::Relaxed);
            let at = |k: usize| match set.schedule.is_empty() {
                true => k % n,
                false => set.schedule[k % set.schedule.len()] as usize,
            };
            let cycle = if set.schedule.is_empty() {
                n
            } else {
                set.schedule.len()
            };
            let mut r = req.random;
            (0..cycle)
                .map(|k| at(pos.wrapping_add(k)))
                .find(|i| {
                    r = crate::rng::splitmix64(r);
                    fresh(*i) && warm(*i, r)
                })
                .or_else(|| scan_from(at(pos), &fresh))
        }
        LbPolicy::Random => {
            let start = set.draw(req.random);
            Some(start)
                .filter(|i| fresh(*i))
                .or_else(|| scan_from(start, &fresh))
        }
        LbPolicy::LeastRequest => least_request(set, policy, req.random, now, &fresh)
            .or_else(|| scan_from(set.draw(req.random), &fresh)),
        LbPolicy::ConsistentHash { .. } => {
            let h = req.hash.unwrap_or(req.random);
            match &set.table {
                Table::Ring(r) => r.pick(h, fresh),
                Table::Maglev(m) => m.pick(h, fresh),
                Table::None => None,
            }
        }
    };
    // Every live endpoint tried already: one of them again, rather than none.
    let i = chosen.or_else(|| scan_from(set.draw(req.random), &live))?;
    Some(&eps[i])
}

/// Power of two choices: of two weighted draws, the one with fewer requests in flight
/// per unit of (warming) weight.
fn least_request(
    set: &EndpointSet,
    policy: &ClusterPolicy,
    random: u64,
    now: u64,
    usable: &dyn Fn(usize) -> bool,
) -> Option<usize> {
    let eps = &set.endpoints;
    let a = set.draw(random);
    let b = set.draw(crate::rng::splitmix64(random));
    let score = |i: usize| {
        let w = f64::from(eps[i].weight)
            * policy
                .warmup
                .as_ref()
                .map_or(1.0, |w| warmup_factor(&eps[i], w, now));
        f64::from(eps[i].outstanding.load(Ordering::Relaxed) + 1) / w
    };
    match (usable(a), usable(b)) {
        (true, true) => Some(if score(b) < score(a) { b } else { a }),
        (true, false) => Some(a),
        (false, true) => Some(b),
        (false, false) => None,
    }
}

/// The share of its weight an endpoint takes while warming up.
fn warmup_factor(ep: &EndpointState, w: &crate::snapshot::cluster::Warmup, now: u64) -> f64 {
    if ep.added_ms == 0 {
        return 1.0;
    }
    weighted::slow_start_factor(
        Duration::from_millis(now.saturating_sub(ep.added_ms)),
        w.duration,
        f64::from(w.aggression_milli) / 1000.0,
        f64::from(w.minimum_percent_milli) / 1000.0,
    )
}

#[cfg(test)]
mod tests;
