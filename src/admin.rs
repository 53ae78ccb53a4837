//! The admin listener: `GET /ready` (200 once every gateway listener accepts
//! connections, 503 before) and `GET /config_dump` (the active snapshot as JSON).

use crate::snapshot::route_table::RouteAction;
use crate::snapshot::Snapshot;
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
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    ready: AtomicBool,
}

impl AdminApp {
    pub fn new(snapshot: Arc<ArcSwap<Snapshot>>) -> AdminApp {
        AdminApp {
            snapshot,
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
            .snapshot
            .load()
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

/// The snapshot as JSON: listeners with their virtual hosts and routes in order, and
/// clusters with their endpoints.
pub fn config_dump(s: &Snapshot) -> Value {
    let listeners: Vec<Value> = s
        .listeners
        .iter()
        .map(|l| {
            json!({
                "address": l.address.to_string(),
                "servers": l.servers,
                "virtual_hosts": l.routes.vhosts.iter().map(|v| json!({
                    "domain": v.domain,
                    "routes": v.routes.iter().map(|r| json!({
                        "name": &*r.name,
                        "match": r.matches.iter().map(|m| m.describe()).collect::<Vec<_>>(),
                        "action": match &r.action {
                            RouteAction::Forward(w) => json!({"weighted_clusters": w.clusters}),
                            RouteAction::DirectResponse { status, body } => json!({
                                "direct_response": {"status": status, "body_bytes": body.len()}
                            }),
                        },
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut clusters: Vec<&str> = s.clusters.keys().map(String::as_str).collect();
    clusters.sort();
    json!({
        "listeners": listeners,
        "clusters": clusters.iter().map(|c| &*s.clusters[*c]).collect::<Vec<_>>(),
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
                let dump = config_dump(&self.snapshot.load());
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
