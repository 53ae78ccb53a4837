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
use crate::tls::connection as tls_connection;
use pingora::http::RequestHeader;
use pingora::prelude::*;
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

/// The client's `x-forwarded-for` values, joined as one list.
fn forwarded_for(req: &RequestHeader) -> Option<String> {
    let mut values = req
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let first = values.next()?;
    Some(values.fold(first, |acc, v| format!("{acc},{v}")))
}

/// The gateway's own request headers: sanitizing, forwarding headers, request id,
/// client certificate details.
pub(super) fn forwarding_headers(
    rng: &Rng,
    session: &mut Session,
    scheme: &str,
    tls: Option<&tls_connection::TlsConnection>,
    settings: &DownstreamSettings,
) -> Result<()> {
    let peer_ip = session
        .client_addr()
        .and_then(|a| a.as_inet().map(|i| i.ip()));
    let req = session.req_header_mut();
    if req
        .headers
        .keys()
        .any(|k| k.as_str().starts_with("x-envoy-"))
    {
        for h in ENVOY_INTERNAL_HEADERS {
            req.remove_header(h);
        }
    }
    let xff = forwarded_for(req);
    let client_ip = xff
        .as_deref()
        .and_then(|x| trusted_client(x, settings.num_trusted_proxies))
        .or(peer_ip);
    if let Some(ip) = peer_ip {
        let appended = match &xff {
            Some(prev) => format!("{prev}, {ip}"),
            None => ip.to_string(),
        };
        req.insert_header("x-forwarded-for", appended)?;
    }
    // A proxy in front that is trusted may have said how the client came in.
    if settings.num_trusted_proxies == 0 || req.headers.get("x-forwarded-proto").is_none() {
        req.insert_header("x-forwarded-proto", scheme)?;
    }
    if let Some(ip) = client_ip {
        req.insert_header("x-envoy-external-address", ip.to_string())?;
    }
    if req.headers.get("x-request-id").is_none() {
        req.insert_header("x-request-id", rng.uuid())?;
    }
    let peer = tls.and_then(|t| t.peer());
    client_cert(req, settings.forward_client_cert, peer.map(|p| p.xfcc()))
}

/// Envoy's `mutateXfccRequestHeader`: `details` describes a verified client
/// certificate (`None` without mutual TLS).
fn client_cert(
    req: &mut RequestHeader,
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
            req.remove_header(XFCC);
            return Ok(());
        }
        (ForwardOnly, _) => return Ok(()),
        (_, Some(d)) => d,
    };
    let value = match (mode, req.headers.get(XFCC)) {
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
            client_cert(&mut r, mode, details.map(String::from)).unwrap();
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
}
