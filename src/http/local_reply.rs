//! Answers the gateway writes itself, as Envoy words them: errors, direct responses,
//! redirects, fault aborts (HTTP or gRPC) and CORS preflights.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::protocols::http::HttpTask;

/// Envoy's local-reply bodies: they name the failure, never an address.
pub const BODY_NO_HEALTHY_UPSTREAM: &str = "no healthy upstream";
pub const BODY_CONNECT_FAILURE: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: connection failure";
pub const BODY_RESET: &str = "upstream connect error or disconnect/reset before headers. reset reason: connection termination";
/// A circuit breaker overflowed (Envoy's UO).
pub const BODY_OVERFLOW: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: overflow";
pub const BODY_TIMEOUT: &str = "upstream request timeout";
pub const BODY_FAULT_ABORT: &str = "fault filter abort";
/// `streamIdleTimeout` ran out.
pub const BODY_STREAM_TIMEOUT: &str = "stream timeout";

/// Whether a request is gRPC, as Envoy decides it (`Grpc::Common::hasGrpcContentType`):
/// content-type `application/grpc` or `application/grpc+…` (gRPC-Web is not).
pub fn is_grpc(req: &pingora::http::RequestHeader) -> bool {
    req.headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct == "application/grpc"
                || ct
                    .strip_prefix("application/grpc")
                    .is_some_and(|rest| rest.starts_with('+') || rest.starts_with(';'))
        })
}

/// Envoy's `Grpc::Utility::httpToGrpcStatus`: the gRPC status of a local reply to a gRPC
/// request.
pub fn grpc_status_for(http_status: u16) -> u32 {
    match http_status {
        400 => 13,                   // INTERNAL
        401 => 16,                   // UNAUTHENTICATED
        403 => 7,                    // PERMISSION_DENIED
        404 => 12,                   // UNIMPLEMENTED
        429 | 502 | 503 | 504 => 14, // UNAVAILABLE
        _ => 2,                      // UNKNOWN
    }
}

/// `grpc-message` as Envoy percent-encodes it: control characters, `%` and bytes from
/// `~` up.
fn grpc_message(body: &[u8]) -> String {
    let mut out = String::with_capacity(body.len());
    for &b in body {
        if !(b' '..b'~').contains(&b) || b == b'%' {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

/// Writes a complete response: `headers`, then `body` (with its length). The header block
/// ends the stream when there is no body, so an HTTP/2 client gets one HEADERS frame with
/// END_STREAM. A local reply to a gRPC request becomes Envoy's trailers-only gRPC answer
/// (HTTP 200, `grpc-status` mapped from the status, the body as `grpc-message`).
pub async fn reply(
    session: &mut Session,
    status: u16,
    headers: &[(&'static str, &str)],
    body: &[u8],
) -> Result<()> {
    if is_grpc(session.req_header()) {
        return grpc_trailers_only(session, grpc_status_for(status), headers, body).await;
    }
    let mut resp = ResponseHeader::build(status, Some(headers.len() + 2))?;
    for (k, v) in headers {
        resp.append_header(*k, *v)?;
    }
    resp.insert_header("content-length", body.len().to_string())?;
    if !body.is_empty()
        && !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        resp.insert_header("content-type", "text/plain")?;
    }
    let mut tasks = vec![HttpTask::Header(Box::new(resp), body.is_empty())];
    if !body.is_empty() {
        tasks.push(HttpTask::Body(Some(Bytes::copy_from_slice(body)), true));
    }
    session.write_response_tasks(tasks).await?;
    Ok(())
}

/// A local reply the HTTP/1 fast path writes.
pub struct Reply<'a> {
    pub status: u16,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
    /// It answers a `HEAD` request: the head says the body's length, no body follows.
    pub head_request: bool,
}

impl Reply<'_> {
    /// Body bytes the client gets (Istio's response size).
    pub fn body_sent(&self) -> u64 {
        if self.head_request {
            0
        } else {
            self.body.len() as u64
        }
    }
}

/// A local reply to an HTTP/1.1 client that is not gRPC (the HTTP/1 fast path's), byte
/// for byte as Pingora writes [`reply`]'s: the headers, `content-length`, `content-type`
/// with a body, `Date`, `Connection`, then the body (none for `HEAD`).
pub fn h1_reply(out: &mut Vec<u8>, r: &Reply, date: &[u8], keep_alive: bool) {
    let reason = http::StatusCode::from_u16(r.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let length = r.body.len().to_string();
    out.extend_from_slice(format!("HTTP/1.1 {} {reason}\r\n", r.status).as_bytes());
    let mut line = |k: &[u8], v: &[u8]| {
        out.extend_from_slice(k);
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    };
    for (k, v) in r.headers {
        line(k.as_bytes(), v.as_bytes());
    }
    line(b"content-length", length.as_bytes());
    if !r.body.is_empty() {
        line(b"content-type", b"text/plain");
    }
    line(b"Date", date);
    line(
        b"Connection",
        if keep_alive { b"keep-alive" } else { b"close" },
    );
    out.extend_from_slice(b"\r\n");
    if !r.head_request {
        out.extend_from_slice(r.body);
    }
}

/// A plain local reply.
pub async fn local_reply(session: &mut Session, status: u16, body: &[u8]) -> Result<()> {
    reply(session, status, &[], body).await
}

/// One HEADERS block that ends the stream: HTTP 200, `application/grpc`, `grpc-status`,
/// and `grpc-message` when there is a message.
async fn grpc_trailers_only(
    session: &mut Session,
    code: u32,
    headers: &[(&'static str, &str)],
    message: &[u8],
) -> Result<()> {
    let mut resp = ResponseHeader::build(200, Some(headers.len() + 3))?;
    for (k, v) in headers {
        resp.append_header(*k, *v)?;
    }
    resp.insert_header("content-type", "application/grpc")?;
    resp.insert_header("grpc-status", code.to_string())?;
    if !message.is_empty() {
        resp.insert_header("grpc-message", grpc_message(message))?;
    }
    session
        .write_response_tasks(vec![HttpTask::Header(Box::new(resp), true)])
        .await?;
    Ok(())
}

/// The fault filter's `abort.grpcStatus`: a trailers-only gRPC answer with that status for
/// a gRPC request; any other request gets a plain 200 with the message (Envoy's fault
/// filter answers HTTP 200 and only gRPC requests are turned into gRPC replies).
pub async fn grpc_reply(session: &mut Session, code: u32, message: &str) -> Result<()> {
    if is_grpc(session.req_header()) {
        grpc_trailers_only(session, code, &[], message.as_bytes()).await
    } else {
        local_reply(session, 200, message.as_bytes()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_detection_and_status_mapping() {
        let req = |ct: &str| {
            let mut r = pingora::http::RequestHeader::build("POST", b"/svc/M", None).unwrap();
            r.insert_header("content-type", ct).unwrap();
            r
        };
        assert!(is_grpc(&req("application/grpc")));
        assert!(is_grpc(&req("application/grpc+proto")));
        assert!(!is_grpc(&req("application/grpc-web")));
        assert!(!is_grpc(&req("application/json")));
        assert_eq!(grpc_status_for(404), 12);
        assert_eq!(grpc_status_for(503), 14);
        assert_eq!(grpc_status_for(504), 14);
        assert_eq!(grpc_status_for(418), 2);
        assert_eq!(grpc_message(b"fault filter abort"), "fault filter abort");
        assert_eq!(grpc_message(b"50% ~x\n"), "50%25 %7Ex%0A");
    }
}
