//! Stage 2: virtual hosts. Which VirtualServices a Gateway server binds (listed gateway,
//! visible intersecting hosts), merged per domain in file order with catch-alls last
//! (Istio's `SortVHostRoutes`), plus `httpsRedirect` hosts.

use super::*;
use crate::config::host;
use crate::config::model::*;
use crate::config::registry::gateway_ref;
use crate::config::resource::Resource;
use crate::config::Config;
use crate::snapshot::matcher::RequestMatch;
use crate::snapshot::route_table::{Route, VirtualHost};
use crate::snapshot::Snapshot;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The VirtualServices bound to server `s` of Gateway `gw`: each with its index and the
/// hosts it serves there (its hosts intersected with the server's visible hosts).
pub(super) fn bound_virtual_services<'a>(
    c: &'a Config,
    (gw, _, server): GatewayServer,
) -> Vec<(usize, &'a Resource, &'a VirtualServiceSpec, Vec<String>)> {
    let mut out = Vec::new();
    // Only the VirtualServices that list this Gateway (an index, not a scan of every
    // resource per server).
    for &vi in c.index().bound_to_gateway(&gw.namespace, &gw.name) {
        let vr = &c.resources[vi];
        let Spec::VirtualService(vs) = &vr.spec else {
            continue;
        };
        let mut hosts: Vec<String> = Vec::new();
        for h in &server.hosts {
            let (ns, dns) = host::split_namespace_host(h);
            let visible = match ns {
                "*" => true,
                "." => gw.namespace == vr.namespace,
                other => other == vr.namespace,
            };
            if !visible {
                continue;
            }
            for vh in &vs.hosts {
                if let Some(h) = host::host_intersection(dns, vh) {
                    let h = h.to_ascii_lowercase();
                    if !hosts.contains(&h) {
                        hosts.push(h);
                    }
                }
            }
        }
        if !hosts.is_empty() {
            out.push((vi, vr, vs, hosts));
        }
    }
    out
}

/// Whether a route's match entries (by their per-match `gateways`) apply at `gw`.
pub(super) fn applies_at(vr: &Resource, gateways: &[String], gw: GatewayKey) -> bool {
    gateways.is_empty() || gateways.iter().any(|g| gateway_ref(&vr.namespace, g) == gw)
}

/// The virtual hosts of one listener: for each server, the VirtualServices bound to its
/// Gateway whose hosts intersect the server's, merged per host in file order with
/// catch-all routes moved last (Istio `SortVHostRoutes`).
pub(super) fn virtual_hosts(
    c: &Config,
    servers: &[GatewayServer],
    snap: &mut Snapshot,
) -> Vec<VirtualHost> {
    // (domain, httpsRedirect, routes), and each domain's position in it.
    let mut domains: Vec<(String, bool, Vec<Arc<Route>>)> = Vec::new();
    let mut position: HashMap<String, usize> = HashMap::new();
    let mut added: HashSet<(String, usize)> = HashSet::new();
    // A VirtualService's routes as one Gateway sees them, compiled once however many
    // of its hosts become virtual hosts.
    let mut compiled: HashMap<(usize, GatewayKey), Vec<Arc<Route>>> = HashMap::new();
    for gs in servers {
        let (gw, _, server) = gs;
        let gw_key = (gw.namespace.as_str(), gw.name.as_str());
        let redirect = server.tls.as_ref().is_some_and(|t| t.https_redirect);
        for (vi, vr, vs, hosts) in bound_virtual_services(c, *gs) {
            for h in hosts {
                if !added.insert((h.clone(), vi)) {
                    continue;
                }
                let routes = compiled
                    .entry((vi, gw_key))
                    .or_insert_with(|| {
                        // Not `into_iter().map(Arc::new).collect()`: collected in place,
                        // the list would keep the routes' whole allocation.
                        let routes = http_routes(c, vr, vs, gw_key, snap);
                        let mut arcs = Vec::with_capacity(routes.len());
                        arcs.extend(routes.into_iter().map(Arc::new));
                        arcs
                    })
                    .clone();
                match position.get(&h) {
                    Some(&p) => {
                        let (_, r, rs) = &mut domains[p];
                        *r |= redirect;
                        rs.extend(routes)
                    }
                    None => {
                        position.insert(h.clone(), domains.len());
                        domains.push((h, redirect, routes));
                    }
                }
            }
        }
        // Istio redirects a server's hosts to https even where no VirtualService binds.
        if redirect {
            for h in &server.hosts {
                let h = host::split_namespace_host(h).1.to_ascii_lowercase();
                if !position.contains_key(&h) {
                    position.insert(h.clone(), domains.len());
                    domains.push((h, true, Vec::new()));
                }
            }
        }
    }
    domains
        .into_iter()
        .map(|(domain, https_redirect, routes)| {
            let (mut specific, catch_all): (Vec<Arc<Route>>, Vec<Arc<Route>>) =
                routes.into_iter().partition(|r| !is_catch_all(r));
            specific.extend(catch_all);
            VirtualHost {
                domain,
                https_redirect,
                routes: specific,
            }
        })
        .collect()
}

/// Istio `IsCatchAllRoute`: no conditions but (at most) a `/` prefix or `.*` regex.
pub(super) fn is_catch_all(r: &Route) -> bool {
    r.matches.is_empty() || r.matches.iter().any(RequestMatch::is_catch_all)
}
