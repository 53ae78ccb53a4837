//! The HTTP pipeline on Pingora's `ProxyHttp` hooks, in Envoy's order: header limits and
//! `headersWithUnderscoresAction` (Envoy's codec), path normalization and the gateway's
//! own headers (the connection manager), then route, CORS, fault, redirect / direct
//! response, rewrite, header operations, mirror (`request_filter`);
//! endpoint choice with the route's timeout and per-try timeout (`upstream_peer`); attempt
//! count (`upstream_request_filter`); retries on connect failure, reset or a retriable
//! status (`fail_to_connect`, `error_while_proxy`, `upstream_response_filter`); response
//! headers, CORS and `x-envoy-upstream-service-time` (`upstream_response_filter`); errors
//! answered as Envoy does (`fail_to_proxy`).

pub mod context;
mod cors;
pub mod fast;
mod fault;
mod forwarding;
mod grpc_messages;
mod hash_key;
pub mod header_ops;
pub mod local_reply;
pub mod mirror;
pub mod normalize;
mod report;
pub mod retry;
mod rewrite;
mod routing;
mod sanitize;

use routing::{authority_of, has_body};

use crate::rng::Rng;
use crate::snapshot::cluster::{Discovery, LbPolicy};
use crate::snapshot::route_table::RouteAction;
use crate::telemetry::Telemetry;
use crate::tls::connection as tls_connection;
use crate::upstream::balancer::Request;
use crate::upstream::cluster::ClusterState;
use crate::upstream::endpoint::{EndpointState, InFlight};
use crate::upstream::outlier::Outcome as Attempt;
use crate::upstream::{connect, connection};
use crate::upstream::{Generation, Registry};
use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use context::{PendingMirror, RequestContext, ResponseFlags};
use http::{HeaderName, HeaderValue};
use local_reply::*;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::FailToProxy;
use pingora::ErrorType;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Looked up on every answer (and in trailers): a name parsed once.
static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

/// `0` to `999` back to back, the text of a small number found without formatting.
const SMALL_NUMBERS: [u8; 2890] = small_numbers();

const fn small_numbers() -> [u8; 2890] {
    let mut out = [0; 2890];
    let (mut n, mut i) = (0, 0);
    while n < 1000 {
        if n >= 100 {
            out[i] = b'0' + (n / 100) as u8;
            i += 1;
        }
        if n >= 10 {
            out[i] = b'0' + (n / 10 % 10) as u8;
            i += 1;
        }
        out[i] = b'0' + (n % 10) as u8;
        i += 1;
        n += 1;
    }
    out
}

static SMALL_NUMBERS_TEXT: &str = match std::str::from_utf8(&SMALL_NUMBERS) {
    Ok(s) => s,
    Err(_) => panic!("digits are ASCII"),
};

/// A number as a header value (its decimal text); no allocation below 1000.
pub(crate) fn number_value(n: u64) -> HeaderValue {
    let (start, len) = match n {
        0..=9 => (n as usize, 1),
        10..=99 => (10 + (n as usize - 10) * 2, 2),
        100..=999 => (190 + (n as usize - 100) * 3, 3),
        _ => return HeaderValue::from(n),
    };
    HeaderValue::from_static(&SMALL_NUMBERS_TEXT[start..start + len])
}

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

/// Whether requests to `cluster` go upstream over HTTP/2 (multiplexed: no connection
/// per request).
fn upstream_h2(cluster: &ClusterState, session: &Session) -> bool {
    let client_h2 = session.req_header().version == http::Version::HTTP_2;
    cluster.spec.policy.upstream_h2(client_h2)
}

/// Counts how the current try ended against its endpoint (totals, outlier detection).
fn record(ctx: &RequestContext, attempt: Attempt) {
    if let (Some(c), Some(ep)) = (&ctx.cluster, &ctx.endpoint) {
        c.record(ep.endpoint(), attempt);
    }
}

