//! Connections rather than requests: VirtualService `tcp` routes (TCP ports, terminated
//! TLS servers) and the `tls` route a PASSTHROUGH chain carries, first match wins.

use super::route::destinations;
use super::{Outcome, Trace};
use crate::snapshot::l4_route::{L4Match, L4Route};
use crate::snapshot::Snapshot;
use std::net::SocketAddr;
use std::sync::Arc;

/// Why one match entry does not take a connection to `local`.
fn unmatched(m: &L4Match, local: SocketAddr) -> Option<String> {
    if let Some(p) = m.port.filter(|p| *p != local.port()) {
        return Some(format!(
            "port {p}: the connection came in on port {}",
            local.port()
        ));
    }
    if !m.destination_subnets.is_empty()
        && !m.destination_subnets.iter().any(|s| s.contains(local.ip()))
    {
        return Some(format!(
            "destinationSubnets ({} block(s)) do not hold the gateway address {}",
            m.destination_subnets.len(),
            local.ip()
        ));
    }
    None
}

fn conditions(m: &L4Match) -> String {
    let mut parts = Vec::new();
    if let Some(p) = m.port {
        parts.push(format!("port {p}"));
    }
    if !m.destination_subnets.is_empty() {
        parts.push(format!(
            "destinationSubnets ({} block(s))",
            m.destination_subnets.len()
        ));
    }
    if parts.is_empty() {
        "an empty match".into()
    } else {
        parts.join(", ")
    }
}

/// `routes` tried in order for a connection to `local`; `kind` names them (`tcp route`).
pub(super) fn explain_tcp(
    t: &mut Trace,
    snap: &Snapshot,
    routes: &[Arc<L4Route>],
    local: SocketAddr,
    kind: &str,
) -> Outcome {
    if routes.is_empty() {
        t.step(&format!("{kind}s"), "none bound to this server");
        t.step("result", "connection closed: no route");
        return Outcome::Refused;
    }
    for r in routes {
        t.met(&r.name);
        let step = format!("{kind} {}", r.name);
        if r.matches(local) {
            let why = if r.matches.is_empty() {
                "no match conditions".to_string()
            } else {
                let (i, m) = r
                    .matches
                    .iter()
                    .enumerate()
                    .find(|(_, m)| m.matches(local))
                    .map_or((0, None), |(i, m)| (i, Some(m)));
                let c = m.map_or_else(String::new, conditions);
                if r.matches.len() > 1 {
                    format!("match[{i}]: {c}")
                } else {
                    c
                }
            };
            t.step(&step, format!("matches ({why})"));
            let result = destinations(t, snap, &r.clusters, false);
            t.step("result", result);
            return Outcome::Routed;
        }
        let many = r.matches.len() > 1;
        let why: Vec<String> = r
            .matches
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                let u = unmatched(m, local)?;
                Some(if many { format!("match[{i}] {u}") } else { u })
            })
            .collect();
        t.step(&step, format!("no match: {}", why.join("; ")));
    }
    t.step("result", format!("connection closed: no {kind} matches"));
    Outcome::Refused
}
