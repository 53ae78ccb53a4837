//! Every gateway listener's connections, before HTTP: a plain-text HTTP port goes straight
//! to the HTTP pipeline; a TLS port reads the ClientHello, lets the SNI pick a filter
//! chain, then terminates (HTTP pipeline or TCP routes) or passes the bytes through; a TCP
//! port is spliced to its route's destination.

pub mod accept;
mod connect;
mod egress;
mod http1;
mod idle;
mod limits;
mod replay;

use crate::http::fast::FastPath;
use crate::rng::Rng;
use crate::snapshot::cluster::Discovery;
use crate::snapshot::l4_route::{self, L4Route};
use crate::snapshot::sni_router::{ChainAction, SniTarget, Terminated};
use crate::snapshot::Protocol;
use crate::telemetry::own::HandshakeFailure;
use crate::telemetry::Telemetry;
use crate::tls::client_hello::{self, ClientHello, Parse};
use crate::tls::connection::{self as tls_connection, TlsConnection};
use crate::tls::peer_identity::PeerIdentity;
use crate::upstream::{Generation, Registry};
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::listeners::tls::Acceptor;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{Peek, Ssl, Stream};
use pingora::server::ShutdownWatch;
use prometheus::IntGauge;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use tokio::time::Instant;

/// Accepts every gateway connection and hands it on: HTTP to `H` (the HTTP pipeline,
/// which the server plugs in, so this layer knows nothing of its internals), TCP and
/// passthrough TLS to the TCP proxy.
pub struct ListenerApp<H> {
    active: Arc<ArcSwap<Generation>>,
    http: Arc<H>,
    telemetry: Arc<Telemetry>,
    /// Resolves the names egress connections ask for.
    registry: Arc<Registry>,
    rng: Rng,
    connections: limits::Connections,
    /// `maxConnections` when MeshConfig leaves it out (from the descriptor limit).
    default_max_connections: u32,
    /// Each listener's own state, by address: listeners come and go with reloads, so
    /// the map is replaced whole (read without a lock per connection).
    slots: ArcSwap<HashMap<SocketAddr, Arc<Slot>>>,
    /// Kept-alive HTTP/1 connections between requests, ended by a drain.
    idle: idle::IdleWaiters,
    /// The HTTP/1 fast path, unless turned off.
    fast: Option<FastPath>,
}

/// A listener's open connections (its `maxConnectionsPerListener` count) and its
/// `meshgate_downstream_connections_active` gauge.
struct Slot {
    open: Arc<std::sync::atomic::AtomicUsize>,
    gauge: IntGauge,
}

/// One open connection on a listener's gauge; taken off when dropped.
struct Counted(IntGauge);

