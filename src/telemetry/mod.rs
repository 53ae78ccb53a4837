//! Where the data paths report what happened, through one interface: the HTTP pipeline
//! reports each request, the TCP proxy each connection. Records carry only values bounded
//! by the config (cluster names, status codes, flags), never raw client input, so metrics
//! built on them keep a bounded cardinality. The access log and Prometheus metrics
//! (a later issue) are sinks of this interface; today it logs at debug level.

mod flags;

pub use flags::ResponseFlags;
use std::time::Duration;

/// One HTTP request, as it ended.
#[derive(Debug)]
pub struct HttpRecord<'a> {
    /// The route that took it (`VirtualService ns/name http[i]`), if any.
    pub route: Option<&'a str>,
    /// The cluster it was sent to, if any.
    pub cluster: Option<&'a str>,
    /// The status the client got (0: none was sent).
    pub status: u16,
    pub flags: ResponseFlags,
    /// Upstream tries made.
    pub attempts: u32,
    pub duration: Duration,
}

/// One TCP or TLS-passthrough connection, as it ended.
#[derive(Debug)]
pub struct TcpRecord<'a> {
    pub cluster: &'a str,
    /// Bytes from the client (Istio's `istio_tcp_received_bytes_total`).
    pub received: u64,
    /// Bytes to the client (`istio_tcp_sent_bytes_total`).
    pub sent: u64,
    pub flags: ResponseFlags,
    pub duration: Duration,
}

/// The sink every data path reports to.
#[derive(Debug, Default)]
pub struct Telemetry {}

impl Telemetry {
    pub fn http(&self, r: &HttpRecord) {
        log::debug!(
            "http route={} cluster={} status={} flags={} attempts={} duration_ms={}",
            r.route.unwrap_or("-"),
            r.cluster.unwrap_or("-"),
            r.status,
            r.flags.as_envoy(),
            r.attempts,
            r.duration.as_millis()
        );
    }

    pub fn tcp(&self, r: &TcpRecord) {
        log::debug!(
            "tcp cluster={} received={} sent={} flags={} duration_ms={}",
            r.cluster,
            r.received,
            r.sent,
            r.flags.as_envoy(),
            r.duration.as_millis()
        );
    }
}
