//! An HTTP request through a route table: header hygiene and path normalization as the
//! pipeline does them before matching, the virtual host and why, each rule tried in order
//! and the condition that failed.

use super::names::{host_choice, opt_match, some_of, str_match};
use super::{route, Normalize, Outcome, Query, Trace};
use crate::config::model::HeadersWithUnderscoresAction;
use crate::snapshot::host_index::{normalize as normalize_host, split_host_port, strip_port};
use crate::snapshot::matcher::{RequestView, Unmatched};
use crate::snapshot::route_table::{Route, RouteTable};
use crate::snapshot::Snapshot;
use std::net::SocketAddr;

/// The request as the pipeline would see it.
#[derive(Debug)]
pub(super) struct Request {
    pub method: String,
    /// `Host` / `:authority`: `--host`, else a `host` header, else the SNI, else empty.
    pub authority: String,
    /// The path as sent, without its query.
    pub path: String,
    pub query: Option<String>,
    /// Names lower-cased, in order (the first of a name is the one matched).
    pub headers: Vec<(String, String)>,
    pub sni: Option<String>,
    /// The Host was not given: the SNI stands for it.
    pub host_from_sni: bool,
}

impl Request {
    pub fn new(q: &Query) -> Request {
        let headers: Vec<(String, String)> = q
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        let authority = q
            .host
            .clone()
            .or_else(|| {
                headers
                    .iter()
                    .find(|(k, _)| k == "host" || k == ":authority")
                    .map(|(_, v)| v.clone())
            })
            .or_else(|| q.sni.clone());
        let host_from_sni = authority.is_some()
            && authority == q.sni
            && q.host.is_none()
            && !headers
                .iter()
                .any(|(k, _)| k == "host" || k == ":authority");
        let authority = authority.unwrap_or_default();
        let full = q.path.clone().unwrap_or_else(|| "/".into());
        let (path, query) = match full.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (full, None),
        };
        Request {
            method: q
                .method
                .clone()
                .unwrap_or_else(|| "GET".into())
                .to_ascii_uppercase(),
            authority,
            path,
            query,
            headers,
            sni: q.sni.clone(),
            host_from_sni,
        }
    }

    /// The port in the Host, if any.
    pub fn host_port(&self) -> Option<u16> {
        split_host_port(&self.authority)
            .1
            .and_then(|p| p.parse().ok())
            .filter(|p| *p > 0)
    }

    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }

    /// `GET /reviews/1, Host bookinfo.example.com, header end-user: jason, SNI a.com`.
    pub fn describe(&self) -> String {
        let mut out = format!("{} {}", self.method, self.path_and_query());
        if self.authority.is_empty() {
            out.push_str(", no Host");
        } else {
            out.push_str(&format!(", Host {}", self.authority));
            if self.host_from_sni {
                out.push_str(" (the SNI)");
            }
        }
        for (k, v) in &self.headers {
            if k != "host" {
                out.push_str(&format!(", header {k}: {v}"));
            }
        }
        if let Some(s) = &self.sni {
            out.push_str(&format!(", TLS SNI {s}"));
        }
        out
    }
}

/// A request's value for a header condition: the pseudo-headers are the request line's
/// (as the matcher reads them).
fn value_of<'a>(v: &RequestView<'a>, name: &str) -> Option<&'a str> {
    match name {
        ":method" => Some(v.method),
        ":authority" => Some(v.authority),
        ":scheme" => Some(v.scheme),
        ":path" => Some(v.path_and_query),
        _ => (v.header)(name),
    }
}

