//! Stage 3 for TCP and TLS passthrough: VirtualService `tcp` and `tls` routes.

use super::*;
use crate::config::host;
use crate::config::model::*;
use crate::config::Config;
use crate::snapshot::l4_route::{L4Match, L4Route, Subnet};
use crate::snapshot::route_table::WeightedClusters;
use crate::snapshot::sni_router::{ChainAction, FilterChain};
use crate::snapshot::Snapshot;
use std::collections::HashSet;
use std::sync::Arc;

pub(super) fn l4_match(port: Option<u32>, subnets: &[String]) -> L4Match {
    L4Match {
        port: port.map(|p| p as u16),
        destination_subnets: subnets.iter().filter_map(|s| Subnet::parse(s)).collect(),
    }
}

/// VirtualService `tcp` routes bound to `servers`, in file order then rule order.
pub(super) fn tcp_routes(
    c: &Config,
    servers: &[GatewayServer],
    snap: &mut Snapshot,
) -> Vec<Arc<L4Route>> {
    let mut out = Vec::new();
    let mut seen: HashSet<(usize, GatewayKey)> = HashSet::new();
    for gs in servers {
        let gw = (gs.0.namespace.as_str(), gs.0.name.as_str());
        for (vi, vr, vs, _) in bound_virtual_services(c, *gs) {
            if !seen.insert((vi, gw)) {
                continue;
            }
            for (j, r) in vs.tcp.iter().enumerate() {
                let applicable: Vec<&L4MatchAttributes> = r
                    .r#match
                    .iter()
                    .filter(|m| applies_at(vr, &m.gateways, gw))
                    .collect();
                if !r.r#match.is_empty() && applicable.is_empty() {
                    continue;
                }
                let name: Arc<str> =
                    format!("VirtualService {}/{} tcp[{j}]", vr.namespace, vr.name).into();
                let clusters = weighted(
                    c,
                    vr,
                    r.route.iter().map(|d| (d.destination.as_ref(), d.weight)),
                    snap,
                );
                note_plain_text(&name, &clusters, snap);
                out.push(Arc::new(L4Route {
                    name,
                    matches: applicable
                        .iter()
                        .map(|m| l4_match(m.port, &m.destination_subnets))
                        .collect(),
                    clusters,
                }));
            }
        }
    }
    out
}

/// PASSTHROUGH: a chain per `tls` route match, named by its `sniHosts` within the server's.
pub(super) fn passthrough_chains(
    c: &Config,
    gs: GatewayServer,
    snap: &mut Snapshot,
) -> Vec<FilterChain> {
    let gw = (gs.0.namespace.as_str(), gs.0.name.as_str());
    let mut out = Vec::new();
    for (_, vr, vs, hosts) in bound_virtual_services(c, gs) {
        for (j, r) in vs.tls.iter().enumerate() {
            for m in r.r#match.iter().filter(|m| applies_at(vr, &m.gateways, gw)) {
                let mut names: Vec<String> = Vec::new();
                for sni in &m.sni_hosts {
                    for h in &hosts {
                        if let Some(n) = host::host_intersection(h, sni) {
                            let n = n.to_ascii_lowercase();
                            if !names.contains(&n) {
                                names.push(n);
                            }
                        }
                    }
                }
                if names.is_empty() {
                    continue;
                }
                let name: Arc<str> =
                    format!("VirtualService {}/{} tls[{j}]", vr.namespace, vr.name).into();
                let route = L4Route {
                    name: name.clone(),
                    matches: vec![l4_match(m.port, &m.destination_subnets)],
                    clusters: weighted(
                        c,
                        vr,
                        r.route.iter().map(|d| (d.destination.as_ref(), d.weight)),
                        snap,
                    ),
                };
                out.push(FilterChain {
                    name,
                    server_names: names,
                    action: ChainAction::Passthrough(Arc::new(route)),
                });
            }
        }
    }
    out
}

/// TLS origination (DestinationRule `tls`) is done for HTTP routes only: a TCP or TLS
/// route to such a cluster connects in plain text, and says so once at load.
fn note_plain_text(route: &str, clusters: &WeightedClusters, snap: &mut Snapshot) {
    let named: Vec<String> = clusters
        .resolved
        .iter()
        .flatten()
        .filter_map(|id| snap.cluster(*id))
        .filter(|c| c.policy.tls.is_some())
        .map(|c| c.name.clone())
        .collect();
    for name in named {
        snap.notes.push(format!(
            "{route}: DestinationRule tls of {name} applies to HTTP routes only; this route connects to it in plain text"
        ));
    }
}
