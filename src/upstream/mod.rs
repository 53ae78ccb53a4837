//! The runtime side of clusters: their state (balancer position, counters, the pool key
//! of their connections), the one connect path, and the registry that carries state from
//! one config generation to the next. Configuration is state that is diffed and applied:
//! a cluster whose identity (name, endpoints, policy) is unchanged keeps its state object,
//! and with it its pooled connections; a changed or new cluster starts fresh.

pub mod balancer;
pub mod cluster;
pub mod connect;
pub mod tls;

use crate::snapshot::cluster::{ClusterId, ClusterIdentity};
use crate::snapshot::Snapshot;
use cluster::ClusterState;
use std::collections::HashMap;
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
}

impl Registry {
    /// The generation serving `snapshot`: the state of every cluster whose identity the
    /// previous generation had is carried over; other clusters get new state. States no
    /// cluster uses any more are dropped once the requests holding them finish.
    pub fn adopt(&self, snapshot: Arc<Snapshot>) -> Generation {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = HashMap::with_capacity(snapshot.clusters.len());
        let clusters = snapshot
            .clusters
            .iter()
            .map(|spec| {
                let identity = spec.identity();
                let state = current
                    .get(&identity)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(ClusterState::new(spec.clone())));
                next.insert(identity, state.clone());
                state
            })
            .collect();
        *current = next;
        Generation { snapshot, clusters }
    }
}

#[cfg(test)]
mod tests;
