//! The one way meshgate opens upstream connections (Envoy's cluster manager): the HTTP
//! peer the proxy pipeline connects through, TCP connections for TCP routes and TLS
//! passthrough, and the HTTP client that sends mirrors. Connect timeouts, HTTP/2, and
//! the pool key of the cluster's state are applied here and nowhere else, so upstream TLS
//! origination, keepalive, connection caps and metrics land in one place.

use super::balancer::Request;
use super::cluster::ClusterState;
use super::endpoint::{EndpointState, InFlight};
use super::limits::ConnectionSlot;
use super::outlier::Outcome;
use crate::snapshot::cluster::Keepalive;
use bytes::Bytes;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// Concurrent requests on one upstream HTTP/2 connection (Pingora's default is one).
const H2_STREAMS_PER_CONNECTION: usize = 128;

/// How long an idle pooled connection of the mirror client is kept.
const MIRROR_POOL_IDLE: Duration = Duration::from_secs(60);

/// Why a TCP connection to a cluster could not be made (Envoy's UH / UF / UO).
#[derive(Debug)]
pub enum ConnectError {
    /// The cluster has no endpoint, or all are ejected (UH).
    NoEndpoint,
    /// `connectionPool.tcp.maxConnections` reached (UO).
    Overflow,
    /// The endpoint did not answer within the cluster's connect timeout (UF).
    Timeout(SocketAddr),
    /// The connection was refused or failed (UF).
    Failed(SocketAddr, std::io::Error),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            ConnectError::NoEndpoint => write!(f, "no healthy upstream"),
            ConnectError::Overflow => write!(f, "maxConnections reached (circuit breaker)"),
            ConnectError::Timeout(a) => write!(f, "connect to {a} timed out"),
            ConnectError::Failed(a, e) => write!(f, "connect to {a} failed: {e}"),
        }
    }
}

impl std::error::Error for ConnectError {}

/// Pingora's form of `connectionPool.tcp.tcpKeepalive` (unset parts: Linux's defaults).
fn keepalive(k: &Keepalive) -> pingora::protocols::TcpKeepalive {
    pingora::protocols::TcpKeepalive {
        idle: k.time.unwrap_or(Duration::from_secs(7200)),
        interval: k.interval.unwrap_or(Duration::from_secs(75)),
        count: k.probes.unwrap_or(9) as usize,
        #[cfg(target_os = "linux")]
        user_timeout: Duration::ZERO,
    }
}

/// The peer the HTTP pipeline (Pingora's connector) connects to for one try: the
/// cluster's connect timeout, h2c with multiplexing when the cluster speaks HTTP/2 (or,
/// with `useClientProtocol`, when the client does), keepalive and pool idle timeout, the
/// wait for upstream bytes, and the state's pool key so connections are reused only
/// within the same cluster state.
pub fn http_peer(
    state: &ClusterState,
    ep: &EndpointState,
    read_timeout: Option<Duration>,
    client_h2: bool,
    request_host: Option<&str>,
) -> HttpPeer {
    state.stats.requests.fetch_add(1, Ordering::Relaxed);
    let tls = state.spec.policy.tls.as_ref();
    // Pingora's rustls connector verifies the name it sends as SNI: with
    // `subjectAltNames`, the first of them is both (Istio sends `sni` and checks the SANs).
    // Without `sni`, the request's host (Istio's auto SNI).
    let sni = tls
        .map(|t| match (t.subject_alt_names.first(), request_host) {
            (Some(san), _) => san.clone(),
            (None, Some(h)) if t.auto_sni && !h.is_empty() => h.to_string(),
            _ => t.sni.clone(),
        })
        .unwrap_or_default();
    let mut peer = HttpPeer::new(ep.address, tls.is_some(), sni);
    if let Some(t) = tls {
        // DestinationRule `tls`: verify the upstream unless `insecureSkipVerify`.
        peer.options.verify_cert = !t.insecure_skip_verify;
        peer.options.verify_hostname = !t.insecure_skip_verify;
        if let Some(m) = &state.tls {
            peer.options.ca = m.ca.clone();
            peer.client_cert_key = m.client.clone();
        }
    }
    let policy = &state.spec.policy;
    peer.group_key = state.pool_key;
    peer.options.connection_timeout = Some(policy.connect_timeout);
    peer.options.idle_timeout = Some(policy.http_pool.idle_timeout);
    peer.options.tcp_keepalive = policy.tcp_keepalive.as_ref().map(keepalive);
    if policy.upstream_h2(client_h2) {
        peer.options.set_http_version(2, 2); // h2c, prior knowledge
        peer.options.max_h2_streams = policy
            .http_pool
            .max_concurrent_streams
            .map_or(H2_STREAMS_PER_CONNECTION, |n| n as usize);
    }
    peer.options.read_timeout = read_timeout;
    peer
}

