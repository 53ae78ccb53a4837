//! The runtime snapshot: the validated config compiled into listeners, route tables and
//! clusters, immutable once built. The request path reads it through an `ArcSwap`, so a
//! reload is one swap and the hot path takes no lock.

pub mod cluster;
pub mod matcher;
pub mod route_table;

use crate::config::host;
use crate::config::model::*;
use crate::config::registry::{
    find_destination_rule, find_service_entry, gateway_ref, selector_matches,
};
use crate::config::resource::Resource;
use crate::config::Config;
use cluster::{cluster_name, Cluster};
use matcher::RequestMatch;
use route_table::{Route, RouteAction, RouteTable, VirtualHost, WeightedClusters};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// One listening socket and the virtual hosts of every Gateway server on it.
#[derive(Debug)]
pub struct Listener {
    pub address: SocketAddr,
    /// `Gateway ns/name servers[i]` that this listener serves.
    pub servers: Vec<String>,
    pub routes: RouteTable,
}

#[derive(Debug, Default)]
pub struct Snapshot {
    pub listeners: Vec<Listener>,
    pub clusters: HashMap<String, Arc<Cluster>>,
    /// Things the snapshot leaves out, said once at load (e.g. protocols not served yet).
    pub notes: Vec<String>,
}

impl Snapshot {
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
}

/// A Gateway as (namespace, name).
type GatewayKey<'a> = (&'a str, &'a str);

/// Plain-text HTTP protocols a Gateway server may name.
fn is_plain_http(protocol: &str) -> bool {
    matches!(
        protocol.to_ascii_uppercase().as_str(),
        "HTTP" | "HTTP2" | "GRPC" | "GRPC-WEB"
    )
}

/// Builds the snapshot for an instance with `labels` from a validated config.
pub fn compile(c: &Config, labels: &[(String, String)]) -> Snapshot {
    let mut snap = Snapshot::default();
    let default_bind: IpAddr = c
        .mesh_config()
        .and_then(|m| m.default_bind_address.as_deref())
        .and_then(|a| a.parse().ok())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));

    // Servers of the Gateways this instance serves, grouped by listening address.
    let mut by_addr: BTreeMap<SocketAddr, Vec<(&Resource, usize, &Server)>> = BTreeMap::new();
    for g in c.of_kind(Kind::Gateway) {
        let Spec::Gateway(gs) = &g.spec else { continue };
        if !selector_matches(&gs.selector, labels) {
            continue;
        }
        for (i, s) in gs.servers.iter().enumerate() {
            let Some(port) = &s.port else { continue };
            if !is_plain_http(&port.protocol) {
                snap.notes.push(format!(
                    "Gateway {}/{} servers[{i}]: protocol {} is not served yet",
                    g.namespace, g.name, port.protocol
                ));
                continue;
            }
            if s.tls.as_ref().is_some_and(|t| t.https_redirect) {
                snap.notes.push(format!(
                    "Gateway {}/{} servers[{i}]: httpsRedirect is not served yet; plain HTTP is routed",
                    g.namespace, g.name
                ));
            }
            let ip = s
                .bind
                .as_deref()
                .and_then(|b| b.parse().ok())
                .unwrap_or(default_bind);
            by_addr
                .entry(SocketAddr::new(ip, port.number as u16))
                .or_default()
                .push((g, i, s));
        }
    }

    for (address, servers) in by_addr {
        let vhosts = virtual_hosts(c, &servers, &mut snap);
        snap.listeners.push(Listener {
            address,
            servers: servers
                .iter()
                .map(|(g, i, _)| format!("Gateway {}/{} servers[{i}]", g.namespace, g.name))
                .collect(),
            routes: RouteTable::new(vhosts),
        });
    }
    snap
}

/// The virtual hosts of one listener: for each server, the VirtualServices bound to its
/// Gateway whose hosts intersect the server's, merged per host in file order with
/// catch-all routes moved last (Istio `SortVHostRoutes`).
fn virtual_hosts(
    c: &Config,
    servers: &[(&Resource, usize, &Server)],
    snap: &mut Snapshot,
) -> Vec<VirtualHost> {
    let mut domains: Vec<(String, Vec<Arc<Route>>)> = Vec::new();
    let mut added: Vec<(String, usize)> = Vec::new();
    // A VirtualService's routes as one Gateway sees them, compiled once however many
    // of its hosts become virtual hosts.
    let mut compiled: HashMap<(usize, GatewayKey), Vec<Arc<Route>>> = HashMap::new();
    for (gw, _, server) in servers {
        let gw_key = (gw.namespace.as_str(), gw.name.as_str());
        for (vi, vr) in c.resources.iter().enumerate() {
            let Spec::VirtualService(vs) = &vr.spec else {
                continue;
            };
            let bound = vs
                .gateways
                .iter()
                .any(|g| gateway_ref(&vr.namespace, g) == gw_key);
            if !bound {
                continue;
            }
            let server_hosts: Vec<&str> = server
                .hosts
                .iter()
                .filter_map(|h| {
                    let (ns, dns) = host::split_namespace_host(h);
                    let visible = match ns {
                        "*" => true,
                        "." => gw.namespace == vr.namespace,
                        other => other == vr.namespace,
                    };
                    visible.then_some(dns)
                })
                .collect();
            let mut hosts: Vec<String> = Vec::new();
            for sh in &server_hosts {
                for vh in &vs.hosts {
                    if let Some(h) = host::host_intersection(sh, vh) {
                        let h = h.to_ascii_lowercase();
                        if !hosts.contains(&h) {
                            hosts.push(h);
                        }
                    }
                }
            }
            for h in hosts {
                if added.contains(&(h.clone(), vi)) {
                    continue;
                }
                added.push((h.clone(), vi));
                let routes = compiled
                    .entry((vi, gw_key))
                    .or_insert_with(|| {
                        http_routes(c, vr, vs, gw_key, snap)
                            .into_iter()
                            .map(Arc::new)
                            .collect()
                    })
                    .clone();
                match domains.iter_mut().find(|(d, _)| *d == h) {
                    Some((_, rs)) => rs.extend(routes),
                    None => domains.push((h, routes)),
                }
            }
        }
    }
    domains
        .into_iter()
        .map(|(domain, routes)| {
            let (mut specific, catch_all): (Vec<Arc<Route>>, Vec<Arc<Route>>) =
                routes.into_iter().partition(|r| !is_catch_all(r));
            specific.extend(catch_all);
            VirtualHost {
                domain,
                routes: specific,
            }
        })
        .collect()
}

