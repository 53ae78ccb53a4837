//! The chosen route's pipeline in the order the pipeline runs it (CORS, fault, redirect
//! or direct response, rewrite, headers, timeout, retries, mirrors), then its
//! destinations: weights, subsets, each cluster's policy and endpoints.

use super::names::{body, duration, percent};
use super::{Outcome, Trace};
use crate::snapshot::cluster::{ClusterSpec, CONNECT_TIMEOUT, DEFAULT_TCP_IDLE_TIMEOUT};
use crate::snapshot::matcher::{RequestView, StrMatch};
use crate::snapshot::route_policy::{
    Abort, HeaderOps, HeaderPolicy, RedirectInput, RetryOn, RetryPolicy, DEFAULT_RETRY_BACKOFF,
};
use crate::snapshot::route_table::{Route, RouteAction, WeightedClusters};
use crate::snapshot::Snapshot;

/// A matched HTTP route: what it does with the request.
pub(super) fn explain_route(
    t: &mut Trace,
    snap: &Snapshot,
    route: &Route,
    matched: Option<&StrMatch>,
    v: &RequestView,
    listener_port: u16,
) -> Outcome {
    t.step("route", &*route.name);
    let p = &route.policy;
    if let Some(c) = &p.cors {
        let origin = (v.header)("origin");
        let preflight =
            v.method == "OPTIONS" && (v.header)("access-control-request-method").is_some();
        let mut policy = Vec::new();
        for (k, x) in [
            ("allowMethods", &c.allow_methods),
            ("allowHeaders", &c.allow_headers),
            ("exposeHeaders", &c.expose_headers),
        ] {
            if !x.is_empty() {
                policy.push(format!("{k} {x}"));
            }
        }
        if let Some(age) = &c.max_age {
            policy.push(format!("maxAge {age}s"));
        }
        if c.allow_credentials {
            policy.push("allowCredentials".into());
        }
        let policy = if policy.is_empty() {
            String::new()
        } else {
            format!(" ({})", policy.join(", "))
        };
        let (what, answered) = match origin {
            None => ("the request has no Origin: CORS does nothing".to_string(), None),
            Some(o) if preflight && c.allows(o) => (
                format!("preflight from allowed origin {o:?}: answered at the gateway"),
                Some(format!("answered: 200 CORS preflight, access-control-allow-origin {o}")),
            ),
            Some(o) if preflight && c.ignore_unmatched_preflights => (
                format!("preflight from origin {o:?}, not allowed: answered without CORS headers (unmatchedPreflights IGNORE)"),
                Some("answered: 200 without CORS headers".to_string()),
            ),
            Some(o) if preflight => (
                format!("preflight from origin {o:?}, not allowed: forwarded (Envoy's default)"),
                None,
            ),
            Some(o) if c.allows(o) => (
                format!("origin {o:?} allowed: the response gets access-control-allow-origin"),
                None,
            ),
            Some(o) => (
                format!("origin {o:?} not allowed: the response gets no CORS headers"),
                None,
            ),
        };
        t.step("cors", format!("{what}{policy}"));
        if let Some(a) = answered {
            t.step("result", a);
            return Outcome::Answered;
        }
    }
    if let Some(f) = &p.fault {
        if let Some((d, s)) = &f.delay {
            t.step(
                "fault",
                format!(
                    "delay {} for {} of requests (DI)",
                    duration(*d),
                    share(s.fraction)
                ),
            );
        }
        if let Some((a, s)) = &f.abort {
            let what = match a {
                Abort::Http(code) => format!("HTTP {code}"),
                Abort::Grpc(code) => format!("grpc-status {code}"),
            };
            t.step(
                "fault",
                format!(
                    "abort with {what} for {} of requests (FI)",
                    share(s.fraction)
                ),
            );
            if s.fraction >= 1.0 {
                t.step(
                    "result",
                    format!("answered: fault abort {what}, no upstream"),
                );
                return Outcome::Answered;
            }
        }
    }
    let w = match &route.action {
        RouteAction::Redirect(r) => {
            let location = r.location(&RedirectInput {
                scheme: v.scheme,
                listener_port,
                authority: v.authority,
                path: v.path,
                query: v.query,
                matched,
            });
            t.step("redirect", format!("{} to {location}", r.code));
            t.step(
                "result",
                format!("answered: {} redirect to {location}", r.code),
            );
            return Outcome::Answered;
        }
        RouteAction::DirectResponse { status, body: b } => {
            t.step("direct response", format!("{status}, {}", body(b)));
            t.step("result", format!("answered: direct response {status}"));
            return Outcome::Answered;
        }
        RouteAction::BlackHole => {
            t.step(
                "egress",
                "no ServiceEntry registers this host (REGISTRY_ONLY)",
            );
            t.step("result", "answered: 502 (BlackHoleCluster, NR)");
            return Outcome::Answered;
        }
        RouteAction::Forward(w) => w,
    };
    if let Some(rw) = &p.rewrite {
        let mut parts = Vec::new();
        if let Some(to) = rw.path(v.path, matched) {
            parts.push(format!("path {:?} to {to:?}", v.path));
        }
        if let Some(a) = &rw.authority {
            parts.push(format!("authority to {a:?}"));
        }
        if !parts.is_empty() {
            t.step("rewrite", parts.join(", "));
        }
    }
    header_steps(t, "", &p.headers);
    if let Some(d) = p.timeout {
        t.step(
            "timeout",
            format!(
                "{} for the whole request, retries included (then 504 UT)",
                duration(d)
            ),
        );
    }
    if let Some(r) = retries(&p.retry) {
        t.step("retries", r);
    }
    for m in &p.mirrors {
        let missing = if m.cluster.is_none() {
            " (no such cluster: no copy is sent)"
        } else {
            ""
        };
        t.step(
            "mirror",
            format!(
                "a copy to {} for {} of requests{missing}",
                m.cluster_name,
                percent(m.sampler.fraction)
            ),
        );
    }
    let result = destinations(t, snap, w, true);
    t.step("result", result);
    Outcome::Routed
}

