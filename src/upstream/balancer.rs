//! Choosing an endpoint: round robin over a cluster's endpoints, skipping those a request
//! already tried while another is left (Istio's retries go to other hosts). Pure logic
//! over an atomic position; no lock on the request path.

use crate::snapshot::cluster::Endpoint;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A round-robin position, kept across reloads with the cluster's state.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl RoundRobin {
    /// The next endpoint not in `tried`; with every endpoint tried, the next one anyway;
    /// `None` without endpoints.
    pub fn pick<'a>(
        &self,
        endpoints: &'a [Endpoint],
        tried: &[SocketAddr],
    ) -> Option<&'a Endpoint> {
        let n = endpoints.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| &endpoints[start.wrapping_add(i) % n])
            .find(|e| !tried.contains(&e.address))
            .or_else(|| Some(&endpoints[start % n]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(p: u16) -> Endpoint {
        Endpoint {
            address: SocketAddr::from(([127, 0, 0, 1], p)),
            labels: Vec::new(),
        }
    }

    #[test]
    fn round_robin_skips_tried_endpoints() {
        let eps = [ep(1), ep(2), ep(3)];
        let rr = RoundRobin::default();
        let seq: Vec<u16> = (0..6)
            .map(|_| rr.pick(&eps, &[]).unwrap().address.port())
            .collect();
        assert_eq!(seq, vec![1, 2, 3, 1, 2, 3]);
        let tried = [eps[0].address, eps[1].address];
        for _ in 0..5 {
            assert_eq!(rr.pick(&eps, &tried).unwrap().address.port(), 3);
        }
        let all: Vec<SocketAddr> = eps.iter().map(|e| e.address).collect();
        assert!(
            rr.pick(&eps, &all).is_some(),
            "with every endpoint tried, one is reused"
        );
        assert!(rr.pick(&[], &[]).is_none());
    }

    #[test]
    fn the_position_wraps_without_overflow() {
        let eps = [ep(1), ep(2)];
        let rr = RoundRobin {
            next: AtomicUsize::new(usize::MAX),
        };
        assert!(rr.pick(&eps, &[]).is_some());
        assert!(rr.pick(&eps, &[]).is_some());
    }
}
