//! The balancers over real endpoint states: rotation, weights, least request, hashing,
//! ejections and panic mode, tried endpoints.

use super::*;
use crate::snapshot::cluster::{policy, ClusterPolicy, HashKey, Outlier};
use crate::upstream::outlier::Outcome;

fn eps(weights: &[u32]) -> Vec<Arc<EndpointState>> {
    weights
        .iter()
        .enumerate()
        .map(|(i, w)| {
            Arc::new(EndpointState::new(
                SocketAddr::from(([127, 0, 0, 1], 1000 + i as u16)),
                *w,
                0,
            ))
        })
        .collect()
}

fn policy_of(lb: LbPolicy) -> ClusterPolicy {
    ClusterPolicy {
        load_balancer: lb,
        ..ClusterPolicy::default()
    }
}

fn port(e: &EndpointState) -> u16 {
    e.address.port() - 1000
}

fn picks(set: &EndpointSet, p: &ClusterPolicy, n: usize, tried: &[SocketAddr]) -> Vec<u16> {
    let pos = Position::default();
    (0..n as u64)
        .map(|i| {
            let req = Request {
                hash: None,
                tried,
                random: crate::rng::splitmix64(i),
            };
            port(pick(set, p, &pos, req, 1).unwrap())
        })
        .collect()
}

#[test]
fn round_robin_rotates_exactly_and_honours_weights() {
    let p = policy_of(LbPolicy::RoundRobin);
    let set = EndpointSet::new(eps(&[1, 1, 1]), &p.load_balancer);
    assert_eq!(picks(&set, &p, 6, &[]), vec![0, 1, 2, 0, 1, 2]);
    let weighted = EndpointSet::new(eps(&[1, 3]), &p.load_balancer);
    let got = picks(&weighted, &p, 400, &[]);
    assert_eq!(got.iter().filter(|i| **i == 1).count(), 300);
    // Tried endpoints are skipped while another is left, then reused.
    let tried = [set.endpoints[0].address, set.endpoints[1].address];
    assert!(picks(&set, &p, 5, &tried).iter().all(|i| *i == 2));
    let all: Vec<SocketAddr> = set.endpoints.iter().map(|e| e.address).collect();
    assert_eq!(picks(&set, &p, 3, &all).len(), 3);
    let none = EndpointSet::new(Vec::new(), &p.load_balancer);
    assert!(pick(&none, &p, &Position::default(), Request::default(), 1).is_none());
}

#[test]
fn the_position_wraps_without_overflow() {
    let p = policy_of(LbPolicy::RoundRobin);
    let set = EndpointSet::new(eps(&[1, 1]), &p.load_balancer);
    let pos = Position(AtomicUsize::new(usize::MAX));
    assert!(pick(&set, &p, &pos, Request::default(), 1).is_some());
    assert!(pick(&set, &p, &pos, Request::default(), 1).is_some());
}

#[test]
fn random_follows_weights() {
    let p = policy_of(LbPolicy::Random);
    let set = EndpointSet::new(eps(&[1, 4]), &p.load_balancer);
    let got = picks(&set, &p, 5000, &[]);
    let heavy = got.iter().filter(|i| **i == 1).count();
    assert!((3800..4200).contains(&heavy), "{heavy}");
}

#[test]
fn least_request_avoids_the_busy_endpoint() {
    let p = policy_of(LbPolicy::LeastRequest);
    let set = EndpointSet::new(eps(&[1, 1, 1]), &p.load_balancer);
    set.endpoints[0].outstanding.store(50, Ordering::Relaxed);
    let got = picks(&set, &p, 3000, &[]);
    let busy = got.iter().filter(|i| **i == 0).count();
    // Endpoint 0 wins only when both draws land on it: about 1/9 of picks.
    assert!(busy < 500, "{busy}");
    assert!(got.iter().filter(|i| **i == 1).count() > 1000);
}

#[test]
fn consistent_hash_sticks_and_moves_only_the_removed_endpoints_keys() {
    for table in [
        HashTable::RingHash {
            minimum_ring_size: 1024,
        },
        HashTable::Maglev { table_size: 65537 },
    ] {
        let lb = LbPolicy::ConsistentHash {
            key: HashKey::Header("x".into()),
            table,
        };
        let p = policy_of(lb.clone());
        let four = EndpointSet::new(eps(&[1, 1, 1, 1]), &lb);
        let three = EndpointSet::new(four.endpoints[..3].to_vec(), &lb);
        let pos = Position::default();
        let at = |set: &EndpointSet, k: u64| {
            let req = Request {
                hash: Some(hash::hash_bytes(&k.to_le_bytes())),
                tried: &[],
                random: k,
            };
            pick(set, &p, &pos, req, 1).unwrap().address
        };
        let mut moved = 0;
        for k in 0..2000u64 {
            let before = at(&four, k);
            assert_eq!(before, at(&four, k), "a key sticks");
            let after = at(&three, k);
            if before != four.endpoints[3].address && after != before {
                moved += 1;
            }
        }
        // Ring hash: none of the others' keys move; Maglev: a few.
        assert!(
            moved < 2000 / 20,
            "{table:?}: {moved} keys of remaining endpoints moved"
        );
    }
}

#[test]
fn ejected_endpoints_get_nothing_unless_too_few_are_healthy() {
    let mut p = policy_of(LbPolicy::RoundRobin);
    let o = |min| Outlier {
        min_health_percent: min,
        ..policy::outlier(&Default::default())
    };
    p.outlier_detection = Some(o(0));
    let set = EndpointSet::new(eps(&[1, 1]), &p.load_balancer);
    let all = set.endpoints.clone();
    let od = Outlier {
        consecutive_5xx: 1,
        max_ejection_percent: 100,
        ..o(0)
    };
    let eject = |i: usize| {
        let others = all.iter().map(|e| &e.outlier);
        crate::upstream::outlier::record(&od, &all[i].outlier, others, Outcome::Status(500), 1)
    };
    assert!(eject(0));
    assert!(picks(&set, &p, 10, &[]).iter().all(|i| *i == 1));
    assert!(eject(1));
    let pos = Position::default();
    assert!(
        pick(&set, &p, &pos, Request::default(), 1).is_none(),
        "all ejected: no healthy upstream"
    );
    // minHealthPercent 50: with none healthy, Envoy's panic mode uses them all.
    p.outlier_detection = Some(o(50));
    assert_eq!(picks(&set, &p, 4, &[]).len(), 4);
}

#[test]
fn warming_endpoints_take_a_smaller_share() {
    let mut p = policy_of(LbPolicy::RoundRobin);
    p.warmup = policy::warmup(Some(
        &serde_yaml::from_str("warmup: {duration: 100s, minimumPercent: 10}").unwrap(),
    ));
    assert!(p.warmup.is_some());
    let mut endpoints = eps(&[1]);
    // Joined at t=1 ms; picks at t=1 ms: 10% of its weight.
    endpoints.push(Arc::new(EndpointState::new(
        SocketAddr::from(([127, 0, 0, 1], 1001)),
        1,
        1,
    )));
    let set = EndpointSet::new(endpoints, &p.load_balancer);
    let got = picks(&set, &p, 2000, &[]);
    let new = got.iter().filter(|i| **i == 1).count();
    assert!(new < 300, "{new}");
    assert!(new > 20, "{new}");
}
