//! The HTTP pipeline on Pingora's `ProxyHttp` hooks, in Envoy's order: route, CORS, fault,
//! redirect / direct response, rewrite, header operations, mirror (`request_filter`);
//! endpoint choice with the route's timeout and per-try timeout (`upstream_peer`); attempt
//! count (`upstream_request_filter`); retries on connect failure, reset or a retriable
//! status (`fail_to_connect`, `error_while_proxy`, `upstream_response_filter`); response
//! headers, CORS and `x-envoy-upstream-service-time` (`upstream_response_filter`); errors
//! answered as Envoy does (`fail_to_proxy`).

pub mod context;
pub mod header_ops;
pub mod local_reply;
pub mod mirror;
pub mod retry;

use crate::rng::Rng;
use crate::snapshot::matcher::RequestView;
use crate::snapshot::route_policy::{Abort, RedirectInput, RoutePolicy};
use crate::snapshot::route_table::{Route, RouteAction};
use crate::telemetry::{HttpRecord, Telemetry};
use crate::tls::connection as tls_connection;
use crate::upstream::connect;
use crate::upstream::{Generation, Registry};
use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use context::{PendingMirror, RequestContext, ResponseFlags};
use local_reply::*;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::FailToProxy;
use pingora::ErrorType;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Envoy's default limit on the total size of request headers (`max_request_headers_kb`).
const MAX_REQUEST_HEADERS_BYTES: usize = 60 * 1024;
/// Envoy's default limit on the number of request headers (`max_headers_count`).
const MAX_REQUEST_HEADERS: usize = 100;

pub struct GatewayProxy {
    /// The serving generation: snapshot and cluster states.
    pub active: Arc<ArcSwap<Generation>>,
    /// Owns the upstream client mirrors are sent with.
    registry: Arc<Registry>,
    telemetry: Arc<Telemetry>,
    /// Weighted picks, fault and mirror sampling, request ids.
    rng: Rng,
}

impl GatewayProxy {
    pub fn new(
        active: Arc<ArcSwap<Generation>>,
        registry: Arc<Registry>,
        telemetry: Arc<Telemetry>,
    ) -> GatewayProxy {
        GatewayProxy {
            active,
            registry,
            telemetry,
            rng: Rng::new(),
        }
    }
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

/// What routing decided for a request.
enum Decision {
    /// `tls.httpsRedirect`: a 301 to this location.
    HttpsRedirect(String),
    /// A route took the request: the route, the path its `rewrite` gives (if any), and
    /// the `Location` its `redirect` gives (if it redirects). Both are worked out while
    /// the matching `uri` condition is at hand.
    Route(Arc<Route>, Option<String>, Option<String>),
}

/// Envoy's `https_redirect`: same host without its port, same path and query.
fn https_location(authority: &str, uri: &http::Uri) -> String {
    let host = crate::snapshot::host_index::strip_port(authority);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    format!("https://{host}{path}")
}

/// The request's authority: `:authority` / absolute-form URI, else the Host header.
fn authority_of(req: &RequestHeader) -> &str {
    req.uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers.get("host").and_then(|h| h.to_str().ok()))
        .unwrap_or("")
}

fn header<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether the request carries a body (so mirroring waits for it).
fn has_body(req: &RequestHeader) -> bool {
    header(req, "transfer-encoding").is_some()
        || header(req, "content-length").is_some_and(|l| l.trim() != "0")
}

