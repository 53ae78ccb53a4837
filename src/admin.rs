//! The admin listener: `GET /ready` (200 once every gateway listener accepts
//! connections, 503 before) and `GET /config_dump` (the active snapshot as JSON).

use crate::snapshot::l4_route::L4Route;
use crate::snapshot::route_table::{RouteAction, RouteTable};
use crate::snapshot::sni_router::{ChainAction, Terminated};
use crate::snapshot::{Protocol, Snapshot};
use crate::upstream::Generation;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::{json, Value};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

pub struct AdminApp {
    pub active: Arc<ArcSwap<Generation>>,
    ready: AtomicBool,
}

impl AdminApp {
    pub fn new(active: Arc<ArcSwap<Generation>>) -> AdminApp {
        AdminApp {
            active,
            ready: AtomicBool::new(false),
        }
    }

    /// Ready once a connection to every listener succeeds (a wildcard bind is probed on
    /// loopback). Checked until it first holds, then remembered.
    async fn is_ready(&self) -> bool {
        if self.ready.load(Ordering::Relaxed) {
            return true;
        }
        let addrs: Vec<SocketAddr> = self
            .active
            .load()
            .snapshot
            .listeners
            .iter()
            .map(|l| l.address)
            .collect();
        let mut all = true;
        for mut a in addrs {
            if a.ip().is_unspecified() {
                a.set_ip(match a.ip() {
                    IpAddr::V4(_) => IpAddr::from([127, 0, 0, 1]),
                    IpAddr::V6(_) => IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
                });
            }
            if !probe(a).await {
                all = false;
                break;
            }
        }
        if all {
            self.ready.store(true, Ordering::Relaxed);
        }
        all
    }
}

async fn probe(a: SocketAddr) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(a)).await,
        Ok(Ok(_))
    )
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
        "notes": s.notes,
    })
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
            "/ready" => {
                if self.is_ready().await {
                    response(200, "text/plain", b"LIVE\n".to_vec())
                } else {
                    response(503, "text/plain", b"PRE_INITIALIZING\n".to_vec())
                }
            }
            "/config_dump" => {
                let dump = config_dump(&self.active.load().snapshot);
                let body = serde_json::to_vec_pretty(&dump).unwrap_or_default();
                response(200, "application/json", body)
            }
            _ => response(
                404,
                "text/plain",
                b"not found: try /ready or /config_dump\n".to_vec(),
            ),
        }
    }
}
