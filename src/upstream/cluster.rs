//! A cluster's runtime state: its endpoints (replaced whole by a DNS refresh), the
//! balancer's position, circuit breakers, counters, and the key its upstream connections
//! are pooled under. It outlives a reload for as long as the cluster's identity (name,
//! endpoints, policy) is unchanged; endpoint states outlive even a changed cluster.

use super::balancer::{self, EndpointSet, Position};
use super::endpoint::{now_ms, EndpointState};
use super::limits::CircuitBreaker;
use super::outlier::{self, Outcome};
use crate::snapshot::cluster::ClusterSpec;
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Counters of one cluster, for the telemetry that reads them.
#[derive(Debug, Default)]
pub struct ClusterStats {
    /// Connections opened by the TCP proxy (attempts) and the mirror client (new ones,
    /// not pooled reuse); the proxy pipeline's new connections are counted when made.
    pub connects: AtomicU64,
    /// Connection attempts that failed (refused, timed out, unreachable).
    pub connect_failures: AtomicU64,
    /// HTTP requests and TCP connections handed to this cluster.
    pub requests: AtomicU64,
    /// Requests and connections refused by a circuit breaker (UO).
    pub overflows: AtomicU64,
    /// Endpoints ejected by outlier detection.
    pub ejections: AtomicU64,
}

#[derive(Debug)]
pub struct ClusterState {
    pub spec: Arc<ClusterSpec>,
    endpoints: ArcSwap<EndpointSet>,
    position: Position,
    pub breaker: Arc<CircuitBreaker>,
    pub stats: ClusterStats,
    /// Distinguishes this state's pooled connections from those of any other state,
    /// including an earlier state of a changed cluster of the same name: a changed
    /// cluster starts with fresh connections, an unchanged one keeps its pool.
    pub pool_key: u64,
    /// TLS origination material (DestinationRule `tls`), read when the state is made.
    pub tls: Option<super::tls::Material>,
    /// Kept-alive connections of the HTTP/1 fast path (under the same pool key).
    pub idle: super::pool::IdlePool,
}

impl ClusterState {
    /// The state of `spec` serving `endpoints` (the registry's endpoint states).
    pub fn new(spec: Arc<ClusterSpec>, endpoints: Vec<Arc<EndpointState>>) -> ClusterState {
        static NEXT_KEY: AtomicU64 = AtomicU64::new(1);
        let tls = spec.policy.tls.as_ref().map(|t| match super::tls::load(t) {
            Ok(m) => m,
            Err(e) => {
                // Never plain text, never a weaker check: the cluster answers 503 UF.
                log::error!("{}: TLS origination: {e}; its requests get 503", spec.name);
                super::tls::Material {
                    error: Some(e),
                    ..Default::default()
                }
            }
        });
        ClusterState {
            endpoints: ArcSwap::from_pointee(EndpointSet::new(
                endpoints,
                &spec.policy.load_balancer,
            )),
            breaker: Arc::new(CircuitBreaker::new(spec.policy.limits.clone())),
            tls,
            spec,
            position: Position::default(),
            stats: ClusterStats::default(),
            pool_key: NEXT_KEY.fetch_add(1, Ordering::Relaxed),
            idle: Default::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Why this cluster cannot originate TLS (its files are unusable), if so.
    pub fn tls_error(&self) -> Option<&str> {
        self.tls.as_ref().and_then(|m| m.error.as_deref())
    }

    /// The endpoints serving now.
    pub fn endpoints(&self) -> arc_swap::Guard<Arc<EndpointSet>> {
        self.endpoints.load()
    }

    /// Serves `endpoints` from now on (a DNS answer changed).
    pub fn set_endpoints(&self, endpoints: Vec<Arc<EndpointState>>) {
        self.endpoints.store(Arc::new(EndpointSet::new(
            endpoints,
            &self.spec.policy.load_balancer,
        )));
    }

    /// The endpoint for the next try (see `balancer::pick`); `None`: no endpoint, or all
    /// ejected (Envoy's "no healthy upstream", UH).
    pub fn pick(&self, req: balancer::Request) -> Option<Arc<EndpointState>> {
        let set = self.endpoints.load();
        let p = &self.spec.policy;
        let now = if p.outlier_detection.is_some() || p.warmup.is_some() {
            now_ms()
        } else {
            0
        };
        balancer::pick(&set, p, &self.position, req, now).cloned()
    }

    /// Counts how an attempt to `ep` ended: its success and failure totals and, with
    /// `outlierDetection`, its consecutive errors (which may eject it).
    pub fn record(&self, ep: &EndpointState, outcome: Outcome) {
        let failed = match outcome {
            Outcome::Status(s) => s >= 500,
            Outcome::Connected | Outcome::ConnectedFinal => false,
            _ => true,
        };
        if !matches!(outcome, Outcome::Connected) {
            let counter = if failed { &ep.failures } else { &ep.successes };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(policy) = &self.spec.policy.outlier_detection {
            let set = self.endpoints.load();
            let all = set.endpoints.iter().map(|e| &e.outlier);
            let now = now_ms();
            if outlier::record(policy, &ep.outlier, all, outcome, now) {
                self.stats.ejections.fetch_add(1, Ordering::Relaxed);
                let until = ep.outlier.ejected_until(now).unwrap_or(now);
                log::info!(
                    "{}: outlier detection: {} ejected for {} ms (ejection {})",
                    self.name(),
                    ep.address,
                    until - now,
                    ep.outlier.ejections()
                );
            }
        }
    }
}