/// `50%`, with Envoy's reading of a fault without a percentage.
fn share(fraction: f64) -> String {
    if fraction <= 0.0 {
        "0% (no percentage set: Envoy applies it to none)".into()
    } else {
        percent(fraction)
    }
}

/// The retry policy when it is not Istio's default (which every route has otherwise).
fn retries(r: &RetryPolicy) -> Option<String> {
    let d = RetryPolicy::default();
    let default = r.attempts == d.attempts
        && r.per_try_timeout == d.per_try_timeout
        && r.on == d.on
        && r.codes == d.codes
        && r.backoff == d.backoff;
    if default {
        return None;
    }
    if r.attempts == 0 {
        return Some("none (attempts: 0)".into());
    }
    let mut on: Vec<String> = [
        (RetryOn::FIVE_XX, "5xx"),
        (RetryOn::GATEWAY_ERROR, "gateway-error"),
        (RetryOn::RESET, "reset"),
        (RetryOn::CONNECT_FAILURE, "connect-failure"),
        (RetryOn::RETRIABLE_4XX, "retriable-4xx"),
        (RetryOn::REFUSED_STREAM, "refused-stream"),
        (RetryOn::RETRIABLE_STATUS_CODES, "retriable-status-codes"),
        (RetryOn::CANCELLED, "cancelled"),
        (RetryOn::DEADLINE_EXCEEDED, "deadline-exceeded"),
        (RetryOn::INTERNAL, "internal"),
        (RetryOn::RESOURCE_EXHAUSTED, "resource-exhausted"),
        (RetryOn::UNAVAILABLE, "unavailable"),
    ]
    .iter()
    .filter(|(o, _)| r.on.has(*o))
    .map(|(_, n)| n.to_string())
    .collect();
    on.extend(r.codes.iter().map(u16::to_string));
    let mut out = format!("{} attempt(s) on {}", r.attempts, on.join(","));
    if let Some(p) = r.per_try_timeout {
        out.push_str(&format!(", perTryTimeout {}", duration(p)));
    }
    if r.backoff != DEFAULT_RETRY_BACKOFF {
        out.push_str(&format!(", backoff {}", duration(r.backoff)));
    }
    Some(out)
}

