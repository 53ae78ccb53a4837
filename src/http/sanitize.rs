//! Request header hygiene around the pipeline: MeshConfig `headersWithUnderscoresAction`
//! (Envoy's codec option, applied before anything reads the headers), and a client's
//! `Connection:` kept from naming the headers the gateway sets.
//!
//! Pingora removes the headers a request's `Connection:` nominates when it builds the
//! upstream request (and refuses the request when one is `x-forwarded-for`,
//! `x-forwarded-proto`, `x-forwarded-host` or `host`). That runs after the pipeline has
//! set its own headers, so `Connection: x-request-id` would strip the gateway's request
//! id. Envoy's own headers are not affected by such nominations; here the nominations of
//! the gateway's headers are dropped from `Connection:` before Pingora reads it, and the
//! client's other nominated headers are still removed as hop-by-hop.

use crate::config::model::HeadersWithUnderscoresAction;
use pingora::http::RequestHeader;
use pingora::prelude::*;

/// Envoy's `headers_with_underscores_action` on a request's header names: `false` when
/// the request is to be refused (REJECT_REQUEST and a name has `_`); DROP_HEADER removes
/// such headers.
pub fn underscores(req: &mut RequestHeader, action: HeadersWithUnderscoresAction) -> bool {
    if action == HeadersWithUnderscoresAction::Allow {
        return true;
    }
    let names: Vec<http::HeaderName> = req
        .headers
        .keys()
        .filter(|k| k.as_str().contains('_'))
        .cloned()
        .collect();
    if names.is_empty() {
        return true;
    }
    if action == HeadersWithUnderscoresAction::RejectRequest {
        return false;
    }
    for n in names {
        req.remove_header(&n);
    }
    true
}

/// Drops from the request's `Connection:` tokens the tokens naming a header for which
/// `protected` says yes (given the lower-cased name); the header goes when no token is
/// left.
pub fn protect_from_connection(
    req: &mut RequestHeader,
    protected: impl Fn(&str) -> bool,
) -> Result<()> {
    let values = req.headers.get_all(http::header::CONNECTION);
    if values.iter().next().is_none() {
        return Ok(());
    }
    let mut kept: Vec<Vec<u8>> = Vec::new();
    let mut dropped = false;
    for token in values
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(|t| t.trim_ascii())
        .filter(|t| !t.is_empty())
    {
        let name = String::from_utf8_lossy(token).to_ascii_lowercase();
        if protected(&name) {
            dropped = true;
        } else {
            kept.push(token.to_vec());
        }
    }
    if !dropped {
        return Ok(());
    }
    if kept.is_empty() {
        req.remove_header(&http::header::CONNECTION);
        return Ok(());
    }
    let value = http::HeaderValue::from_bytes(&kept.join(&b", "[..]))
        .or_err(ErrorType::InvalidHTTPHeader, "connection header")?;
    req.insert_header(http::header::CONNECTION, value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use HeadersWithUnderscoresAction::*;

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn underscore_actions() {
        let mut r = req(&[("x_a", "1"), ("x-b", "2"), ("y_", "3")]);
        assert!(underscores(&mut r, Allow));
        assert_eq!(r.headers.len(), 3);
        assert!(!underscores(&mut r, RejectRequest));
        assert!(underscores(&mut r, DropHeader));
        assert_eq!(r.headers.len(), 1);
        assert!(r.headers.get("x-b").is_some());
        assert!(underscores(&mut r, RejectRequest));
    }

    #[test]
    fn protected_nominations_are_dropped() {
        let p = |n: &str| n == "x-request-id" || n == "x-forwarded-for";
        let mut r = req(&[
            ("connection", "close, X-Request-Id"),
            ("connection", "x-forwarded-for,x-hop"),
        ]);
        protect_from_connection(&mut r, p).unwrap();
        assert_eq!(r.headers["connection"], "close, x-hop");
        assert_eq!(r.headers.get_all("connection").iter().count(), 1);
        let mut r = req(&[("connection", "x-request-id")]);
        protect_from_connection(&mut r, p).unwrap();
        assert!(r.headers.get("connection").is_none());
        let mut r = req(&[("connection", "keep-alive,  x-hop")]);
        protect_from_connection(&mut r, p).unwrap();
        assert_eq!(r.headers["connection"], "keep-alive,  x-hop");
    }
}
