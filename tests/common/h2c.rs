//! An upstream that speaks only HTTP/2 cleartext with prior knowledge (no HTTP/1.1, no
//! upgrade): what a cluster with an HTTP2/GRPC port, or `h2UpgradePolicy: UPGRADE`, is
//! reached with.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A request as the h2c upstream saw it.
#[derive(Debug, Clone, Default)]
pub struct H2Seen {
    pub method: String,
    pub path: String,
    /// The `:authority` pseudo-header.
    pub authority: Option<String>,
    /// A `host` header, if the client sent one besides `:authority`.
    pub host: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// An h2c server on 127.0.0.1 answering every request `200` with body `name`, keeping
/// every request it saw. Anything but an HTTP/2 connection preface fails the handshake
/// (and is counted in `bad_conns`).
pub struct H2cUpstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<H2Seen>>>,
    pub conns: Arc<AtomicUsize>,
    pub bad_conns: Arc<AtomicUsize>,
}

impl H2cUpstream {
    pub fn start(name: &str) -> H2cUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let conns = Arc::new(AtomicUsize::new(0));
        let bad_conns = Arc::new(AtomicUsize::new(0));
        let (n, s, c, b) = (
            name.to_string(),
            seen.clone(),
            conns.clone(),
            bad_conns.clone(),
        );
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                while let Ok((tcp, _)) = listener.accept().await {
                    c.fetch_add(1, Ordering::SeqCst);
                    let (n, s, b) = (n.clone(), s.clone(), b.clone());
                    tokio::spawn(async move {
                        let mut conn = match h2::server::handshake(tcp).await {
                            Ok(conn) => conn,
                            Err(_) => {
                                b.fetch_add(1, Ordering::SeqCst);
                                return;
                            }
                        };
                        while let Some(Ok((req, respond))) = conn.accept().await {
                            tokio::spawn(answer(req, respond, n.clone(), s.clone()));
                        }
                    });
                }
            });
        });
        H2cUpstream {
            addr,
            seen,
            conns,
            bad_conns,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn last(&self) -> Option<H2Seen> {
        self.seen.lock().unwrap().last().cloned()
    }

    /// The first request seen within `timeout`.
    pub fn wait_first(&self, timeout: Duration) -> Option<H2Seen> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.seen.lock().unwrap().first() {
                return Some(s.clone());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

async fn answer(
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<bytes::Bytes>,
    name: String,
    seen: Arc<Mutex<Vec<H2Seen>>>,
) {
    let (parts, mut body) = req.into_parts();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let Ok(chunk) = chunk else { return };
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    let header = |k: &str| {
        parts
            .headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    seen.lock().unwrap().push(H2Seen {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_string(), |p| p.to_string()),
        authority: parts.uri.authority().map(|a| a.to_string()),
        host: header("host"),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: bytes,
    });
    let resp = http::Response::builder().status(200).body(()).unwrap();
    if let Ok(mut send) = respond.send_response(resp, false) {
        let _ = send.send_data(bytes::Bytes::from(name), true);
    }
}
