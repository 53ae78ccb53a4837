//! The HTTP pipeline on Pingora's `ProxyHttp` hooks: route (`request_filter`), choose an
//! endpoint (`upstream_peer`), retry connect failures (`fail_to_connect`), and answer
//! errors as Envoy does (`fail_to_proxy`).

pub mod context;

use crate::snapshot::matcher::RequestView;
use crate::snapshot::route_table::RouteAction;
use crate::snapshot::Snapshot;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use context::{RequestContext, ResponseFlags, DEFAULT_RETRIES};
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::FailToProxy;
use pingora::ErrorType;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Envoy's default limit on the total size of request headers (`max_request_headers_kb`).
const MAX_REQUEST_HEADERS_BYTES: usize = 60 * 1024;
/// Envoy's default limit on the number of request headers (`max_headers_count`).
const MAX_REQUEST_HEADERS: usize = 100;

/// Istio's default upstream connect timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct GatewayProxy {
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    /// Source of per-request randomness (weights, request ids): a counter run through
    /// a mixer, cheap and lock-free.
    seq: AtomicU64,
    seed: u64,
}

impl GatewayProxy {
    pub fn new(snapshot: Arc<ArcSwap<Snapshot>>) -> GatewayProxy {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()) << 32;
        GatewayProxy {
            snapshot,
            seq: AtomicU64::new(0),
            seed,
        }
    }

    fn random(&self) -> u64 {
        splitmix64(
            self.seed
                .wrapping_add(self.seq.fetch_add(1, Ordering::Relaxed)),
        )
    }

    /// A version-4 UUID, as Envoy generates for `x-request-id`.
    fn request_id(&self) -> String {
        let (a, b) = (self.random(), self.random());
        let hi = (a & 0xffff_ffff_ffff_0fff) | 0x4000;
        let lo = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xffff,
            hi & 0xffff,
            lo >> 48,
            lo & 0xffff_ffff_ffff
        )
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Envoy's local-reply bodies: they name the failure, never an address.
const BODY_NO_HEALTHY_UPSTREAM: &str = "no healthy upstream";
const BODY_CONNECT_FAILURE: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: connection failure";
const BODY_RESET: &str = "upstream connect error or disconnect/reset before headers. reset reason: connection termination";

/// Writes a complete local reply.
async fn local_reply(session: &mut Session, status: u16, body: &[u8]) -> Result<()> {
    let mut resp = ResponseHeader::build(status, Some(3))?;
    resp.insert_header("content-length", body.len().to_string())?;
    if !body.is_empty() {
        resp.insert_header("content-type", "text/plain")?;
    }
    session
        .write_response_header(Box::new(resp), body.is_empty())
        .await?;
    if !body.is_empty() {
        session
            .write_response_body(Some(Bytes::copy_from_slice(body)), true)
            .await?;
    }
    Ok(())
}

fn is_connect_error(e: &Error) -> bool {
    matches!(
        e.etype(),
        ErrorType::ConnectTimedout
            | ErrorType::ConnectRefused
            | ErrorType::ConnectNoRoute
            | ErrorType::ConnectError
            | ErrorType::BindError
            | ErrorType::SocketError
    )
}

#[async_trait]
impl ProxyHttp for GatewayProxy {
    type CTX = RequestContext;