/// A kept-alive connection to `addr` from the HTTP/1 fast path's pool, if the cluster
/// state holds a quiet one idle for less than `connectionPool.http.idleTimeout`.
pub fn pooled_http1(state: &ClusterState, addr: SocketAddr) -> Option<TcpStream> {
    state
        .idle
        .take(addr, state.spec.policy.http_pool.idle_timeout)
}

/// Gives a connection back to the fast path's pool after a complete answer that left it
/// reusable.
pub fn keep_http1(state: &ClusterState, addr: SocketAddr, stream: TcpStream) {
    state
        .idle
        .put(addr, stream, state.spec.policy.http_pool.idle_timeout);
}

/// A new plain-text HTTP/1 connection to `ep` for the fast path, made as Pingora's
/// connector makes the full pipeline's: the cluster's connect timeout, Nagle off, its TCP
/// keepalive; counted and recorded against the endpoint as the pipeline's hooks do
/// (`connected_to_upstream`, `fail_to_connect`). `Err`: no connection (UF).
pub async fn new_http1(state: &ClusterState, ep: &EndpointState) -> Result<TcpStream, ()> {
    let policy = &state.spec.policy;
    let connected =
        tokio::time::timeout(policy.connect_timeout, TcpStream::connect(ep.address)).await;
    let outcome = match connected {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            if let Some(k) = &policy.tcp_keepalive {
                let _ = pingora::protocols::l4::ext::set_tcp_keepalive(&s, &keepalive(k));
            }
            state.stats.connects.fetch_add(1, Ordering::Relaxed);
            let split = policy.outlier_detection.as_ref();
            if split.is_some_and(|o| o.split_external_local_origin_errors) {
                state.record(ep, Outcome::Connected);
            }
            return Ok(s);
        }
        Ok(Err(_)) => Outcome::ConnectFailed,
        Err(_) => Outcome::TimedOut,
    };
    note_connect_failure(state);
    state.record(ep, outcome);
    Err(())
}

/// Records a failed connection attempt of the HTTP pipeline (Pingora connected for it).
pub fn note_connect_failure(state: &ClusterState) {
    state.stats.connect_failures.fetch_add(1, Ordering::Relaxed);
}

/// An upstream TCP connection and what it holds while open: its endpoint's in-flight
/// count and its slot under `maxConnections`.
pub struct TcpUpstream {
    pub stream: TcpStream,
    pub endpoint: InFlight,
    _slot: Option<ConnectionSlot>,
}

/// A TCP connection to an endpoint of the cluster (one attempt, as Envoy's TCP proxy),
/// within the cluster's connect timeout and `maxConnections`, with Nagle off and the
/// cluster's keepalive. `hash`: the consistent-hash key (the client's address).
pub async fn tcp(
    state: &ClusterState,
    hash: Option<u64>,
    random: u64,
) -> Result<TcpUpstream, ConnectError> {
    state.stats.requests.fetch_add(1, Ordering::Relaxed);
    let slot = connection_slot(state)?;
    let ep = state
        .pick(Request {
            hash,
            tried: &[],
            random,
        })
        .ok_or(ConnectError::NoEndpoint)?;
    connect_endpoint(state, ep, slot).await
}

/// A TCP connection for cluster `state` to an address resolved just now (egress: a
/// wildcard ServiceEntry's or the PassthroughCluster's name), else as [`tcp`].
pub async fn tcp_to(state: &ClusterState, addr: SocketAddr) -> Result<TcpUpstream, ConnectError> {
    state.stats.requests.fetch_add(1, Ordering::Relaxed);
    let slot = connection_slot(state)?;
    connect_endpoint(state, Arc::new(EndpointState::new(addr, 1, 0)), slot).await
}

