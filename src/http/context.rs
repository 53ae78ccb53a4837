//! Per-request state carried through the pipeline's phases.

use crate::snapshot::route_table::Route;
pub use crate::telemetry::ResponseFlags;
use crate::upstream::cluster::ClusterState;
use pingora::http::RequestHeader;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// A mirror copy waiting for the request body.
pub struct PendingMirror {
    pub clusters: Vec<Arc<ClusterState>>,
    pub head: RequestHeader,
    pub authority: String,
    pub body: Vec<u8>,
}

pub struct RequestContext {
    /// When the request arrived (route `timeout` runs from here).
    pub started: Instant,
    /// The matched route: its policy (retries, timeout, headers, CORS) for later phases.
    pub route: Option<Arc<Route>>,
    /// Index of the chosen weighted destination (its destination-level headers).
    pub destination: Option<usize>,
    pub cluster: Option<Arc<ClusterState>>,
    /// Endpoints already attempted, so retries go elsewhere.
    pub tried: Vec<SocketAddr>,
    /// Upstream tries started (1 for the first).
    pub attempts: u32,
    /// When the current try started (for `x-envoy-upstream-service-time`).
    pub attempt_started: Option<Instant>,
    /// The route's deadline (`timeout`), if any.
    pub deadline: Option<Instant>,
    /// The current try failed its per-try timeout rather than the route's.
    pub per_try_timed_out: bool,
    /// The upstream answer was refused for a retry (its status).
    pub retrying_status: Option<u16>,
    pub flags: ResponseFlags,
    /// An allowed CORS `Origin`, echoed on the response.
    pub cors_origin: Option<String>,
    pub mirror: Option<PendingMirror>,
}

impl Default for RequestContext {
    fn default() -> Self {
        RequestContext {
            started: Instant::now(),
            route: None,
            destination: None,
            cluster: None,
            tried: Vec::new(),
            attempts: 0,
            attempt_started: None,
            deadline: None,
            per_try_timed_out: false,
            retrying_status: None,
            flags: ResponseFlags::default(),
            cors_origin: None,
            mirror: None,
        }
    }
}
