//! The HTTP pipeline on Pingora's `ProxyHttp` hooks: route (`request_filter`), choose an
//! endpoint (`upstream_peer`), retry connect failures (`fail_to_connect`), and answer
//! errors as Envoy does (`fail_to_proxy`).

pub mod context;

use crate::listener::tls_connection;
use crate::rng::Rng;
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
    /// Weighted picks and request ids.
    rng: Rng,
}

impl GatewayProxy {
    pub fn new(snapshot: Arc<ArcSwap<Snapshot>>) -> GatewayProxy {
        GatewayProxy {
            snapshot,
            rng: Rng::new(),
        }
    }
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

/// What routing decided for a request.
enum Decision {
    /// `tls.httpsRedirect`: a 301 to this location.
    Redirect(String),
    /// `directResponse`.
    Direct(u16, Vec<u8>),
    /// A cluster (`None`: the destination resolves to no cluster, 503 NC).
    Forward(Option<Arc<crate::snapshot::cluster::Cluster>>),
}

/// Envoy's `https_redirect`: same host without its port, same path and query.
fn https_location(authority: &str, uri: &http::Uri) -> String {
    let host = crate::snapshot::host_index::strip_port(authority);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    format!("https://{host}{path}")
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

        let tls = tls_connection::of(session).cloned();
        let scheme = if tls.is_some() { "https" } else { "http" };

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
        req.insert_header("x-forwarded-proto", scheme)?;
        if req.headers.get("x-request-id").is_none() {
            req.insert_header("x-request-id", self.rng.uuid())?;
        }
        // Istio's gateway default (SANITIZE_SET): a client's own x-forwarded-client-cert
        // is dropped; a verified client certificate is described in a fresh one.
        req.remove_header("x-forwarded-client-cert");
        if let Some(peer) = tls.as_ref().and_then(|t| t.peer()) {
            req.insert_header("x-forwarded-client-cert", peer.xfcc())?;
        }

        let chain = tls.as_ref().map(|t| &*t.chain);
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
                scheme,
                authority,
                port: local.port(),
                header: &header,
            };
            let vhost = snap
                .listener_for(local)
                .and_then(|l| l.http_routes(chain))
                .and_then(|t| t.select(authority));
            match vhost {
                Some(vh) if vh.https_redirect && tls.is_none() => Some((
                    None,
                    Decision::Redirect(https_location(authority, &req.uri)),
                )),
                Some(vh) => vh.routes.iter().find(|r| r.matches(&view)).map(|route| {
                    let d = match &route.action {
                        RouteAction::DirectResponse { status, body } => {
                            Decision::Direct(*status, body.clone())
                        }
                        RouteAction::Forward(w) => {
                            Decision::Forward(w.pick_cluster(self.rng.spread()).cloned())
                        }
                    };
                    (Some(route.name.clone()), d)
                }),
                None => None,
            }
        };
        let Some((route_name, decision)) = decision else {
            ctx.flags.insert(ResponseFlags::NR);
            local_reply(session, 404, b"").await?;
            return Ok(true);
        };
        ctx.route_name = route_name;
        let cluster = match decision {
            Decision::Redirect(location) => {
                let mut resp = ResponseHeader::build(301, Some(2))?;
                resp.insert_header("location", location)?;
                resp.insert_header("content-length", "0")?;
                session.write_response_header(Box::new(resp), true).await?;
                return Ok(true);
            }
            Decision::Direct(status, body) => {
                ctx.flags.insert(ResponseFlags::DR);
                local_reply(session, status, &body).await?;
                return Ok(true);
            }
            Decision::Forward(cluster) => cluster,
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