impl Counted {
    fn new(g: &IntGauge) -> Counted {
        g.inc();
        Counted(g.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl<H: HttpServerApp + Send + Sync + 'static> ListenerApp<H> {
    pub fn new(
        active: Arc<ArcSwap<Generation>>,
        http: H,
        telemetry: Arc<Telemetry>,
        registry: Arc<Registry>,
        listeners: impl IntoIterator<Item = SocketAddr>,
    ) -> Self {
        let default_max_connections = limits::default_max_connections();
        log::info!("downstream connections limited to {default_max_connections} unless MeshConfig maxConnections says otherwise");
        let app = ListenerApp {
            active: active.clone(),
            http: Arc::new(http),
            telemetry: telemetry.clone(),
            registry,
            rng: Rng::new(),
            connections: limits::Connections::default(),
            default_max_connections,
            slots: ArcSwap::default(),
            idle: idle::IdleWaiters::default(),
            fast: FastPath::new(active, telemetry.clone()),
        };
        app.track(listeners);
        app
    }

    /// How an HTTP connection hears of a drain.
    fn drain<'a>(&'a self, shutdown: &'a ShutdownWatch) -> http1::Drain<'a> {
        http1::Drain {
            watch: shutdown,
            idle: &self.idle,
        }
    }

    /// What serves an HTTP connection's requests besides Pingora's proxy.
    fn helpers<'a>(&'a self, tls: Option<&'a TlsConnection>) -> http1::Helpers<'a> {
        http1::Helpers {
            fast: self.fast.as_ref(),
            telemetry: &self.telemetry,
            tls,
        }
    }

    /// Gives listeners not seen before their state; those seen keep theirs (their
    /// counts carry on across a reload).
    pub fn track(&self, listeners: impl IntoIterator<Item = SocketAddr>) {
        let mut next = HashMap::clone(&self.slots.load());
        for a in listeners {
            next.entry(a).or_insert_with(|| {
                Arc::new(Slot {
                    open: Arc::default(),
                    gauge: self.telemetry.own.downstream_connections(&a.to_string()),
                })
            });
        }
        self.slots.store(Arc::new(next));
    }

    /// Connections open now, over all listeners.
    pub fn open_connections(&self) -> usize {
        self.connections.open()
    }

    /// The gateway drains: kept-alive HTTP/1 connections waiting for their next request
    /// close now (those mid-request close after their answer, as `ShutdownWatch` tells
    /// Pingora; HTTP/2 ones get GOAWAY from it).
    pub fn close_idle(&self) {
        self.idle.drain();
    }

    /// Picks a destination of `route` by weight and splices `stream` to it.
    async fn forward<S>(
        &self,
        stream: S,
        route: &L4Route,
        active: &Generation,
        conn: &crate::tcp::Downstream<'_>,
    ) where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let id = route.clusters.pick_cluster(self.rng.spread());
        self.forward_to(stream, id, active, conn).await;
    }

    /// Splices `stream` to cluster `id`; no cluster closes it (Envoy's NC).
    async fn forward_to<S>(
        &self,
        stream: S,
        id: Option<crate::snapshot::cluster::ClusterId>,
        active: &Generation,
        conn: &crate::tcp::Downstream<'_>,
    ) where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        match id.and_then(|id| active.cluster(id)) {
            Some(cluster) if cluster.spec.discovery == Discovery::Dynamic => {
                // A `tls` route to a DYNAMIC_DNS entry (or the PassthroughCluster): to the
                // SNI itself.
                let port = match cluster.spec.target_port {
                    0 => conn.local.map_or(0, |a| a.port()),
                    p => p,
                };
                let Some(name) = conn.sni else {
                    crate::tcp::no_cluster(conn, &self.telemetry);
                    return;
                };
                let Some(via) = self.resolve_for(name, port, conn).await else {
                    return;
                };
                let dest = self.telemetry.destination(&active.snapshot, id);
                crate::tcp::forward_via(stream, conn, cluster, via, None, &dest, &self.telemetry)
                    .await
            }
            Some(cluster) => {
                let dest = self.telemetry.destination(&active.snapshot, id);
                crate::tcp::forward(stream, conn, cluster, &dest, &self.telemetry).await
            }
            None => crate::tcp::no_cluster(conn, &self.telemetry),
        }
    }

    async fn tls(
        self: &Arc<Self>,
        stream: Stream,
        local: SocketAddr,
        active: Arc<Generation>,
        accepted: Instant,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let snap = &active.snapshot;
        // The acceptor takes a concrete stream; listeners hand out TCP streams.
        let mut stream = *stream.into_any().downcast::<L4Stream>().ok()?;
        // The ClientHello, the handshake and (below) the first request's head share the
        // connection's `requestHeadersTimeout` from connect.
        let deadline = accepted + snap.downstream.request_headers_timeout;
        let hello = match tokio::time::timeout_at(deadline, read_client_hello(&mut stream)).await {
            Ok(Some(h)) => h,
            _ => {
                // timed out, not TLS, or malformed: close
                self.telemetry
                    .own
                    .tls_handshake_failed(HandshakeFailure::NoClientHello);
                return None;
            }
        };
        let router = match snap.listener_for(local).map(|l| &l.protocol) {
            Some(Protocol::Tls(r)) => r,
            _ => return None,
        };
        let Some(target) = router.route(hello.sni.as_deref(), local) else {
            self.telemetry
                .own
                .tls_handshake_failed(HandshakeFailure::NoMatchingServer);
            return None;
        };
        let remote = {
            use pingora::protocols::GetSocketDigest;
            stream
                .get_socket_digest()
                .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).copied())
        };
        let conn = crate::tcp::Downstream {
            local: Some(local),
            remote,
            sni: hello.sni.as_deref(),
        };
        match target {
            SniTarget::Passthrough(route) => {
                self.forward(stream, route, &active, &conn).await;
                None
            }
            SniTarget::Auto(cluster) => {
                let id = active.snapshot.cluster_id(&cluster);
                self.forward_to(stream, id, &active, &conn).await;
                None
            }
            SniTarget::Egress => {
                let sni = hello.sni.as_deref().unwrap_or("");
                self.egress(stream, sni, local.port(), &active, &conn).await;
                None
            }
            SniTarget::Terminate(chain) => {
                let ChainAction::Terminate { tls, inner } = &chain.action else {
                    return None;
                };
                let info = Arc::new(TlsConnection {
                    chain: chain.name.clone(),
                    sni: hello.sni.clone(),
                    peer: OnceLock::new(),
                });
                tls_connection::attach(&mut stream, info.clone());
                let acceptor = Acceptor::from_server_config(tls.config());
                let tls_stream =
                    match tokio::time::timeout_at(deadline, acceptor.tls_handshake(stream)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            log::debug!("{local}: TLS handshake failed: {e}");
                            self.telemetry
                                .own
                                .tls_handshake_failed(HandshakeFailure::Handshake);
                            return None;
                        }
                        Err(_) => {
                            self.telemetry
                                .own
                                .tls_handshake_failed(HandshakeFailure::Timeout);
                            return None;
                        }
                    };
                let peer = tls_stream
                    .get_ssl()
                    .and_then(|t| t.peer_certificate_der())
                    .and_then(PeerIdentity::from_der);
                let _ = info.peer.set(peer);
                match inner {
                    Terminated::Http(_) => {
                        let settings = snap.downstream.clone();
                        drop(active);
                        let served = http1::serve(
                            &self.http,
                            Box::new(tls_stream),
                            &settings,
                            accepted,
                            self.drain(shutdown),
                            self.helpers(Some(&info)),
                            false,
                        )
                        .await;
                        match served {
                            http1::Served::Done(s) => s,
                            http1::Served::Connect(..) => None,
                        }
                    }
                    Terminated::Tcp(routes) => {
                        if let Some(r) = l4_route::select(routes, local) {
                            self.forward(tls_stream, r, &active, &conn).await;
                        }
                        None
                    }
                }
            }
        }
    }
}

