//! The one way meshgate opens upstream connections (Envoy's cluster manager): the HTTP
//! peer the proxy pipeline connects through, TCP connections for TCP routes and TLS
//! passthrough, and the HTTP client that sends mirrors. Connect timeouts, HTTP/2, and
//! the pool key of the cluster's state are applied here and nowhere else, so upstream TLS
//! origination, keepalive, connection caps and metrics land in one place.

use super::cluster::ClusterState;
use crate::snapshot::cluster::Endpoint;
use bytes::Bytes;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpStream;

/// Concurrent requests on one upstream HTTP/2 connection (Pingora's default is one).
const H2_STREAMS_PER_CONNECTION: usize = 128;

/// How long an idle pooled connection of the mirror client is kept.
const MIRROR_POOL_IDLE: Duration = Duration::from_secs(60);

/// Why a TCP connection to a cluster could not be made (Envoy's UH / UF).
#[derive(Debug)]
pub enum ConnectError {
    /// The cluster has no endpoint (UH).
    NoEndpoint,
    /// The endpoint did not answer within the cluster's connect timeout (UF).
    Timeout(SocketAddr),
    /// The connection was refused or failed (UF).
    Failed(SocketAddr, std::io::Error),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            ConnectError::NoEndpoint => write!(f, "no healthy upstream"),
            ConnectError::Timeout(a) => write!(f, "connect to {a} timed out"),
            ConnectError::Failed(a, e) => write!(f, "connect to {a} failed: {e}"),
        }
    }
}

impl std::error::Error for ConnectError {}

/// The peer the HTTP pipeline (Pingora's connector) connects to for one try: the
/// cluster's connect timeout, h2c with multiplexing when the cluster speaks HTTP/2, the
/// wait for upstream bytes, and the state's pool key so connections are reused only
/// within the same cluster state.
pub fn http_peer(state: &ClusterState, ep: &Endpoint, read_timeout: Option<Duration>) -> HttpPeer {
    state.stats.requests.fetch_add(1, Ordering::Relaxed);
    let tls = state.spec.policy.tls.as_ref();
    // Pingora's rustls connector verifies the name it sends as SNI: with
    // `subjectAltNames`, the first of them is both (Istio sends `sni` and checks the SANs).
    let sni = tls
        .map(|t| t.subject_alt_names.first().unwrap_or(&t.sni).clone())
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
    peer.group_key = state.pool_key;
    peer.options.connection_timeout = Some(state.spec.policy.connect_timeout);
    if state.spec.policy.http2 {
        peer.options.set_http_version(2, 2); // h2c, prior knowledge
        peer.options.max_h2_streams = H2_STREAMS_PER_CONNECTION;
    }
    peer.options.read_timeout = read_timeout;
    peer
}

/// Records a failed connection attempt of the HTTP pipeline (Pingora connected for it).
pub fn note_connect_failure(state: &ClusterState) {
    state.stats.connect_failures.fetch_add(1, Ordering::Relaxed);
}

/// A TCP connection to an endpoint of the cluster (one attempt, as Envoy's TCP proxy),
/// within the cluster's connect timeout, with Nagle off.
pub async fn tcp(state: &ClusterState) -> Result<TcpStream, ConnectError> {
    state.stats.requests.fetch_add(1, Ordering::Relaxed);
    let ep = state.pick(&[]).ok_or(ConnectError::NoEndpoint)?;
    let addr = ep.address;
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
            Ok(s)
        }
        Err(e) => {
            note_connect_failure(state);
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
        let ep = state.pick(&[]).ok_or_else(|| {
            pingora::Error::explain(pingora::ErrorType::ConnectNoRoute, "no healthy upstream")
        })?;
        let peer = http_peer(state, ep, Some(timeout));
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
