//! The runtime snapshot: the validated config compiled into listeners, route tables and
//! clusters, immutable once built. The request path reads it through an `ArcSwap`, so a
//! reload is one swap and the hot path takes no lock.

pub mod cluster;
pub mod delegate;
pub mod host_index;
pub mod l4_route;
pub mod matcher;
pub mod route_policy;
pub mod route_table;
pub mod sni_router;

use crate::config::host;
use crate::config::model::*;
use crate::config::registry::{
    find_destination_rule, find_service_entry, gateway_ref, selector_matches,
};
use crate::config::resource::Resource;
use crate::config::Config;
use crate::tls::credentials::{credential_files, terminates};
use crate::tls::server_tls::{ServerTls, ALPN_HTTP};
use cluster::{cluster_name, ClusterId, ClusterSpec};
use l4_route::{L4Match, L4Route, Subnet};
use matcher::RequestMatch;
use route_policy::{
    Cors, Fault, HeaderPolicy, Mirror, Redirect, RetryPolicy, Rewrite, RoutePolicy, Sampler,
};
use route_table::{Route, RouteAction, RouteTable, VirtualHost, WeightedClusters};
use sni_router::{ChainAction, FilterChain, SniRouter, Terminated};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
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
    /// Things the snapshot leaves out, said once at load (servers taken out, rules skipped).
    pub notes: Vec<String>,
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

/// A Gateway as (namespace, name).
type GatewayKey<'a> = (&'a str, &'a str);

/// A Gateway server this instance serves: (Gateway, index in `servers`, server).
type GatewayServer<'a> = (&'a Resource, usize, &'a Server);

/// How a Gateway server handles its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerKind {
    Http,
    /// SIMPLE / MUTUAL / OPTIONAL_MUTUAL; `http` for HTTPS, else TLS (then TCP routes).
    Terminate {
        http: bool,
    },
    Passthrough,
    AutoPassthrough,
    Tcp,
}

impl ServerKind {
    fn is_tls(self) -> bool {
        matches!(
            self,
            ServerKind::Terminate { .. } | ServerKind::Passthrough | ServerKind::AutoPassthrough
        )
    }
}

fn classify(s: &Server, protocol: &str) -> Result<ServerKind, String> {
    match protocol.to_ascii_uppercase().as_str() {
        "HTTP" | "HTTP2" | "GRPC" | "GRPC-WEB" => Ok(ServerKind::Http),
        "TCP" | "MONGO" => Ok(ServerKind::Tcp),
        p @ ("HTTPS" | "TLS") => {
            let mode = s.tls.as_ref().map_or(
                ServerTlsMode::Passthrough,
                ServerTlsSettings::effective_mode,
            );
            match mode {
                m if terminates(m.into()) => Ok(ServerKind::Terminate { http: p == "HTTPS" }),
                ServerTlsMode::Passthrough => Ok(ServerKind::Passthrough),
                ServerTlsMode::AutoPassthrough => Ok(ServerKind::AutoPassthrough),
                m => Err(format!(
                    "TLS mode {} needs Istio's mesh certificates and is not served",
                    m.as_str()
                )),
            }
        }
        other => Err(format!("protocol {other} is not served")),
    }
}