/// Why a match entry does not take the request, in the operator's terms.
pub(super) fn unmatched(u: Unmatched, v: &RequestView) -> String {
    let has = |name: &str| match value_of(v, name) {
        Some(x) => format!("the request has {x:?}"),
        None => "the request has none".into(),
    };
    match u {
        Unmatched::Port(p) => format!("port {p}: the request came in on port {}", v.port),
        Unmatched::Uri(m, ignore_case) => format!(
            "uri {}{} does not match path {:?}",
            str_match(m),
            if ignore_case { " (ignoreUriCase)" } else { "" },
            v.path
        ),
        Unmatched::Scheme(m) => format!("scheme {}: the scheme is {:?}", str_match(m), v.scheme),
        Unmatched::Method(m) => format!("method {}: the method is {:?}", str_match(m), v.method),
        Unmatched::Authority(m) => {
            format!(
                "authority {}: the authority is {:?}",
                str_match(m),
                v.authority
            )
        }
        Unmatched::Header(name, m) => format!("header {name} {}: {}", opt_match(m), has(name)),
        Unmatched::WithoutHeader(name, m) => {
            let why = match value_of(v, name) {
                Some(x) => format!("the request has {x:?}"),
                None => "a missing header counts as \"\"".into(),
            };
            format!("withoutHeaders {name} {}: {why}", opt_match(m))
        }
        Unmatched::QueryParam(name, m) => {
            let value = v.query.and_then(|q| {
                q.split('&').find_map(|kv| {
                    let (k, x) = kv.split_once('=').unwrap_or((kv, ""));
                    (k == name).then_some(x)
                })
            });
            let has = match value {
                Some(x) => format!("the query has {x:?}"),
                None => "the query has none".into(),
            };
            format!("queryParams {name} {}: {has}", opt_match(m))
        }
    }
}

/// An HTTP request on a plain-text listener, or inside a terminated TLS connection.
pub(super) fn explain_http(
    t: &mut Trace,
    snap: &Snapshot,
    table: &RouteTable,
    req: &Request,
    local: SocketAddr,
    terminated: bool,
    normalize: Normalize,
) -> Outcome {
    let scheme = if terminated { "https" } else { "http" };
    // MeshConfig headersWithUnderscoresAction, before anything reads the headers.
    let mut headers = req.headers.clone();
    let underscored: Vec<String> = headers
        .iter()
        .filter(|(k, _)| k.contains('_'))
        .map(|(k, _)| k.clone())
        .collect();
    if !underscored.is_empty() {
        match snap.downstream.headers_with_underscores {
            HeadersWithUnderscoresAction::Allow => {}
            HeadersWithUnderscoresAction::RejectRequest => {
                t.step(
                    "headers",
                    format!(
                        "{} has an underscore and MeshConfig headersWithUnderscoresAction is REJECT_REQUEST",
                        underscored.join(", ")
                    ),
                );
                t.step("result", "400 Bad Request (DPE)");
                return Outcome::Refused;
            }
            HeadersWithUnderscoresAction::DropHeader => {
                headers.retain(|(k, _)| !k.contains('_'));
                t.step(
                    "headers",
                    format!(
                        "{} dropped before matching (headersWithUnderscoresAction DROP_HEADER)",
                        underscored.join(", ")
                    ),
                );
            }
        }
    }
    let path = match normalize(&req.path) {
        Ok(p) => {
            if p != req.path {
                t.step(
                    "path",
                    format!(
                        "{:?} normalized to {p:?} (MeshConfig pathNormalization {})",
                        req.path,
                        mode_name(snap)
                    ),
                );
            }
            p
        }
        Err(why) => {
            t.step(
                "path",
                format!("{:?} cannot be normalized: {why}", req.path),
            );
            t.step("result", "400 Bad Request");
            return Outcome::Refused;
        }
    };
    let path_and_query = match &req.query {
        Some(q) => format!("{path}?{q}"),
        None => path.clone(),
    };
    let lookup = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    let view = RequestView {
        path: &path,
        path_and_query: &path_and_query,
        query: req.query.as_deref(),
        method: &req.method,
        scheme,
        authority: &req.authority,
        port: local.port(),
        header: &lookup,
    };

    let host = normalize_host(&req.authority);
    let domains: Vec<&str> = table.vhosts.iter().map(|v| v.domain.as_str()).collect();
    let Some(vh) = table.select(&req.authority) else {
        let listed: Vec<String> = domains.iter().map(|d| format!("{d:?}")).collect();
        t.step(
            "virtual host",
            format!(
                "none for {host:?} (virtual hosts: {})",
                if listed.is_empty() {
                    "none".to_string()
                } else {
                    some_of(&listed, 8)
                }
            ),
        );
        t.step("result", "404 Not Found (NR): no virtual host");
        return Outcome::Refused;
    };
    t.step(
        "virtual host",
        format!(
            "{:?} ({}), {} rule(s)",
            vh.domain,
            host_choice(&vh.domain, &host, &domains),
            vh.routes.len()
        ),
    );
    if vh.https_redirect && !terminated {
        let location = format!("https://{}{path_and_query}", strip_port(&req.authority));
        t.step(
            "httpsRedirect",
            format!(
                "the Gateway server's tls.httpsRedirect answers every request: 301 to {location}"
            ),
        );
        t.step("result", format!("answered: 301 redirect to {location}"));
        return Outcome::Answered;
    }
    for r in &vh.routes {
        t.met(&r.name);
        match rule(r, &view) {
            Ok((why, matched)) => {
                t.step(&format!("rule {}", r.name), format!("matches ({why})"));
                return route::explain_route(t, snap, r, matched, &view, local.port());
            }
            Err(why) => t.step(&format!("rule {}", r.name), format!("no match: {why}")),
        }
    }
    t.step(
        "result",
        format!(
            "404 Not Found (NR): no rule of virtual host {:?} matches",
            vh.domain
        ),
    );
    Outcome::Refused
}

