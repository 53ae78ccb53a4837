//! The runtime side of clusters: their state (balancer position, counters, the pool key
//! of their connections), the one connect path, and the registry that carries state from
//! one config generation to the next. Configuration is state that is diffed and applied:
//! a cluster whose identity (name, endpoints, policy) is unchanged keeps its state object,
//! and with it its pooled connections; a changed or new cluster starts fresh.

pub mod balancer;
pub mod cluster;
pub mod connect;
pub mod connection;
pub mod dns;
pub mod endpoint;
pub mod limits;
pub mod outlier;
pub mod pool;
pub mod resolver;
pub mod tls;

use crate::snapshot::cluster::{ClusterId, ClusterIdentity, ClusterSpec, Endpoint};
use crate::snapshot::Snapshot;
use cluster::ClusterState;
use endpoint::{now_ms, EndpointState};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// What serves requests: a snapshot and the runtime state of each of its clusters,
/// indexed like the snapshot's clusters. Swapped whole on a reload; a request keeps the
/// generation it started with.
#[derive(Debug)]
pub struct Generation {
    pub snapshot: Arc<Snapshot>,
    clusters: Vec<Arc<ClusterState>>,
}

impl Generation {
    /// The state of cluster `id` of this generation's snapshot.
    pub fn cluster(&self, id: ClusterId) -> Option<&Arc<ClusterState>> {
        self.clusters.get(id.0 as usize)
    }

    /// The state of the cluster named `name`.
    pub fn cluster_named(&self, name: &str) -> Option<&Arc<ClusterState>> {
        self.cluster(self.snapshot.cluster_id(name)?)
    }

    pub fn clusters(&self) -> &[Arc<ClusterState>] {
        &self.clusters
    }
}

/// Owns the cluster states of the current generation and hands them on to the next.
#[derive(Default)]
pub struct Registry {
    current: Mutex<HashMap<ClusterIdentity, Arc<ClusterState>>>,
    /// The client for requests the gateway sends itself (mirrors).
    pub http_client: connect::HttpClient,
    /// Re-resolves the names of DNS clusters in the background.
    pub dns: dns::Refresher,
    /// Resolves names on demand (egress: wildcard ServiceEntries, PassthroughCluster).
    pub resolver: resolver::Resolver,
}

/// The endpoint states of `endpoints` for a cluster: those `known` has (same cluster
/// name and address) are carried over, with their counters and ejections; the others are
/// new, warming up from `now` when the cluster was serving already (`added` > 0).
pub fn endpoint_states(
    endpoints: &[Endpoint],
    known: Option<&HashMap<SocketAddr, Arc<EndpointState>>>,
    added: u64,
) -> Vec<Arc<EndpointState>> {
    endpoints
        .iter()
        .map(|e| {
            known
                .and_then(|k| k.get(&e.address))
                .filter(|s| s.weight == e.weight.max(1))
                .cloned()
                .unwrap_or_else(|| Arc::new(EndpointState::new(e.address, e.weight, added)))
        })
        .collect()
}

impl Registry {
    /// The generation serving `snapshot`: the state of every cluster whose identity the
    /// previous generation had is carried over; other clusters get new state. States no
    /// cluster uses any more are dropped once the requests holding them finish.
    pub fn adopt(&self, snapshot: Arc<Snapshot>) -> Generation {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        // The endpoint states of the serving clusters, by cluster name and address.
        let mut known: HashMap<&str, HashMap<SocketAddr, Arc<EndpointState>>> = HashMap::new();
        for state in current.values() {
            let by_address = known.entry(state.name()).or_default();
            for ep in &state.endpoints().endpoints {
                by_address.insert(ep.address, ep.clone());
            }
        }
        let first = current.is_empty();
        let mut next = HashMap::with_capacity(snapshot.clusters.len());
        let clusters: Vec<Arc<ClusterState>> = snapshot
            .clusters
            .iter()
            .map(|spec| {
                let identity = spec.identity();
                let state = current
                    .get(&identity)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(new_state(spec, known.get(&*spec.name), first)));
                next.insert(identity, state.clone());
                state
            })
            .collect();
        drop(known);
        *current = next;
        self.dns.watch(&clusters, snapshot.host_aliases.clone());
        self.resolver.set_aliases(snapshot.host_aliases.clone());
        Generation { snapshot, clusters }
    }
}

/// A fresh state for `spec`, keeping the endpoint states `known` of its name.
fn new_state(
    spec: &Arc<ClusterSpec>,
    known: Option<&HashMap<SocketAddr, Arc<EndpointState>>>,
    first: bool,
) -> ClusterState {
    // Endpoints that join a cluster already serving warm up; those of the first
    // generation, or of a cluster new to this one, do not.
    let added = if first || known.is_none() {
        0
    } else {
        now_ms()
    };
    ClusterState::new(spec.clone(), endpoint_states(&spec.endpoints, known, added))
}

#[cfg(test)]
mod tests;
