//! The admin listener: `GET /ready` (200 once every gateway listener accepts
//! connections, 503 before), `GET /config_dump` (the active snapshot as JSON),
//! `GET /stats/prometheus` and `/metrics` (Istio's metrics and meshgate's own, Prometheus
//! text format), `GET /stats` (the same counters as Envoy's plain `name: value` lines),
//! `GET /server_info` (version, uptime, config generation) and `GET /explain?...` (how the
//! live snapshot routes a request, as `meshgate explain` prints it), `GET /clusters` (each
//! cluster's endpoints, their load and ejections; `?format=json`).

mod clusters;

use crate::snapshot::explain;
use crate::snapshot::l4_route::L4Route;
use crate::snapshot::route_table::{RouteAction, RouteTable};
use crate::snapshot::sni_router::{ChainAction, Terminated};
use crate::snapshot::{Protocol, Snapshot};
use crate::telemetry::Telemetry;
use crate::upstream::Generation;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub struct AdminApp {
    pub active: Arc<ArcSwap<Generation>>,
    telemetry: Arc<Telemetry>,
    ready: AtomicBool,
    /// Set when a stop begins: `/ready` answers 503 so load balancers move away.
    draining: Arc<AtomicBool>,
    started: Instant,
}

impl AdminApp {
    pub fn new(active: Arc<ArcSwap<Generation>>, telemetry: Arc<Telemetry>) -> AdminApp {
        AdminApp {
            active,
            telemetry,
            ready: AtomicBool::new(false),
            draining: Arc::default(),
            started: Instant::now(),
        }
    }

    /// `/ready` follows `draining` (set by the server when it starts to stop).
    pub fn with_draining(mut self, draining: Arc<AtomicBool>) -> AdminApp {
        self.draining = draining;
        self
    }

    /// Prometheus text: telemetry's families, then each cluster's upstream counters.
    fn prometheus(&self) -> String {
        let mut out = String::with_capacity(64 * 1024);
        self.telemetry.render_prometheus(&mut out);
        upstream_stats(&self.active.load(), &mut out);
        out
    }

    /// Envoy's `/server_info`, in part: what runs, since when, on which config.
    fn server_info(&self) -> Value {
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "state": if self.draining.load(Ordering::Relaxed) {
                "DRAINING"
            } else if self.ready.load(Ordering::Relaxed) {
                "LIVE"
            } else {
                "PRE_INITIALIZING"
            },
            "uptime_current_epoch": format!("{}s", self.started.elapsed().as_secs()),
            "config_generation": self.telemetry.own.generation(),
            "config_loaded": self.telemetry.own.loaded_at(),
        })
    }

    /// Ready once every listener's socket is listening, as the kernel's socket table
    /// (`/proc/net/tcp`, `tcp6`) says; the start refused to run when another process
    /// held an address, so a listening socket there is ours. No connection is made: a
    /// probe through a TCP listener would open a real upstream connection and show in
    /// its metrics and access log. Checked until it first holds, then remembered.
    async fn is_ready(&self) -> bool {
        if self.ready.load(Ordering::Relaxed) {
            return true;
        }
        let want: Vec<SocketAddr> = self
            .active
            .load()
            .snapshot
            .listeners
            .iter()
            .map(|l| l.address)
            .collect();
        let all = match listening_sockets() {
            Some(listening) => want.iter().all(|a| listening.contains(a)),
            None => false,
        };
        if all {
            self.ready.store(true, Ordering::Relaxed);
        }
        all
    }
}

/// The TCP sockets in LISTEN state in this network namespace; `None` when the socket
/// table cannot be read.
fn listening_sockets() -> Option<HashSet<SocketAddr>> {
    let mut out = HashSet::new();
    let mut read_any = false;
    for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        read_any = true;
        out.extend(
            text.lines()
                .skip(1)
                .filter_map(|l| parse_listen_line(l, v6)),
        );
    }
    read_any.then_some(out)
}