/// `set a: 1; add b: 2; remove c`, or `None` when there is nothing.
fn ops(o: &HeaderOps) -> Option<String> {
    let mut parts = Vec::new();
    for (verb, list) in [("set", &o.set), ("add", &o.add)] {
        if !list.is_empty() {
            let l: Vec<String> = list.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            parts.push(format!("{verb} {}", l.join(", ")));
        }
    }
    if !o.remove.is_empty() {
        parts.push(format!("remove {}", o.remove.join(", ")));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// The steps of one level's header operations (`indent` for a destination's).
fn header_steps(t: &mut Trace, indent: &str, h: &HeaderPolicy) {
    if let Some(a) = &h.host_rewrite {
        t.step(
            &format!("{indent}rewrite"),
            format!("authority to {a:?} (headers.request.set host)"),
        );
    }
    if let Some(o) = ops(&h.request) {
        t.step(&format!("{indent}request headers"), o);
    }
    if let Some(o) = ops(&h.response) {
        t.step(&format!("{indent}response headers"), o);
    }
}

/// Why requests (or connections) to a destination fail, if they do.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Failure {
    NoCluster,
    NoEndpoints,
}

/// The destinations of a route (HTTP, or TCP when `http` is false) with their clusters;
/// returns the result line.
pub(super) fn destinations(
    t: &mut Trace,
    snap: &Snapshot,
    w: &WeightedClusters,
    http: bool,
) -> String {
    let mut shares: Vec<(f64, Option<Failure>)> = Vec::new();
    for (i, (name, weight)) in w.clusters.iter().enumerate() {
        let fraction = if w.total == 0 {
            0.0
        } else {
            f64::from(*weight) / w.total as f64
        };
        let spec = w.cluster_at(i).and_then(|id| snap.cluster(id));
        let subset = match spec {
            Some(c) if !c.service.subset.is_empty() => format!(", subset {}", c.service.subset),
            _ => subset_of(name).map_or(String::new(), |s| format!(", subset {s}")),
        };
        t.step(
            &format!("destination[{i}]"),
            format!("{name}, weight {weight} ({}){subset}", percent(fraction)),
        );
        if let Some(h) = w.headers.get(i) {
            header_steps(t, "  ", h);
        }
        let failure = cluster_steps(t, spec.map(|c| &**c), http);
        shares.push((fraction, failure));
    }
    let (nc, uh) = (
        if http {
            "503 NC (no cluster)"
        } else {
            "connection closed (NC: no cluster)"
        },
        if http {
            "503 UH (no healthy upstream)"
        } else {
            "connection closed (UH: no healthy upstream)"
        },
    );
    if w.total == 0 {
        return format!("{nc}: no destination has a weight");
    }
    let failing: f64 = shares
        .iter()
        .filter(|(_, f)| f.is_some())
        .map(|(s, _)| s)
        .sum();
    let kinds = |k: Failure| shares.iter().any(|(s, f)| *s > 0.0 && *f == Some(k));
    let what = match (kinds(Failure::NoCluster), kinds(Failure::NoEndpoints)) {
        (true, true) => format!("{nc} or {uh}"),
        (true, false) => nc.to_string(),
        _ => uh.to_string(),
    };
    let live: Vec<&str> = w
        .clusters
        .iter()
        .zip(&shares)
        .filter(|(_, (s, f))| *s > 0.0 && f.is_none())
        .map(|((n, _), _)| n.as_str())
        .collect();
    let verb = if http { "forwarded" } else { "proxied" };
    match live.as_slice() {
        [] => what,
        [one] if failing == 0.0 => format!("{verb} to {one}"),
        _ if failing == 0.0 => format!("{verb} by weight to one of {} destinations", live.len()),
        _ => format!(
            "{verb} by weight; {} of requests get {what}",
            percent(failing)
        ),
    }
}

/// `outbound|PORT|SUBSET|HOST` → SUBSET when there is one.
fn subset_of(name: &str) -> Option<&str> {
    let s = name.split('|').nth(2)?;
    (!s.is_empty()).then_some(s)
}

/// A cluster's policy and endpoints (`spec` is `None` when the name resolves to no
/// cluster); the failure requests to it meet, if any.
fn cluster_steps(t: &mut Trace, spec: Option<&ClusterSpec>, http: bool) -> Option<Failure> {
    let Some(c) = spec else {
        t.step(
            "  cluster",
            "not found: no ServiceEntry host, port or DestinationRule subset gives it",
        );
        return Some(Failure::NoCluster);
    };
    let mut policy = Vec::new();
    if http {
        policy.push(if c.policy.http2 {
            "HTTP/2 (h2c) upstream".to_string()
        } else {
            "HTTP/1.1 upstream".to_string()
        });
    }
    let default = |d| if d { " (default)" } else { "" };
    policy.push(format!(
        "connectTimeout {}{}",
        duration(c.policy.connect_timeout),
        default(c.policy.connect_timeout == CONNECT_TIMEOUT)
    ));
    policy.push(format!(
        "tcp idleTimeout {}{}",
        duration(c.policy.tcp_idle_timeout),
        default(c.policy.tcp_idle_timeout == DEFAULT_TCP_IDLE_TIMEOUT)
    ));
    t.step("  cluster", policy.join(", "));
    if c.endpoints.is_empty() {
        t.step("  endpoints", "none");
        return Some(Failure::NoEndpoints);
    }
    let eps: Vec<String> = c
        .endpoints
        .iter()
        .map(|e| {
            if e.labels.is_empty() {
                e.address.to_string()
            } else {
                let l: Vec<String> = e.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("{} ({})", e.address, l.join(","))
            }
        })
        .collect();
    t.step("  endpoints", super::names::some_of(&eps, 16));
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_non_default_retries_are_said() {
        assert_eq!(retries(&RetryPolicy::default()), None);
        let p = |y: &str| RetryPolicy::compile(Some(&serde_yaml::from_str(y).unwrap()));
        assert_eq!(
            retries(&p(
                "{attempts: 3, perTryTimeout: 2s, retryOn: \"gateway-error,503\"}"
            ))
            .unwrap(),
            "3 attempt(s) on gateway-error,retriable-status-codes,503, perTryTimeout 2s"
        );
        assert_eq!(retries(&p("{attempts: 0}")).unwrap(), "none (attempts: 0)");
        assert_eq!(subset_of("outbound|80|v1|a"), Some("v1"));
        assert_eq!(subset_of("outbound|80||a"), None);
    }
}
