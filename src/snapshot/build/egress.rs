//! Stage for the egress role: servers of Gateways that select `istio: egressgateway`. The
//! registry of outbound names (every ServiceEntry host on every port, with its cluster),
//! Envoy's PassthroughCluster under ALLOW_ANY, a filter chain that takes a PASSTHROUGH
//! server's SNIs no `tls` route takes, and virtual hosts for the Host names no
//! VirtualService takes: registered ones to their ServiceEntry, the rest refused (502 NR)
//! or passed through by the outbound mode.

use super::{ensure_cluster, GatewayServer};
use crate::config::host;
use crate::config::model::*;
use crate::config::resource::Resource;
use crate::config::Config;
use crate::snapshot::cluster::{ClusterId, ClusterSpec, Discovery, ServiceRef};
use crate::snapshot::egress::{EgressRegistry, OutboundMode, Registered};
use crate::snapshot::route_policy::{HeaderPolicy, RetryPolicy, RoutePolicy};
use crate::snapshot::route_table::{Route, RouteAction, VirtualHost, WeightedClusters};
use crate::snapshot::sni_router::{ChainAction, FilterChain};
use crate::snapshot::Snapshot;
use std::sync::Arc;

/// Envoy's name for the cluster of unregistered destinations under ALLOW_ANY.
pub const PASSTHROUGH_CLUSTER: &str = "PassthroughCluster";

/// Whether Gateway `g` serves the egress role (its selector says `istio: egressgateway`).
pub(super) fn is_egress(g: &Resource) -> bool {
    match &g.spec {
        Spec::Gateway(gs) => gs.selector.get("istio").map(String::as_str) == Some("egressgateway"),
        _ => false,
    }
}

/// The annotation that makes a Gateway's HTTP servers an HTTP CONNECT proxy for egress.
pub const CONNECT_PROXY_ANNOTATION: &str = "meshgate.io/connect-proxy";

/// Whether Gateway `g` asks its HTTP servers to accept CONNECT (`"true"`).
pub(super) fn is_connect_proxy(g: &Resource) -> bool {
    g.meta
        .annotations
        .get(CONNECT_PROXY_ANNOTATION)
        .map(String::as_str)
        == Some("true")
}

/// MeshConfig `outboundTrafficPolicy.mode`.
fn mode(c: &Config) -> OutboundMode {
    match c
        .mesh_config()
        .and_then(|m| m.outbound_traffic_policy.as_ref())
        .and_then(|p| p.mode)
    {
        Some(crate::config::model::OutboundMode::RegistryOnly) => OutboundMode::RegistryOnly,
        _ => OutboundMode::AllowAny,
    }
}

/// Builds the registry (and, under ALLOW_ANY, the PassthroughCluster) into `snap`.
pub(super) fn registry(c: &Config, snap: &mut Snapshot) {
    let mut entries = Vec::new();
    for ser in c.of_kind(Kind::ServiceEntry) {
        let Spec::ServiceEntry(se) = &ser.spec else {
            continue;
        };
        let name: Arc<str> = format!("{}/{}", ser.namespace, ser.name).into();
        for h in &se.hosts {
            for p in &se.ports {
                let d = Destination {
                    host: h.clone(),
                    subset: None,
                    port: Some(PortSelector { number: p.number }),
                };
                let cname = ensure_cluster(c, ser, &d, snap);
                let cluster = snap.cluster_id(&cname);
                let dynamic = cluster
                    .and_then(|id| snap.cluster(id))
                    .is_some_and(|s| s.discovery == Discovery::Dynamic);
                entries.push(Registered {
                    host: h.to_ascii_lowercase(),
                    service_entry: name.clone(),
                    port: p.number,
                    cluster,
                    dynamic,
                });
            }
        }
    }
    let mode = mode(c);
    if mode == OutboundMode::AllowAny && snap.cluster_id(PASSTHROUGH_CLUSTER).is_none() {
        let mut spec = ClusterSpec::new(PASSTHROUGH_CLUSTER.to_string(), Vec::new());
        spec.discovery = Discovery::Dynamic;
        spec.service = ServiceRef {
            host: PASSTHROUGH_CLUSTER.to_string(),
            ..ServiceRef::default()
        };
        let id = ClusterId(snap.clusters.len() as u32);
        snap.clusters.push(Arc::new(spec));
        snap.cluster_ids.insert(PASSTHROUGH_CLUSTER.to_string(), id);
        snap.passthrough = Some(id);
    }
    snap.egress = EgressRegistry::new(mode, entries);
}

