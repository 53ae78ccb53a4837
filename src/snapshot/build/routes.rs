//! Stage 3: routes. Each VirtualService `http` rule compiled once: its matches, action
//! (forward by weight, redirect, direct response), policy, delegation and mirrors.

use super::*;
use crate::config::model::*;
use crate::config::resource::Resource;
use crate::config::Config;
use crate::snapshot::matcher::RequestMatch;
use crate::snapshot::route_policy::{
    Cors, Fault, HeaderPolicy, Mirror, Redirect, RetryPolicy, Rewrite, RoutePolicy, Sampler,
};
use crate::snapshot::route_table::{Route, RouteAction, WeightedClusters};
use crate::snapshot::{delegate, Snapshot};

/// The routes of one VirtualService as seen from Gateway `gw` (per-match `gateways`
/// narrow which matches apply there).
pub(super) fn http_routes(
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
            .named(Kind::VirtualService, ns, &d.name)
            .and_then(|dr| match &dr.spec {
                Spec::VirtualService(dvs) => Some((dr, dvs)),
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

pub(super) fn route_name(vr: &Resource, i: usize, r: &HttpRoute) -> String {
    match &r.name {
        Some(n) => format!(
            "VirtualService {}/{} http[{i}] {n:?}",
            vr.namespace, vr.name
        ),
        None => format!("VirtualService {}/{} http[{i}]", vr.namespace, vr.name),
    }
}

/// Decodes standard base64 (`directResponse.body.bytes`, validated at load).
pub(super) fn base64_decode(s: &str) -> Option<Vec<u8>> {
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
pub(super) fn compile_route(
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
        // Destination-level headers, parallel to the clusters; none at all when no
        // destination has any (the pipeline reads them with `get`).
        if r.route.iter().any(|d| d.headers.is_some()) {
            w.headers = r
                .route
                .iter()
                .filter(|d| d.destination.is_some())
                .map(|d| HeaderPolicy::compile(d.headers.as_deref()))
                .collect();
        }
        RouteAction::Forward(w)
    } else {
        return None;
    };
    let mut policy = RoutePolicy {
        headers: HeaderPolicy::shared(r.headers.as_deref()),
        fault: r.fault.as_deref().map(|f| Box::new(Fault::compile(f))),
        timeout: r
            .timeout
            .as_deref()
            .and_then(|t| crate::config::duration::parse(t).ok())
            .filter(|t| !t.is_zero()),
        retry: RetryPolicy::compile(r.retries.as_deref()),
        ..RoutePolicy::default()
    };
    if let Some(rw) = &r.rewrite {
        match Rewrite::compile(rw) {
            Ok(rw) => policy.rewrite = Some(Box::new(rw)),
            Err(e) => snap.notes.push(format!("{name}: rewrite skipped: {e}")),
        }
    }
    if let Some(cors) = &r.cors_policy {
        match Cors::compile(cors) {
            Ok(cp) => policy.cors = Some(Box::new(cp)),
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
        route_name: r.name.as_deref().map(Into::into),
        matches,
        action,
        policy,
    })
}

/// Weighted destinations with their clusters built and resolved.
pub(super) fn weighted<'a>(
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
