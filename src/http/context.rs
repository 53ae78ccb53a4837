//! Per-request state carried through the pipeline's phases.

use super::grpc_messages::MessageCounter;
use super::retry::RetryState;
use crate::snapshot::route_table::Route;
use crate::telemetry::Destination;
pub use crate::telemetry::ResponseFlags;
use crate::upstream::cluster::ClusterState;
use crate::upstream::endpoint::InFlight;
use crate::upstream::limits::{Admission, RetrySlot};
use pingora::http::RequestHeader;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A mirror copy waiting for the request body.
pub struct PendingMirror {
    pub clusters: Vec<Arc<ClusterState>>,
    pub head: RequestHeader,
    pub authority: String,
    pub body: Vec<u8>,
    /// The body's share of the process-wide cap on in-flight mirror bodies.
    pub reserved: super::mirror::Reservation,
}

pub struct RequestContext {
    /// When the request arrived (route `timeout` runs from here).
    pub started: Instant,
    /// The matched route: its policy (retries, timeout, headers, CORS) for later phases.
    pub route: Option<Arc<Route>>,
    /// Index of the chosen weighted destination (its destination-level headers).
    pub destination: Option<usize>,
    pub cluster: Option<Arc<ClusterState>>,
    /// The tries: endpoints tried, deadline, retry decisions.
    pub retry: RetryState,
    pub flags: ResponseFlags,
    /// An allowed CORS `Origin`, echoed on the response.
    pub cors_origin: Option<String>,
    /// Boxed: rare, and large (a whole request head); the context is moved with the
    /// request's future.
    pub mirror: Option<Box<PendingMirror>>,
    /// MeshConfig `streamIdleTimeout`: the longest wait for the upstream's next bytes.
    pub stream_idle_timeout: Option<Duration>,
    /// The current try's wait for upstream bytes is the stream idle timeout (SI when it
    /// runs out) rather than the route's or per-try timeout (UT).
    pub idle_bounded: bool,
    /// The metric series of the cluster the request went to.
    pub telemetry: Option<Arc<Destination>>,
    /// The answer came from the upstream (`via_upstream`), not from the gateway.
    pub via_upstream: bool,
    /// Envoy's response code details of a local reply the gateway chose to send.
    pub details: Option<&'static str>,
    /// The gRPC status of the upstream's answer (headers or trailers).
    pub grpc_status: Option<u32>,
    /// The local address of the upstream connection (`%UPSTREAM_LOCAL_ADDRESS%`).
    pub upstream_local: Option<SocketAddr>,
    /// gRPC messages counted (request, response), for a gRPC request (boxed: only gRPC
    /// requests have them).
    pub grpc_messages: Option<Box<(MessageCounter, MessageCounter)>>,
    /// The `consistentHash` key's hash, and a cookie to set on the answer.
    pub hash: super::hash_key::Key,
    /// The request's place under the cluster's circuit breakers.
    pub admission: Option<Admission>,
    /// The current try's endpoint, counted in flight (least request) while it lasts.
    pub endpoint: Option<InFlight>,
    /// The current retry's slot under `maxRetries`.
    pub retry_slot: Option<RetrySlot>,
    /// The current try is its upstream connection's last (`maxRequestsPerConnection`,
    /// `maxConnectionDuration`): it carries `Connection: close`.
    pub close_upstream: bool,
    /// A dynamic cluster's address for this request (egress: the Host resolved now).
    pub dynamic: Option<SocketAddr>,
}

impl Default for RequestContext {
    fn default() -> Self {
        let started = Instant::now();
        RequestContext {
            started,
            route: None,
            destination: None,
            cluster: None,
            retry: RetryState::new(started, None),
            flags: ResponseFlags::default(),
            cors_origin: None,
            mirror: None,
            stream_idle_timeout: None,
            idle_bounded: false,
            telemetry: None,
            via_upstream: false,
            details: None,
            grpc_status: None,
            upstream_local: None,
            grpc_messages: None,
            hash: Default::default(),
            admission: None,
            endpoint: None,
            retry_slot: None,
            close_upstream: false,
            dynamic: None,
        }
    }
}