/// The chain that takes an egress PASSTHROUGH server's SNIs no `tls` route takes.
pub(super) fn chain((g, i, s): GatewayServer) -> FilterChain {
    FilterChain {
        name: format!("{} (egress)", super::server_label(g, i)).into(),
        server_names: s
            .hosts
            .iter()
            .map(|h| host::split_namespace_host(h).1.to_ascii_lowercase())
            .collect(),
        action: ChainAction::Egress,
    }
}

/// A catch-all route of `name` doing `action`, with Istio's default retries. Its route
/// name (`%ROUTE_NAME%`, the last field of Istio's default access-log line) is the egress
/// decision: the audit trail of HTTP requests.
fn route(name: String, decision: &str, action: RouteAction) -> Arc<Route> {
    Arc::new(Route {
        name: name.into(),
        route_name: Some(decision.into()),
        matches: Vec::new(),
        action,
        policy: RoutePolicy {
            headers: HeaderPolicy::shared(None),
            retry: RetryPolicy::compile(None),
            ..RoutePolicy::default()
        },
    })
}

fn forward(snap: &Snapshot, cluster: &str) -> RouteAction {
    let mut w = WeightedClusters::new(vec![(cluster.to_string(), 100)]);
    w.resolved = vec![snap.cluster_id(cluster)];
    RouteAction::Forward(w)
}

/// Virtual hosts for an egress HTTP port's Host names no VirtualService takes (`taken`):
/// each registered host on the port within the servers' hosts goes to its ServiceEntry;
/// the servers' hosts themselves catch the rest: refused (REGISTRY_ONLY: 502, NR) or
/// passed through to the Host (ALLOW_ANY).
pub(super) fn virtual_hosts(
    servers: &[GatewayServer],
    taken: &[VirtualHost],
    snap: &Snapshot,
) -> Vec<VirtualHost> {
    let mut out: Vec<VirtualHost> = Vec::new();
    let free = |d: &str, out: &[VirtualHost]| {
        !taken
            .iter()
            .chain(out)
            .any(|v| v.domain.eq_ignore_ascii_case(d))
    };
    for (g, i, s) in servers.iter().filter(|(g, _, _)| is_egress(g)) {
        let Some(port) = s.port.as_ref().map(|p| p.number) else {
            continue;
        };
        let hosts: Vec<&str> = s
            .hosts
            .iter()
            .map(|h| host::split_namespace_host(h).1)
            .collect();
        for e in snap.egress.entries.iter().filter(|e| e.port == port) {
            let within = hosts
                .iter()
                .any(|h| host::host_intersection(h, &e.host).is_some());
            if !within || !free(&e.host, &out) {
                continue;
            }
            let Some(id) = e.cluster else { continue };
            let Some(spec) = snap.cluster(id) else {
                continue;
            };
            let name = format!("ServiceEntry {} (egress)", e.service_entry);
            out.push(VirtualHost {
                domain: e.host.clone(),
                https_redirect: false,
                routes: vec![route(name, "egress_allowed", forward(snap, &spec.name))],
            });
        }
        for h in hosts {
            let h = h.to_ascii_lowercase();
            if !free(&h, &out) {
                continue;
            }
            let label = super::server_label(g, *i);
            let (decision, action) = match snap.passthrough.and_then(|id| snap.cluster(id)) {
                Some(p) => ("egress_passthrough", forward(snap, &p.name)),
                None => ("egress_refused_unregistered", RouteAction::BlackHole),
            };
            out.push(VirtualHost {
                domain: h,
                https_redirect: false,
                routes: vec![route(
                    format!("{label} (egress, unregistered)"),
                    decision,
                    action,
                )],
            });
        }
    }
    out
}
