//! Carrying a connection's bytes to an upstream and back: TCP routes, passthrough TLS,
//! and terminated TLS servers with `tcp` routes. The connection is opened by `upstream`'s
//! connect path (one attempt, as Envoy's TCP proxy; a failure closes the client's
//! connection with flag UF). Half-close is passed on; a connection with no bytes either
//! way for the cluster's `idleTimeout` is closed. Each connection is counted when it
//! opens and reported with its bytes when it closes (Istio's TCP metrics, the access log).

pub mod splice;

use crate::snapshot::cluster::{HashKey, LbPolicy};
use crate::telemetry::{Destination, Exchange, ResponseFlags, Telemetry};
use crate::upstream::balancer::hash::hash_bytes;
use crate::upstream::cluster::ClusterState;
use crate::upstream::connect::{self, ConnectError};
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite};

/// What the listener knows of the client's connection, for the access log.
#[derive(Debug, Clone, Copy)]
pub struct Downstream<'a> {
    pub local: Option<SocketAddr>,
    pub remote: Option<SocketAddr>,
    /// The SNI of the ClientHello (passthrough and terminated TLS).
    pub sni: Option<&'a str>,
}

/// Where in a cluster a connection goes.
#[derive(Debug, Clone, Copy)]
pub enum Via {
    /// An endpoint the cluster's balancer picks.
    Balanced,
    /// This address, resolved just now from the name the client asked for (egress).
    Address(SocketAddr),
}

/// Connects to an endpoint of `cluster` and splices `downstream` to it; `dest` is the
/// cluster's metric series.
pub async fn forward<S>(
    downstream: S,
    conn: &Downstream<'_>,
    cluster: &ClusterState,
    dest: &Destination,
    telemetry: &Telemetry,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    forward_via(
        downstream,
        conn,
        cluster,
        Via::Balanced,
        None,
        dest,
        telemetry,
    )
    .await
}

/// [`forward`] to `via`, its access-log line carrying `details` (the egress decision).
pub async fn forward_via<S>(
    downstream: S,
    conn: &Downstream<'_>,
    cluster: &ClusterState,
    via: Via,
    details: Option<&'static str>,
    dest: &Destination,
    telemetry: &Telemetry,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let started = Instant::now();
    telemetry.tcp_opened(dest);
    let mut flags = ResponseFlags::default();
    let (mut upstream_host, mut upstream_local) = (None, None);
    // `consistentHash.useSourceIp` is the one hash key a connection has.
    let hash = match &cluster.spec.policy.load_balancer {
        LbPolicy::ConsistentHash {
            key: HashKey::SourceIp,
            ..
        } => conn
            .remote
            .map(|a| hash_bytes(a.ip().to_string().as_bytes())),
        _ => None,
    };
    let connected = match via {
        Via::Balanced => connect::tcp(cluster, hash, crate::rng::random()).await,
        Via::Address(a) => connect::tcp_to(cluster, a).await,
    };
    let (received, sent) = match connected {
        Ok(upstream) => {
            upstream_host = upstream.stream.peer_addr().ok();
            upstream_local = upstream.stream.local_addr().ok();
            let policy = &cluster.spec.policy;
            let (idle, life) = (policy.tcp_idle_timeout, policy.max_connection_duration);
            let moved = splice::splice(downstream, upstream.stream, idle, life).await;
            drop(upstream.endpoint);
            moved
        }
        Err(e) => {
            flags.insert(match e {
                ConnectError::NoEndpoint => ResponseFlags::UH,
                ConnectError::Overflow => ResponseFlags::UO,
                _ => ResponseFlags::UF,
            });
            if let ConnectError::Timeout(a) | ConnectError::Failed(a, _) = e {
                upstream_host = Some(a);
            }
            log::info!("tcp {}: {e}", cluster.name());
            (0, 0)
        }
    };
    let mut e = exchange(conn, started);
    e.flags = flags;
    e.bytes_received = received;
    e.bytes_sent = sent;
    e.upstream_host = upstream_host;
    e.upstream_local_address = upstream_local;
    e.upstream_cluster = Some(cluster.name());
    e.response_code_details = details;
    telemetry.tcp_closed(dest, &e);
}

/// A connection refused before any upstream: counted and logged against the unknown
/// destination with `flags` and `details` (egress: an unregistered name, NR).
pub fn refused(
    conn: &Downstream<'_>,
    flags: ResponseFlags,
    details: Option<&'static str>,
    telemetry: &Telemetry,
) {
    let dest = telemetry.unknown();
    telemetry.tcp_opened(dest);
    let mut e = exchange(conn, Instant::now());
    e.flags = flags;
    e.response_code_details = details;
    telemetry.tcp_closed(dest, &e);
}

/// A connection whose route names no cluster (Envoy's NC): closed, counted and logged.
pub fn no_cluster(conn: &Downstream<'_>, telemetry: &Telemetry) {
    refused(conn, ResponseFlags::NC, None, telemetry);
}

fn exchange<'a>(conn: &Downstream<'a>, started: Instant) -> Exchange<'a> {
    let duration = started.elapsed();
    let mut e = Exchange::new(SystemTime::now() - duration, duration);
    e.downstream_local_address = conn.local;
    e.downstream_remote_address = conn.remote;
    e.requested_server_name = conn.sni;
    e
}
