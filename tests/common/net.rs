//! Real network peers for gateway tests: HTTP/1.1 upstream servers on 127.0.0.1, a raw
//! HTTP/1.1 client, and the `meshgate run` process itself.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A request as an upstream saw it.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body_len: usize,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP/1.1 server answering `200` with body `<name>` and header `x-upstream: <name>`,
/// keeping every request it saw.
pub struct Upstream {
    pub name: String,
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub hits: Arc<AtomicUsize>,
    /// TCP connections accepted (to tell reuse from reconnecting).
    pub conns: Arc<AtomicUsize>,
}

/// How an upstream misbehaves: the first `fail_first` requests get `fail_status` (or,
/// with `fail_status` 0, a closed connection); every answer waits `delay`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Behavior {
    pub fail_first: usize,
    pub fail_status: u16,
    pub delay: Duration,
}

impl Upstream {
    pub fn start(name: &str) -> Upstream {
        Upstream::start_with(name, Behavior::default())
    }

    pub fn start_with(name: &str, behavior: Behavior) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let hits = Arc::new(AtomicUsize::new(0));
        let conns = Arc::new(AtomicUsize::new(0));
        let (n, s, h, c) = (name.to_string(), seen.clone(), hits.clone(), conns.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                c.fetch_add(1, Ordering::SeqCst);
                let (n, s, h) = (n.clone(), s.clone(), h.clone());
                std::thread::spawn(move || serve_conn(conn, &n, &s, &h, behavior));
            }
        });
        Upstream {
            name: name.to_string(),
            addr,
            seen,
            hits,
            conns,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or_default()
    }

    pub fn count(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn serve_conn(
    conn: TcpStream,
    name: &str,
    seen: &Mutex<Vec<Seen>>,
    hits: &AtomicUsize,
    behavior: Behavior,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut w = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let get = |k: &str| {
            headers
                .iter()
                .find(|(hk, _)| hk == k)
                .map(|(_, v)| v.clone())
        };
        let mut body_len = 0;
        if let Some(cl) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
            let mut left = cl;
            let mut buf = vec![0u8; 64 * 1024];
            while left > 0 {
                let n = r.read(&mut buf[..left.min(65536)]).unwrap_or(0);
                if n == 0 {
                    return;
                }
                left -= n;
            }
            body_len = cl;
        } else if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            loop {
                let mut size = String::new();
                r.read_line(&mut size).unwrap_or(0);
                let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                    .unwrap_or(0);
                let mut chunk = vec![0u8; n + 2];
                if r.read_exact(&mut chunk).is_err() {
                    return;
                }
                if n == 0 {
                    break;
                }
                body_len += n;
            }
        }
        let close = get("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        seen.lock().unwrap().push(Seen {
            method,
            path,
            headers,
            body_len,
        });
        let n = hits.fetch_add(1, Ordering::SeqCst);
        if !behavior.delay.is_zero() {
            std::thread::sleep(behavior.delay);
        }
        let failing = n < behavior.fail_first;
        if failing && behavior.fail_status == 0 {
            return; // reset: close without an answer
        }
        let status = if failing { behavior.fail_status } else { 200 };
        let body = format!("{name} {body_len}");
        let resp = format!(
            "HTTP/1.1 {status} X\r\nx-upstream: {name}\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if w.write_all(resp.as_bytes()).is_err() || close {
            return;
        }
    }
}

/// A response as a client sees it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends raw bytes and reads until the server closes; `None` when it closed without a
/// response.
pub fn raw(addr: SocketAddr, request: &[u8]) -> Option<Reply> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    let _ = s.write_all(request);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse_reply(&buf)
}

/// Parses an HTTP/1.1 response (head and body) from the bytes a client read.
pub fn parse_reply(buf: &[u8]) -> Option<Reply> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let mut body = buf[end + 4..].to_vec();
    if let Some(cl) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        body.truncate(cl);
    }
    Some(Reply {
        status,
        headers,
        body,
    })
}

/// `GET path` with a Host and extra headers, `Connection: close`.
pub fn get(addr: SocketAddr, host: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    request(addr, "GET", host, path, headers, b"")
}

pub fn request(
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    raw(addr, &bytes).unwrap_or_else(|| panic!("no response to {method} {host}{path}"))
}

/// A free TCP port on 127.0.0.1, never one handed out before in this test process, and
/// below the kernel's ephemeral range (32768 and up), where `bind(0)` never lands: a
/// port handed out here and not yet bound by the gateway cannot be taken meanwhile by a
/// test upstream bound to port 0 (an admin port once went to a test's silent upstream
/// that way). Each process starts at its own offset, so test binaries run side by side
/// rarely try the same ports.
pub fn free_port() -> u16 {
    const LOW: u32 = 10_000;
    const SPAN: u32 = 22_000;
    static NEXT: std::sync::Mutex<Option<u32>> = std::sync::Mutex::new(None);
    let mut next = NEXT.lock().unwrap_or_else(|p| p.into_inner());
    let n = next.get_or_insert_with(|| std::process::id().wrapping_mul(7919) % SPAN);
    for _ in 0..SPAN {
        let port = (LOW + *n % SPAN) as u16;
        *n = n.wrapping_add(1);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {LOW} and {}", LOW + SPAN);
}

/// A running `meshgate run`; killed when dropped.
pub struct Gateway {
    pub child: Child,
    pub admin: SocketAddr,
}

impl Gateway {
    /// Starts `meshgate run --config dir` and waits until `/ready` answers 200.
    pub fn start(dir: &Path) -> Gateway {
        Gateway::try_start(dir).unwrap_or_else(|e| panic!("meshgate: {e}"))
    }

    /// As [`Gateway::start`], with an error (and the gateway's log) when it exits first
    /// or is not ready in 20 s.
    pub fn try_start(dir: &Path) -> Result<Gateway, String> {
        Gateway::try_start_with(dir, |_| {})
    }

    /// As [`Gateway::try_start`], with `setup` adjusting the command first (environment
    /// variables, e.g. `SSL_CERT_FILE` for the roots upstream TLS is verified against).
    pub fn try_start_with(dir: &Path, setup: impl FnOnce(&mut Command)) -> Result<Gateway, String> {
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = std::fs::File::create(dir.join("meshgate.log")).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshgate"));
        cmd.args(["run", "--config"])
            .arg(dir.join("conf"))
            .args(["--admin", &admin.to_string()])
            .stdout(Stdio::null())
            .stderr(log);
        setup(&mut cmd);
        let child = cmd.spawn().map_err(|e| format!("start: {e}"))?;
        let mut gw = Gateway { child, admin };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if raw(
                admin,
                b"GET /ready HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n",
            )
            .is_some_and(|r| r.status == 200)
            {
                return Ok(gw);
            }
            if let Ok(Some(status)) = gw.child.try_wait() {
                let log = std::fs::read_to_string(dir.join("meshgate.log")).unwrap_or_default();
                return Err(format!("exited ({status}) before ready:\n{log}"));
            }
            if Instant::now() > deadline {
                return Err("not ready in 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
