//! The gateway's own request headers, as Envoy's HTTP connection manager sets them at
//! Istio's edge (`use_remote_address: true`, `xff_num_trusted_hops` from MeshConfig
//! `gatewayTopology.numTrustedProxies`, `forward_client_cert_details` from
//! `gatewayTopology.forwardClientCertDetails`): Envoy's internal `x-envoy-*` headers
//! removed from the client's request, `x-forwarded-for` appended, `x-forwarded-proto`,
//! `x-envoy-external-address` (the trusted client address), `x-request-id` (a UUID v4
//! when absent) and `x-forwarded-client-cert`. Every request is external: no client
//! address counts as internal (Envoy's `internal_address_config` left empty).

use crate::config::model::ForwardClientCertDetails;
use crate::rng::Rng;
use crate::snapshot::settings::DownstreamSettings;
use crate::telemetry::access_log::digits;
use crate::tls::connection as tls_connection;
use http::header::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::ErrorType::InvalidHTTPHeader;
use std::borrow::Cow;
use std::net::IpAddr;

/// What Envoy's `mutateRequestHeaders` / `cleanInternalHeaders` remove from an external
/// (edge) request, so a client cannot steer the gateway's or a sidecar's routing,
/// retries, timeouts or tracing, or pose as internal. `x-envoy-external-address` is then
/// set afresh. Other `x-envoy-*` headers pass, as they do through Envoy.
pub const ENVOY_INTERNAL_HEADERS: [&str; 20] = [
    "x-envoy-internal",
    "x-envoy-external-address",
    "x-envoy-decorator-operation",
    "x-envoy-downstream-service-cluster",
    "x-envoy-downstream-service-node",
    "x-envoy-retriable-status-codes",
    "x-envoy-retriable-header-names",
    "x-envoy-retry-on",
    "x-envoy-retry-grpc-on",
    "x-envoy-max-retries",
    "x-envoy-upstream-alt-stat-name",
    "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-upstream-rq-timeout-alt-response",
    "x-envoy-upstream-stream-duration-ms",
    "x-envoy-expected-rq-timeout-ms",
    "x-envoy-force-trace",
    "x-envoy-ip-tags",
    "x-envoy-original-url",
    "x-envoy-hedge-on-per-try-timeout",
];

/// Request headers the gateway sets itself (a client's `Connection:` must not remove
/// them on the way upstream); `x-envoy-attempt-count` is set after Pingora's hop-by-hop
/// handling and needs no protection.
pub const GATEWAY_HEADERS: [&str; 5] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-request-id",
    "x-forwarded-client-cert",
    "x-envoy-external-address",
];

/// Envoy's `getLastAddressFromXFF(headers, n - 1)`: the address `n` entries from the
/// right of the client's `x-forwarded-for` (the one the outermost trusted proxy
/// appended); `None` when there are fewer entries or it is not an IP address.
pub fn trusted_client(xff: &str, trusted_hops: u32) -> Option<IpAddr> {
    if trusted_hops == 0 {
        return None;
    }
    let mut rest = xff;
    for _ in 1..trusted_hops {
        rest = &rest[..rest.rfind(',')?];
    }
    let last = rest.rsplit(',').next().unwrap_or(rest);
    last.trim().parse().ok()
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_CLIENT_CERT: HeaderName = HeaderName::from_static("x-forwarded-client-cert");

/// Which of the headers [`forwarding_headers`] looks at the client sent, found in one
/// pass over the names (no look-up or removal of absent ones).
#[derive(Default)]
struct Present {
    /// Any `x-envoy-*` header.
    envoy: bool,
    forwarded_for: bool,
    forwarded_proto: bool,
    request_id: bool,
    client_cert: bool,
}

impl Present {
    fn of(req: &RequestHeader) -> Present {
        let mut p = Present::default();
        for k in req.headers.keys() {
            let Some(rest) = k.as_str().strip_prefix("x-") else {
                continue;
            };
            match rest {
                "forwarded-for" => p.forwarded_for = true,
                "forwarded-proto" => p.forwarded_proto = true,
                "request-id" => p.request_id = true,
                "forwarded-client-cert" => p.client_cert = true,
                _ => p.envoy |= rest.starts_with("envoy-"),
            }
        }
        p
    }
}

/// The client's `x-forwarded-for` values, joined as one list.
fn forwarded_for(req: &RequestHeader) -> Option<Cow<'_, str>> {
    let mut values = req.headers.get_all(&X_FORWARDED_FOR).iter();
    let first = String::from_utf8_lossy(values.next()?.as_bytes());
    let Some(second) = values.next() else {
        return Some(first);
    };
    let mut all = first.into_owned();
    for v in std::iter::once(second).chain(values) {
        all.push(',');
        all.push_str(&String::from_utf8_lossy(v.as_bytes()));
    }
    Some(Cow::Owned(all))
}

