//! What the access log and the metrics know of one HTTP request or one proxied TCP
//! connection once it has ended: Envoy's "stream info". Borrowed from the data path, so
//! building one costs no allocation; a sink that keeps anything copies it.

use super::ResponseFlags;
use pingora::http::{RequestHeader, ResponseHeader};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

/// One HTTP request or TCP connection, as it ended. `None` prints as Envoy's `-`.
#[derive(Debug, Clone, Copy)]
pub struct Exchange<'a> {
    /// When the request (HTTP) or the downstream connection (TCP) started.
    pub start: SystemTime,
    /// From start to the last byte sent to the client.
    pub duration: Duration,
    /// The request as forwarded (after the gateway's rewrites and header operations, as
    /// Envoy's `%REQ()%` sees it); `None` for TCP.
    pub request: Option<&'a RequestHeader>,
    /// The response the client got; `None` for TCP or when none was sent.
    pub response: Option<&'a ResponseHeader>,
    /// `http` or `https`: the scheme the request came in with (`:scheme`).
    pub scheme: Option<&'static str>,
    /// `HTTP/1.0`, `HTTP/1.1`, `HTTP/2`; `None` for TCP (`%PROTOCOL%` prints `-`).
    pub protocol: Option<&'static str>,
    /// The status the client got, 0 when none was sent; `None` for TCP.
    pub response_code: Option<u16>,
    pub flags: ResponseFlags,
    /// Envoy's `%RESPONSE_CODE_DETAILS%` (`via_upstream`, `route_not_found`, ...).
    pub response_code_details: Option<&'static str>,
    /// Envoy's `%CONNECTION_TERMINATION_DETAILS%`.
    pub connection_termination_details: Option<&'static str>,
    /// Envoy's `%UPSTREAM_TRANSPORT_FAILURE_REASON%`.
    pub upstream_transport_failure_reason: Option<&'a str>,
    /// HTTP: body bytes from the client; TCP: bytes from the client.
    pub bytes_received: u64,
    /// HTTP: body bytes to the client; TCP: bytes to the client.
    pub bytes_sent: u64,
    /// The endpoint of the last try.
    pub upstream_host: Option<SocketAddr>,
    /// Istio's cluster name, `outbound|PORT|SUBSET|HOST`.
    pub upstream_cluster: Option<&'a str>,
    pub upstream_local_address: Option<SocketAddr>,
    pub downstream_local_address: Option<SocketAddr>,
    pub downstream_remote_address: Option<SocketAddr>,
    /// The SNI of the client's TLS handshake.
    pub requested_server_name: Option<&'a str>,
    /// `%ROUTE_NAME%`: the VirtualService route that took the request.
    pub route_name: Option<&'a str>,
    /// The gRPC status of the answer (`grpc-status`), when there was one.
    pub grpc_status: Option<u32>,
    /// `%UPSTREAM_REQUEST_ATTEMPT_COUNT%`: tries made upstream.
    pub attempts: Option<u32>,
}

impl Exchange<'_> {
    /// An exchange with nothing known but its timing: the base the data paths fill in.
    pub fn new(start: SystemTime, duration: Duration) -> Exchange<'static> {
        Exchange {
            start,
            duration,
            request: None,
            response: None,
            scheme: None,
            protocol: None,
            response_code: None,
            flags: ResponseFlags::default(),
            response_code_details: None,
            connection_termination_details: None,
            upstream_transport_failure_reason: None,
            bytes_received: 0,
            bytes_sent: 0,
            upstream_host: None,
            upstream_cluster: None,
            upstream_local_address: None,
            downstream_local_address: None,
            downstream_remote_address: None,
            requested_server_name: None,
            route_name: None,
            grpc_status: None,
            attempts: None,
        }
    }
}
