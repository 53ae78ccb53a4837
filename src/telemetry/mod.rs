//! Where the data paths report what happened: the HTTP pipeline reports each request,
//! the TCP proxy each connection, as an [`Exchange`]. Two sinks read it: Istio's standard
//! Prometheus metrics (`metrics`, lock-free counters found through the cluster the
//! request went to) and the access log (`access_log`, formatted with Envoy's command
//! operators and written by its own thread). Metric labels come from the config (the
//! cluster's service, its subset) and from a bounded set of codes and flags, never from
//! raw client input, so their cardinality is bounded by the config.

pub mod access_log;
mod exchange;
mod flags;
pub mod metrics;
pub mod own;
mod settings;

pub use exchange::Exchange;
pub use flags::ResponseFlags;
pub use metrics::{Destination, HttpSample, RequestProtocol};
pub use settings::Settings;

use crate::snapshot::cluster::{ClusterId, ClusterSpec};
use crate::snapshot::Snapshot;
use access_log::format::Format;
use access_log::writer::Writer;
use arc_swap::ArcSwap;
use metrics::{DestinationLabels, IstioMetrics};
use std::sync::Arc;

/// The sink every data path reports to, one per process.
pub struct Telemetry {
    istio: IstioMetrics,
    /// Each cluster of the serving snapshot's metric series, by [`ClusterId`].
    bindings: ArcSwap<Bindings>,
    access_log: Option<AccessLog>,
    /// meshgate's own metrics (build, config, connections, TLS).
    pub own: own::OwnMetrics,
}

struct AccessLog {
    format: Format,
    writer: Writer,
}

/// The series of every cluster of one snapshot, indexed like its clusters.
#[derive(Default)]
struct Bindings {
    snapshot: Option<Arc<Snapshot>>,
    by_cluster: Vec<Arc<Destination>>,
}

impl Telemetry {
    /// Opens the access log file, if one is configured; an unusable path is an error
    /// naming it.
    pub fn new(settings: Settings) -> Result<Telemetry, String> {
        let own = own::OwnMetrics::new();
        let access_log = match settings.access_log {
            Some((path, format)) => {
                let writer = Writer::open(&path, own.access_log_dropped.clone())
                    .map_err(|e| format!("access log {}: {e}", path.display()))?;
                Some(AccessLog { format, writer })
            }
            None => None,
        };
        Ok(Telemetry {
            istio: IstioMetrics::new(settings.source),
            bindings: ArcSwap::from_pointee(Bindings::default()),
            access_log,
            own,
        })
    }

    /// Binds every cluster of `snapshot` to its series (series are kept by their labels,
    /// so counters continue across a config change) before the snapshot serves. The
    /// server reports the generation (`own.config_adopted`) once it is fully applied.
    pub fn adopt(&self, snapshot: &Arc<Snapshot>) {
        let by_cluster = snapshot
            .clusters
            .iter()
            .map(|c| self.istio.destination(labels_of(c)))
            .collect();
        self.bindings.store(Arc::new(Bindings {
            snapshot: Some(snapshot.clone()),
            by_cluster,
        }));
    }

    /// The series of cluster `id` of `snapshot`; Istio's `unknown` destination when the
    /// request reached no cluster. A request that outlived a config change finds its
    /// cluster's series by label (a lock, only then).
    pub fn destination(&self, snapshot: &Arc<Snapshot>, id: Option<ClusterId>) -> Arc<Destination> {
        let Some(id) = id else {
            return self.istio.unknown().clone();
        };
        let b = self.bindings.load();
        if b.snapshot
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, snapshot))
        {
            if let Some(d) = b.by_cluster.get(id.0 as usize) {
                return d.clone();
            }
        }
        match snapshot.cluster(id) {
            Some(c) => self.istio.destination(labels_of(c)),
            None => self.istio.unknown().clone(),
        }
    }

    /// Istio's `unknown` destination (no route, no cluster).
    pub fn unknown(&self) -> &Arc<Destination> {
        self.istio.unknown()
    }

    /// Whether an access log is written (callers skip gathering what only it needs).
    pub fn logs_access(&self) -> bool {
        self.access_log.is_some()
    }

    /// One HTTP request ended.
    pub fn http(&self, dest: &Destination, sample: &HttpSample, e: &Exchange) {
        dest.http(sample);
        self.log(e);
    }

    /// A request the gateway answered before the HTTP pipeline saw it (a head too large
    /// or too slow): counted against `unknown`, logged with what is known.
    pub fn http_refused(&self, e: &Exchange) {
        self.istio.unknown().http(&HttpSample {
            protocol: RequestProtocol::Http,
            response_code: e.response_code.unwrap_or(0),
            flags: e.flags,
            grpc_status: None,
            duration: e.duration,
            request_bytes: 0,
            response_bytes: 0,
            request_messages: 0,
            response_messages: 0,
        });
        self.log(e);
    }

    /// A TCP connection to `dest` was opened (Istio counts it at once).
    pub fn tcp_opened(&self, dest: &Destination) {
        dest.tcp_opened();
    }

    /// A TCP connection ended, with its bytes.
    pub fn tcp_closed(&self, dest: &Destination, e: &Exchange) {
        dest.tcp_closed(e.flags, e.bytes_received, e.bytes_sent);
        self.log(e);
    }

    /// Formats the line into this thread's own buffer (no allocation once it has grown)
    /// and hands it to the writer.
    fn log(&self, e: &Exchange) {
        thread_local! {
            static LINE: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(1024));
        }
        if let Some(a) = &self.access_log {
            LINE.with(|l| {
                let mut line = l.borrow_mut();
                line.clear();
                a.format.write(e, &mut line);
                a.writer.send(&line);
            });
        }
    }

    /// Writes the access log's pending lines now (at shutdown).
    pub fn flush(&self) {
        if let Some(a) = &self.access_log {
            a.writer.flush();
        }
    }

    /// `/stats/prometheus`: Istio's metrics, then meshgate's own.
    pub fn render_prometheus(&self, out: &mut String) {
        self.istio.render(out);
        let bindings = self.bindings.load();
        let mut certs: Vec<&std::path::Path> = bindings
            .snapshot
            .iter()
            .flat_map(|s| s.server_tls())
            .map(|(_, tls)| tls.files.cert.as_path())
            .collect();
        certs.sort();
        certs.dedup();
        self.own.certificates(certs);
        self.own.render(out);
    }
}

/// A cluster's `destination_*` labels: its service host, the host's short name (the
/// first label of a Kubernetes service name, else the host as Istio reports a
/// ServiceEntry host), namespace, subset version and port.
fn labels_of(c: &ClusterSpec) -> DestinationLabels {
    let s = &c.service;
    let mut l = DestinationLabels::unknown();
    if s.host.is_empty() {
        return l;
    }
    l.service = s.host.clone();
    l.service_name = match s.host.split_once(".svc.") {
        Some((name_ns, _)) => name_ns.split('.').next().unwrap_or(&s.host).to_string(),
        None => s.host.clone(),
    };
    l.service_namespace = s.namespace.clone();
    if let Some(v) = &s.version {
        l.version = v.clone();
    }
    if let Some(a) = &s.app {
        l.app = a.clone();
    }
    l.port = s.port.to_string();
    l
}
