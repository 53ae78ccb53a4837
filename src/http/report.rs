//! The end of a request, reported to telemetry: Istio's request metrics for the cluster
//! it went to (or `unknown`), and the access log's view of it (Envoy's stream info:
//! addresses, bytes, the endpoint tried last, response code details).

use super::context::{RequestContext, ResponseFlags};
use crate::telemetry::{Exchange, HttpSample, RequestProtocol, Telemetry};
use crate::tls::connection as tls_connection;
use pingora::prelude::*;
use pingora::ErrorType;
use std::time::SystemTime;

static GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

pub fn report(
    telemetry: &Telemetry,
    session: &Session,
    error: Option<&Error>,
    ctx: &RequestContext,
) {
    let response = session.response_written();
    let status = response.map_or(0, |r| r.status.as_u16());
    let mut flags = ctx.flags;
    if let Some(e) = error {
        // The client went away before the answer was complete (Envoy's DC).
        if *e.esource() == ErrorSource::Downstream
            && matches!(
                e.etype(),
                ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError
            )
        {
            flags.insert(ResponseFlags::DC);
        }
    }
    let req = session.req_header();
    let grpc = ctx.grpc_messages.as_ref();
    // Wanted for a gRPC request's metrics and for the access log; not looked up otherwise.
    let grpc_status = match grpc.is_some() || telemetry.logs_access() {
        true => ctx.grpc_status.or_else(|| {
            response
                .and_then(|r| r.headers.get(&GRPC_STATUS))
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
        }),
        false => None,
    };
    let http = session.as_ref();
    let (received, sent) = (http.body_bytes_read() as u64, http.body_bytes_sent() as u64);
    let duration = ctx.started.elapsed();
    let sample = HttpSample {
        protocol: if grpc.is_some() {
            RequestProtocol::Grpc
        } else {
            RequestProtocol::Http
        },
        response_code: status,
        flags,
        grpc_status: grpc.and(grpc_status),
        duration,
        request_bytes: received,
        response_bytes: sent,
        request_messages: grpc.map_or(0, |g| g.0.count),
        response_messages: grpc.map_or(0, |g| g.1.count),
    };
    let dest = ctx.telemetry.as_deref().unwrap_or(telemetry.unknown());
    if !telemetry.logs_access() {
        // The metrics alone: nothing else is gathered.
        dest.http(&sample);
        return;
    }
    let tls = tls_connection::of(session);
    let mut e = Exchange::new(SystemTime::now() - duration, duration);
    e.request = Some(req);
    e.response = response;
    e.scheme = Some(if tls.is_some() { "https" } else { "http" });
    e.protocol = Some(if http.is_http2() {
        "HTTP/2"
    } else if req.version == http::Version::HTTP_10 {
        "HTTP/1.0"
    } else {
        "HTTP/1.1"
    });
    e.response_code = Some(status);
    e.flags = flags;
    e.response_code_details = Some(details(ctx, flags, status));
    e.bytes_received = received;
    e.bytes_sent = sent;
    e.upstream_host = ctx.retry.tried().last().copied();
    e.upstream_cluster = ctx.cluster.as_deref().map(|c| c.name());
    e.upstream_local_address = ctx.upstream_local;
    e.downstream_local_address = session.server_addr().and_then(|a| a.as_inet()).copied();
    e.downstream_remote_address = session.client_addr().and_then(|a| a.as_inet()).copied();
    e.requested_server_name = tls.and_then(|t| t.sni.as_deref());
    e.route_name = ctx.route.as_deref().and_then(|r| r.route_name.as_deref());
    e.grpc_status = grpc_status;
    e.attempts = (ctx.retry.attempts > 0).then_some(ctx.retry.attempts);
    if flags.contains(ResponseFlags::UF) {
        e.upstream_transport_failure_reason = Some("connection_failure");
    }
    telemetry.http(dest, &sample, &e);
}

/// Envoy's `%RESPONSE_CODE_DETAILS%`: where the answer came from.
fn details(ctx: &RequestContext, flags: ResponseFlags, status: u16) -> &'static str {
    if ctx.via_upstream {
        return "via_upstream";
    }
    if let Some(d) = ctx.details {
        return d;
    }
    const BY_FLAG: [(ResponseFlags, &str); 9] = [
        (ResponseFlags::NR, "route_not_found"),
        (ResponseFlags::NC, "cluster_not_found"),
        (ResponseFlags::UH, "no_healthy_upstream"),
        (ResponseFlags::FI, "fault_filter_abort"),
        (ResponseFlags::SI, "stream_idle_timeout"),
        (ResponseFlags::UT, "response_timeout"),
        (
            ResponseFlags::UF,
            "upstream_reset_before_response_started{connection_failure}",
        ),
        (
            ResponseFlags::UR,
            "upstream_reset_before_response_started{remote_reset}",
        ),
        (ResponseFlags::DC, "downstream_remote_disconnect"),
    ];
    for (f, d) in BY_FLAG {
        if flags.contains(f) {
            return d;
        }
    }
    if status == 0 {
        "downstream_remote_disconnect"
    } else {
        "local_reply"
    }
}