/// A slot under the cluster's `maxConnections` (UO when full).
fn connection_slot(state: &ClusterState) -> Result<Option<ConnectionSlot>, ConnectError> {
    state.breaker.connection().map_err(|_| {
        state.stats.overflows.fetch_add(1, Ordering::Relaxed);
        ConnectError::Overflow
    })
}

async fn connect_endpoint(
    state: &ClusterState,
    ep: Arc<EndpointState>,
    slot: Option<ConnectionSlot>,
) -> Result<TcpUpstream, ConnectError> {
    let addr = ep.address;
    let endpoint = InFlight::new(ep);
    state.stats.connects.fetch_add(1, Ordering::Relaxed);
    let result =
        match tokio::time::timeout(state.spec.policy.connect_timeout, TcpStream::connect(addr))
            .await
        {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(ConnectError::Failed(addr, e)),
            Err(_) => Err(ConnectError::Timeout(addr)),
        };
    match result {
        Ok(s) => {
            let _ = s.set_nodelay(true);
            if let Some(k) = &state.spec.policy.tcp_keepalive {
                let _ = pingora::protocols::l4::ext::set_tcp_keepalive(&s, &keepalive(k));
            }
            state.record(endpoint.endpoint(), Outcome::ConnectedFinal);
            Ok(TcpUpstream {
                stream: s,
                endpoint,
                _slot: slot,
            })
        }
        Err(e) => {
            note_connect_failure(state);
            let outcome = match e {
                ConnectError::Timeout(_) => Outcome::TimedOut,
                _ => Outcome::ConnectFailed,
            };
            state.record(endpoint.endpoint(), outcome);
            Err(e)
        }
    }
}

/// An HTTP client for requests the gateway makes itself (mirrors): Pingora's connector
/// with its own pool, the same peers as the pipeline (HTTP/1.1 or h2c as the cluster
/// speaks), so a mirror reaches any upstream a proxied request can.
pub struct HttpClient {
    connector: Connector,
}

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient {
            connector: Connector::new(None),
        }
    }
}

impl HttpClient {
    /// Sends `head` and `body` to an endpoint of the cluster, reads the answer and drops
    /// it; returns the status. The whole exchange is bounded by `timeout`.
    pub async fn send(
        &self,
        state: &ClusterState,
        head: RequestHeader,
        body: Bytes,
        timeout: Duration,
    ) -> pingora::Result<u16> {
        if let Some(why) = state.tls_error() {
            note_connect_failure(state);
            return Err(pingora::Error::explain(
                pingora::ErrorType::ConnectError,
                why.to_string(),
            ));
        }
        let ep = state
            .pick(Request {
                random: crate::rng::random(),
                ..Request::default()
            })
            .ok_or_else(|| {
                pingora::Error::explain(pingora::ErrorType::ConnectNoRoute, "no healthy upstream")
            })?;
        let _in_flight = InFlight::new(ep.clone());
        let host = head.uri.host().or_else(|| {
            head.headers
                .get("host")
                .and_then(|h| h.to_str().ok())
                .map(crate::config::host::authority_host)
        });
        let peer = http_peer(state, &ep, Some(timeout), false, host);
        let exchange = async {
            let (mut session, reused) = match self.connector.get_http_session(&peer).await {
                Ok(s) => s,
                Err(e) => {
                    note_connect_failure(state);
                    return Err(e);
                }
            };
            if !reused {
                state.stats.connects.fetch_add(1, Ordering::Relaxed);
            }
            session.write_request_header(Box::new(head)).await?;
            if !body.is_empty() {
                session.write_request_body(body, true).await?;
            }
            session.finish_request_body().await?;
            session.read_response_header().await?;
            let status = session.response_header().map_or(0, |r| r.status.as_u16());
            while session.read_response_body().await?.is_some() {}
            self.connector
                .release_http_session(session, &peer, Some(MIRROR_POOL_IDLE))
                .await;
            Ok(status)
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(pingora::Error::explain(
                pingora::ErrorType::ReadTimedout,
                "request timed out",
            )),
        }
    }
}
