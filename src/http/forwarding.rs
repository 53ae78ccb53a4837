//! The gateway's own request headers, as Envoy's gateway sets them: `x-forwarded-for`
//! (appended), `x-forwarded-proto`, `x-request-id` (a UUID v4 when absent) and, under
//! Istio's gateway default SANITIZE_SET, `x-forwarded-client-cert`.

use super::routing::header;
use crate::rng::Rng;
use crate::tls::connection as tls_connection;
use pingora::prelude::*;

/// The gateway's own request headers: forwarding headers, request id, client cert.
pub(super) fn forwarding_headers(
    rng: &Rng,
    session: &mut Session,
    scheme: &str,
    tls: Option<&tls_connection::TlsConnection>,
) -> Result<()> {
    let client_ip = session
        .client_addr()
        .and_then(|a| a.as_inet().map(|i| i.ip()));
    let req = session.req_header_mut();
    if let Some(ip) = client_ip {
        let xff = match header(req, "x-forwarded-for") {
            Some(prev) => format!("{prev}, {ip}"),
            None => ip.to_string(),
        };
        req.insert_header("x-forwarded-for", xff)?;
    }
    req.insert_header("x-forwarded-proto", scheme)?;
    if req.headers.get("x-request-id").is_none() {
        req.insert_header("x-request-id", rng.uuid())?;
    }
    // Istio's gateway default (SANITIZE_SET): a client's own x-forwarded-client-cert
    // is dropped; a verified client certificate is described in a fresh one.
    req.remove_header("x-forwarded-client-cert");
    if let Some(peer) = tls.and_then(|t| t.peer()) {
        req.insert_header("x-forwarded-client-cert", peer.xfcc())?;
    }
    Ok(())
}
