//! A TLS port: the filter chain the ClientHello's SNI picks (exact, wildcard, `*`, or the
//! port's first terminating server), then termination (HTTP or TCP routes inside),
//! PASSTHROUGH (a `tls` route) or AUTO_PASSTHROUGH (the SNI names the cluster).

use super::names::{best_pattern, host_choice, some_of};
use super::request::{explain_http, Request};
use super::{l4, route, Normalize, Outcome, Trace};
use crate::snapshot::route_table::WeightedClusters;
use crate::snapshot::sni_router::{parse_auto_sni, ChainAction, SniRouter, SniTarget, Terminated};
use crate::snapshot::Snapshot;
use std::net::SocketAddr;

pub(super) fn explain_tls(
    t: &mut Trace,
    snap: &Snapshot,
    router: &SniRouter,
    req: &Request,
    local: SocketAddr,
    normalize: Normalize,
) -> Outcome {
    // As the ClientHello reader gives it: lower-case, no trailing dot.
    let sni = req
        .sni
        .as_deref()
        .map(|s| s.trim_end_matches('.').to_ascii_lowercase())
        .filter(|s| !s.is_empty());
    if sni.is_none() {
        t.step("tls", "the ClientHello has no SNI (give one with --sni)");
    }
    // Passthrough chains whose names take the SNI but whose port or destinationSubnets
    // do not take the connection: skipped, as the router skips them.
    if let Some(sni) = &sni {
        for c in &router.chains {
            if let ChainAction::Passthrough(r) = &c.action {
                let names: Vec<&str> = c.server_names.iter().map(String::as_str).collect();
                if best_pattern(sni, &names).is_some() && !r.matches(local) {
                    t.step(
                        &format!("filter chain {}", c.name),
                        format!(
                            "skipped: its sniHosts take {sni:?} but not its port/destinationSubnets (connection to {local})"
                        ),
                    );
                }
            }
        }
    }
    let all_names = || {
        let names: Vec<String> = router
            .chains
            .iter()
            .flat_map(|c| c.server_names.iter().map(|n| format!("{n:?}")))
            .collect();
        some_of(&names, 8)
    };
    let Some(target) = router.route(sni.as_deref(), local) else {
        let why = match &sni {
            Some(s) => format!("none for SNI {s:?} (server names: {})", all_names()),
            None => "none without an SNI".to_string(),
        };
        t.step(
            "filter chain",
            format!("{why}, and no terminating server on the port"),
        );
        t.step("result", "connection closed");
        return Outcome::Refused;
    };
    let sni_str = sni.as_deref().unwrap_or("");
    // Why the chain whose names are `names` was taken.
    let reason = |names: &[String]| -> String {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        match (&sni, best_pattern(sni_str, &names)) {
            (Some(_), Some(p)) => format!("server name {p:?} ({})", host_choice(p, sni_str, &names)),
            (Some(s), None) => format!(
                "no server name takes SNI {s:?}: the port's first terminating server (server names: {})",
                all_names()
            ),
            (None, _) => "no SNI: the port's first terminating server".to_string(),
        }
    };
    match target {
        SniTarget::Egress => {
            use crate::snapshot::egress::Decision;
            let port = u32::from(local.port());
            let what = match snap.egress.decide(sni_str, port) {
                Decision::Allowed(e) => {
                    let cluster = e.cluster.and_then(|id| snap.cluster(id));
                    format!(
                        "allowed: ServiceEntry {} registers {:?} on port {port}, to {}",
                        e.service_entry,
                        e.host,
                        cluster.map_or("no cluster", |c| &c.name)
                    )
                }
                Decision::Passthrough => {
                    format!("unregistered, ALLOW_ANY: to {sni_str}:{port} (PassthroughCluster)")
                }
                Decision::Refused => {
                    t.step(
                        "egress",
                        format!("{sni_str:?} on port {port} is not registered (REGISTRY_ONLY)"),
                    );
                    t.step("result", "connection closed");
                    return Outcome::Refused;
                }
            };
            t.step("egress", what);
            t.step("result", "passthrough");
            Outcome::Routed
        }
        SniTarget::Auto(cluster) => {
            let server = parse_auto_sni(sni_str).and_then(|(_, _, host)| {
                router.chains.iter().find(|c| {
                    matches!(c.action, ChainAction::AutoPassthrough)
                        && best_pattern(
                            host,
                            &c.server_names
                                .iter()
                                .map(String::as_str)
                                .collect::<Vec<_>>(),
                        )
                        .is_some()
                })
            });
            if let Some(c) = server {
                t.met(&c.name);
            }
            t.step(
                "filter chain",
                format!(
                    "{}: AUTO_PASSTHROUGH, SNI {sni_str:?} names cluster {cluster}",
                    server.map_or("AUTO_PASSTHROUGH server", |c| &*c.name)
                ),
            );
            // The cluster as a lone destination.
            let mut w = WeightedClusters::new(vec![(cluster.clone(), 100)]);
            w.resolved = vec![snap.cluster_id(&cluster)];
            let result = route::destinations(t, snap, &w, false);
            t.step("result", format!("passthrough, {result}"));
            Outcome::Routed
        }
        SniTarget::Passthrough(r) => {
            let chain = router.chains.iter().find(|c| {
                matches!(&c.action, ChainAction::Passthrough(x) if std::sync::Arc::ptr_eq(x, r))
            });
            let why = chain.map_or_else(String::new, |c| reason(&c.server_names));
            t.step(
                "filter chain",
                format!(
                    "{}: {why}; PASSTHROUGH: the bytes go upstream undecrypted",
                    r.name
                ),
            );
            l4::explain_tcp(t, snap, std::slice::from_ref(r), local, "tls route")
        }
        SniTarget::Terminate(chain) => {
            t.met(&chain.name);
            t.step(
                "filter chain",
                format!("{}: {}", chain.name, reason(&chain.server_names)),
            );
            let ChainAction::Terminate { tls, inner } = &chain.action else {
                return Outcome::Refused;
            };
            let client = match &tls.files.ca {
                Some(ca) => format!(
                    ", client certificates checked against {} (MUTUAL or OPTIONAL_MUTUAL)",
                    ca.display()
                ),
                None => String::new(),
            };
            let then = match inner {
                Terminated::Http(_) => "; the requests inside are https",
                Terminated::Tcp(_) => "; the bytes inside go by tcp routes",
            };
            t.step(
                "tls",
                format!(
                    "terminated with certificate {}{client}{then}",
                    tls.files.cert.display()
                ),
            );
            match inner {
                Terminated::Http(table) => {
                    explain_http(t, snap, table, req, local, true, normalize)
                }
                Terminated::Tcp(routes) => l4::explain_tcp(t, snap, routes, local, "tcp route"),
            }
        }
    }
}