/// Whether `r` takes the request: `Ok` with the match entry that did (and its `uri`
/// condition, for rewrites), else why each entry did not.
#[allow(clippy::type_complexity)]
fn rule<'r>(
    r: &'r Route,
    v: &RequestView,
) -> Result<(String, Option<&'r crate::snapshot::matcher::StrMatch>), String> {
    let Some(matched) = r.matching(v) else {
        let failed: Vec<Unmatched> = r
            .matches
            .iter()
            .filter_map(|m| m.first_unmatched(v))
            .collect();
        // Every entry failing on its `uri`: one clause, the path said once.
        if failed.len() > 1 && failed.iter().all(|u| matches!(u, Unmatched::Uri(..))) {
            let uris: Vec<String> = failed
                .iter()
                .map(|u| match u {
                    Unmatched::Uri(m, ic) => {
                        format!(
                            "{}{}",
                            str_match(m),
                            if *ic { " (ignoreUriCase)" } else { "" }
                        )
                    }
                    _ => String::new(),
                })
                .collect();
            return Err(format!(
                "path {:?} matches none of uri {}",
                v.path,
                uris.join(", ")
            ));
        }
        let many = failed.len() > 1;
        let why: Vec<String> = failed
            .into_iter()
            .enumerate()
            .map(|(i, u)| {
                let u = unmatched(u, v);
                if many {
                    format!("match[{i}] {u}")
                } else {
                    u
                }
            })
            .collect();
        return Err(why.join("; "));
    };
    if r.matches.is_empty() {
        return Ok(("no match conditions".into(), None));
    }
    let (i, m) = r
        .matches
        .iter()
        .enumerate()
        .find(|(_, m)| m.matches(v))
        .map_or((0, None), |(i, m)| (i, Some(m)));
    let what = m.map_or_else(String::new, |m| m.describe());
    let what = if what.is_empty() {
        "an empty match".to_string()
    } else {
        what
    };
    Ok((
        if r.matches.len() > 1 {
            format!("match[{i}]: {what}")
        } else {
            what
        },
        matched,
    ))
}

/// The mode as MeshConfig spells it (`BASE`, `MERGE_SLASHES`).
fn mode_name(snap: &Snapshot) -> String {
    serde_json::to_value(snap.downstream.path_normalization)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}