/// An IP address as its `Display` text, written on the stack.
pub(super) struct IpText {
    buf: [u8; 48],
    len: usize,
}

impl IpText {
    pub(super) fn new(ip: IpAddr) -> IpText {
        let mut t = IpText {
            buf: [0; 48],
            len: 0,
        };
        match ip {
            IpAddr::V4(v4) => {
                let mut b = [0; digits::IPV4_TEXT_MAX];
                t.len = digits::write_ipv4(&mut b, v4, None);
                t.buf[..t.len].copy_from_slice(&b[..t.len]);
            }
            // The longest IPv6 text is 45 bytes; the buffer holds it.
            IpAddr::V6(v6) => {
                let _ = std::fmt::Write::write_fmt(&mut t, format_args!("{v6}"));
            }
        }
        t
    }

    pub(super) fn as_str(&self) -> &str {
        // Digits, dots, colons and hex letters only.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }

    fn value(&self) -> Result<HeaderValue> {
        HeaderValue::from_bytes(&self.buf[..self.len])
            .or_err(InvalidHTTPHeader, "invalid value while insert")
    }
}

impl std::fmt::Write for IpText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The gateway's own request headers: sanitizing, forwarding headers, request id,
/// client certificate details.
pub(super) fn forwarding_headers(
    rng: &Rng,
    session: &mut Session,
    scheme: &'static str,
    tls: Option<&tls_connection::TlsConnection>,
    settings: &DownstreamSettings,
) -> Result<()> {
    let peer_ip = session
        .client_addr()
        .and_then(|a| a.as_inet().map(|i| i.ip()));
    let req = session.req_header_mut();
    let present = Present::of(req);
    if present.envoy {
        for h in ENVOY_INTERNAL_HEADERS {
            req.remove_header(h);
        }
    }
    let peer_text = peer_ip.map(IpText::new);
    // `x-forwarded-for` with the peer appended, and the trusted client address.
    let (appended, client_ip) = {
        let xff = if present.forwarded_for {
            forwarded_for(req)
        } else {
            None
        };
        let client_ip = xff
            .as_deref()
            .and_then(|x| trusted_client(x, settings.num_trusted_proxies))
            .or(peer_ip);
        let appended = match (&xff, &peer_text) {
            (Some(prev), Some(ip)) => {
                let ip = ip.as_str();
                let mut v = String::with_capacity(prev.len() + 2 + ip.len());
                v.push_str(prev);
                v.push_str(", ");
                v.push_str(ip);
                Some(v)
            }
            _ => None,
        };
        (appended, client_ip)
    };
    let mut peer_value = None;
    if let Some(ip) = &peer_text {
        match appended {
            Some(v) => req.insert_header("x-forwarded-for", v)?,
            None => {
                let v = ip.value()?;
                req.insert_header("x-forwarded-for", v.clone())?;
                peer_value = Some(v);
            }
        }
    }
    // A proxy in front that is trusted may have said how the client came in.
    if settings.num_trusted_proxies == 0 || !present.forwarded_proto {
        req.insert_header("x-forwarded-proto", HeaderValue::from_static(scheme))?;
    }
    if let Some(ip) = client_ip {
        // Mostly the peer, already written for `x-forwarded-for`.
        let v = match peer_value {
            Some(v) if Some(ip) == peer_ip => v,
            _ => IpText::new(ip).value()?,
        };
        req.insert_header("x-envoy-external-address", v)?;
    }
    if !present.request_id {
        let id = HeaderValue::from_bytes(&rng.uuid_bytes())
            .or_err(InvalidHTTPHeader, "invalid value while insert")?;
        req.insert_header("x-request-id", id)?;
    }
    let peer = tls.and_then(|t| t.peer());
    client_cert(
        req,
        present.client_cert,
        settings.forward_client_cert,
        peer.map(|p| p.xfcc()),
    )
}

/// Envoy's `mutateXfccRequestHeader`: `details` describes a verified client
/// certificate (`None` without mutual TLS); `present`: the client sent the header.
fn client_cert(
    req: &mut RequestHeader,
    present: bool,
    mode: ForwardClientCertDetails,
    details: Option<String>,
) -> Result<()> {
    use ForwardClientCertDetails::*;
    const XFCC: &str = "x-forwarded-client-cert";
    if mode == AlwaysForwardOnly {
        return Ok(());
    }
    let details = match (mode, details) {
        (Sanitize, _) | (_, None) => {
            if present {
                req.remove_header(&X_FORWARDED_CLIENT_CERT);
            }
            return Ok(());
        }
        (ForwardOnly, _) => return Ok(()),
        (_, Some(d)) => d,
    };
    let prev = match present {
        true => req.headers.get(&X_FORWARDED_CLIENT_CERT),
        false => None,
    };
    let value = match (mode, prev) {
        (AppendForward, Some(prev)) if !prev.is_empty() => {
            format!("{},{details}", String::from_utf8_lossy(prev.as_bytes()))
        }
        _ => details,
    };
    req.insert_header(XFCC, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_hops_pick_from_the_right() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(trusted_client("1.1.1.1, 2.2.2.2", 0), None);
        assert_eq!(trusted_client("1.1.1.1, 2.2.2.2", 1), ip("2.2.2.2"));
        assert_eq!(trusted_client("1.1.1.1,2.2.2.2", 2), ip("1.1.1.1"));
        assert_eq!(trusted_client("1.1.1.1, 2.2.2.2", 3), None);
        assert_eq!(trusted_client("3.3.3.3", 1), ip("3.3.3.3"));
        assert_eq!(trusted_client(" 2001:db8::1 ", 1), ip("2001:db8::1"));
        assert_eq!(trusted_client("1.1.1.1, junk", 1), None);
        assert_eq!(trusted_client("1.1.1.1, 2.2.2.2,", 1), None);
    }

    #[test]
    fn client_cert_modes_as_envoy() {
        use ForwardClientCertDetails::*;
        let run = |mode, client: Option<&str>, details: Option<&str>| {
            let mut r = RequestHeader::build("GET", b"/", None).unwrap();
            if let Some(c) = client {
                r.insert_header("x-forwarded-client-cert", c).unwrap();
            }
            let present = r.headers.contains_key("x-forwarded-client-cert");
            client_cert(&mut r, present, mode, details.map(String::from)).unwrap();
            r.headers
                .get("x-forwarded-client-cert")
                .map(|v| v.to_str().unwrap().to_string())
        };
        let c = Some("By=x");
        let d = Some("Hash=h");
        assert_eq!(run(Sanitize, c, d), None);
        assert_eq!(run(ForwardOnly, c, d).as_deref(), Some("By=x"));
        assert_eq!(run(ForwardOnly, c, None), None);
        assert_eq!(run(AppendForward, c, d).as_deref(), Some("By=x,Hash=h"));
        assert_eq!(run(AppendForward, None, d).as_deref(), Some("Hash=h"));
        assert_eq!(run(AppendForward, c, None), None);
        assert_eq!(run(SanitizeSet, c, d).as_deref(), Some("Hash=h"));
        assert_eq!(run(SanitizeSet, c, None), None);
        assert_eq!(run(AlwaysForwardOnly, c, None).as_deref(), Some("By=x"));
        assert_eq!(run(AlwaysForwardOnly, c, d).as_deref(), Some("By=x"));
    }

    #[test]
    fn ip_text_as_display() {
        for ip in [
            "0.0.0.0",
            "1.2.3.4",
            "10.0.100.9",
            "127.0.0.1",
            "255.255.255.255",
            "99.100.101.199",
            "::",
            "::1",
            "2001:db8::1",
            "::ffff:1.2.3.4",
            "fe80::1:2:3:4",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "1:0:0:1:0:0:0:1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(IpText::new(ip).as_str(), ip.to_string());
            assert_eq!(IpText::new(ip).value().unwrap(), ip.to_string().as_str());
        }
    }

    #[test]
    fn client_forwarded_for_values_joined() {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        assert_eq!(forwarded_for(&r), None);
        r.append_header("x-forwarded-for", "1.1.1.1").unwrap();
        assert_eq!(forwarded_for(&r).as_deref(), Some("1.1.1.1"));
        r.append_header("X-Forwarded-For", "2.2.2.2, 3.3.3.3")
            .unwrap();
        r.append_header("x-forwarded-for", b"\xff4".as_slice())
            .unwrap();
        assert_eq!(
            forwarded_for(&r).as_deref(),
            Some("1.1.1.1,2.2.2.2, 3.3.3.3,\u{fffd}4")
        );
    }

    #[test]
    fn headers_present_in_one_pass() {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        let p = Present::of(&r);
        assert!(!(p.envoy || p.forwarded_for || p.forwarded_proto || p.request_id));
        assert!(!p.client_cert);
        for h in [
            "X-Envoy-Foo",
            "x-forwarded-for",
            "x-forwarded-proto",
            "X-Request-Id",
            "x-forwarded-client-cert",
        ] {
            r.append_header(h.to_string(), "v").unwrap();
        }
        let p = Present::of(&r);
        assert!(p.envoy && p.forwarded_for && p.forwarded_proto && p.request_id);
        assert!(p.client_cert);
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        r.append_header("x-envoyx", "v").unwrap();
        r.append_header("x-forwarded-host", "v").unwrap();
        assert!(!Present::of(&r).envoy);
    }
}