fn server_label(g: &Resource, i: usize) -> String {
    format!("Gateway {}/{} servers[{i}]", g.namespace, g.name)
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
    let mut by_addr: BTreeMap<SocketAddr, Vec<(GatewayServer, ServerKind)>> = BTreeMap::new();
    for g in c.of_kind(Kind::Gateway) {
        let Spec::Gateway(gs) = &g.spec else { continue };
        if !selector_matches(&gs.selector, labels) {
            continue;
        }
        for (i, s) in gs.servers.iter().enumerate() {
            let Some(port) = &s.port else { continue };
            let kind = match classify(s, &port.protocol) {
                Ok(k) => k,
                Err(why) => {
                    snap.notes.push(format!("{}: {why}", server_label(g, i)));
                    continue;
                }
            };
            let ip = s
                .bind
                .as_deref()
                .and_then(|b| b.parse().ok())
                .unwrap_or(default_bind);
            by_addr
                .entry(SocketAddr::new(ip, port.number as u16))
                .or_default()
                .push(((g, i, s), kind));
        }
    }

    for (address, servers) in by_addr {
        // One protocol per port: TLS servers take it, else HTTP, else TCP.
        let tls = servers.iter().any(|(_, k)| k.is_tls());
        let http = servers.iter().any(|(_, k)| *k == ServerKind::Http);
        let mut kept: Vec<(GatewayServer, ServerKind)> = Vec::new();
        for (gs, k) in servers {
            let fits = if tls {
                k.is_tls()
            } else if http {
                k == ServerKind::Http
            } else {
                true
            };
            if fits {
                kept.push((gs, k));
            } else {
                snap.notes.push(format!(
                    "{}: port {} is taken by servers of another protocol; this server is out",
                    server_label(gs.0, gs.1),
                    address.port()
                ));
            }
        }
        let protocol = if tls {
            let chains = kept
                .iter()
                .flat_map(|(gs, k)| filter_chains(c, *gs, *k, &mut snap))
                .collect();
            Protocol::Tls(SniRouter::new(chains))
        } else if http {
            let servers: Vec<GatewayServer> = kept.iter().map(|(gs, _)| *gs).collect();
            Protocol::Http(RouteTable::new(virtual_hosts(c, &servers, &mut snap)))
        } else {
            let servers: Vec<GatewayServer> = kept.iter().map(|(gs, _)| *gs).collect();
            Protocol::Tcp(tcp_routes(c, &servers, &mut snap))
        };
        snap.listeners.push(Listener {
            address,
            servers: kept
                .iter()
                .map(|((g, i, _), _)| server_label(g, *i))
                .collect(),
            protocol,
        });
    }
    snap
}

/// The filter chains one TLS server contributes to its port.
fn filter_chains(
    c: &Config,
    (g, i, s): GatewayServer,
    kind: ServerKind,
    snap: &mut Snapshot,
) -> Vec<FilterChain> {
    let label = server_label(g, i);
    let server_names: Vec<String> = s
        .hosts
        .iter()
        .map(|h| host::split_namespace_host(h).1.to_ascii_lowercase())
        .collect();
    match kind {
        ServerKind::Terminate { http } => {
            let Some(tls) = &s.tls else { return vec![] };
            let base = g.source.file.parent().unwrap_or(std::path::Path::new("."));
            let alpn: &'static [&'static [u8]] = if http { ALPN_HTTP } else { &[] };
            let spec = tls.into();
            let server_tls = credential_files(&spec, base, c.credentials_dir().as_deref())
                .and_then(|files| ServerTls::new(files, &spec, alpn));
            let server_tls = match server_tls {
                Ok(t) => Arc::new(t),
                Err(e) => {
                    snap.notes.push(format!("{label}: {e}; this server is out"));
                    return vec![];
                }
            };
            let inner = if http {
                Terminated::Http(RouteTable::new(virtual_hosts(c, &[(g, i, s)], snap)))
            } else {
                Terminated::Tcp(tcp_routes(c, &[(g, i, s)], snap))
            };
            vec![FilterChain {
                name: label.into(),
                server_names,
                action: ChainAction::Terminate {
                    tls: server_tls,
                    inner,
                },
            }]
        }
        ServerKind::AutoPassthrough => {
            ensure_all_clusters(c, snap);
            vec![FilterChain {
                name: label.into(),
                server_names,
                action: ChainAction::AutoPassthrough,
            }]
        }
        ServerKind::Passthrough => passthrough_chains(c, (g, i, s), snap),
        ServerKind::Http | ServerKind::Tcp => vec![],
    }
}

