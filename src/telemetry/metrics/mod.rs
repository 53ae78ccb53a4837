//! Istio's standard metrics (`istio_requests_total`, `istio_request_duration_milliseconds`,
//! `istio_request_bytes`, `istio_response_bytes`, `istio_tcp_*`), with the labels of
//! Istio's source reporter, so Istio's dashboards and alerts work on the gateway as on an
//! Envoy ingress gateway.
//!
//! Recording takes no lock and allocates nothing once a series exists: each destination
//! (one Istio cluster) has its own fixed table of atomic series, looked up by
//! (protocol, response code, gRPC status, response flags). Scrapes read every atomic once
//! and render text.
//!
//! Cardinality is bounded twice: destinations come from the config, and a destination
//! keeps at most 64 request keys and 64 TCP keys; later keys fold into one series per
//! protocol whose `response_code`, `grpc_response_status` (gRPC) and `response_flags`
//! read "unknown", so no count is lost.

mod histogram;
mod render;
mod table;

use crate::telemetry::ResponseFlags;
use render::DestinationSnapshot;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use table::{Key, Protocol, RequestValues, Table, TcpValues};

/// The gateway's own labels (Istio's `source_*` labels; the gateway is the source
/// reporter). `source_canonical_service` is the workload, `source_canonical_revision`
/// "latest" and `source_principal` "unknown".
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceLabels {
    pub workload: String,
    pub workload_namespace: String,
    pub app: String,
    pub version: String,
    pub cluster: String,
}

/// Labels of one destination (one Istio cluster: service host, port, subset). Values are
/// config-derived, so their number is bounded by the config.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestinationLabels {
    /// `destination_service`: the service host.
    pub service: String,
    pub service_name: String,
    pub service_namespace: String,
    pub workload: String,
    pub workload_namespace: String,
    /// `destination_app`; also `destination_canonical_service` unless "unknown" or empty.
    pub app: String,
    pub version: String,
    pub cluster: String,
    /// Not rendered: Istio's standard metrics have no port label (`istio_stats.cc`), so
    /// destinations differing only in port share one [`Destination`], as Envoy adds
    /// stats with equal tags into one.
    pub port: String,
}

impl DestinationLabels {
    /// Every value "unknown": requests no route took.
    pub fn unknown() -> Self {
        let u = || "unknown".to_string();
        DestinationLabels {
            service: u(),
            service_name: u(),
            service_namespace: u(),
            workload: u(),
            workload_namespace: u(),
            app: u(),
            version: u(),
            cluster: u(),
            port: u(),
        }
    }

    /// `destination_canonical_service`: the app, else the service name.
    fn canonical_service(&self) -> &str {
        if self.app.is_empty() || self.app == "unknown" {
            &self.service_name
        } else {
            &self.app
        }
    }
}

/// Istio's `request_protocol` of an HTTP request: `grpc` for gRPC requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestProtocol {
    Http,
    Grpc,
}

/// One HTTP or gRPC request, as it ended.
#[derive(Debug, Clone)]
pub struct HttpSample {
    pub protocol: RequestProtocol,
    /// The status the client got, 0 when none was sent (Istio prints "0" too).
    pub response_code: u16,
    pub flags: ResponseFlags,
    /// gRPC only: `grpc_response_status`; "" when `None` or for HTTP.
    pub grpc_status: Option<u32>,
    /// Recorded in whole milliseconds, truncated, as Envoy does.
    pub duration: Duration,
    pub request_bytes: u64,
    pub response_bytes: u64,
    /// gRPC messages from the client and to it (0 for HTTP).
    pub request_messages: u64,
    pub response_messages: u64,
}

/// Every series of one destination.
pub struct Destination {
    labels: DestinationLabels,
    /// `reporter=...,destination_cluster=...`, escaped, rendered once.
    rendered: String,
    requests: Table<RequestValues>,
    tcp: Table<TcpValues>,
}

impl fmt::Debug for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Destination")
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

