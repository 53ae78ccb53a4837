//! A cluster's runtime state: what changes while it serves (balancer position,
//! counters) and the key its upstream connections are pooled under. It outlives a reload
//! for as long as the cluster's identity (name, endpoints, policy) is unchanged.

use super::balancer::RoundRobin;
use crate::snapshot::cluster::{ClusterSpec, Endpoint};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Counters of one cluster, for the telemetry that reads them.
#[derive(Debug, Default)]
pub struct ClusterStats {
    /// Connections opened by the TCP proxy (attempts) and the mirror client (new ones,
    /// not pooled reuse); the proxy pipeline's own are Pingora's.
    pub connects: AtomicU64,
    /// Connection attempts that failed (refused, timed out, unreachable).
    pub connect_failures: AtomicU64,
    /// HTTP requests and TCP connections handed to this cluster.
    pub requests: AtomicU64,
}

#[derive(Debug)]
pub struct ClusterState {
    pub spec: Arc<ClusterSpec>,
    pub balancer: RoundRobin,
    pub stats: ClusterStats,
    /// Distinguishes this state's pooled connections from those of any other state,
    /// including an earlier state of a changed cluster of the same name: a changed
    /// cluster starts with fresh connections, an unchanged one keeps its pool.
    pub pool_key: u64,
    /// TLS origination material (DestinationRule `tls`), read when the state is made.
    pub tls: Option<super::tls::Material>,
}

impl ClusterState {
    pub fn new(spec: Arc<ClusterSpec>) -> ClusterState {
        static NEXT_KEY: AtomicU64 = AtomicU64::new(1);
        let tls = spec.policy.tls.as_ref().map(|t| match super::tls::load(t) {
            Ok(m) => m,
            Err(e) => {
                // Still TLS, verified against the system's roots (a private upstream
                // then fails: 503 UF); never plain text instead.
                log::error!("{}: TLS origination: {e}", spec.name);
                super::tls::Material::default()
            }
        });
        ClusterState {
            tls,
            spec,
            balancer: RoundRobin::default(),
            stats: ClusterStats::default(),
            pool_key: NEXT_KEY.fetch_add(1, Ordering::Relaxed),
        }
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The endpoint for the next try, avoiding the ones in `tried` when it can.
    pub fn pick(&self, tried: &[SocketAddr]) -> Option<&Endpoint> {
        self.balancer.pick(&self.spec.endpoints, tried)
    }
}
