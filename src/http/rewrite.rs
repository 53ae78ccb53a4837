//! The request as the route rewrites it: path (`rewrite.uri`, `uriRegexRewrite`), host
//! (`rewrite.authority`, a `set` of `host`/`:authority`), and header operations.

use super::header_ops;
use crate::snapshot::route_table::{Route, RouteAction};
use pingora::http::RequestHeader;
use pingora::prelude::*;

/// Path and host rewrites and request header operations: destination level first,
/// then route level, so the route's `set` wins (Envoy's default order).
pub(super) fn apply(
    req: &mut RequestHeader,
    route: &Route,
    dest: Option<usize>,
    new_path: Option<String>,
) -> Result<()> {
    let policy = &route.policy;
    let dest_headers = match (&route.action, dest) {
        (RouteAction::Forward(w), Some(i)) => w.headers.get(i),
        _ => None,
    };
    if let Some(path) = new_path {
        let pq = match req.uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        if let Ok(uri) = http::Uri::builder().path_and_query(pq).build() {
            req.set_uri(uri);
        }
    }
    let host = dest_headers
        .and_then(|h| h.host_rewrite.as_deref())
        .into_iter()
        .chain(policy.rewrite.as_ref().and_then(|r| r.authority.as_deref()))
        .chain(policy.headers.host_rewrite.as_deref())
        .last();
    if let Some(h) = host {
        req.insert_header("host", h)?;
    }
    if let Some(d) = dest_headers {
        header_ops::apply(&d.request, req)?;
    }
    header_ops::apply(&policy.headers.request, req)
}