impl Destination {
    fn new(source: &SourceLabels, labels: DestinationLabels) -> Destination {
        Destination {
            rendered: render::destination_labels(source, &labels),
            labels,
            requests: Table::default(),
            tcp: Table::default(),
        }
    }

    /// Records one request: `istio_requests_total` and the three histograms.
    pub fn http(&self, s: &HttpSample) {
        let protocol = match s.protocol {
            RequestProtocol::Http => Protocol::Http,
            RequestProtocol::Grpc => Protocol::Grpc,
        };
        let key = Key::request(protocol, s.response_code, s.flags, s.grpc_status);
        let series = self.requests.series(key);
        let ms = u64::try_from(s.duration.as_millis()).unwrap_or(u64::MAX);
        series.duration.record(ms);
        series.request_bytes.record(s.request_bytes);
        series.response_bytes.record(s.response_bytes);
        if protocol == Protocol::Grpc {
            series
                .request_messages
                .fetch_add(s.request_messages, Relaxed);
            series
                .response_messages
                .fetch_add(s.response_messages, Relaxed);
        }
    }

    /// Counts a TCP connection opened (`istio_tcp_connections_opened_total`), under
    /// response flags "-": none are known yet.
    pub fn tcp_opened(&self) {
        let series = self.tcp.series(Key::tcp(ResponseFlags::default()));
        series.opened.fetch_add(1, Relaxed);
    }

    /// Counts a TCP connection closed and its bytes: `received` from the client
    /// (`istio_tcp_received_bytes_total`), `sent` to it (`istio_tcp_sent_bytes_total`).
    pub fn tcp_closed(&self, flags: ResponseFlags, received: u64, sent: u64) {
        let series = self.tcp.series(Key::tcp(flags));
        series.closed.fetch_add(1, Relaxed);
        series.received.fetch_add(received, Relaxed);
        series.sent.fetch_add(sent, Relaxed);
    }
}

/// Istio's standard metrics of the whole gateway: the destinations, interned by labels.
pub struct IstioMetrics {
    source: SourceLabels,
    /// Never shrinks: counters of a destination continue across config reloads, and the
    /// number of destinations is bounded by the configs adopted.
    destinations: Mutex<HashMap<DestinationLabels, Arc<Destination>>>,
    unknown: Arc<Destination>,
}

