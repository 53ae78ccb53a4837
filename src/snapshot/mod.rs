//! The runtime snapshot: the validated config compiled into listeners, route tables and
//! clusters, immutable once built. The request path reads it through an `ArcSwap`, so a
//! reload is one swap and the hot path takes no lock.

mod build;
pub mod cluster;
pub mod delegate;
pub mod egress;
pub mod explain;
pub mod host_index;
pub mod l4_route;
pub mod matcher;
pub mod route_policy;
pub mod route_table;
pub mod settings;
pub mod sni_router;

use crate::tls::server_tls::ServerTls;
use cluster::{ClusterId, ClusterSpec};
use l4_route::L4Route;
use route_table::RouteTable;
use sni_router::{ChainAction, SniRouter, Terminated};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// What a listener speaks, decided by the protocols of the Gateway servers on its port.
#[derive(Debug)]
pub enum Protocol {
    /// Plain-text HTTP/1.1 and h2c (HTTP, HTTP2, GRPC, GRPC-WEB servers).
    Http(RouteTable),
    /// HTTPS and TLS servers: filter chains chosen by SNI.
    Tls(SniRouter),
    /// TCP servers: VirtualService `tcp` routes.
    Tcp(Vec<Arc<L4Route>>),
}

/// One listening socket and what every Gateway server on it asks for.
#[derive(Debug)]
pub struct Listener {
    pub address: SocketAddr,
    /// `Gateway ns/name servers[i]` that this listener serves.
    pub servers: Vec<String>,
    pub protocol: Protocol,
    /// Served for an egress Gateway (selector `istio: egressgateway`): names no route
    /// takes go by the ServiceEntry registry and `outboundTrafficPolicy`.
    pub egress: bool,
    /// An HTTP port whose Gateway carries `meshgate.io/connect-proxy: "true"`: CONNECT
    /// requests open egress tunnels.
    pub connect_proxy: bool,
}

impl Listener {
    /// The HTTP routes for a request: the listener's own on a plain-text port, or those of
    /// the terminating server (`chain`) that accepted the TLS connection.
    pub fn http_routes(&self, chain: Option<&str>) -> Option<&RouteTable> {
        match (&self.protocol, chain) {
            (Protocol::Http(t), None) => Some(t),
            (Protocol::Tls(r), Some(name)) => match &r.chain(name)?.action {
                ChainAction::Terminate {
                    inner: Terminated::Http(t),
                    ..
                } => Some(t),
                _ => None,
            },
            _ => None,
        }
    }
}

#[derive(Debug, Default)]
pub struct Snapshot {
    pub listeners: Vec<Listener>,
    /// Every cluster a route, mirror or passthrough names, indexed by [`ClusterId`].
    pub clusters: Vec<Arc<ClusterSpec>>,
    /// Cluster ids by Istio cluster name (building, AUTO_PASSTHROUGH, the config dump).
    pub cluster_ids: HashMap<String, ClusterId>,
    /// MeshConfig's downstream settings (timeouts, limits, normalization, trust).
    pub downstream: settings::DownstreamSettings,
    /// Things the snapshot leaves out, said once at load (servers taken out, rules skipped).
    pub notes: Vec<String>,
    /// The egress role's registry of outbound names (empty without egress listeners).
    pub egress: egress::EgressRegistry,
    /// Envoy's PassthroughCluster (egress, ALLOW_ANY): to the name asked for.
    pub passthrough: Option<ClusterId>,
    /// MeshConfig `hostAliases`.
    pub host_aliases: Arc<cluster::HostAliases>,
}

impl Snapshot {
    /// The cluster named `name` (Istio's `outbound|PORT|SUBSET|HOST`).
    pub fn cluster_id(&self, name: &str) -> Option<ClusterId> {
        self.cluster_ids.get(name).copied()
    }

    pub fn cluster(&self, id: ClusterId) -> Option<&Arc<ClusterSpec>> {
        self.clusters.get(id.0 as usize)
    }

    /// The listener a connection arrived on (by local address; a wildcard bind matches
    /// any local IP on its port).
    pub fn listener_for(&self, local: SocketAddr) -> Option<&Listener> {
        self.listeners
            .iter()
            .find(|l| l.address == local)
            .or_else(|| {
                self.listeners
                    .iter()
                    .find(|l| l.address.port() == local.port() && l.address.ip().is_unspecified())
            })
    }

    /// Every terminating server's TLS, for the credential refresher.
    pub fn server_tls(&self) -> impl Iterator<Item = (&str, &Arc<ServerTls>)> {
        self.listeners.iter().flat_map(|l| match &l.protocol {
            Protocol::Tls(r) => r
                .chains
                .iter()
                .filter_map(|c| match &c.action {
                    ChainAction::Terminate { tls, .. } => Some((&*c.name, tls)),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        })
    }
}

pub use build::compile;

#[cfg(test)]
mod tests;
