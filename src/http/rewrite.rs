//! The request as the route rewrites it: path (`rewrite.uri`, `uriRegexRewrite`), host
//! (`rewrite.authority`, a `set` of `host`/`:authority`), and header operations; and the
//! path as MeshConfig `pathNormalization` normalizes it before matching. An HTTP/2
//! request keeps its `:scheme` and `:authority` through both (they live in its URI).

use super::header_ops;
use super::normalize;
use crate::config::model::PathNormalizationMode;
use crate::snapshot::route_table::{Route, RouteAction};
use http::uri::{Authority, Parts, PathAndQuery};
use pingora::http::RequestHeader;
use pingora::prelude::*;

/// Replaces the request target's path and query, keeping the scheme and authority an
/// HTTP/2 (or absolute-form) request carries in its URI.
fn set_target(req: &mut RequestHeader, target: &[u8]) -> Result<()> {
    if req.uri.authority().is_none() {
        // Origin-form: Pingora keeps bytes that are not UTF-8 as they came.
        return req.set_raw_path(target);
    }
    let mut parts = Parts::default();
    parts.scheme = Some(req.uri.scheme().cloned().unwrap_or(http::uri::Scheme::HTTP));
    parts.authority = req.uri.authority().cloned();
    parts.path_and_query =
        Some(PathAndQuery::try_from(target).or_err(ErrorType::InvalidHTTPHeader, "request path")?);
    let uri = http::Uri::from_parts(parts).or_err(ErrorType::InvalidHTTPHeader, "request uri")?;
    req.set_uri(uri);
    Ok(())
}

/// Replaces the Host, and the URI's authority when the request carries one (HTTP/2's
/// `:authority`: Pingora derives the upstream Host from it).
fn set_host(req: &mut RequestHeader, host: &str) -> Result<()> {
    req.insert_header("host", host)?;
    if req.uri.authority().is_some() {
        if let Ok(a) = Authority::try_from(host) {
            let mut parts = Parts::default();
            parts.scheme = Some(req.uri.scheme().cloned().unwrap_or(http::uri::Scheme::HTTP));
            parts.authority = Some(a);
            parts.path_and_query = req.uri.path_and_query().cloned();
            if let Ok(uri) = http::Uri::from_parts(parts) {
                req.set_uri(uri);
            }
        }
    }
    Ok(())
}

/// Normalizes the request's path per `mode`; `false` when it cannot be (Envoy's 400).
pub(super) fn normalize_path(req: &mut RequestHeader, mode: PathNormalizationMode) -> bool {
    if mode == PathNormalizationMode::None {
        return true;
    }
    // The path as sent (bytes that are not UTF-8 included), then the query as sent.
    let target = {
        let raw = req.raw_path();
        let (path, query): (&[u8], Option<&[u8]>) = if raw.starts_with(b"/") {
            match raw.iter().position(|b| *b == b'?') {
                Some(q) => (&raw[..q], Some(&raw[q..])),
                None => (raw, None),
            }
        } else {
            let q = req.uri.path_and_query().map_or("", |p| p.as_str());
            let q = q.find('?').map(|i| &q.as_bytes()[i..]);
            (req.uri.path().as_bytes(), q)
        };
        match normalize::normalize(path, mode) {
            Err(normalize::InvalidPath) => return false,
            Ok(None) => return true,
            Ok(Some(mut p)) => {
                p.extend_from_slice(query.unwrap_or_default());
                p
            }
        }
    };
    set_target(req, &target).is_ok()
}

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
        // A rewrite that makes no valid target leaves the path as it was.
        let _ = set_target(req, pq.as_bytes());
    }
    let host = dest_headers
        .and_then(|h| h.host_rewrite.as_deref())
        .into_iter()
        .chain(policy.rewrite.as_ref().and_then(|r| r.authority.as_deref()))
        .chain(policy.headers.host_rewrite.as_deref())
        .last();
    if let Some(h) = host {
        set_host(req, h)?;
    }
    if let Some(d) = dest_headers {
        header_ops::apply(&d.request, req)?;
    }
    header_ops::apply(&policy.headers.request, req)
}

/// The request header names a route sets (`set`/`add`, destination and route level).
pub(super) fn headers_set(route: &Route, dest: Option<usize>) -> impl Iterator<Item = &str> {
    let dest_ops = match (&route.action, dest) {
        (RouteAction::Forward(w), Some(i)) => w.headers.get(i).map(|d| &d.request),
        _ => None,
    };
    dest_ops
        .into_iter()
        .chain(std::iter::once(&route.policy.headers.request))
        .flat_map(|ops| {
            ops.set
                .iter()
                .chain(ops.add.iter())
                .map(|(k, _)| k.as_str())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_keep_an_http2_authority() {
        let mut r = RequestHeader::build("GET", b"/old?q=1", None).unwrap();
        r.set_uri("http://a.example.com:8080/old?q=1".parse().unwrap());
        set_target(&mut r, b"/new?q=1").unwrap();
        assert_eq!(r.uri, "http://a.example.com:8080/new?q=1");
        set_host(&mut r, "b.example.com").unwrap();
        assert_eq!(r.uri, "http://b.example.com/new?q=1");
        assert_eq!(r.headers["host"], "b.example.com");

        let mut r = RequestHeader::build("GET", b"/a/../b?x=/../", None).unwrap();
        assert!(normalize_path(&mut r, PathNormalizationMode::Base));
        assert_eq!(r.uri, "/b?x=/../");
        assert_eq!(r.uri.authority(), None);

        let mut r = RequestHeader::build("GET", b"/a/%00", None).unwrap();
        assert!(!normalize_path(&mut r, PathNormalizationMode::Base));
    }
}