/// The VirtualServices bound to server `s` of Gateway `gw`: each with its index and the
/// hosts it serves there (its hosts intersected with the server's visible hosts).
fn bound_virtual_services<'a>(
    c: &'a Config,
    (gw, _, server): GatewayServer,
) -> Vec<(usize, &'a Resource, &'a VirtualServiceSpec, Vec<String>)> {
    let gw_key = (gw.namespace.as_str(), gw.name.as_str());
    let mut out = Vec::new();
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
fn applies_at(vr: &Resource, gateways: &[String], gw: GatewayKey) -> bool {
    gateways.is_empty() || gateways.iter().any(|g| gateway_ref(&vr.namespace, g) == gw)
}

fn l4_match(port: Option<u32>, subnets: &[String]) -> L4Match {
    L4Match {
        port: port.map(|p| p as u16),
        destination_subnets: subnets.iter().filter_map(|s| Subnet::parse(s)).collect(),
    }
}

/// VirtualService `tcp` routes bound to `servers`, in file order then rule order.
fn tcp_routes(c: &Config, servers: &[GatewayServer], snap: &mut Snapshot) -> Vec<Arc<L4Route>> {
    let mut out = Vec::new();
    let mut seen: Vec<(usize, GatewayKey)> = Vec::new();
    for gs in servers {
        let gw = (gs.0.namespace.as_str(), gs.0.name.as_str());
        for (vi, vr, vs, _) in bound_virtual_services(c, *gs) {
            if seen.contains(&(vi, gw)) {
                continue;
            }
            seen.push((vi, gw));
            for (j, r) in vs.tcp.iter().enumerate() {
                let applicable: Vec<&L4MatchAttributes> = r
                    .r#match
                    .iter()
                    .filter(|m| applies_at(vr, &m.gateways, gw))
                    .collect();
                if !r.r#match.is_empty() && applicable.is_empty() {
                    continue;
                }
                out.push(Arc::new(L4Route {
                    name: format!("VirtualService {}/{} tcp[{j}]", vr.namespace, vr.name).into(),
                    matches: applicable
                        .iter()
                        .map(|m| l4_match(m.port, &m.destination_subnets))
                        .collect(),
                    clusters: weighted(
                        c,
                        vr,
                        r.route.iter().map(|d| (d.destination.as_ref(), d.weight)),
                        snap,
                    ),
                }));
            }
        }
    }
    out
}

