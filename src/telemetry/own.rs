//! meshgate's own metrics, beside Istio's: what build runs, which config serves and
//! since when, open downstream connections per listener, TLS handshakes that failed and
//! why, access-log lines dropped, and how long each Gateway certificate has left. Kept
//! in a `prometheus` registry: none of these is on a request's path except the
//! connection gauge (one atomic add per connection).

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Why a TLS handshake failed, as `meshgate_tls_handshake_failures_total{reason}` says:
/// a fixed set, so a client cannot mint label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// No ClientHello within `requestHeadersTimeout`, or not TLS at all.
    NoClientHello,
    /// No filter chain for the SNI (no server's `hosts` match).
    NoMatchingServer,
    /// The handshake itself failed (protocol, certificate, version or cipher).
    Handshake,
    /// The handshake did not finish in time.
    Timeout,
}

impl HandshakeFailure {
    fn label(self) -> &'static str {
        match self {
            HandshakeFailure::NoClientHello => "no_client_hello",
            HandshakeFailure::NoMatchingServer => "no_matching_server",
            HandshakeFailure::Handshake => "handshake_error",
            HandshakeFailure::Timeout => "timeout",
        }
    }
}

pub struct OwnMetrics {
    registry: Registry,
    config_generation: IntGauge,
    config_loaded: IntGauge,
    reloads: IntCounterVec,
    downstream_active: IntGaugeVec,
    tls_failures: IntCounterVec,
    pub access_log_dropped: IntCounter,
    /// Requests the HTTP/1 fast path served (the rest went through the full pipeline).
    pub fast_path_requests: IntCounter,
    certificate_expiry: IntGaugeVec,
    egress: IntCounterVec,
}

impl Default for OwnMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl OwnMetrics {
    pub fn new() -> OwnMetrics {
        let registry = Registry::new();
        let build = IntGaugeVec::new(
            Opts::new(
                "meshgate_build_info",
                "The meshgate build serving (always 1).",
            ),
            &["version"],
        )
        .expect("valid metric");
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let config_generation = IntGauge::new(
            "meshgate_config_generation",
            "The serving configuration's generation: 1 at start, +1 for each accepted reload.",
        )
        .expect("valid metric");
        let config_loaded = IntGauge::new(
            "meshgate_config_loaded_timestamp_seconds",
            "When the serving configuration was loaded (Unix time).",
        )
        .expect("valid metric");
        let reloads = IntCounterVec::new(
            Opts::new(
                "meshgate_config_reloads_total",
                "Configuration reloads (SIGHUP), by result: accepted or refused.",
            ),
            &["result"],
        )
        .expect("valid metric");
        for r in ["accepted", "refused"] {
            reloads.with_label_values(&[r]);
        }
        let downstream_active = IntGaugeVec::new(
            Opts::new(
                "meshgate_downstream_connections_active",
                "Open downstream connections per gateway listener.",
            ),
            &["listener"],
        )
        .expect("valid metric");
        let tls_failures = IntCounterVec::new(
            Opts::new(
                "meshgate_tls_handshake_failures_total",
                "Downstream TLS handshakes that failed, by reason.",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let access_log_dropped = IntCounter::new(
            "meshgate_access_log_dropped_total",
            "Access log lines dropped because the writer's queue was full.",
        )
        .expect("valid metric");
        let fast_path_requests = IntCounter::new(
            "meshgate_http1_fast_path_requests_total",
            "HTTP/1.1 requests served by the fast path rather than the full pipeline.",
        )
        .expect("valid metric");
        let certificate_expiry = IntGaugeVec::new(
            Opts::new(
                "meshgate_certificate_expiry_seconds",
                "Seconds until each Gateway server certificate expires (negative: expired).",
            ),
            &["certificate"],
        )
        .expect("valid metric");
        let egress = IntCounterVec::new(
            Opts::new(
                "meshgate_egress_connections_total",
                "Egress decisions on connections (SNI, CONNECT) by decision (allowed, passthrough, refused) and ServiceEntry (`unregistered` for every name none registers).",
            ),
            &["decision", "service_entry"],
        )
        .expect("valid metric");
        for c in [
            Box::new(build) as Box<dyn prometheus::core::Collector>,
            Box::new(egress.clone()),
            Box::new(config_generation.clone()),
            Box::new(config_loaded.clone()),
            Box::new(reloads.clone()),
            Box::new(downstream_active.clone()),
            Box::new(tls_failures.clone()),
            Box::new(access_log_dropped.clone()),
            Box::new(fast_path_requests.clone()),
            Box::new(certificate_expiry.clone()),
        ] {
            registry.register(c).expect("metric names are distinct");
        }
        // Every reason shows from the start, at 0, so alerts on rates work at once.
        for r in [
            HandshakeFailure::NoClientHello,
            HandshakeFailure::NoMatchingServer,
            HandshakeFailure::Handshake,
            HandshakeFailure::Timeout,
        ] {
            tls_failures.with_label_values(&[r.label()]);
        }
        OwnMetrics {
            registry,
            config_generation,
            config_loaded,
            reloads,
            downstream_active,
            tls_failures,
            access_log_dropped,
            fast_path_requests,
            certificate_expiry,
            egress,
        }
    }

    /// An egress decision on a connection: `decision` is `allowed`, `passthrough` or
    /// `refused`; `service_entry` a ServiceEntry's `ns/name` or `unregistered`.
    pub fn egress(&self, decision: &str, service_entry: &str) {
        self.egress
            .with_label_values(&[decision, service_entry])
            .inc();
    }

    /// A configuration of `generation` started serving now.
    pub fn config_adopted(&self, generation: u64) {
        self.config_generation.set(generation as i64);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.config_loaded.set(now as i64);
    }

    /// A reload was accepted (`true`) or refused.
    pub fn reloaded(&self, accepted: bool) {
        let result = if accepted { "accepted" } else { "refused" };
        self.reloads.with_label_values(&[result]).inc();
    }

    /// The serving configuration's generation.
    pub fn generation(&self) -> i64 {
        self.config_generation.get()
    }

    /// When the serving configuration was loaded (Unix seconds).
    pub fn loaded_at(&self) -> i64 {
        self.config_loaded.get()
    }

    /// The gauge of open connections on `listener` (resolved once per listener; its
    /// updates are single atomic adds).
    pub fn downstream_connections(&self, listener: &str) -> IntGauge {
        self.downstream_active.with_label_values(&[listener])
    }

    pub fn tls_handshake_failed(&self, why: HandshakeFailure) {
        self.tls_failures.with_label_values(&[why.label()]).inc();
    }

    /// Sets each certificate file's time left, read from the file now (so a renewed
    /// certificate shows at the next scrape).
    pub fn certificates<'a>(&self, files: impl IntoIterator<Item = &'a Path>) {
        self.certificate_expiry.reset();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        for f in files {
            if let Some(not_after) = not_after(f) {
                self.certificate_expiry
                    .with_label_values(&[&f.display().to_string()])
                    .set(not_after - now);
            }
        }
    }

    pub fn render(&self, out: &mut String) {
        let _ = prometheus::TextEncoder::new().encode_utf8(&self.registry.gather(), out);
    }
}

/// The first certificate's `notAfter` in a PEM file, as Unix time.
fn not_after(path: &Path) -> Option<i64> {
    let pem = std::fs::read(path).ok()?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).ok()?;
    let cert = pem.parse_x509().ok()?;
    Some(cert.validity().not_after.timestamp())
}
