//! Answers the gateway writes itself, as Envoy words them: errors, direct responses,
//! redirects, fault aborts (HTTP or gRPC) and CORS preflights.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;

/// Envoy's local-reply bodies: they name the failure, never an address.
pub const BODY_NO_HEALTHY_UPSTREAM: &str = "no healthy upstream";
pub const BODY_CONNECT_FAILURE: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: connection failure";
pub const BODY_RESET: &str = "upstream connect error or disconnect/reset before headers. reset reason: connection termination";
pub const BODY_TIMEOUT: &str = "upstream request timeout";
pub const BODY_FAULT_ABORT: &str = "fault filter abort";

/// Writes a complete response: `headers`, then `body` (with its length).
pub async fn reply(
    session: &mut Session,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<()> {
    let mut resp = ResponseHeader::build(status, Some(headers.len() + 2))?;
    for (k, v) in headers {
        resp.append_header(k.to_string(), *v)?;
    }
    resp.insert_header("content-length", body.len().to_string())?;
    if !body.is_empty()
        && !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        resp.insert_header("content-type", "text/plain")?;
    }
    session
        .write_response_header(Box::new(resp), body.is_empty())
        .await?;
    if !body.is_empty() {
        session
            .write_response_body(Some(Bytes::copy_from_slice(body)), true)
            .await?;
    }
    Ok(())
}

/// A plain local reply.
pub async fn local_reply(session: &mut Session, status: u16, body: &[u8]) -> Result<()> {
    reply(session, status, &[], body).await
}

/// A trailers-only gRPC answer: HTTP 200 with `grpc-status` in the headers, as Envoy's
/// fault filter sends for `abort.grpcStatus`.
pub async fn grpc_reply(session: &mut Session, code: u32, message: &str) -> Result<()> {
    let mut resp = ResponseHeader::build(200, Some(4))?;
    resp.insert_header("content-type", "application/grpc")?;
    resp.insert_header("grpc-status", code.to_string())?;
    resp.insert_header("grpc-message", message)?;
    session.write_response_header(Box::new(resp), true).await
}