impl fmt::Debug for IstioMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IstioMetrics")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl IstioMetrics {
    pub fn new(source: SourceLabels) -> IstioMetrics {
        let mut labels = DestinationLabels::unknown();
        labels.port.clear();
        let unknown = Arc::new(Destination::new(&source, labels.clone()));
        let destinations = Mutex::new(HashMap::from([(labels, unknown.clone())]));
        IstioMetrics {
            source,
            destinations,
            unknown,
        }
    }

    /// Interned: the same labels (the port aside, see [`DestinationLabels::port`]) always
    /// give the same Arc, so counters continue across config reloads. Takes a mutex;
    /// called when a config is adopted, not per request.
    pub fn destination(&self, mut labels: DestinationLabels) -> Arc<Destination> {
        labels.port.clear();
        let mut map = self
            .destinations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.entry(labels)
            .or_insert_with_key(|l| Arc::new(Destination::new(&self.source, l.clone())))
            .clone()
    }

    /// Where requests no route took are recorded: every destination label "unknown".
    pub fn unknown(&self) -> &Arc<Destination> {
        &self.unknown
    }

    /// Appends every family in Prometheus text exposition format 0.0.4. Series are in
    /// destination-label order, then key order; a destination with no samples prints
    /// nothing.
    pub fn render(&self, out: &mut String) {
        let mut dests: Vec<Arc<Destination>> = {
            let map = self
                .destinations
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            map.values().cloned().collect()
        };
        dests.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
        let snapshots: Vec<DestinationSnapshot<'_>> = dests
            .iter()
            .map(|d| DestinationSnapshot {
                labels: &d.rendered,
                requests: d.requests.snapshot(RequestValues::snapshot),
                tcp: d.tcp.snapshot(TcpValues::snapshot),
            })
            .filter(|d| !d.requests.is_empty() || !d.tcp.is_empty())
            .collect();
        render::render(out, &snapshots);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    macro_rules! src {
        () => {
            concat!(
                r#"reporter="source",source_workload="istio-ingressgateway","#,
                r#"source_canonical_service="istio-ingressgateway",source_canonical_revision="latest","#,
                r#"source_workload_namespace="istio-system",source_principal="unknown","#,
                r#"source_app="istio-ingressgateway",source_version="unknown",source_cluster="Kubernetes""#
            )
        };
    }
    const REVIEWS: &str = concat!(
        src!(),
        r#",destination_workload="reviews-v1",destination_workload_namespace="default","#,
        r#"destination_principal="unknown",destination_app="reviews",destination_version="v1","#,
        r#"destination_service="reviews.default.svc.cluster.local","#,
        r#"destination_canonical_service="reviews",destination_canonical_revision="latest","#,
        r#"destination_service_name="reviews",destination_service_namespace="default","#,
        r#"destination_cluster="Kubernetes""#
    );
    const UNKNOWN: &str = concat!(
        src!(),
        r#",destination_workload="unknown",destination_workload_namespace="unknown","#,
        r#"destination_principal="unknown",destination_app="unknown",destination_version="unknown","#,
        r#"destination_service="unknown",destination_canonical_service="unknown","#,
        r#"destination_canonical_revision="latest",destination_service_name="unknown","#,
        r#"destination_service_namespace="unknown",destination_cluster="unknown""#
    );
    const MYSQL: &str = concat!(
        src!(),
        r#",destination_workload="unknown",destination_workload_namespace="db","#,
        r#"destination_principal="unknown",destination_app="unknown",destination_version="unknown","#,
        r#"destination_service="mysql.db.svc.cluster.local",destination_canonical_service="mysql","#,
        r#"destination_canonical_revision="latest",destination_service_name="mysql","#,
        r#"destination_service_namespace="db",destination_cluster="Kubernetes""#
    );
    const OK: &str = r#",request_protocol="http",response_code="200",grpc_response_status="",response_flags="-",connection_security_policy="unknown""#;
    const NR: &str = r#",request_protocol="http",response_code="404",grpc_response_status="",response_flags="NR",connection_security_policy="unknown""#;
    const TCP: &str =
        r#",request_protocol="tcp",response_flags="-",connection_security_policy="unknown""#;

    fn metrics() -> IstioMetrics {
        IstioMetrics::new(SourceLabels {
            workload: "istio-ingressgateway".into(),
            workload_namespace: "istio-system".into(),
            app: "istio-ingressgateway".into(),
            version: "unknown".into(),
            cluster: "Kubernetes".into(),
        })
    }

    fn reviews() -> DestinationLabels {
        DestinationLabels {
            service: "reviews.default.svc.cluster.local".into(),
            service_name: "reviews".into(),
            service_namespace: "default".into(),
            workload: "reviews-v1".into(),
            workload_namespace: "default".into(),
            app: "reviews".into(),
            version: "v1".into(),
            cluster: "Kubernetes".into(),
            port: "9080".into(),
        }
    }

    fn mysql() -> DestinationLabels {
        DestinationLabels {
            service: "mysql.db.svc.cluster.local".into(),
            service_name: "mysql".into(),
            service_namespace: "db".into(),
            workload: "unknown".into(),
            workload_namespace: "db".into(),
            app: "unknown".into(),
            version: "unknown".into(),
            cluster: "Kubernetes".into(),
            port: "3306".into(),
        }
    }

    fn sample(code: u16, ms: u64, req: u64, resp: u64) -> HttpSample {
        HttpSample {
            protocol: RequestProtocol::Http,
            response_code: code,
            flags: ResponseFlags::default(),
            grpc_status: None,
            duration: Duration::from_millis(ms),
            request_bytes: req,
            response_bytes: resp,
            request_messages: 0,
            response_messages: 0,
        }
    }

    fn render(m: &IstioMetrics) -> String {
        let mut out = String::new();
        m.render(&mut out);
        out
    }

    /// The lines of one histogram series, from its cumulative bucket counts.
    fn hist(name: &str, labels: &str, cumulative: [u64; 20], sum: u64) -> Vec<String> {
        const LE: [&str; 20] = [
            "0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000",
            "10000", "30000", "60000", "300000", "600000", "1800000", "3600000", "+Inf",
        ];
        let mut v: Vec<String> = LE
            .iter()
            .zip(cumulative)
            .map(|(le, n)| format!("{name}_bucket{{{labels},le=\"{le}\"}} {n}"))
            .collect();
        v.push(format!("{name}_sum{{{labels}}} {sum}"));
        v.push(format!("{name}_count{{{labels}}} {}", cumulative[19]));
        v
    }

    /// `name{labels}` to value, for every sample line.
    fn samples(text: &str) -> HashMap<String, u64> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').expect("a value");
                (series.to_string(), value.parse().expect("an integer"))
            })
            .collect()
    }

    /// The sum of the samples of `name` whose labels contain every `want`.
    fn total(text: &str, name: &str, want: &[&str]) -> u64 {
        samples(text)
            .iter()
            .filter(|(s, _)| s.starts_with(&format!("{name}{{")))
            .filter(|(s, _)| want.iter().all(|w| s.contains(w)))
            .map(|(_, v)| v)
            .sum()
    }

    #[test]
    fn a_known_mix_renders_exactly() {
        let m = metrics();
        let rev = m.destination(reviews());
        let db = m.destination(mysql());
        rev.http(&HttpSample {
            duration: Duration::from_micros(400),
            ..sample(200, 0, 0, 1000)
        });
        rev.http(&sample(200, 1, 100, 2000));
        rev.http(&HttpSample {
            duration: Duration::from_micros(12_700),
            ..sample(200, 0, 100, 3000)
        });
        m.unknown().http(&HttpSample {
            flags: ResponseFlags::NR,
            ..sample(404, 2, 0, 19)
        });
        db.tcp_opened();
        db.tcp_closed(ResponseFlags::default(), 5, 7);
        // A destination with no samples prints nothing.
        m.destination(DestinationLabels {
            service: "idle".into(),
            ..reviews()
        });

        let mut want: Vec<String> = vec![
            "# HELP istio_requests_total Requests proxied.".into(),
            "# TYPE istio_requests_total counter".into(),
            format!("istio_requests_total{{{REVIEWS}{OK}}} 3"),
            format!("istio_requests_total{{{UNKNOWN}{NR}}} 1"),
            "# HELP istio_request_duration_milliseconds Request durations in milliseconds.".into(),
            "# TYPE istio_request_duration_milliseconds histogram".into(),
        ];
        let d = "istio_request_duration_milliseconds";
        let all = |n| [n; 20];
        let mut cum = all(3);
        cum[..4].copy_from_slice(&[1, 2, 2, 2]);
        want.extend(hist(d, &format!("{REVIEWS}{OK}"), cum, 13));
        let mut cum = all(1);
        cum[..2].copy_from_slice(&[0, 0]);
        want.extend(hist(d, &format!("{UNKNOWN}{NR}"), cum, 2));
        want.push("# HELP istio_request_bytes Request sizes in bytes.".into());
        want.push("# TYPE istio_request_bytes histogram".into());
        let mut cum = all(3);
        cum[..6].copy_from_slice(&[1; 6]);
        want.extend(hist(
            "istio_request_bytes",
            &format!("{REVIEWS}{OK}"),
            cum,
            200,
        ));
        want.extend(hist(
            "istio_request_bytes",
            &format!("{UNKNOWN}{NR}"),
            all(1),
            0,
        ));
        want.push("# HELP istio_response_bytes Response sizes in bytes.".into());
        want.push("# TYPE istio_response_bytes histogram".into());
        let mut cum = all(3);
        cum[..11].copy_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
        want.extend(hist(
            "istio_response_bytes",
            &format!("{REVIEWS}{OK}"),
            cum,
            6000,
        ));
        let mut cum = all(1);
        cum[..4].copy_from_slice(&[0; 4]);
        want.extend(hist(
            "istio_response_bytes",
            &format!("{UNKNOWN}{NR}"),
            cum,
            19,
        ));
        want.extend([
            "# HELP istio_tcp_sent_bytes_total Bytes sent to clients on TCP connections.".into(),
            "# TYPE istio_tcp_sent_bytes_total counter".into(),
            format!("istio_tcp_sent_bytes_total{{{MYSQL}{TCP}}} 7"),
            "# HELP istio_tcp_received_bytes_total Bytes received from clients on TCP connections."
                .into(),
            "# TYPE istio_tcp_received_bytes_total counter".into(),
            format!("istio_tcp_received_bytes_total{{{MYSQL}{TCP}}} 5"),
            "# HELP istio_tcp_connections_opened_total TCP connections opened.".into(),
            "# TYPE istio_tcp_connections_opened_total counter".into(),
            format!("istio_tcp_connections_opened_total{{{MYSQL}{TCP}}} 1"),
            "# HELP istio_tcp_connections_closed_total TCP connections closed.".into(),
            "# TYPE istio_tcp_connections_closed_total counter".into(),
            format!("istio_tcp_connections_closed_total{{{MYSQL}{TCP}}} 1"),
        ]);

        let got = render(&m);
        let got: Vec<&str> = got.lines().collect();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "line {}", i + 1);
        }
        assert_eq!(got.len(), want.len());
        // Rendering twice gives the same text.
        assert_eq!(render(&m), render(&m));
    }

    #[test]
    fn durations_fall_in_buckets_at_the_edges() {
        let m = metrics();
        let d = m.destination(reviews());
        let le = |out: &str, le: &str| {
            total(
                out,
                "istio_request_duration_milliseconds_bucket",
                &[&format!("le=\"{le}\"")],
            )
        };
        d.http(&HttpSample {
            duration: Duration::from_nanos(999_999),
            ..sample(200, 0, 0, 0)
        });
        let out = render(&m);
        assert_eq!((le(&out, "0.5"), le(&out, "1")), (1, 1), "0 ms");
        d.http(&sample(200, 1, 0, 0));
        let out = render(&m);
        assert_eq!((le(&out, "0.5"), le(&out, "1")), (1, 2), "1 ms");
        d.http(&sample(200, 3_600_001, 0, 0));
        let out = render(&m);
        assert_eq!(
            (le(&out, "3600000"), le(&out, "+Inf")),
            (2, 3),
            "3600001 ms"
        );
        let sum = total(&out, "istio_request_duration_milliseconds_sum", &[]);
        assert_eq!(sum, 3_600_002);
        // Durations beyond u64 milliseconds saturate instead of panicking.
        d.http(&HttpSample {
            duration: Duration::MAX,
            ..sample(200, 0, 0, 0)
        });
        assert_eq!(le(&render(&m), "+Inf"), 4);
    }

    #[test]
    fn grpc_requests_carry_their_status_and_labels_are_escaped() {
        let m = metrics();
        let d = m.destination(DestinationLabels {
            app: "a\"b\\c\nd".into(),
            ..reviews()
        });
        for status in [Some(0), Some(14), None] {
            d.http(&HttpSample {
                protocol: RequestProtocol::Grpc,
                grpc_status: status,
                ..sample(200, 0, 0, 0)
            });
        }
        // Ignored for HTTP: Istio prints "" for non-gRPC requests.
        d.http(&HttpSample {
            grpc_status: Some(2),
            ..sample(200, 0, 0, 0)
        });
        let out = render(&m);
        let lines: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("istio_requests_total{"))
            .collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert!(lines[0].contains(r#"request_protocol="http",response_code="200",grpc_response_status="",response_flags="-""#));
        assert!(lines[1]
            .contains(r#"request_protocol="grpc",response_code="200",grpc_response_status="","#));
        assert!(lines[2]
            .contains(r#"request_protocol="grpc",response_code="200",grpc_response_status="0","#));
        assert!(lines[3]
            .contains(r#"request_protocol="grpc",response_code="200",grpc_response_status="14","#));
        assert!(lines[0].contains(r#"destination_app="a\"b\\c\nd",destination_version"#));
        assert!(lines[0].contains(r#"destination_canonical_service="a\"b\\c\nd","#));
    }

    #[test]
    fn interning_returns_the_same_destination() {
        let m = metrics();
        let a = m.destination(reviews());
        let b = m.destination(reviews());
        assert!(Arc::ptr_eq(&a, &b));
        // Istio has no port label: series differing only in port are one series.
        let other_port = m.destination(DestinationLabels {
            port: "8080".into(),
            ..reviews()
        });
        assert!(Arc::ptr_eq(&a, &other_port));
        let v2 = m.destination(DestinationLabels {
            version: "v2".into(),
            ..reviews()
        });
        assert!(!Arc::ptr_eq(&a, &v2));
        assert!(Arc::ptr_eq(
            m.unknown(),
            &m.destination(DestinationLabels::unknown())
        ));
        // Counters continue across "reloads" (a new lookup of the same labels).
        a.http(&sample(200, 0, 0, 0));
        m.destination(reviews()).http(&sample(200, 0, 0, 0));
        assert_eq!(total(&render(&m), "istio_requests_total", &[]), 2);
    }

    #[test]
    fn canonical_service_falls_back_to_the_service_name() {
        let m = metrics();
        m.destination(DestinationLabels {
            app: String::new(),
            ..reviews()
        })
        .http(&sample(200, 0, 0, 0));
        let out = render(&m);
        assert!(out.contains(r#"destination_app="",destination_version="v1",destination_service="reviews.default.svc.cluster.local",destination_canonical_service="reviews","#));
    }

    #[test]
    fn a_full_table_folds_new_keys_into_overflow_and_keeps_every_count() {
        let m = metrics();
        let d = m.destination(reviews());
        let extra = 6u16;
        for code in 100..100 + table::SLOTS as u16 + extra {
            d.http(&sample(code, 0, 0, 0));
        }
        d.http(&sample(100, 0, 0, 0));
        d.tcp_closed(ResponseFlags::UF, 1, 2);
        let out = render(&m);
        let n = table::SLOTS as u64 + u64::from(extra) + 1;
        assert_eq!(total(&out, "istio_requests_total", &[]), n);
        assert_eq!(
            total(
                &out,
                "istio_requests_total",
                &[r#"response_code="unknown""#, r#"response_flags="unknown""#]
            ),
            u64::from(extra)
        );
        assert_eq!(
            total(&out, "istio_requests_total", &[r#"response_code="100""#]),
            2
        );
        assert_eq!(
            total(&out, "istio_request_duration_milliseconds_count", &[]),
            n
        );
        let series = out
            .lines()
            .filter(|l| l.starts_with("istio_requests_total{"))
            .count();
        assert_eq!(series, table::SLOTS + 1);
        // TCP connections have their own table: not folded.
        assert_eq!(
            total(
                &out,
                "istio_tcp_sent_bytes_total",
                &[r#"request_protocol="tcp",response_flags="UF""#]
            ),
            2
        );
        // A full table of TCP keys (UF and 65 more) folds into TCP's overflow series.
        for bits in 100..=100 + table::SLOTS as u16 {
            d.tcp_closed(ResponseFlags::from_bits(bits), 1, 0);
        }
        let out = render(&m);
        let folded = [r#"request_protocol="tcp",response_flags="unknown""#];
        assert_eq!(total(&out, "istio_tcp_received_bytes_total", &folded), 2);
        assert_eq!(
            total(&out, "istio_tcp_connections_closed_total", &folded),
            2
        );
        assert_eq!(
            total(&out, "istio_tcp_connections_closed_total", &[]),
            table::SLOTS as u64 + 2
        );
    }

    #[test]
    fn concurrent_records_are_all_counted() {
        const THREADS: u64 = 4;
        const PER_THREAD: u64 = 10_000;
        let m = metrics();
        let d = m.destination(reviews());
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    for i in 0..PER_THREAD {
                        // Every thread installs the same new keys at the same time.
                        d.http(&sample(100 + (i % 50) as u16, i % 7, 3, 5));
                        d.tcp_opened();
                        d.tcp_closed(ResponseFlags::default(), 1, 2);
                    }
                });
            }
        });
        let out = render(&m);
        let n = THREADS * PER_THREAD;
        assert_eq!(total(&out, "istio_requests_total", &[]), n);
        for code in 100..150 {
            let want = THREADS * PER_THREAD / 50;
            let got = total(
                &out,
                "istio_requests_total",
                &[&format!("response_code=\"{code}\"")],
            );
            assert_eq!(got, want, "code {code}");
        }
        assert_eq!(total(&out, "istio_request_bytes_sum", &[]), 3 * n);
        assert_eq!(total(&out, "istio_response_bytes_sum", &[]), 5 * n);
        assert_eq!(total(&out, "istio_tcp_connections_opened_total", &[]), n);
        assert_eq!(total(&out, "istio_tcp_connections_closed_total", &[]), n);
        assert_eq!(total(&out, "istio_tcp_received_bytes_total", &[]), n);
        assert_eq!(total(&out, "istio_tcp_sent_bytes_total", &[]), 2 * n);
    }

    mod property {
        use super::*;
        use proptest::prelude::*;

        fn any_sample() -> impl Strategy<Value = (bool, HttpSample)> {
            (
                any::<bool>(),
                any::<bool>(),
                prop::sample::select(vec![0u16, 200, 404, 503, 504]),
                prop::sample::select(vec![0u16, 1 << 3, 1 << 6, 1 << 11 | 1 << 3]),
                prop::option::of(0u32..4),
                0u64..4_000_000,
                any::<u64>(),
            )
                .prop_map(|(dest, grpc, code, flags, status, ms, bytes)| {
                    let s = HttpSample {
                        protocol: if grpc {
                            RequestProtocol::Grpc
                        } else {
                            RequestProtocol::Http
                        },
                        flags: ResponseFlags::from_bits(flags),
                        grpc_status: status,
                        ..sample(code, ms, bytes % 100_000, bytes / 3)
                    };
                    (dest, s)
                })
        }

        proptest! {
            // Each case renders and parses a few hundred series.
            #![proptest_config(ProptestConfig::with_cases(64))]
            #[test]
            fn count_equals_requests_total_for_each_key(
                samples in prop::collection::vec(any_sample(), 0..150)
            ) {
                let m = metrics();
                let a = m.destination(reviews());
                for (dest, s) in &samples {
                    if *dest { a.http(s) } else { m.unknown().http(s) }
                }
                let out = render(&m);
                let all = super::samples(&out);
                let mut sum = 0;
                for (series, v) in &all {
                    let Some(labels) = series.strip_prefix("istio_requests_total") else { continue };
                    sum += v;
                    for h in ["istio_request_duration_milliseconds", "istio_request_bytes", "istio_response_bytes"] {
                        prop_assert_eq!(all.get(&format!("{h}_count{labels}")), Some(v));
                        let inf = format!("{h}_bucket{},le=\"+Inf\"}}", &labels[..labels.len() - 1]);
                        prop_assert_eq!(all.get(&inf), Some(v));
                    }
                }
                prop_assert_eq!(sum, samples.len() as u64);
            }
        }
    }
}
