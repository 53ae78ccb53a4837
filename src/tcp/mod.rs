//! Carrying a connection's bytes to an upstream and back: TCP routes, passthrough TLS,
//! and terminated TLS servers with `tcp` routes. The connection is opened by `upstream`'s
//! connect path (one attempt, as Envoy's TCP proxy; a failure closes the client's
//! connection with flag UF). Half-close is passed on; a connection with no bytes either
//! way for the cluster's `idleTimeout` is closed. Each connection is reported to
//! telemetry with its bytes.

pub mod splice;

use crate::telemetry::{ResponseFlags, TcpRecord, Telemetry};
use crate::upstream::cluster::ClusterState;
use crate::upstream::connect::{self, ConnectError};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite};

/// Connects to an endpoint of `cluster` and splices `downstream` to it.
pub async fn forward<S>(downstream: S, cluster: &ClusterState, telemetry: &Telemetry)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let started = Instant::now();
    let mut flags = ResponseFlags::default();
    let (received, sent) = match connect::tcp(cluster).await {
        Ok(upstream) => {
            splice::splice(downstream, upstream, cluster.spec.policy.tcp_idle_timeout).await
        }
        Err(e) => {
            flags.insert(match e {
                ConnectError::NoEndpoint => ResponseFlags::UH,
                _ => ResponseFlags::UF,
            });
            log::info!("tcp {}: {e}", cluster.name());
            (0, 0)
        }
    };
    telemetry.tcp(&TcpRecord {
        cluster: cluster.name(),
        received,
        sent,
        flags,
        duration: started.elapsed(),
    });
}