impl GatewayProxy {
    /// The gateway's own request headers: forwarding headers, request id, client cert.
    fn forwarding_headers(
        &self,
        session: &mut Session,
        scheme: &str,
        tls: Option<&tls_connection::TlsConnection>,
    ) -> Result<()> {
        let client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet().map(|i| i.ip()));
        let req = session.req_header_mut();
        if let Some(ip) = client_ip {
            let xff = match header(req, "x-forwarded-for") {
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
        if let Some(peer) = tls.and_then(|t| t.peer()) {
            req.insert_header("x-forwarded-client-cert", peer.xfcc())?;
        }
        Ok(())
    }

    /// CORS (Envoy's filter): answers preflights for allowed origins (and, with
    /// `unmatchedPreflights: IGNORE`, for the others); remembers an allowed origin so the
    /// response carries it. `true` when the request was answered.
    async fn cors(
        &self,
        session: &mut Session,
        policy: &RoutePolicy,
        ctx: &mut RequestContext,
    ) -> Result<bool> {
        let Some(cors) = &policy.cors else {
            return Ok(false);
        };
        let req = session.req_header();
        let Some(origin) = header(req, "origin").map(str::to_string) else {
            return Ok(false);
        };
        let preflight = req.method == http::Method::OPTIONS
            && req.headers.contains_key("access-control-request-method");
        let allowed = cors.allows(&origin);
        if !preflight {
            if allowed {
                ctx.cors_origin = Some(origin);
            }
            return Ok(false);
        }
        if !allowed {
            if cors.ignore_unmatched_preflights {
                local_reply(session, 200, b"").await?;
                return Ok(true);
            }
            return Ok(false); // forwarded, as Envoy does
        }
        let mut h: Vec<(&str, &str)> = vec![("access-control-allow-origin", &origin)];
        if !cors.allow_methods.is_empty() {
            h.push(("access-control-allow-methods", &cors.allow_methods));
        }
        if !cors.allow_headers.is_empty() {
            h.push(("access-control-allow-headers", &cors.allow_headers));
        }
        if let Some(age) = &cors.max_age {
            h.push(("access-control-max-age", age));
        }
        if cors.allow_credentials {
            h.push(("access-control-allow-credentials", "true"));
        }
        reply(session, 200, &h, b"").await?;
        Ok(true)
    }

    /// Fault injection: the delay, then the abort, each sampled on its own. `true` when
    /// the request was aborted (it never reaches an upstream).
    async fn fault(
        &self,
        session: &mut Session,
        policy: &RoutePolicy,
        ctx: &mut RequestContext,
    ) -> Result<bool> {
        let Some(fault) = &policy.fault else {
            return Ok(false);
        };
        if let Some((d, sampler)) = &fault.delay {
            if sampler.sample() {
                ctx.flags.insert(ResponseFlags::DI);
                tokio::time::sleep(*d).await;
            }
        }
        if let Some((abort, sampler)) = &fault.abort {
            if sampler.sample() {
                ctx.flags.insert(ResponseFlags::FI);
                match *abort {
                    Abort::Http(status) => {
                        local_reply(session, status, BODY_FAULT_ABORT.as_bytes()).await?
                    }
                    Abort::Grpc(code) => grpc_reply(session, code, BODY_FAULT_ABORT).await?,
                }
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Path and host rewrites and request header operations: destination level first,
    /// then route level, so the route's `set` wins (Envoy's default order).
    fn rewrite(
        &self,
        req: &mut RequestHeader,
        route: &Route,
        dest: Option<usize>,
        new_path: Option<String>,
    ) -> Result<()> {
        let policy = &route.policy;
        let dest_headers = match (&route.action, dest) {
            (RouteAction::Forward(w), Some(i)) => w.headers.get(i),
            _ => None,
        };
        if let Some(path) = new_path {
            let pq = match req.uri.query() {
                Some(q) => format!("{path}?{q}"),
                None => path,
            };
            if let Ok(uri) = http::Uri::builder().path_and_query(pq).build() {
                req.set_uri(uri);
            }
        }
        let host = dest_headers
            .and_then(|h| h.host_rewrite.as_deref())
            .into_iter()
            .chain(policy.rewrite.as_ref().and_then(|r| r.authority.as_deref()))
            .chain(policy.headers.host_rewrite.as_deref())
            .last();
        if let Some(h) = host {
            req.insert_header("host", h)?;
        }
        if let Some(d) = dest_headers {
            header_ops::apply(&d.request, req)?;
        }
        header_ops::apply(&policy.headers.request, req)
    }
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
        let active = self.active.load_full();
        let snap = &*active.snapshot;
        let local = session
            .server_addr()
            .and_then(|a| a.as_inet().copied())
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let tls = tls_connection::of(session).cloned();
        let scheme = if tls.is_some() { "https" } else { "http" };
        self.forwarding_headers(session, scheme, tls.as_deref())?;

        let chain = tls.as_ref().map(|t| &*t.chain);
        let decision = {
            let req = session.req_header();
            let authority = authority_of(req);
            let header = |name: &str| header(req, name);
            let view = RequestView {
                path: req.uri.path(),
                path_and_query: req.uri.path_and_query().map_or("/", |p| p.as_str()),
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
                Some(vh) if vh.https_redirect && tls.is_none() => {
                    Some(Decision::HttpsRedirect(https_location(authority, &req.uri)))
                }
                Some(vh) => vh.routes.iter().find_map(|route| {
                    let matched = route.matching(&view)?;
                    let new_path = route
                        .policy
                        .rewrite
                        .as_ref()
                        .and_then(|rw| rw.path(view.path, matched));
                    let location = match &route.action {
                        RouteAction::Redirect(r) => Some(r.location(&RedirectInput {
                            scheme,
                            listener_port: local.port(),
                            authority,
                            path: view.path,
                            query: view.query,
                            matched,
                        })),
                        _ => None,
                    };
                    Some(Decision::Route(route.clone(), new_path, location))
                }),
                None => None,
            }
        };
        let (route, new_path, location) = match decision {
            None => {
                ctx.flags.insert(ResponseFlags::NR);
                local_reply(session, 404, b"").await?;
                return Ok(true);
            }
            Some(Decision::HttpsRedirect(location)) => {
                reply(session, 301, &[("location", &location)], b"").await?;
                return Ok(true);
            }
            Some(Decision::Route(r, p, l)) => (r, p, l),
        };
        ctx.route = Some(route.clone());
        let policy = &route.policy;

        if self.cors(session, policy, ctx).await? || self.fault(session, policy, ctx).await? {
            return Ok(true);
        }
        let weighted = match &route.action {
            RouteAction::Redirect(r) => {
                let location = location.unwrap_or_default();
                reply(session, r.code, &[("location", &location)], b"").await?;
                return Ok(true);
            }
            RouteAction::DirectResponse { status, body } => {
                ctx.flags.insert(ResponseFlags::DR);
                local_reply(session, *status, body).await?;
                return Ok(true);
            }
            RouteAction::Forward(w) => w,
        };
        ctx.destination = weighted.pick_index(self.rng.spread());
        let cluster = ctx
            .destination
            .and_then(|i| weighted.cluster_at(i))
            .and_then(|id| active.cluster(id))
            .cloned();
        self.rewrite(session.req_header_mut(), &route, ctx.destination, new_path)?;

        let Some(cluster) = cluster else {
            ctx.flags.insert(ResponseFlags::NC);
            local_reply(session, 503, b"").await?;
            return Ok(true);
        };
        if cluster.spec.endpoints.is_empty() {
            ctx.flags.insert(ResponseFlags::UH);
            local_reply(session, 503, BODY_NO_HEALTHY_UPSTREAM.as_bytes()).await?;
            return Ok(true);
        }
        ctx.retry = retry::RetryState::new(ctx.started, policy.timeout);
        if policy.retry.attempts > 0 {
            // Request bodies are replayed on retries, up to Pingora's retry buffer.
            session.enable_retry_buffering();
        }

        // Mirrors sampled now, sent once the body (if any) is complete.
        let mirrors: Vec<_> = policy
            .mirrors
            .iter()
            .filter(|m| m.sampler.sample())
            .filter_map(|m| m.cluster.and_then(|id| active.cluster(id)).cloned())
            .collect();
        if !mirrors.is_empty() {
            let req = session.req_header();
            let pending = PendingMirror {
                clusters: mirrors,
                head: req.clone(),
                authority: authority_of(req).to_string(),
                body: Vec::new(),
            };
            if has_body(req) {
                ctx.mirror = Some(pending);
            } else {
                for c in pending.clusters {
                    mirror::send(
                        self.registry.clone(),
                        c,
                        &pending.head,
                        &pending.authority,
                        &[],
                    );
                }
            }
        }
        // The cluster is an Arc: it outlives a reload that swaps the snapshot mid-request.
        ctx.cluster = Some(cluster);
        Ok(false)
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        let Some(m) = ctx.mirror.as_mut() else {
            return Ok(());
        };
        if let Some(b) = body {
            if m.body.len() + b.len() > mirror::MAX_MIRROR_BODY {
                ctx.mirror = None; // too large to mirror
                return Ok(());
            }
            m.body.extend_from_slice(b);
        }
        if end_of_stream {
            if let Some(m) = ctx.mirror.take() {
                for c in m.clusters {
                    mirror::send(self.registry.clone(), c, &m.head, &m.authority, &m.body);
                }
            }
        }
        Ok(())
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>> {
        let route = ctx
            .route
            .clone()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no route chosen"))?;
        let policy = &route.policy.retry;
        // A retry backs off first (never past the route's deadline).
        let backoff = ctx.retry.backoff(policy, self.rng.random(), Instant::now());
        if !backoff.is_zero() {
            tokio::time::sleep(backoff).await;
        }
        let cluster = ctx
            .cluster
            .as_ref()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no cluster chosen"))?;
        let ep = cluster
            .pick(&ctx.retry.tried)
            .ok_or_else(|| Error::explain(ErrorType::ConnectNoRoute, "no healthy upstream"))?;
        match ctx.retry.begin(policy, ep.address, Instant::now()) {
            Ok(wait) => Ok(Box::new(connect::http_peer(cluster, ep, wait))),
            Err(flags) => {
                ctx.flags.insert(flags);
                Err(Error::explain(ErrorType::ReadTimedout, "route timeout"))
            }
        }
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        // Istio turns on Envoy's `include_request_attempt_count`.
        const COUNTS: [&str; 12] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"];
        match COUNTS.get(ctx.retry.attempts as usize) {
            Some(n) => upstream_request
                .insert_header("x-envoy-attempt-count", http::HeaderValue::from_static(n))?,
            None => upstream_request
                .insert_header("x-envoy-attempt-count", ctx.retry.attempts.to_string())?,
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        let Some(route) = ctx.route.clone() else {
            return Ok(());
        };
        let policy = &route.policy;
        // A retriable answer with tries and time left is dropped and tried again.
        let status = resp.status.as_u16();
        let grpc = resp
            .headers
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let replayable = !session.as_ref().retry_buffer_truncated();
        let decision = ctx.retry.after(
            &policy.retry,
            retry::Outcome::Answered { status, grpc },
            Instant::now(),
            replayable,
        );
        ctx.flags.insert(decision.flags);
        if decision.retry {
            let mut e = Error::explain(ErrorType::HTTPStatus(status), "retriable upstream status");
            e.set_retry(true);
            return Err(e);
        }
        if let Some(t) = ctx.retry.attempt_started {
            resp.insert_header(
                "x-envoy-upstream-service-time",
                t.elapsed().as_millis().to_string(),
            )?;
        }
        if let Some(origin) = &ctx.cors_origin {
            if let Some(cors) = &policy.cors {
                resp.insert_header("access-control-allow-origin", origin.as_str())?;
                if !cors.expose_headers.is_empty() {
                    resp.insert_header(
                        "access-control-expose-headers",
                        cors.expose_headers.as_str(),
                    )?;
                }
                if cors.allow_credentials {
                    resp.insert_header("access-control-allow-credentials", "true")?;
                }
            }
        }
        if let (RouteAction::Forward(w), Some(i)) = (&route.action, ctx.destination) {
            if let Some(d) = w.headers.get(i) {
                header_ops::apply(&d.response, resp)?;
            }
        }
        header_ops::apply(&policy.headers.response, resp)
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Self::CTX,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let Some(c) = &ctx.cluster {
            connect::note_connect_failure(c);
        }
        let policy = ctx.route.as_ref().map(|r| &r.policy.retry);
        let decision = match policy {
            Some(p) => ctx
                .retry
                .after(p, retry::Outcome::ConnectFailed, Instant::now(), true),
            None => retry::Decision {
                retry: false,
                flags: ResponseFlags::UF,
            },
        };
        ctx.flags.insert(decision.flags);
        e.set_retry(decision.retry);
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Self::CTX,
        _client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        if ctx.retry.take_status_retry() {
            // The retriable answer turned into this error: retried as decided.
            e.set_retry(true);
            return e;
        }
        let outcome = match e.etype() {
            ErrorType::ReadTimedout => retry::Outcome::TimedOut,
            _ if *e.esource() == ErrorSource::Upstream => retry::Outcome::Reset,
            _ => {
                e.set_retry(false);
                return e;
            }
        };
        let replayable = !session.as_ref().retry_buffer_truncated();
        let decision = match ctx.route.as_ref() {
            Some(r) => ctx
                .retry
                .after(&r.policy.retry, outcome, Instant::now(), replayable),
            None => retry::Decision {
                retry: false,
                flags: ResponseFlags::default(),
            },
        };
        ctx.flags.insert(decision.flags);
        e.set_retry(decision.retry);
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
        let (code, body) = if ctx.flags.contains(ResponseFlags::UT)
            && matches!(e.etype(), ErrorType::ReadTimedout)
        {
            (504, BODY_TIMEOUT)
        } else if is_connect_error(e) || ctx.flags.contains(ResponseFlags::UF) {
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

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Self::CTX) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        self.telemetry.http(&HttpRecord {
            route: ctx.route.as_deref().map(|r| &*r.name),
            cluster: ctx.cluster.as_deref().map(|c| c.name()),
            status,
            flags: ctx.flags,
            attempts: ctx.retry.attempts,
            duration: ctx.started.elapsed(),
        });
    }
}