/// Takes a slot for one more retry under the cluster's `maxRetries`; false: none left
/// (the answer so far stands, as Envoy's retry overflow).
fn retry_slot(ctx: &mut RequestContext) -> bool {
    // The retry before this one has ended: its slot is free again.
    ctx.retry_slot = None;
    let Some(c) = &ctx.cluster else {
        return true;
    };
    match c.breaker.retry() {
        Ok(slot) => {
            ctx.retry_slot = slot;
            true
        }
        Err(_) => false,
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

#[async_trait]
impl ProxyHttp for GatewayProxy {
    type CTX = RequestContext;

    fn new_ctx(&self) -> Self::CTX {
        RequestContext::default()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        let active = self.active.load_full();
        let snap = &*active.snapshot;
        let settings = &snap.downstream;
        // `streamIdleTimeout` bounds each read of the client's body and each write of the
        // answer (HTTP/1; Pingora's HTTP/2 server bounds writes only), and the wait for
        // upstream bytes (`upstream_peer`).
        ctx.stream_idle_timeout = Some(settings.stream_idle_timeout);
        session.set_read_timeout(Some(settings.stream_idle_timeout));
        session.set_write_timeout(Some(settings.stream_idle_timeout));
        let headers = &session.req_header().headers;
        let size: usize = headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len())
            .sum();
        if size > settings.max_request_headers_bytes || headers.len() > settings.max_request_headers
        {
            session.set_keepalive(None);
            ctx.flags.insert(ResponseFlags::DPE);
            ctx.details = Some("http1.headers_too_large");
            local_reply(session, 431, b"").await?;
            return Ok(true);
        }
        if !sanitize::underscores(session.req_header_mut(), settings.headers_with_underscores) {
            session.set_keepalive(None);
            ctx.flags.insert(ResponseFlags::DPE);
            ctx.details = Some("http1.unexpected_underscore");
            local_reply(session, 400, b"").await?;
            return Ok(true);
        }
        if !rewrite::normalize_path(session.req_header_mut(), settings.path_normalization) {
            session.set_keepalive(None);
            ctx.details = Some("path_normalization_failed");
            local_reply(session, 400, b"").await?;
            return Ok(true);
        }
        if is_grpc(session.req_header()) {
            ctx.grpc_messages = Some(Box::default());
        }
        let local = session
            .server_addr()
            .and_then(|a| a.as_inet().copied())
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let tls = tls_connection::of(session).cloned();
        let scheme = if tls.is_some() { "https" } else { "http" };
        forwarding::forwarding_headers(&self.rng, session, scheme, tls.as_deref(), settings)?;

        let chain = tls.as_ref().map(|t| &*t.chain);
        let decision = routing::decide(snap, local, chain, scheme, session.req_header());
        let (route, new_path, location) = match decision {
            None => {
                ctx.flags.insert(ResponseFlags::NR);
                local_reply(session, 404, b"").await?;
                return Ok(true);
            }
            Some(routing::Decision::HttpsRedirect(location)) => {
                ctx.details = Some("direct_response");
                reply(session, 301, &[("location", &location)], b"").await?;
                return Ok(true);
            }
            Some(routing::Decision::Route(r, p, l)) => (r, p, l),
        };
        ctx.route = Some(route.clone());
        let policy = &route.policy;
        // The destination is chosen with the route (as Envoy resolves the cluster with
        // it), so a CORS or fault reply is counted against the route's service.
        let mut cluster = None;
        if let RouteAction::Forward(w) = &route.action {
            ctx.destination = w.pick_index(self.rng.spread());
            let id = ctx.destination.and_then(|i| w.cluster_at(i));
            cluster = id.and_then(|id| active.cluster(id)).cloned();
            if cluster.is_some() {
                ctx.telemetry = Some(self.telemetry.destination(&active.snapshot, id));
            }
        }

        if cors::preflight(session, policy, ctx).await? {
            ctx.details = Some("cors_response");
            return Ok(true);
        }
        if fault::inject(session, policy, ctx).await? {
            return Ok(true);
        }
        match &route.action {
            RouteAction::Redirect(r) => {
                ctx.details = Some("direct_response");
                let location = location.unwrap_or_default();
                reply(session, r.code, &[("location", &location)], b"").await?;
                return Ok(true);
            }
            RouteAction::DirectResponse { status, body } => {
                ctx.details = Some("direct_response");
                local_reply(session, *status, body).await?;
                return Ok(true);
            }
            RouteAction::BlackHole => {
                // Egress under REGISTRY_ONLY: Envoy's BlackHoleCluster.
                ctx.flags.insert(ResponseFlags::NR);
                ctx.details = Some("egress_refused_unregistered");
                local_reply(session, 502, b"").await?;
                return Ok(true);
            }
            RouteAction::Forward(_) => {}
        }
        rewrite::apply(session.req_header_mut(), &route, ctx.destination, new_path)?;
        // The headers the gateway set reach the upstream whatever `Connection:` names.
        if session
            .req_header()
            .headers
            .contains_key(http::header::CONNECTION)
        {
            let route_sets: Vec<&str> = rewrite::headers_set(&route, ctx.destination).collect();
            sanitize::protect_from_connection(session.req_header_mut(), |name| {
                forwarding::GATEWAY_HEADERS.contains(&name)
                    || matches!(name, "host" | "x-forwarded-host")
                    || route_sets.contains(&name)
            })?;
        }

        let Some(cluster) = cluster else {
            ctx.flags.insert(ResponseFlags::NC);
            local_reply(session, 503, b"").await?;
            return Ok(true);
        };
        if cluster.spec.discovery == Discovery::Dynamic {
            // Egress to a wildcard ServiceEntry or the PassthroughCluster: the Host itself.
            let name = crate::config::host::authority_host(authority_of(session.req_header()));
            let port = match cluster.spec.target_port {
                0 => local.port(),
                p => p,
            };
            match self.registry.resolver.resolve(name, port).await {
                Ok(addrs) if addrs[0] == local => {
                    // The Host names this very listener: a loop.
                    ctx.flags.insert(ResponseFlags::NR);
                    ctx.details = Some("egress_refused_loop");
                    local_reply(session, 502, b"").await?;
                    return Ok(true);
                }
                Ok(addrs) => ctx.dynamic = Some(addrs[0]),
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    // A Host naming a loopback or link-local address: never reached by name.
                    log::info!("{}: {e}", cluster.name());
                    ctx.flags.insert(ResponseFlags::NR);
                    ctx.details = Some("egress_refused_local_address");
                    local_reply(session, 502, b"").await?;
                    return Ok(true);
                }
                Err(e) => {
                    log::info!("{}: cannot resolve {name}: {e}", cluster.name());
                    ctx.flags.insert(ResponseFlags::UH);
                    ctx.details = Some("dns_resolution_failure");
                    local_reply(session, 503, BODY_NO_HEALTHY_UPSTREAM.as_bytes()).await?;
                    return Ok(true);
                }
            }
        } else if cluster.endpoints().is_empty() {
            ctx.flags.insert(ResponseFlags::UH);
            local_reply(session, 503, BODY_NO_HEALTHY_UPSTREAM.as_bytes()).await?;
            return Ok(true);
        }
        ctx.retry = retry::RetryState::new(ctx.started, policy.timeout);
        if let LbPolicy::ConsistentHash { key, .. } = &cluster.spec.policy.load_balancer {
            let client = session.client_addr().and_then(|a| a.as_inet()).copied();
            ctx.hash = hash_key::of(key, session.req_header(), client, local);
        }
        // Circuit breakers: an HTTP/1 upstream holds a connection per request in flight.
        let per_connection = !upstream_h2(&cluster, session);
        match cluster
            .breaker
            .admit(per_connection, ctx.retry.deadline())
            .await
        {
            Ok(a) => ctx.admission = a,
            Err(_) => {
                cluster
                    .stats
                    .overflows
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                ctx.flags.insert(ResponseFlags::UO);
                let overloaded = [("x-envoy-overloaded", "true")];
                reply(session, 503, &overloaded, BODY_OVERFLOW.as_bytes()).await?;
                return Ok(true);
            }
        }
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
            if has_body(req) {
                ctx.mirror = Some(Box::new(PendingMirror {
                    clusters: mirrors,
                    head: req.clone(),
                    authority: authority_of(req).to_string(),
                    body: Vec::new(),
                    reserved: mirror::BODY_BUDGET.reserve(),
                }));
            } else {
                let authority = authority_of(req);
                for c in mirrors {
                    mirror::send(self.registry.clone(), c, req, authority, Bytes::new(), None);
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
        if let (Some(g), Some(b)) = (ctx.grpc_messages.as_mut(), body.as_ref()) {
            g.0.feed(b);
        }
        let Some(m) = ctx.mirror.as_mut() else {
            return Ok(());
        };
        if let Some(b) = body {
            if m.body.len() + b.len() > mirror::MAX_MIRROR_BODY {
                ctx.mirror = None; // too large to mirror
                return Ok(());
            }
            if !m.reserved.grow(b.len()) {
                mirror::skipped_over_cap(m.clusters.len());
                ctx.mirror = None;
                return Ok(());
            }
            m.body.extend_from_slice(b);
        }
        if end_of_stream {
            if let Some(m) = ctx.mirror.take().map(|m| *m) {
                // One copy of the body, shared by the clusters' requests.
                let body = Bytes::from(m.body);
                let reserved = Arc::new(m.reserved);
                for c in m.clusters {
                    mirror::send(
                        self.registry.clone(),
                        c,
                        &m.head,
                        &m.authority,
                        body.clone(),
                        Some(reserved.clone()),
                    );
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
        // A retry backs off first (never past the route's deadline). One clock read
        // serves the back-off and the try's start (again after a back-off).
        let mut now = Instant::now();
        let backoff = ctx.retry.backoff(policy, self.rng.random(), now);
        if !backoff.is_zero() {
            tokio::time::sleep(backoff).await;
            now = Instant::now();
        }
        let cluster = ctx
            .cluster
            .as_ref()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no cluster chosen"))?;
        if let Some(why) = cluster.tls_error() {
            connect::note_connect_failure(cluster);
            ctx.flags.insert(ResponseFlags::UF);
            return Err(Error::explain(ErrorType::ConnectError, why.to_string()));
        }
        let picked = match ctx.dynamic {
            Some(a) => Some(Arc::new(EndpointState::new(a, 1, 0))),
            None => cluster.pick(Request {
                hash: ctx.hash.hash,
                tried: ctx.retry.tried(),
                random: self.rng.random(),
            }),
        };
        let Some(ep) = picked else {
            // Every endpoint ejected (outlier detection): Envoy's "no healthy upstream".
            ctx.flags.insert(ResponseFlags::UH);
            return Err(Error::explain(
                ErrorType::ConnectNoRoute,
                "no healthy upstream",
            ));
        };
        match ctx.retry.begin(policy, ep.address, now) {
            Ok(wait) => {
                // The stream idle timeout bounds the wait too, when it is the shorter.
                let idle = ctx.stream_idle_timeout;
                let (read, idle_bounded) = match (wait, idle) {
                    (Some(w), Some(i)) if i < w => (Some(i), true),
                    (None, Some(i)) => (Some(i), true),
                    (w, _) => (w, false),
                };
                ctx.idle_bounded = idle_bounded;
                let req = _session.req_header();
                let client_h2 = req.version == http::Version::HTTP_2;
                let host = crate::config::host::authority_host(authority_of(req));
                let mut peer = connect::http_peer(cluster, &ep, read, client_h2, Some(host));
                peer.options.write_timeout = idle;
                ctx.endpoint = Some(InFlight::new(ep));
                Ok(Box::new(peer))
            }
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
        // HTTP/1 only: an HTTP/2 request must not carry `Connection` (per-connection
        // limits are not applied to upstream HTTP/2 connections).
        if ctx.close_upstream && upstream_request.version != http::Version::HTTP_2 {
            upstream_request.insert_header("connection", HeaderValue::from_static("close"))?;
        }
        // Istio turns on Envoy's `include_request_attempt_count`.
        upstream_request.insert_header(
            "x-envoy-attempt-count",
            number_value(u64::from(ctx.retry.attempts)),
        )
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        // An informational answer (100 Continue) is not the outcome: wait for the final one.
        if resp.status.is_informational() {
            return Ok(());
        }
        let Some(route) = ctx.route.clone() else {
            return Ok(());
        };
        let policy = &route.policy;
        // A retriable answer with tries and time left is dropped and tried again.
        let status = resp.status.as_u16();
        let grpc = resp
            .headers
            .get(&GRPC_STATUS)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        record(ctx, Attempt::Status(status));
        let replayable = !session.as_ref().retry_buffer_truncated();
        // One clock read: the retry decision and the service time.
        let now = Instant::now();
        let decision = ctx.retry.after(
            &policy.retry,
            retry::Outcome::Answered { status, grpc },
            now,
            replayable,
        );
        ctx.flags.insert(decision.flags);
        if decision.retry && retry_slot(ctx) {
            let mut e = Error::explain(ErrorType::HTTPStatus(status), "retriable upstream status");
            e.set_retry(true);
            return Err(e);
        }
        ctx.via_upstream = true;
        ctx.grpc_status = grpc;
        if let Some(t) = ctx.retry.attempt_started {
            let ms = now.saturating_duration_since(t).as_millis();
            let value = match u64::try_from(ms) {
                Ok(ms) => number_value(ms),
                Err(_) => HeaderValue::from_str(&ms.to_string())
                    .or_err(ErrorType::InvalidHTTPHeader, "invalid value while insert")?,
            };
            resp.insert_header("x-envoy-upstream-service-time", value)?;
        }
        if let Some(c) = ctx.hash.set_cookie.take() {
            resp.append_header("set-cookie", c)?;
        }
        cors::on_response(resp, policy, ctx)?;
        if let (RouteAction::Forward(w), Some(i)) = (&route.action, ctx.destination) {
            if let Some(d) = w.headers.get(i) {
                header_ops::apply(&d.response, resp)?;
            }
        }
        header_ops::apply(&policy.headers.response, resp)
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut Self::CTX,
    ) -> Result<Option<std::time::Duration>> {
        if let (Some(g), Some(b)) = (ctx.grpc_messages.as_mut(), body.as_ref()) {
            g.1.feed(b);
        }
        Ok(None)
    }

    fn upstream_response_trailer_filter(
        &self,
        _session: &mut Session,
        trailers: &mut http::HeaderMap,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        if let Some(s) = trailers
            .get(&GRPC_STATUS)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
        {
            ctx.grpc_status = Some(s);
        }
        Ok(())
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        reused: bool,
        _peer: &HttpPeer,
        #[cfg(unix)] fd: std::os::unix::io::RawFd,
        #[cfg(windows)] _sock: std::os::windows::io::RawSocket,
        digest: Option<&pingora::protocols::Digest>,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        if let Some(c) = &ctx.cluster {
            let p = &c.spec.policy;
            if !reused {
                c.stats
                    .connects
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if p.outlier_detection
                    .as_ref()
                    .is_some_and(|o| o.split_external_local_origin_errors)
                {
                    record(ctx, Attempt::Connected);
                }
            }
            #[cfg(unix)]
            {
                let max = p.http_pool.max_requests_per_connection;
                ctx.close_upstream =
                    connection::last_request(fd, reused, max, p.max_connection_duration);
            }
        }
        if self.telemetry.logs_access() {
            ctx.upstream_local = digest
                .and_then(|d| d.socket_digest.as_ref())
                .and_then(|s| s.local_addr())
                .and_then(|a| a.as_inet())
                .copied();
        }
        Ok(())
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
        let attempt = match e.etype() {
            ErrorType::ConnectTimedout => Attempt::TimedOut,
            _ => Attempt::ConnectFailed,
        };
        record(ctx, attempt);
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
        e.set_retry(decision.retry && retry_slot(ctx));
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
            ErrorType::ReadTimedout | ErrorType::WriteTimedout
                if ctx.idle_bounded && *e.esource() == ErrorSource::Upstream =>
            {
                // `streamIdleTimeout`: the stream is over, as in Envoy (no retry).
                ctx.flags.insert(ResponseFlags::SI);
                e.set_retry(false);
                return e;
            }
            ErrorType::ReadTimedout => retry::Outcome::TimedOut,
            _ if *e.esource() == ErrorSource::Upstream => retry::Outcome::Reset,
            _ => {
                e.set_retry(false);
                return e;
            }
        };
        // Only the upstream's own failures count against its endpoint (a client that
        // stalls its body must not eject endpoints).
        if *e.esource() == ErrorSource::Upstream {
            record(
                ctx,
                match outcome {
                    retry::Outcome::TimedOut => Attempt::TimedOut,
                    _ => Attempt::Reset,
                },
            );
        }
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
        e.set_retry(decision.retry && retry_slot(ctx));
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
        let downstream_idle = *e.esource() == ErrorSource::Downstream
            && matches!(
                e.etype(),
                ErrorType::ReadTimedout | ErrorType::WriteTimedout
            );
        if downstream_idle {
            ctx.flags.insert(ResponseFlags::SI);
        }
        let (code, body) = if ctx.flags.contains(ResponseFlags::UH) {
            (503, BODY_NO_HEALTHY_UPSTREAM)
        } else if ctx.flags.contains(ResponseFlags::SI) {
            // Envoy: 504 once the whole request arrived, else 408.
            if session.as_mut().is_body_done() && !downstream_idle {
                (504, BODY_STREAM_TIMEOUT)
            } else {
                (408, BODY_STREAM_TIMEOUT)
            }
        } else if ctx.flags.contains(ResponseFlags::UT)
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
        // Not after an answer has started, and the client may be gone: nothing more to
        // do then.
        if code > 0 && session.response_written().is_none() {
            let _ = local_reply(session, code, body.as_bytes()).await;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Self::CTX) {
        report::report(&self.telemetry, session, e, ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_values_are_decimal_text() {
        for n in (0..2000).chain([9_999, 10_000, 123_456_789, u64::MAX]) {
            assert_eq!(number_value(n), n.to_string().as_str());
        }
    }
}
