//! `redirect`: the `Location` Envoy writes for the route Istio generates.

use super::*;
use crate::config::model::*;
use crate::snapshot::host_index::split_host_port;
use crate::snapshot::matcher::StrMatch;

/// Istio `HTTPRedirect`.
#[derive(Debug)]
pub struct Redirect {
    uri: Option<String>,
    prefix_rewrite: Option<String>,
    authority: Option<String>,
    port: Option<u16>,
    derive_port: Option<RedirectPortSelection>,
    scheme: Option<String>,
    pub code: u16,
}

/// What a redirect needs from the request.
pub struct RedirectInput<'a> {
    pub scheme: &'a str,
    /// The port of the listener the request arrived on (`derivePort: FROM_REQUEST_PORT`).
    pub listener_port: u16,
    pub authority: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub matched: Option<&'a StrMatch>,
}

impl Redirect {
    pub fn compile(r: &HttpRedirect) -> Redirect {
        Redirect {
            uri: r.uri.clone().filter(|u| !u.is_empty()),
            prefix_rewrite: r.prefix_rewrite.clone().filter(|u| !u.is_empty()),
            authority: r.authority.clone().filter(|a| !a.is_empty()),
            port: r.port.filter(|p| *p > 0 && *p <= 65535).map(|p| p as u16),
            derive_port: r.derive_port,
            scheme: r.scheme.clone().filter(|s| !s.is_empty()),
            code: r.redirect_code.filter(|c| *c > 0).map_or(301, |c| c as u16),
        }
    }

