//! Choosing what serves a request: the listener's route table (or the terminating TLS
//! server's), the virtual host by authority, the first route whose match takes the
//! request, and what that route does (with its rewritten path and redirect location
//! worked out while the matching `uri` condition is at hand).

use crate::snapshot::matcher::RequestView;
use crate::snapshot::route_policy::RedirectInput;
use crate::snapshot::route_table::{Route, RouteAction};
use crate::snapshot::Snapshot;
use http::header::AsHeaderName;
use http::HeaderName;
use pingora::http::RequestHeader;
use std::cell::OnceCell;
use std::net::SocketAddr;
use std::sync::Arc;

/// What routing decided for a request.
pub(super) enum Decision {
    /// `tls.httpsRedirect`: a 301 to this location.
    HttpsRedirect(String),
    /// A route took the request: the route, the path its `rewrite` gives (if any), and
    /// the `Location` its `redirect` gives (if it redirects). Both are worked out while
    /// the matching `uri` condition is at hand.
    Route(Arc<Route>, Option<String>, Option<String>),
}

/// Envoy's `https_redirect`: same host without its port, same path and query.
pub(super) fn https_location(authority: &str, path_and_query: &str) -> String {
    let host = crate::snapshot::host_index::strip_port(authority);
    format!("https://{host}{path_and_query}")
}

/// The request's authority: `:authority` / absolute-form URI, else the Host header.
pub(super) fn authority_of(req: &RequestHeader) -> &str {
    req.uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| {
            req.headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
        })
        .unwrap_or("")
}

/// A header's value as text (a [`HeaderName`] constant is not parsed per request).
pub(super) fn header(req: &RequestHeader, name: impl AsHeaderName) -> Option<&str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether the request carries a body (so mirroring waits for it).
pub(super) fn has_body(req: &RequestHeader) -> bool {
    header(req, http::header::TRANSFER_ENCODING).is_some()
        || header(req, http::header::CONTENT_LENGTH).is_some_and(|l| l.trim() != "0")
}

/// Routes a request that arrived on `local` (over TLS terminated by `chain`, if any).
pub(super) fn decide(
    snap: &Snapshot,
    local: SocketAddr,
    chain: Option<&str>,
    scheme: &str,
    req: &RequestHeader,
) -> Option<Decision> {
    let authority = authority_of(req);
    // Header values are matched as the bytes they are, as Envoy does: any UTF-8 value as
    // is, others decoded lossily, so a value with bytes that are not ASCII is present and
    // never equals an ASCII exact match. (Treating it as absent would let such a value
    // slip past a presence rule or `withoutHeaders`.)
    let not_utf8: OnceCell<Vec<(&HeaderName, String)>> = OnceCell::new();
    let lookup = |name: &str| {
        let v = req.headers.get(name)?;
        match std::str::from_utf8(v.as_bytes()) {
            Ok(s) => Some(s),
            Err(_) => not_utf8
                .get_or_init(|| {
                    req.headers
                        .iter()
                        .filter(|(_, v)| std::str::from_utf8(v.as_bytes()).is_err())
                        .map(|(k, v)| (k, String::from_utf8_lossy(v.as_bytes()).into_owned()))
                        .collect()
                })
                .iter()
                .find(|(k, _)| k.as_str() == name)
                .map(|(_, s)| s.as_str()),
        }
    };
    let view = RequestView {
        path: req.uri.path(),
        path_and_query: req.uri.path_and_query().map_or("/", |p| p.as_str()),
        query: req.uri.query(),
        method: req.method.as_str(),
        scheme,
        authority,
        port: local.port(),
        header: &lookup,
    };
    decide_view(snap, local, chain, &view)
}

/// Routes the request `view` describes (see [`decide`]); the HTTP/1 fast path calls it
/// with a view of the request head it parsed itself.
pub(super) fn decide_view(
    snap: &Snapshot,
    local: SocketAddr,
    chain: Option<&str>,
    view: &RequestView,
) -> Option<Decision> {
    let (scheme, authority) = (view.scheme, view.authority);
    let vh = snap
        .listener_for(local)
        .and_then(|l| l.http_routes(chain))
        .and_then(|t| t.select(authority))?;
    if vh.https_redirect && chain.is_none() {
        return Some(Decision::HttpsRedirect(https_location(
            authority,
            view.path_and_query,
        )));
    }
    vh.routes.iter().find_map(|route| {
        let matched = route.matching(view)?;
        let new_path = route
            .policy
            .rewrite
            .as_ref()
            .and_then(|rw| rw.path(view.path, matched));
        let location = match &route.action {
            RouteAction::Redirect(r) => Some(r.location(&RedirectInput {
                scheme,
                listener_port: local.port(),
                authority,
                path: view.path,
                query: view.query,
                matched,
            })),
            _ => None,
        };
        Some(Decision::Route(route.clone(), new_path, location))
    })
}
