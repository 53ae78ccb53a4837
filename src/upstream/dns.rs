//! DNS clusters (ServiceEntry `resolution: DNS` / `DNS_ROUND_ROBIN`): their names are
//! resolved again every MeshConfig `dnsRefreshRate` on one background thread, never on the
//! request path. A changed answer replaces the cluster's endpoint set (endpoints still
//! there keep their state); a failed lookup keeps the last good addresses and is logged.
//! The system resolver (getaddrinfo: /etc/hosts, then DNS) gives no TTL, so the refresh
//! rate is fixed rather than the answer's TTL.

use super::cluster::ClusterState;
use super::endpoint::now_ms;
use crate::snapshot::cluster::{resolve_with, HostAliases};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

/// How often the thread looks for a cluster due for a refresh.
const TICK: Duration = Duration::from_millis(500);

#[derive(Default)]
pub struct Refresher {
    watched: Arc<Mutex<Vec<Weak<ClusterState>>>>,
    started: OnceLock<()>,
    /// MeshConfig `hostAliases`, shared with the refresh thread.
    aliases: Arc<ArcSwap<HostAliases>>,
}

impl Refresher {
    /// From now on, refreshes the DNS clusters among `clusters` (those of the serving
    /// generation); the thread starts with the first DNS cluster.
    pub fn watch(&self, clusters: &[Arc<ClusterState>], aliases: Arc<HostAliases>) {
        self.aliases.store(aliases);
        let dns: Vec<Weak<ClusterState>> = clusters
            .iter()
            .filter(|c| !c.spec.dns.is_empty())
            .map(Arc::downgrade)
            .collect();
        let any = !dns.is_empty();
        *self.watched.lock().unwrap_or_else(|p| p.into_inner()) = dns;
        if any {
            let watched = self.watched.clone();
            let aliases = self.aliases.clone();
            self.started.get_or_init(|| {
                let spawned = std::thread::Builder::new()
                    .name("meshgate-dns".into())
                    .spawn(move || run(watched, aliases));
                if let Err(e) = spawned {
                    log::error!("DNS refresh thread: {e}; DNS names stay as first resolved");
                }
            });
        }
    }
}

fn run(watched: Arc<Mutex<Vec<Weak<ClusterState>>>>, aliases: Arc<ArcSwap<HostAliases>>) {
    // When each cluster state (by pool key) was last refreshed.
    let mut last: HashMap<u64, Instant> = HashMap::new();
    loop {
        std::thread::sleep(TICK);
        let clusters: Vec<Arc<ClusterState>> = watched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        last.retain(|k, _| clusters.iter().any(|c| c.pool_key == *k));
        for c in clusters {
            // A state's first refresh waits one period: the snapshot resolved it just now.
            let at = *last.entry(c.pool_key).or_insert_with(Instant::now);
            if at.elapsed() >= c.spec.dns_refresh_rate {
                refresh(&c, &aliases.load());
                last.insert(c.pool_key, Instant::now());
            }
        }
    }
}

/// Resolves `c`'s names now and serves the answer if it changed.
pub fn refresh(c: &ClusterState, aliases: &HostAliases) {
    let mut endpoints = Vec::new();
    for t in &c.spec.dns {
        match resolve_with(aliases, &t.name, t.port) {
            Ok(addrs) if !addrs.is_empty() => {
                endpoints.extend(t.endpoints(&addrs, &c.spec.discovery))
            }
            Ok(_) => {
                log::warn!(
                    "{}: DNS: {} has no address; keeping the last good addresses",
                    c.name(),
                    t.name
                );
                return;
            }
            Err(e) => {
                log::warn!(
                    "{}: DNS: {}: {e}; keeping the last good addresses",
                    c.name(),
                    t.name
                );
                return;
            }
        }
    }
    let set = c.endpoints();
    let mut now: Vec<_> = set.endpoints.iter().map(|e| e.address).collect();
    let mut next: Vec<_> = endpoints.iter().map(|e| e.address).collect();
    now.sort();
    next.sort();
    if now == next {
        return;
    }
    log::info!("{}: DNS: endpoints now {next:?}", c.name());
    let known = set
        .endpoints
        .iter()
        .map(|e| (e.address, e.clone()))
        .collect();
    let states = super::endpoint_states(&endpoints, Some(&known), now_ms());
    drop(set);
    c.set_endpoints(states);
}
