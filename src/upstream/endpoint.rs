//! One endpoint's runtime state: requests in flight (least request), outcomes, outlier
//! ejection and when it joined (slow start). Kept per cluster name and address by the
//! registry, so a reload or a DNS refresh that keeps an endpoint keeps its state.

use super::outlier::HostOutlier;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// Milliseconds on the process's monotonic clock (ejection and slow-start times).
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    // +1: 0 means "never" in the fields that store these.
    START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

#[derive(Debug)]
pub struct EndpointState {
    pub address: SocketAddr,
    /// ServiceEntry / WorkloadEntry `weight` (at least 1).
    pub weight: u32,
    /// HTTP requests or TCP connections in flight to it.
    pub outstanding: AtomicU32,
    /// Answers below 500 (HTTP) and connections made (TCP).
    pub successes: AtomicU64,
    /// 5xx answers, connect failures, resets and timeouts.
    pub failures: AtomicU64,
    pub outlier: HostOutlier,
    /// When it joined a cluster that was already serving (`now_ms`); 0: it was there
    /// when the gateway started, so it is not warmed up (`loadBalancer.warmup`).
    pub added_ms: u64,
}

impl EndpointState {
    pub fn new(address: SocketAddr, weight: u32, added_ms: u64) -> EndpointState {
        EndpointState {
            address,
            weight: weight.max(1),
            outstanding: AtomicU32::new(0),
            successes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            outlier: HostOutlier::default(),
            added_ms,
        }
    }
}

/// A request or connection in flight to an endpoint: counted while it lives.
#[derive(Debug)]
pub struct InFlight(Arc<EndpointState>);

impl InFlight {
    pub fn new(ep: Arc<EndpointState>) -> InFlight {
        ep.outstanding.fetch_add(1, Ordering::Relaxed);
        InFlight(ep)
    }

    pub fn endpoint(&self) -> &Arc<EndpointState> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}