/// One line of `/proc/net/tcp{,6}`: the local address when the state is LISTEN (`0A`).
/// Addresses are 32-bit words in host order, the port big-endian hex.
fn parse_listen_line(line: &str, v6: bool) -> Option<SocketAddr> {
    let mut fields = line.split_whitespace();
    let local = fields.nth(1)?;
    if fields.nth(1)? != "0A" {
        return None;
    }
    let (addr, port) = local.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Vec<[u8; 4]> = (0..addr.len() / 8)
        .map(|i| u32::from_str_radix(addr.get(i * 8..i * 8 + 8)?, 16).ok())
        .map(|w| w.map(u32::to_ne_bytes))
        .collect::<Option<_>>()?;
    let ip = match (v6, words.as_slice()) {
        (false, [w]) => IpAddr::from(*w),
        (true, [a, b, c, d]) => {
            let mut bytes = [0u8; 16];
            for (i, w) in [a, b, c, d].iter().enumerate() {
                bytes[i * 4..i * 4 + 4].copy_from_slice(*w);
            }
            IpAddr::from(bytes)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

fn route_table(t: &RouteTable) -> Value {
    t.vhosts
        .iter()
        .map(|v| {
            json!({
                "domain": v.domain,
                "https_redirect": v.https_redirect,
                "routes": v.routes.iter().map(|r| json!({
                    "name": &*r.name,
                    "match": r.matches.iter().map(|m| m.describe()).collect::<Vec<_>>(),
                    "action": match &r.action {
                        RouteAction::Forward(w) => json!({"weighted_clusters": w.clusters}),
                        RouteAction::DirectResponse { status, body } => json!({
                            "direct_response": {"status": status, "body_bytes": body.len()}
                        }),
                        RouteAction::Redirect(r) => json!({"redirect": {"code": r.code}}),
                        RouteAction::BlackHole => json!({"black_hole": "BlackHoleCluster"}),
                    },
                })).collect::<Vec<_>>(),
            })
        })
        .collect()
}

fn l4_routes(routes: &[Arc<L4Route>]) -> Value {
    routes
        .iter()
        .map(|r| json!({"name": &*r.name, "weighted_clusters": r.clusters.clusters}))
        .collect()
}

/// The snapshot as JSON: listeners with their virtual hosts, filter chains or TCP routes
/// in order, and clusters with their endpoints.
pub fn config_dump(s: &Snapshot) -> Value {
    let listeners: Vec<Value> = s
        .listeners
        .iter()
        .map(|l| {
            let mut v = json!({
                "address": l.address.to_string(),
                "servers": l.servers,
            });
            if l.egress {
                v["egress"] = json!(true);
            }
            if l.connect_proxy {
                v["connect_proxy"] = json!(true);
            }
            match &l.protocol {
                Protocol::Http(t) => {
                    v["protocol"] = json!("HTTP");
                    v["virtual_hosts"] = route_table(t);
                }
                Protocol::Tcp(routes) => {
                    v["protocol"] = json!("TCP");
                    v["tcp_routes"] = l4_routes(routes);
                }
                Protocol::Tls(router) => {
                    v["protocol"] = json!("TLS");
                    v["filter_chains"] = router
                        .chains
                        .iter()
                        .map(|c| {
                            let mut cv = json!({"name": &*c.name, "server_names": c.server_names});
                            match &c.action {
                                ChainAction::Terminate { tls, inner } => {
                                    cv["terminate"] = json!({
                                        "certificate": tls.files.cert.display().to_string(),
                                        "client_ca": tls.files.ca.as_ref().map(|p| p.display().to_string()),
                                    });
                                    match inner {
                                        Terminated::Http(t) => cv["virtual_hosts"] = route_table(t),
                                        Terminated::Tcp(r) => cv["tcp_routes"] = l4_routes(r),
                                    }
                                }
                                ChainAction::Passthrough(r) => {
                                    cv["passthrough"] = l4_routes(std::slice::from_ref(r));
                                }
                                ChainAction::AutoPassthrough => cv["auto_passthrough"] = json!(true),
                                ChainAction::Egress => cv["egress"] = json!(true),
                            }
                            cv
                        })
                        .collect();
                }
            }
            v
        })
        .collect();
    let mut clusters: Vec<&crate::snapshot::cluster::ClusterSpec> =
        s.clusters.iter().map(|c| &**c).collect();
    clusters.sort_by(|a, b| a.name.cmp(&b.name));
    json!({
        "listeners": listeners,
        "clusters": clusters,
        "egress": {
            "outbound_traffic_policy": s.egress.mode,
            "registered": s.egress.entries,
        },
        "notes": s.notes,
    })
}

/// `meshgate explain` against snapshot `s`, with the pipeline's path normalization
/// (MeshConfig `pathNormalization`). `Err`: the request is not explainable as asked.
pub fn explain(s: &Snapshot, q: &explain::Query) -> Result<explain::Explanation, String> {
    let mode = s.downstream.path_normalization;
    let normalize = |p: &str| match crate::http::normalize::normalize(p.as_bytes(), mode) {
        Ok(None) => Ok(p.to_string()),
        Ok(Some(n)) => Ok(String::from_utf8_lossy(&n).into_owned()),
        Err(_) => Err("Envoy's normalize_path refuses it (a NUL, raw or %00)".to_string()),
    };
    explain::explain(s, q, &normalize)
}

/// `GET /explain?host=..&path=..&method=..&port=..&sni=..&header=K:V`: the trace as text,
/// its outcome in `x-meshgate-explain` (`routed`, `answered`, `refused`); 400 for a
/// query that does not name an explainable request.
fn explain_response(s: &Snapshot, query: &str) -> Response<Vec<u8>> {
    match explain::Query::from_query_string(query).and_then(|q| explain(s, &q)) {
        Ok(e) => {
            let body = e.text().into_bytes();
            Response::builder()
                .status(200)
                .header("content-type", "text/plain; charset=utf-8")
                .header("content-length", body.len())
                .header("x-meshgate-explain", e.outcome.as_str())
                .body(body)
                .unwrap_or_else(|_| Response::new(Vec::new()))
        }
        Err(e) => response(400, "text/plain", format!("explain: {e}\n").into_bytes()),
    }
}

fn response(status: u16, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .body(body)
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        match path.as_str() {
            "/ready" if self.draining.load(Ordering::Relaxed) => {
                response(503, "text/plain", b"DRAINING\n".to_vec())
            }
            "/ready" => {
                if self.is_ready().await {
                    response(200, "text/plain", b"LIVE\n".to_vec())
                } else {
                    response(503, "text/plain", b"PRE_INITIALIZING\n".to_vec())
                }
            }
            "/stats/prometheus" | "/metrics" => response(
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                self.prometheus().into_bytes(),
            ),
            "/stats" => response(
                200,
                "text/plain",
                plain_stats(&self.prometheus()).into_bytes(),
            ),
            "/server_info" => {
                let body = serde_json::to_vec_pretty(&self.server_info()).unwrap_or_default();
                response(200, "application/json", body)
            }
            "/config_dump" => {
                let mut dump = config_dump(&self.active.load().snapshot);
                dump["generation"] = json!(self.telemetry.own.generation());
                dump["loaded_at"] = json!(self.telemetry.own.loaded_at());
                let body = serde_json::to_vec_pretty(&dump).unwrap_or_default();
                response(200, "application/json", body)
            }
            "/clusters" => {
                let g = self.active.load();
                let query = session.req_header().uri.query().unwrap_or("");
                if query.split('&').any(|kv| kv == "format=json") {
                    let body = serde_json::to_vec_pretty(&clusters::json(&g)).unwrap_or_default();
                    response(200, "application/json", body)
                } else {
                    response(200, "text/plain", clusters::text(&g).into_bytes())
                }
            }
            "/explain" => explain_response(
                &self.active.load().snapshot,
                session.req_header().uri.query().unwrap_or(""),
            ),
            _ => response(
                404,
                "text/plain",
                b"not found: try /ready, /config_dump, /clusters, /stats/prometheus, /stats, /server_info or /explain\n"
                    .to_vec(),
            ),
        }
    }
}

/// Each cluster's upstream counters, as Envoy names them (`envoy_cluster_upstream_cx_total`
/// etc. with Envoy's `cluster_name` label).
fn upstream_stats(g: &Generation, out: &mut String) {
    let families = [
        (
            "envoy_cluster_upstream_cx_total",
            "Upstream connections opened.",
        ),
        (
            "envoy_cluster_upstream_cx_connect_fail",
            "Upstream connection attempts that failed.",
        ),
        (
            "envoy_cluster_upstream_rq_total",
            "HTTP requests and TCP connections sent to the cluster.",
        ),
        (
            "envoy_cluster_upstream_rq_pending_overflow",
            "Requests and connections refused by a circuit breaker (UO).",
        ),
        (
            "envoy_cluster_outlier_detection_ejections_enforced_total",
            "Endpoints ejected by outlier detection.",
        ),
    ];
    for (i, (name, help)) in families.iter().enumerate() {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for c in g.clusters() {
            let s = &c.stats;
            let v = match i {
                0 => s.connects.load(Ordering::Relaxed),
                1 => s.connect_failures.load(Ordering::Relaxed),
                2 => s.requests.load(Ordering::Relaxed),
                3 => s.overflows.load(Ordering::Relaxed),
                _ => s.ejections.load(Ordering::Relaxed),
            };
            let _ = writeln!(out, "{name}{{cluster_name=\"{}\"}} {v}", escape(c.name()));
        }
    }
}

/// A label value in the text format: backslash, quote and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Envoy's plain `/stats`: one `name{labels}: value` line per sample, no comments.
fn plain_stats(prometheus: &str) -> String {
    let mut out = String::with_capacity(prometheus.len());
    for line in prometheus
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        if let Some((series, value)) = line.rsplit_once(' ') {
            let _ = writeln!(out, "{series}: {value}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_lines_give_listening_addresses() {
        let v4 = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0";
        assert_eq!(
            parse_listen_line(v4, false),
            Some("127.0.0.1:8080".parse().unwrap())
        );
        let established = v4.replace(" 0A ", " 01 ");
        assert_eq!(parse_listen_line(&established, false), None);
        let v6 = "   0: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1";
        assert_eq!(
            parse_listen_line(v6, true),
            Some("[::1]:80".parse().unwrap())
        );
        // This very test process listens: the table shows it.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(listening_sockets()
            .unwrap()
            .contains(&l.local_addr().unwrap()));
    }
}