    fn new_ctx(&self) -> Self::CTX {
        RequestContext::default()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        let headers = &session.req_header().headers;
        let size: usize = headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len())
            .sum();
        if size > MAX_REQUEST_HEADERS_BYTES || headers.len() > MAX_REQUEST_HEADERS {
            session.set_keepalive(None);
            local_reply(session, 431, b"").await?;
            return Ok(true);
        }
        let snap = self.snapshot.load_full();
        let local = session
            .server_addr()
            .and_then(|a| a.as_inet().copied())
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet().map(|i| i.ip()));

        // Headers Envoy's gateway sets before routing.
        let req = session.req_header_mut();
        if let Some(ip) = client_ip {
            let xff = match req
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
            {
                Some(prev) => format!("{prev}, {ip}"),
                None => ip.to_string(),
            };
            req.insert_header("x-forwarded-for", xff)?;
        }
        req.insert_header("x-forwarded-proto", "http")?;
        if req.headers.get("x-request-id").is_none() {
            req.insert_header("x-request-id", self.request_id())?;
        }

        let decision = {
            let req = session.req_header();
            let authority = req
                .uri
                .authority()
                .map(|a| a.as_str())
                .or_else(|| req.headers.get("host").and_then(|h| h.to_str().ok()))
                .unwrap_or("");
            let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
            let view = RequestView {
                path: req.uri.path(),
                query: req.uri.query(),
                method: req.method.as_str(),
                scheme: "http",
                authority,
                port: local.port(),
                header: &header,
            };
            snap.listener_for(local)
                .and_then(|l| l.routes.select(authority))
                .and_then(|vh| vh.routes.iter().find(|r| r.matches(&view)))
                .map(|route| match &route.action {
                    RouteAction::DirectResponse { status, body } => {
                        (route.name.clone(), Err((*status, body.clone())))
                    }
                    RouteAction::Forward(w) => (
                        route.name.clone(),
                        Ok(w.pick_cluster(self.random()).cloned()),
                    ),
                })
        };
        let Some((route_name, action)) = decision else {
            ctx.flags.insert(ResponseFlags::NR);
            local_reply(session, 404, b"").await?;
            return Ok(true);
        };
        ctx.route_name = Some(route_name);
        let cluster = match action {
            Err((status, body)) => {
                ctx.flags.insert(ResponseFlags::DR);
                local_reply(session, status, &body).await?;
                return Ok(true);
            }
            Ok(cluster) => cluster,
        };
        let Some(cluster) = cluster else {
            ctx.flags.insert(ResponseFlags::NC);
            local_reply(session, 503, b"").await?;
            return Ok(true);
        };
        if cluster.endpoints.is_empty() {
            ctx.flags.insert(ResponseFlags::UH);
            local_reply(session, 503, BODY_NO_HEALTHY_UPSTREAM.as_bytes()).await?;
            return Ok(true);
        }
        // The cluster is an Arc: it outlives a reload that swaps the snapshot mid-request.
        ctx.cluster = Some(cluster);
        Ok(false)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>> {
        let cluster = ctx
            .cluster
            .as_ref()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no cluster chosen"))?;
        let ep = cluster
            .pick(&ctx.tried)
            .ok_or_else(|| Error::explain(ErrorType::ConnectNoRoute, "no healthy upstream"))?;
        ctx.tried.push(ep.address);
        let mut peer = HttpPeer::new(ep.address, false, String::new());
        peer.options.connection_timeout = Some(CONNECT_TIMEOUT);
        Ok(Box::new(peer))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Self::CTX,
        mut e: Box<Error>,
    ) -> Box<Error> {
        ctx.connect_failures += 1;
        ctx.flags.insert(ResponseFlags::UF);
        if ctx.connect_failures <= DEFAULT_RETRIES {
            e.set_retry(true);
        } else {
            ctx.flags.insert(ResponseFlags::URX);
            e.set_retry(false);
        }
        e
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut Self::CTX,
    ) -> FailToProxy
    where
        Self::CTX: Send + Sync,
    {
        let (code, body) = if is_connect_error(e) || ctx.flags.contains(ResponseFlags::UF) {
            (503, BODY_CONNECT_FAILURE)
        } else {
            match e.esource() {
                ErrorSource::Upstream => (503, BODY_RESET),
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => {
                        (0, "")
                    }
                    _ => (400, ""),
                },
                _ => match e.etype() {
                    ErrorType::HTTPStatus(c) => (*c, ""),
                    _ => (500, ""),
                },
            }
        };
        if code > 0 {
            // The client may be gone; nothing more to do then.
            let _ = local_reply(session, code, body.as_bytes()).await;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }
}
