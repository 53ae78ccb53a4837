//! More real peers: a TLS upstream with its own certificate (for passthrough), a TCP
//! echo server (Istio's tcp-echo), and curl as the HTTPS / HTTP/2 client.
#![allow(dead_code)]

use super::pki::Cert;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Istio's tcp-echo: each line `x` is answered with `<prefix> x`.
pub struct EchoUpstream {
    pub addr: SocketAddr,
    pub conns: Arc<AtomicUsize>,
}

impl EchoUpstream {
    pub fn start(prefix: &str) -> EchoUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = Arc::new(AtomicUsize::new(0));
        let (p, c) = (prefix.to_string(), conns.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                c.fetch_add(1, Ordering::SeqCst);
                let p = p.clone();
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
                    let mut w = conn.try_clone().unwrap();
                    let mut r = BufReader::new(conn);
                    let mut line = String::new();
                    while r.read_line(&mut line).unwrap_or(0) > 0 {
                        if w.write_all(format!("{p} {line}").as_bytes()).is_err() {
                            return;
                        }
                        line.clear();
                    }
                    // The client finished sending: say goodbye, then close our side.
                    let _ = w.write_all(format!("{p} bye\n").as_bytes());
                });
            }
        });
        EchoUpstream { addr, conns }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

/// A rustls server config serving `cert` (its chain and key), for test TLS servers.
pub fn server_config(cert: &Cert) -> Arc<rustls::ServerConfig> {
    let chain: Vec<_> = rustls_pemfile::certs(&mut std::fs::read(&cert.crt).unwrap().as_slice())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = rustls_pemfile::private_key(&mut std::fs::read(&cert.key).unwrap().as_slice())
        .unwrap()
        .unwrap();
    Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap(),
    )
}

/// An HTTPS server with its own certificate, answering every request with `200 <name>`
/// (the backend of the ingress-sni-passthrough task).
pub struct TlsUpstream {
    pub addr: SocketAddr,
}

impl TlsUpstream {
    pub fn start(name: &str, cert: &Cert) -> TlsUpstream {
        let config = server_config(cert);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let name = name.to_string();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (config, name) = (config.clone(), name.clone());
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                    let Ok(session) = rustls::ServerConnection::new(config) else {
                        return;
                    };
                    let mut tls = rustls::StreamOwned::new(session, conn);
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match tls.read(&mut byte) {
                            Ok(1) => head.push(byte[0]),
                            _ => return,
                        }
                    }
                    let body = format!("{name}\n");
                    let _ = tls.write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    );
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                });
            }
        });
        TlsUpstream { addr }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

/// What curl saw.
#[derive(Debug)]
pub struct CurlOut {
    /// curl's exit code (0: a response arrived).
    pub exit: i32,
    pub status: u16,
    pub http_version: String,
    pub body: String,
    /// curl's `-v` trace: the TLS handshake and the server certificate's subject.
    pub trace: String,
}

impl CurlOut {
    /// The server certificate's subject as curl printed it.
    pub fn server_subject(&self) -> Option<&str> {
        self.trace
            .lines()
            .find_map(|l| l.trim_start_matches(['*', ' ']).strip_prefix("subject: "))
    }
}

/// Runs `curl -v` with `args`, a 10 s limit, and the status and HTTP version appended.
pub fn curl(args: &[&str]) -> CurlOut {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-v",
            "--max-time",
            "10",
            "-w",
            "\n@@meta %{http_code} %{http_version}",
        ])
        .args(args)
        .output()
        .expect("curl is installed by tests/setup.sh");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, meta) = stdout
        .rsplit_once("\n@@meta ")
        .unwrap_or((&stdout, "000 0"));
    let mut m = meta.split_whitespace();
    CurlOut {
        exit: out.status.code().unwrap_or(-1),
        status: m.next().and_then(|s| s.parse().ok()).unwrap_or(0),
        http_version: m.next().unwrap_or("0").to_string(),
        body: body.to_string(),
        trace: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `--resolve host:port:127.0.0.1` plus the URL `https://host:port/path`.
pub fn https_args(host: &str, port: u16, path: &str) -> Vec<String> {
    vec![
        "--resolve".into(),
        format!("{host}:{port}:127.0.0.1"),
        format!("https://{host}:{port}{path}"),
    ]
}

/// One line over a fresh TCP connection: the reply line, or `None` if closed first.
pub fn echo_once(addr: SocketAddr, line: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("{line}\n").as_bytes()).ok()?;
    let mut r = BufReader::new(s);
    let mut reply = String::new();
    (r.read_line(&mut reply).ok()? > 0).then(|| reply.trim_end().to_string())
}