    /// The `Location` of a redirect, as Envoy's `newUri` writes it for the route Istio
    /// generates: the scheme replaced or kept; the host replaced (`authority`, as given)
    /// or kept. A redirect port (`port`, or the listener's port for `derivePort:
    /// FROM_REQUEST_PORT`) replaces the Host's port, except that a Host already naming
    /// that port keeps it as sent and the new scheme's default port is left out (Istio's
    /// routing tests: `https://b:80/foo`, `http://b/foo`, `http://b:80/foo` for `Host:
    /// b:80`). Without one, the Host's port stays unless the scheme changes away from the
    /// port's default (`FROM_PROTOCOL_DEFAULT` drops it). The path is replaced (`uri`) or
    /// its matched prefix rewritten; the query is kept unless the new path carries one.
    pub fn location(&self, r: &RedirectInput) -> String {
        let scheme = self.scheme.as_deref().unwrap_or(r.scheme);
        let default_port = match scheme {
            "https" => 443,
            "http" => 80,
            _ => 0,
        };
        let redirect_port = match (self.port, self.derive_port) {
            (Some(p), _) => Some(p),
            (None, Some(RedirectPortSelection::FromRequestPort)) => Some(r.listener_port),
            _ => None,
        };
        let (req_host, req_port) = split_host_port(r.authority);
        let mut out = format!("{scheme}://");
        match (&self.authority, redirect_port) {
            (Some(a), None) => out.push_str(a),
            (Some(a), Some(p)) => {
                out.push_str(split_host_port(a).0);
                if p != default_port {
                    out.push_str(&format!(":{p}"));
                }
            }
            (None, Some(p)) => {
                out.push_str(req_host);
                if req_port == Some(p.to_string().as_str()) || p != default_port {
                    out.push_str(&format!(":{p}"));
                }
            }
            (None, None) => {
                out.push_str(req_host);
                let old_default = match r.scheme {
                    "https" => "443",
                    _ => "80",
                };
                let drop = self.derive_port == Some(RedirectPortSelection::FromProtocolDefault)
                    || (scheme != r.scheme && req_port == Some(old_default));
                if let (Some(p), false) = (req_port, drop) {
                    out.push(':');
                    out.push_str(p);
                }
            }
        }
        let path = match (&self.uri, &self.prefix_rewrite) {
            (Some(u), _) => u.clone(),
            (None, Some(p)) => replace_matched(r.path, r.matched, p),
            (None, None) => r.path.to_string(),
        };
        out.push_str(&path);
        if let Some(q) = r.query.filter(|q| !q.is_empty()) {
            if !path.contains('?') {
                out.push('?');
                out.push_str(q);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redirect(yaml: &str) -> Redirect {
        Redirect::compile(&serde_yaml::from_str(yaml).unwrap())
    }

    fn loc(r: &Redirect, scheme: &str, authority: &str, path: &str, query: Option<&str>) -> String {
        loc_at(r, 8080, scheme, authority, path, query)
    }

    fn loc_at(
        r: &Redirect,
        listener_port: u16,
        scheme: &str,
        authority: &str,
        path: &str,
        query: Option<&str>,
    ) -> String {
        r.location(&RedirectInput {
            scheme,
            listener_port,
            authority,
            path,
            query,
            matched: None,
        })
    }

    #[test]
    fn redirect_locations_follow_envoy() {
        let r = redirect("{uri: /v1/bookRatings, authority: newratings.default.svc.cluster.local}");
        assert_eq!(
            loc(
                &r,
                "http",
                "ratings.com:8080",
                "/v1/getProductRatings",
                Some("a=1")
            ),
            "http://newratings.default.svc.cluster.local/v1/bookRatings?a=1",
            "Envoy's host_redirect replaces the Host with its port"
        );
        assert_eq!(r.code, 301);
        let r = redirect("{scheme: https, redirectCode: 302}");
        assert_eq!(loc(&r, "http", "a.com", "/x", None), "https://a.com/x");
        assert_eq!(r.code, 302);
        // Leaving http, the Host's port 80 goes with it; another port stays (Envoy).
        assert_eq!(
            loc(&redirect("{scheme: https}"), "http", "a.com:80", "/", None),
            "https://a.com/"
        );
        assert_eq!(
            loc(
                &redirect("{scheme: https}"),
                "http",
                "a.com:8443",
                "/",
                None
            ),
            "https://a.com:8443/"
        );
        assert_eq!(
            loc(&redirect("{port: 8443}"), "http", "a.com:80", "/p", None),
            "http://a.com:8443/p"
        );
        assert_eq!(
            loc(&redirect("{port: 80}"), "http", "a.com:8080", "/p", None),
            "http://a.com/p"
        );
        assert_eq!(
            loc(
                &redirect("{derivePort: FROM_PROTOCOL_DEFAULT}"),
                "http",
                "a.com:8080",
                "/p",
                None
            ),
            "http://a.com/p"
        );
        assert_eq!(
            loc(
                &redirect("{derivePort: FROM_REQUEST_PORT, scheme: https}"),
                "http",
                "a.com:8080",
                "/p",
                None
            ),
            "https://a.com:8080/p"
        );
        // Istio's routing tests "redirect port and scheme" and "redirect request port".
        let from_request = redirect("{derivePort: FROM_REQUEST_PORT}");
        assert_eq!(
            loc_at(
                &redirect("{derivePort: FROM_REQUEST_PORT, scheme: https}"),
                80,
                "http",
                "b",
                "/foo",
                None
            ),
            "https://b:80/foo"
        );
        assert_eq!(
            loc_at(&from_request, 80, "http", "b", "/foo", None),
            "http://b/foo"
        );
        assert_eq!(
            loc_at(&from_request, 80, "http", "b:80", "/foo", None),
            "http://b:80/foo"
        );
        assert_eq!(
            loc_at(&from_request, 85, "http", "b", "/foo", None),
            "http://b:85/foo"
        );
        assert_eq!(
            loc_at(&from_request, 85, "http", "b:85", "/foo", None),
            "http://b:85/foo"
        );
        assert_eq!(
            loc(
                &redirect("{authority: b.com:9000}"),
                "http",
                "a.com:8080",
                "/",
                None
            ),
            "http://b.com:9000/"
        );
        // A new path with its own query replaces the query.
        assert_eq!(
            loc(
                &redirect("{uri: \"/n?x=1\"}"),
                "http",
                "a.com",
                "/o",
                Some("y=2")
            ),
            "http://a.com/n?x=1"
        );
    }
}
