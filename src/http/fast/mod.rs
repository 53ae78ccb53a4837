//! The HTTP/1 fast path: the common request served without Pingora's HTTP session, on
//! the head the listener has already read. It takes an HTTP/1.1 `GET` or
//! `HEAD` without a body or connection headers ([`request::parse`]) whose route only
//! forwards ([`simple_route`]) to a cluster of plain HTTP/1 endpoints ([`simple_cluster`]),
//! when no access log is written and no client certificate is to be described upstream;
//! anything else is declined before a byte is sent and
//! the listener replays the head to the full pipeline.
//!
//! It runs the full pipeline's steps with the same parts (routing, forwarding headers,
//! circuit breakers, balancer, retry decisions, outlier detection, metrics) and writes
//! the bytes Pingora would on both connections; `tests/fast_path.rs` holds the two
//! against each other. `MESHGATE_HTTP1_FAST_PATH=off` turns it off.

mod exchange;
pub mod request;
pub mod response;

use super::forwarding::IpText;
use super::routing::{self, Decision};
use crate::config::model::ForwardClientCertDetails;
use crate::rng::Rng;
use crate::snapshot::cluster::{Discovery, LbPolicy};
use crate::snapshot::matcher::RequestView;
use crate::snapshot::route_table::{Route, RouteAction};
use crate::telemetry::Telemetry;
use crate::tls::connection::TlsConnection;
use crate::upstream::cluster::ClusterState;
use crate::upstream::Generation;
use arc_swap::ArcSwap;
use bytes::{Buf, BytesMut};
use pingora::protocols::Stream;
use std::sync::Arc;
use tokio::time::Instant;

/// What the listener does after [`FastPath::serve`].
#[derive(Debug, PartialEq, Eq)]
pub enum Served {
    /// Not taken: nothing was read or written; the head goes to the full pipeline.
    Declined,
    /// Answered: the connection waits for its next request.
    KeepAlive,
    /// Answered, or failed: the connection is closed.
    Close,
}

pub struct FastPath {
    active: Arc<ArcSwap<Generation>>,
    telemetry: Arc<Telemetry>,
    /// Weighted picks, endpoint picks, back-off jitter, request ids.
    rng: Rng,
}

/// A route the fast path serves: it forwards, and changes neither the request nor the
/// answer (no rewrite, header operation, fault, mirror or CORS policy).
fn simple_route(route: &Route) -> bool {
    let p = &route.policy;
    matches!(route.action, RouteAction::Forward(_))
        && p.rewrite.is_none()
        && p.headers.is_empty()
        && p.fault.is_none()
        && p.mirrors.is_empty()
        && p.cors.is_none()
}

/// A cluster the fast path serves: endpoints known ahead (not the Host resolved per
/// request), plain-text HTTP/1 upstream, no consistent hash (its key needs the request
/// headers and may set a cookie), and some endpoint.
fn simple_cluster(c: &ClusterState) -> bool {
    let p = &c.spec.policy;
    c.spec.discovery != Discovery::Dynamic
        && p.tls.is_none()
        && !p.upstream_h2(false)
        && !matches!(p.load_balancer, LbPolicy::ConsistentHash { .. })
        && !c.endpoints().is_empty()
}

impl FastPath {
    /// The fast path, unless `MESHGATE_HTTP1_FAST_PATH=off`.
    pub fn new(active: Arc<ArcSwap<Generation>>, telemetry: Arc<Telemetry>) -> Option<FastPath> {
        if std::env::var("MESHGATE_HTTP1_FAST_PATH").is_ok_and(|v| v == "off") {
            log::info!("HTTP/1 fast path off (MESHGATE_HTTP1_FAST_PATH=off)");
            return None;
        }
        Some(FastPath {
            active,
            telemetry,
            rng: Rng::new(),
        })
    }