/// Peeks (without consuming) until a whole ClientHello is buffered; `None` for a
/// plain-text or malformed start. The caller bounds the time.
async fn read_client_hello(stream: &mut L4Stream) -> Option<ClientHello> {
    let mut buf = Vec::new();
    let mut need = 5;
    loop {
        buf.resize(need, 0);
        if !stream.try_peek(&mut buf).await.ok()? {
            return None;
        }
        match client_hello::parse(&buf) {
            Parse::Incomplete { need: n } => need = n,
            Parse::Done(h) => return Some(h),
            Parse::NotTls | Parse::Invalid(_) => return None,
        }
    }
}

#[async_trait]
impl<H: HttpServerApp + Send + Sync + 'static> ServerApp for ListenerApp<H> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let local = stream
            .get_socket_digest()
            .and_then(|d| d.local_addr().and_then(|a| a.as_inet()).copied())?;
        let accepted = Instant::now();
        let active = self.active.load_full();
        let listener = active.snapshot.listener_for(local)?;
        let limits = &active.snapshot.downstream;
        let slots = self.slots.load();
        let slot = slots.get(&listener.address);
        let Some(_admitted) = self.connections.admit(
            slot.map(|s| &s.open),
            limits
                .max_connections
                .unwrap_or(self.default_max_connections),
            limits.max_connections_per_listener,
        ) else {
            log::debug!(
                "{local}: connection limit reached ({} open); closing a new connection",
                self.connections.open()
            );
            return None;
        };
        let _counted = slot.map(|s| Counted::new(&s.gauge));
        drop(slots);
        match &listener.protocol {
            Protocol::Http(_) => {
                let settings = limits.clone();
                let connect_proxy = listener.connect_proxy;
                drop(active);
                let served = http1::serve(
                    &self.http,
                    stream,
                    &settings,
                    accepted,
                    self.drain(shutdown),
                    self.helpers(None),
                    connect_proxy,
                )
                .await;
                match served {
                    http1::Served::Done(s) => s,
                    http1::Served::Connect(stream, head) => {
                        Box::pin(self.connect(stream, head, local)).await;
                        None
                    }
                }
            }
            // Boxed, as the TCP path below: a plain-HTTP connection's state does not carry
            // their larger futures.
            Protocol::Tls(_) => Box::pin(self.tls(stream, local, active, accepted, shutdown)).await,
            Protocol::Tcp(routes) => {
                if let Some(r) = l4_route::select(routes, local) {
                    let r = r.clone();
                    let remote = stream
                        .get_socket_digest()
                        .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).copied());
                    let conn = crate::tcp::Downstream {
                        local: Some(local),
                        remote,
                        sni: None,
                    };
                    Box::pin(self.forward(stream, &r, &active, &conn)).await;
                }
                None
            }
        }
    }

    async fn cleanup(&self) {
        self.http.cleanup().await;
    }
}
