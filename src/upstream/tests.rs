//! Cluster state across config generations, with real connections: an unchanged cluster
//! keeps its state (counters, pool key) and so its pooled upstream connection; a changed
//! cluster gets a new state whose connections are not shared with the old one.

use super::*;
use crate::config::{check, loader};
use crate::snapshot::compile;
use bytes::Bytes;
use pingora::http::RequestHeader;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const A: &str = "outbound|80||a.internal";
const B: &str = "outbound|80||b.internal";

/// Bounds every exchange of these tests.
const TIMEOUT: Duration = Duration::from_secs(3);

/// A local HTTP/1.1 keep-alive server answering every request with `200 ok`, counting
/// the TCP connections it accepted and the requests it answered.
struct Server {
    addr: SocketAddr,
    conns: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

impl Server {
    async fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (c, r) = (conns.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(s, r.clone()));
            }
        });
        Server {
            addr,
            conns,
            requests,
        }
    }

    fn conns(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Answers each complete request (head and `content-length` body) on `s` until the
/// client closes.
async fn serve(mut s: TcpStream, requests: Arc<AtomicUsize>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let body_len = head
                .lines()
                .filter_map(|l| l.strip_prefix("content-length:"))
                .find_map(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() < end + 4 + body_len {
                break; // the body is still coming
            }
            buf.drain(..end + 4 + body_len);
            requests.fetch_add(1, Ordering::SeqCst);
            if s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .is_err()
            {
                return;
            }
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn service_entry(host: &str, port: u16) -> String {
    format!("---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {host}}}\nspec:\n  hosts: [{host}]\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {port}}}}}]\n")
}

/// A Gateway, ServiceEntries a.internal and b.internal over the two servers, a
/// VirtualService routing to both (so both clusters exist), and `extra` documents.
fn config(a: &Server, b: &Server, extra: &str) -> String {
    let gw = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: 8080, name: http, protocol: HTTP}\n    hosts: [\"*\"]\n";
    let vs = "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v}\nspec:\n  hosts: [x.example.com]\n  gateways: [gw]\n  http:\n  - match: [{uri: {prefix: /a}}]\n    route: [{destination: {host: a.internal}}]\n  - route: [{destination: {host: b.internal}}]\n";
    format!(
        "{gw}{}{}{vs}{extra}",
        service_entry("a.internal", a.addr.port()),
        service_entry("b.internal", b.addr.port())
    )
}

fn snapshot(yaml: &str) -> Arc<Snapshot> {
    let mut loaded = loader::Loaded::default();
    loader::load_text(Path::new("s.yaml"), yaml, &mut loaded);
    let checked = check(loaded, &[]);
    assert!(!checked.has_errors(), "{:#?}", checked.diagnostics);
    let labels = [("istio".to_string(), "ingressgateway".to_string())];
    Arc::new(compile(&checked.config, &labels))
}

/// One request through the registry's client to an endpoint of `state`.
async fn send(registry: &Registry, state: &ClusterState, path: &str) -> u16 {
    let mut head = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
    head.insert_header("host", "x.example.com").unwrap();
    registry
        .http_client
        .send(state, head, Bytes::new(), TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("{} {path}: {e}", state.name()))
}

#[tokio::test]
async fn an_unchanged_cluster_keeps_its_state_and_pooled_connection_across_a_reload() {
    let (a, b) = (Server::start().await, Server::start().await);
    // Generation 2 changes b's policy only (same endpoint address): b is a new cluster
    // state, and its connections must not be the old state's.
    let dr_b = "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: b}\nspec:\n  host: b.internal\n  trafficPolicy: {connectionPool: {tcp: {idleTimeout: 30s}}}\n";
    let s1 = snapshot(&config(&a, &b, ""));
    let s2 = snapshot(&config(&a, &b, dr_b));
    let (a1, b1) = (
        s1.cluster(s1.cluster_id(A).unwrap()).unwrap(),
        s1.cluster(s1.cluster_id(B).unwrap()).unwrap(),
    );
    let (a2, b2) = (
        s2.cluster(s2.cluster_id(A).unwrap()).unwrap(),
        s2.cluster(s2.cluster_id(B).unwrap()).unwrap(),
    );
    assert_eq!(a1.identity(), a2.identity(), "a is unchanged");
    assert_ne!(b1.identity(), b2.identity(), "b's policy changed");
    assert_eq!(b1.endpoints, b2.endpoints, "b's endpoint is the same");

    let registry = Registry::default();
    let gen1 = registry.adopt(s1);
    let (a_gen1, b_gen1) = (
        gen1.cluster_named(A).unwrap().clone(),
        gen1.cluster_named(B).unwrap().clone(),
    );
    assert_eq!(send(&registry, &a_gen1, "/a/1").await, 200);
    assert_eq!(send(&registry, &b_gen1, "/b/1").await, 200);
    assert_eq!((a.conns(), b.conns()), (1, 1));

    let gen2 = registry.adopt(s2);
    let (a_gen2, b_gen2) = (
        gen2.cluster_named(A).unwrap().clone(),
        gen2.cluster_named(B).unwrap().clone(),
    );
    assert!(
        Arc::ptr_eq(&a_gen1, &a_gen2),
        "a's state is carried over to the next generation"
    );
    assert!(
        !Arc::ptr_eq(&b_gen1, &b_gen2),
        "b changed: it gets a new state"
    );
    assert_eq!(a_gen1.pool_key, a_gen2.pool_key);
    assert_ne!(b_gen1.pool_key, b_gen2.pool_key);
    assert_eq!(b_gen2.spec.policy.tcp_idle_timeout, Duration::from_secs(30));

    assert_eq!(send(&registry, &a_gen2, "/a/2").await, 200);
    assert_eq!(send(&registry, &b_gen2, "/b/2").await, 200);
    assert_eq!(a.requests(), 2);
    assert_eq!(
        a.conns(),
        1,
        "a's pooled connection is reused across the swap"
    );
    assert_eq!(b.requests(), 2);
    assert_eq!(
        b.conns(),
        2,
        "b's new state opens its own connection (the old state's pooled one is not reused)"
    );
    // Counters continue on a's state and start over on b's.
    assert_eq!(a_gen2.stats.requests.load(Ordering::Relaxed), 2);
    assert_eq!(b_gen1.stats.requests.load(Ordering::Relaxed), 1);
    assert_eq!(b_gen2.stats.requests.load(Ordering::Relaxed), 1);
    // b's new state pools its own connection in turn.
    assert_eq!(send(&registry, &b_gen2, "/b/3").await, 200);
    assert_eq!((b.requests(), b.conns()), (3, 2));
    // The registry no longer holds b's old state: only gen1 and this test do.
    drop(gen1);
    assert_eq!(Arc::strong_count(&b_gen1), 1);
}