    /// Serves the request whose complete head starts `buf` (read by the listener from
    /// `stream`, over `tls` if the listener terminated TLS), or declines it. A served
    /// head is taken off `buf`; what follows it (a pipelined request) stays.
    /// `keep_alive`: the connection may carry another request (not draining).
    pub async fn serve(
        &self,
        stream: &mut Stream,
        buf: &mut BytesMut,
        tls: Option<&TlsConnection>,
        keep_alive: bool,
    ) -> Served {
        if self.telemetry.logs_access() {
            return Served::Declined;
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        let chain = tls.map(|t| &*t.chain);
        let started = Instant::now();
        let digest = stream.get_socket_digest();
        let inet = |a: Option<&pingora::protocols::l4::socket::SocketAddr>| {
            a.and_then(|a| a.as_inet()).copied()
        };
        let Some(local) = digest.as_ref().and_then(|d| inet(d.local_addr())) else {
            return Served::Declined;
        };
        let peer = digest.as_ref().and_then(|d| inet(d.peer_addr()));
        let (plan, len) = {
            let active = self.active.load();
            let snap = &*active.snapshot;
            let settings = &snap.downstream;
            let mut storage = [httparse::EMPTY_HEADER; request::MAX_HEADERS];
            let Some(head) = request::parse(&buf[..], &mut storage, settings) else {
                return Served::Declined;
            };
            // Routing sees the headers the full pipeline has set by then (the client
            // sent none of them: such requests are declined).
            let peer_text = peer.map(|p| IpText::new(p.ip()));
            let request_id = self.rng.uuid_bytes();
            let lookup = |name: &str| match name {
                "x-forwarded-for" | "x-envoy-external-address" => {
                    peer_text.as_ref().map(|t| t.as_str())
                }
                "x-forwarded-proto" => Some(scheme),
                // A UUID's text.
                "x-request-id" => std::str::from_utf8(&request_id).ok(),
                _ => head.header(name),
            };
            let view = RequestView {
                path: head.path,
                path_and_query: head.target,
                query: head.query,
                method: head.method,
                scheme,
                authority: head.host,
                port: local.port(),
                header: &lookup,
            };
            let Some(Decision::Route(route, None, None)) =
                routing::decide_view(snap, local, chain, &view)
            else {
                return Served::Declined;
            };
            let RouteAction::Forward(w) = &route.action else {
                return Served::Declined;
            };
            // Every destination of the route qualifies, or the request goes to the full
            // pipeline before a destination is drawn (so a split keeps its weights).
            let every = (0..w.clusters.len()).all(|i| {
                w.headers.get(i).is_none_or(|h| h.is_empty())
                    && w.cluster_at(i)
                        .and_then(|id| active.cluster(id))
                        .is_some_and(|c| simple_cluster(c))
            });
            if !simple_route(&route) || !every {
                return Served::Declined;
            }
            // A verified client certificate the gateway would describe upstream
            // (`x-forwarded-client-cert`): the full pipeline's.
            let client_cert = tls.is_some_and(|t| t.peer().is_some())
                && matches!(
                    settings.forward_client_cert,
                    ForwardClientCertDetails::AppendForward | ForwardClientCertDetails::SanitizeSet
                );
            if client_cert {
                return Served::Declined;
            }
            let Some(i) = w.pick_index(self.rng.spread()) else {
                return Served::Declined;
            };
            let id = w.cluster_at(i);
            let Some(cluster) = id.and_then(|id| active.cluster(id)) else {
                return Served::Declined;
            };
            let head_bytes = request::upstream_head(
                &head,
                scheme,
                peer_text.as_ref().map(|t| t.as_str()),
                &request_id,
            );
            let plan = exchange::Plan {
                head: head_bytes,
                head_request: head.head_method,
                cluster: cluster.clone(),
                dest: self.telemetry.destination(&active.snapshot, id),
                stream_idle: settings.stream_idle_timeout,
                keep_alive: keep_alive && !head.close,
                pending_limit: settings.max_request_headers_bytes,
                started,
                route: route.clone(),
            };
            (plan, head.len)
        };
        buf.advance(len);
        self.telemetry.own.fast_path_requests.inc();
        exchange::run(self, stream, buf, plan).await
    }
}