/// Istio `IsCatchAllRoute`: no conditions but (at most) a `/` prefix or `.*` regex.
fn is_catch_all(r: &Route) -> bool {
    r.matches.is_empty() || r.matches.iter().any(RequestMatch::is_catch_all)
}

/// The routes of one VirtualService as seen from Gateway `gw` (per-match `gateways`
/// narrow which matches apply there).
fn http_routes(
    c: &Config,
    vr: &Resource,
    vs: &VirtualServiceSpec,
    gw: (&str, &str),
    snap: &mut Snapshot,
) -> Vec<Route> {
    let mut out = Vec::new();
    for (i, r) in vs.http.iter().enumerate() {
        let name = match &r.name {
            Some(n) => format!(
                "VirtualService {}/{} http[{i}] {n:?}",
                vr.namespace, vr.name
            ),
            None => format!("VirtualService {}/{} http[{i}]", vr.namespace, vr.name),
        };
        let applicable: Vec<&HttpMatchRequest> = r
            .r#match
            .iter()
            .filter(|m| {
                m.gateways.is_empty()
                    || m.gateways
                        .iter()
                        .any(|g| gateway_ref(&vr.namespace, g) == gw)
            })
            .collect();
        if !r.r#match.is_empty() && applicable.is_empty() {
            continue; // every match is for other gateways
        }
        let mut matches = Vec::with_capacity(applicable.len());
        for m in applicable {
            match RequestMatch::compile(m) {
                Ok(m) => matches.push(m),
                Err(e) => {
                    // Validation compiles the same regexes: unreachable for a valid config.
                    snap.notes.push(format!("{name}: match skipped: {e}"));
                }
            }
        }
        let action = if let Some(dr) = &r.direct_response {
            let body = dr
                .body
                .as_ref()
                .and_then(|b| b.string.clone())
                .unwrap_or_default()
                .into_bytes();
            RouteAction::DirectResponse {
                status: dr.status as u16,
                body,
            }
        } else if !r.route.is_empty() {
            let mut clusters = Vec::new();
            for d in &r.route {
                let Some(dest) = &d.destination else { continue };
                let cname = ensure_cluster(c, vr, dest, snap);
                clusters.push((cname, d.weight.unwrap_or(0).max(0) as u32));
            }
            let mut weighted = WeightedClusters::new(clusters);
            weighted.resolved = weighted
                .clusters
                .iter()
                .map(|(name, _)| snap.clusters.get(name).cloned())
                .collect();
            RouteAction::Forward(weighted)
        } else {
            snap.notes.push(format!(
                "{name}: redirect/delegate is not served yet; the rule is skipped"
            ));
            continue;
        };
        out.push(Route {
            name: name.into(),
            matches,
            action,
        });
    }
    out
}

/// The cluster name for a destination, building the cluster on first use. A destination
/// that resolves to nothing gets a name no cluster has (Envoy's 503 NC at request time).
fn ensure_cluster(c: &Config, vr: &Resource, d: &Destination, snap: &mut Snapshot) -> String {
    let subset = d.subset.clone().unwrap_or_default();
    let Some((ser, se)) = find_service_entry(c, &d.host, &vr.namespace) else {
        let port = d.port.as_ref().map_or(0, |p| p.number);
        return cluster_name(port, &subset, &d.host);
    };
    // The registered host name: the one of the entry's hosts this destination names.
    let fqdn = se
        .hosts
        .iter()
        .find(|h| {
            crate::config::registry::host_forms(&d.host, &vr.namespace)
                .contains(&h.to_ascii_lowercase())
        })
        .cloned()
        .unwrap_or_else(|| d.host.clone());
    let port = match &d.port {
        Some(p) => se.ports.iter().find(|sp| sp.number == p.number),
        None => se.ports.first(),
    };
    let Some(port) = port else {
        let n = d.port.as_ref().map_or(0, |p| p.number);
        return cluster_name(n, &subset, &fqdn);
    };
    let name = cluster_name(port.number, &subset, &fqdn);
    if snap.clusters.contains_key(&name) {
        return name;
    }
    let subset_labels = if subset.is_empty() {
        Some(OrderedMap::default())
    } else {
        find_destination_rule(c, &d.host, &vr.namespace)
            .and_then(|(_, dr)| dr.subsets.iter().find(|s| s.name == subset))
            .map(|s| s.labels.clone())
    };
    let Some(subset_labels) = subset_labels else {
        return name; // subset not defined: no cluster (503 NC)
    };
    let endpoints = cluster::endpoints(c, ser, se, &fqdn, port, &subset_labels);
    snap.clusters.insert(
        name.clone(),
        Arc::new(Cluster::new(name.clone(), endpoints)),
    );
    name
}

#[cfg(test)]
mod tests;