/// PASSTHROUGH: a chain per `tls` route match, named by its `sniHosts` within the server's.
fn passthrough_chains(c: &Config, gs: GatewayServer, snap: &mut Snapshot) -> Vec<FilterChain> {
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

/// Weighted destinations with their clusters built and resolved.
fn weighted<'a>(
    c: &Config,
    vr: &Resource,
    dests: impl Iterator<Item = (Option<&'a Destination>, Option<i32>)>,
    snap: &mut Snapshot,
) -> WeightedClusters {
    let mut clusters = Vec::new();
    for (d, w) in dests {
        let Some(dest) = d else { continue };
        let cname = ensure_cluster(c, vr, dest, snap);
        clusters.push((cname, w.unwrap_or(0).max(0) as u32));
    }
    let mut weighted = WeightedClusters::new(clusters);
    weighted.resolved = weighted
        .clusters
        .iter()
        .map(|(name, _)| snap.cluster_id(name))
        .collect();
    weighted
}

/// AUTO_PASSTHROUGH may name any registered service: build a cluster for every
/// ServiceEntry host and port, with and without each DestinationRule subset.
fn ensure_all_clusters(c: &Config, snap: &mut Snapshot) {
    for ser in c.of_kind(Kind::ServiceEntry) {
        let Spec::ServiceEntry(se) = &ser.spec else {
            continue;
        };
        for h in &se.hosts {
            let subsets: Vec<String> = std::iter::once(String::new())
                .chain(
                    find_destination_rule(c, h, &ser.namespace)
                        .into_iter()
                        .flat_map(|(_, dr)| dr.subsets.iter().map(|s| s.name.clone())),
                )
                .collect();
            for p in &se.ports {
                for subset in &subsets {
                    let d = Destination {
                        host: h.clone(),
                        subset: (!subset.is_empty()).then(|| subset.clone()),
                        port: Some(PortSelector { number: p.number }),
                    };
                    ensure_cluster(c, ser, &d, snap);
                }
            }
        }
    }
}

/// The virtual hosts of one listener: for each server, the VirtualServices bound to its
/// Gateway whose hosts intersect the server's, merged per host in file order with
/// catch-all routes moved last (Istio `SortVHostRoutes`).
fn virtual_hosts(c: &Config, servers: &[GatewayServer], snap: &mut Snapshot) -> Vec<VirtualHost> {
    // (domain, httpsRedirect, routes)
    let mut domains: Vec<(String, bool, Vec<Arc<Route>>)> = Vec::new();
    let mut added: Vec<(String, usize)> = Vec::new();
    // A VirtualService's routes as one Gateway sees them, compiled once however many
    // of its hosts become virtual hosts.
    let mut compiled: HashMap<(usize, GatewayKey), Vec<Arc<Route>>> = HashMap::new();
    for gs in servers {
        let (gw, _, server) = gs;
        let gw_key = (gw.namespace.as_str(), gw.name.as_str());
        let redirect = server.tls.as_ref().is_some_and(|t| t.https_redirect);
        for (vi, vr, vs, hosts) in bound_virtual_services(c, *gs) {
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
                match domains.iter_mut().find(|(d, _, _)| *d == h) {
                    Some((_, r, rs)) => {
                        *r |= redirect;
                        rs.extend(routes)
                    }
                    None => domains.push((h, redirect, routes)),
                }
            }
        }
        // Istio redirects a server's hosts to https even where no VirtualService binds.
        if redirect {
            for h in &server.hosts {
                let h = host::split_namespace_host(h).1.to_ascii_lowercase();
                if !domains.iter().any(|(d, _, _)| *d == h) {
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
        let name = route_name(vr, i, r);
        let applicable: Vec<HttpMatchRequest> = r
            .r#match
            .iter()
            .filter(|m| applies_at(vr, &m.gateways, gw))
            .cloned()
            .collect();
        if !r.r#match.is_empty() && applicable.is_empty() {
            continue; // every match is for other gateways
        }
        let Some(d) = &r.delegate else {
            out.extend(compile_route(c, vr, r, name, &applicable, snap));
            continue;
        };
        // Delegation: the delegate's routes, each under the root match narrowed by its own.
        let ns = d.namespace.as_deref().unwrap_or(&vr.namespace);
        let delegate = c
            .of_kind(Kind::VirtualService)
            .find_map(|dr| match &dr.spec {
                Spec::VirtualService(dvs) if dr.name == d.name && dr.namespace == ns => {
                    Some((dr, dvs))
                }
                _ => None,
            });
        let Some((dres, dvs)) = delegate else {
            snap.notes.push(format!(
                "{name}: delegate VirtualService {ns}/{} not found; the rule is skipped",
                d.name
            ));
            continue;
        };
        for (k, dr) in dvs.http.iter().enumerate() {
            if dr.delegate.is_some() {
                snap.notes.push(format!(
                    "{}: a delegate cannot delegate again; the rule is skipped",
                    route_name(dres, k, dr)
                ));
                continue;
            }
            let merged = delegate::merge_all(&applicable, &dr.r#match);
            if merged.is_empty() && !(applicable.is_empty() && dr.r#match.is_empty()) {
                continue; // every pairing conflicts: unreachable through this root
            }
            let dname = format!("{} (delegated from {name})", route_name(dres, k, dr));
            out.extend(compile_route(c, dres, dr, dname, &merged, snap));
        }
    }
    out
}

fn route_name(vr: &Resource, i: usize, r: &HttpRoute) -> String {
    match &r.name {
        Some(n) => format!(
            "VirtualService {}/{} http[{i}] {n:?}",
            vr.namespace, vr.name
        ),
        None => format!("VirtualService {}/{} http[{i}]", vr.namespace, vr.name),
    }
}

/// Decodes standard base64 (`directResponse.body.bytes`, validated at load).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let t = s.trim().trim_end_matches('=');
    let mut out = Vec::with_capacity(t.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in t.bytes() {
        acc = acc << 6 | val(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// One `HTTPRoute` with the given (already narrowed) matches.
fn compile_route(
    c: &Config,
    vr: &Resource,
    r: &HttpRoute,
    name: String,
    applicable: &[HttpMatchRequest],
    snap: &mut Snapshot,
) -> Option<Route> {
    let mut matches = Vec::with_capacity(applicable.len());
    for m in applicable {
        match RequestMatch::compile(m) {
            Ok(m) => matches.push(m),
            Err(e) => {
                // Validation compiles the same conditions, so a valid config never gets
                // here; if one did, the whole rule goes rather than a condition (a rule
                // without its condition would take every request).
                snap.notes.push(format!("{name}: rule skipped: {e}"));
                return None;
            }
        }
    }
    let action = if let Some(dr) = &r.direct_response {
        let body = match dr.body.as_ref() {
            Some(HttpBody { bytes: Some(b), .. }) => base64_decode(b).unwrap_or_default(),
            Some(HttpBody {
                string: Some(s), ..
            }) => s.clone().into_bytes(),
            _ => Vec::new(),
        };
        RouteAction::DirectResponse {
            status: dr.status as u16,
            body,
        }
    } else if let Some(rd) = &r.redirect {
        RouteAction::Redirect(Redirect::compile(rd))
    } else if !r.route.is_empty() {
        let mut w = weighted(
            c,
            vr,
            r.route.iter().map(|d| (d.destination.as_ref(), d.weight)),
            snap,
        );
        w.headers = r
            .route
            .iter()
            .filter(|d| d.destination.is_some())
            .map(|d| HeaderPolicy::compile(d.headers.as_ref()))
            .collect();
        RouteAction::Forward(w)
    } else {
        return None;
    };
    let mut policy = RoutePolicy {
        headers: HeaderPolicy::compile(r.headers.as_ref()),
        fault: r.fault.as_ref().map(Fault::compile),
        timeout: r
            .timeout
            .as_deref()
            .and_then(|t| crate::config::duration::parse(t).ok())
            .filter(|t| !t.is_zero()),
        retry: RetryPolicy::compile(r.retries.as_ref()),
        ..RoutePolicy::default()
    };
    if let Some(rw) = &r.rewrite {
        match Rewrite::compile(rw) {
            Ok(rw) => policy.rewrite = Some(rw),
            Err(e) => snap.notes.push(format!("{name}: rewrite skipped: {e}")),
        }
    }
    if let Some(cors) = &r.cors_policy {
        match Cors::compile(cors) {
            Ok(cp) => policy.cors = Some(cp),
            Err(e) => snap.notes.push(format!("{name}: corsPolicy skipped: {e}")),
        }
    }
    // `mirror` with `mirrorPercentage` (or the deprecated integer), or `mirrors`.
    let mut mirrors: Vec<(&Destination, f64)> = Vec::new();
    if let Some(m) = &r.mirror {
        let pct = r
            .mirror_percentage
            .as_ref()
            .map(|p| p.value)
            .or(r.mirror_percent.or(r.mirror_percent_snake).map(f64::from))
            .unwrap_or(100.0);
        mirrors.push((m, pct / 100.0));
    }
    for m in r.mirrors.iter().flatten() {
        if let Some(d) = &m.destination {
            let pct = m.percentage.as_ref().map_or(100.0, |p| p.value);
            mirrors.push((d, pct / 100.0));
        }
    }
    for (d, fraction) in mirrors {
        let cluster_name = ensure_cluster(c, vr, d, snap);
        policy.mirrors.push(Mirror {
            cluster: snap.cluster_id(&cluster_name),
            cluster_name,
            sampler: Sampler::new(fraction),
        });
    }
    Some(Route {
        name: name.into(),
        matches,
        action,
        policy,
    })
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
    if snap.cluster_ids.contains_key(&name) {
        return name;
    }
    let dr = find_destination_rule(c, &d.host, &vr.namespace).map(|(_, dr)| dr);
    let subset_labels = if subset.is_empty() {
        Some(OrderedMap::default())
    } else {
        dr.and_then(|dr| dr.subsets.iter().find(|s| s.name == subset))
            .map(|s| s.labels.clone())
    };
    let Some(subset_labels) = subset_labels else {
        return name; // subset not defined: no cluster (503 NC)
    };
    let endpoints = cluster::endpoints(c, ser, se, &fqdn, port, &subset_labels);
    let mut cluster = ClusterSpec::new(name.clone(), endpoints);
    cluster.policy.tcp_idle_timeout = cluster::tcp_idle_timeout(dr, &subset, port.number);
    cluster.policy.http2 = cluster::speaks_http2(dr, &subset, port);
    let id = ClusterId(snap.clusters.len() as u32);
    snap.clusters.push(Arc::new(cluster));
    snap.cluster_ids.insert(name.clone(), id);
    name
}

#[cfg(test)]
mod tests;
