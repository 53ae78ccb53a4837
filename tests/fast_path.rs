//! The HTTP/1 fast path against the full pipeline: the same requests, on two gateways
//! with the same config (one with `MESHGATE_HTTP1_FAST_PATH=off`), each with its own
//! scripted upstream, must put the same bytes on the upstream's wire and on the
//! client's, but for the values that differ by nature (request id, date, service time).
//! Run the cases the fast path takes and a sample of those it hands on.

mod common;
use common::config::*;
use common::net::*;
use common::pki;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The scripted upstream's answers, by request path (the path's first segment).
fn answer(path: &str) -> (Vec<u8>, bool) {
    let seg = path
        .trim_start_matches('/')
        .split(['/', '?'])
        .next()
        .unwrap_or("");
    let keep = |s: &str| (s.as_bytes().to_vec(), false);
    match seg {
        "chunked" => keep("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Up: c\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"),
        "close" => ("HTTP/1.1 200 OK\r\nConnection: close\r\nX-Up: close\r\n\r\nbody until close".as_bytes().to_vec(), true),
        "nocontent" => keep("HTTP/1.1 204 No Content\r\ndate: Mon, 01 Jan 2001 00:00:00 GMT\r\nX-Up: n\r\nconnection: keep-alive\r\n\r\n"),
        "busy" => keep("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy"),
        "missing" => keep("HTTP/1.1 404 Nope\r\nContent-Length: 3\r\nContent-Type: text/plain\r\n\r\nnah"),
        "trailers" => keep("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-t\r\n\r\n3\r\nabc\r\n0\r\nx-t: 1\r\n\r\n"),
        "both" => keep("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nA: 1\r\nTransfer-Encoding: chunked\r\nB: 2\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
        "gzip" => ("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nraw bytes".as_bytes().to_vec(), true),
        "dupcl" => keep("HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nX-Sp : v\r\n\r\nok"),
        "folded" => keep("HTTP/1.1 200 OK\r\nX-Fold: a\r\n  b\r\nContent-Length: 0\r\n\r\n"),
        "many" => {
            let cookies: String = (0..150).map(|i| format!("Set-Cookie: c{i}=1\r\n")).collect();
            (format!("HTTP/1.1 200 OK\r\n{cookies}Content-Length: 0\r\n\r\n").into_bytes(), false)
        }
        "lag" => {
            std::thread::sleep(Duration::from_millis(400));
            keep("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nlag")
        }
        "slow" => {
            std::thread::sleep(Duration::from_millis(600));
            keep("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow")
        }
        "hop" => keep("HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\nX-Hop: 1\r\nServer: up\r\nContent-Length: 2\r\n\r\nok"),
        "cookies" => keep("HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nX-Odd: caf\u{e9}\r\nContent-Length: 0\r\n\r\n"),
        "continue" => keep("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        "old" => ("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok".as_bytes().to_vec(), true),
        "big" => {
            let mut r = b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n".to_vec();
            r.extend((0..200_000u32).map(|i| b'a' + (i % 26) as u8));
            (r, false)
        }
        _ => keep("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nX-Mixed-Case: v\r\n\r\nhello"),
    }
}

/// An upstream that records the bytes of every request head (and body) it reads, and
/// answers by path.
struct Scripted {
    addr: SocketAddr,
    wire: Arc<Mutex<Vec<u8>>>,
}

impl Scripted {
    fn start() -> Scripted {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let wire = Arc::new(Mutex::new(Vec::new()));
        let w = wire.clone();
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                let w = w.clone();
                std::thread::spawn(move || serve(c, &w));
            }
        });
        Scripted { addr, wire }
    }

    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.wire.lock().unwrap())
    }
}

fn serve(mut c: TcpStream, wire: &Mutex<Vec<u8>>) {
    let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    loop {
        let (end, path, body) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            if let Ok(httparse::Status::Complete(n)) = req.parse(&buf) {
                let cl = req
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
                    .unwrap_or(0usize);
                break (n, req.path.unwrap_or("/").to_string(), cl);
            }
            let mut chunk = [0u8; 8192];
            match c.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
        };
        while buf.len() < end + body {
            let mut chunk = [0u8; 8192];
            match c.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
        }
        wire.lock().unwrap().extend_from_slice(&buf[..end + body]);
        buf.drain(..end + body);
        let (reply, close) = answer(&path);
        if c.write_all(&reply).is_err() || close {
            return;
        }
    }
}

/// Replaces the values of headers that differ by nature with `*`.
fn mask(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    for line in text.split_inclusive("\r\n") {
        let masked = ["x-request-id:", "date:", "x-envoy-upstream-service-time:"]
            .iter()
            .any(|p| line.len() > p.len() && line[..p.len()].eq_ignore_ascii_case(p));
        if masked {
            let name = &line[..line.find(':').unwrap()];
            out.push_str(&format!("{name}: *\r\n"));
        } else {
            out.push_str(line);
        }
    }
    out
}

/// Where the answer starting at `from` ends in `buf` (`None`: not complete yet); an
/// answer without framing ends with the connection. `head`: it answers a HEAD request.
fn answer_end(buf: &[u8], from: usize, head: bool) -> Option<usize> {
    let mut storage = [httparse::EMPTY_HEADER; 256];
    let mut resp = httparse::Response::new(&mut storage);
    let httparse::Status::Complete(n) = resp.parse(&buf[from..]).ok()? else {
        return None;
    };
    let at = from + n;
    let code = resp.code?;
    let value = |name: &str| {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
    };
    if (100..200).contains(&code) {
        return answer_end(buf, at, head);
    }
    if head || code == 204 || code == 304 {
        return Some(at);
    }
    if value("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let end = buf[at..].windows(5).position(|w| w == b"0\r\n\r\n")?;
        return Some(at + end + 5);
    }
    // A list of equal lengths ("2, 2") is one length.
    let len: usize = value("content-length")?
        .split(',')
        .next()?
        .trim()
        .parse()
        .ok()?;
    (buf.len() >= at + len).then_some(at + len)
}

/// Sends each request of `requests` on one connection, the next once the answer to the
/// last is complete, and returns what the client read (until the gateway closes, or
/// the answers it waits for are complete).
fn exchange(addr: SocketAddr, requests: &[&[u8]]) -> Vec<u8> {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    exchange_on(s, requests)
}

/// As [`exchange`], over TLS to `addr` (SNI `a.example.com`, verified against `ca`).
fn exchange_tls(addr: SocketAddr, ca: &pki::Cert, requests: &[&[u8]]) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut std::fs::read(&ca.crt).unwrap().as_slice()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("a.example.com").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    exchange_on(rustls::StreamOwned::new(conn, tcp), requests)
}

fn exchange_on(mut s: impl Read + Write, requests: &[&[u8]]) -> Vec<u8> {
    let mut got = Vec::new();
    // The end of the answers complete so far.
    let mut ends = 0;
    for r in requests {
        if s.write_all(r).is_err() {
            break;
        }
        // Pipelined requests: one answer each.
        let mut wanted = r.windows(4).filter(|w| *w == b"\r\n\r\n").count();
        let head = r.starts_with(b"HEAD ");
        loop {
            while wanted > 0 {
                match answer_end(&got, ends, head) {
                    Some(e) => {
                        ends = e;
                        wanted -= 1;
                    }
                    None => break,
                }
            }
            if wanted == 0 {
                break;
            }
            let mut chunk = [0u8; 65536];
            match s.read(&mut chunk) {
                Ok(0) => return got,
                // A TLS close without close_notify (rustls says so): the client sees a
                // truncation.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    got.extend_from_slice(b"<closed without close_notify>");
                    return got;
                }
                Err(_) => return got,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    }
    got
}

struct Side {
    _gw: Gateway,
    addr: SocketAddr,
    /// The HTTPS server (SIMPLE, certificate for a.example.com signed by `ca`).
    tls_addr: SocketAddr,
    ca: pki::Cert,
    up: Scripted,
}

fn side(name: &str, fast: bool) -> Side {
    let up = Scripted::start();
    let dead = free_port();
    let dir = common::scratch(name);
    let ca = pki::ca(&dir.join("pki"), "ca");
    let leaf = pki::leaf(
        &dir.join("pki"),
        &ca,
        "leaf",
        "/CN=a.example.com",
        &["DNS:a.example.com"],
    );
    let tls_port = free_port();
    let mut y = gateway("gw", "[\"*\"]");
    y.push_str(&format!(
        "  - port: {{number: {tls_port}, name: https, protocol: HTTPS}}\n    tls: {{mode: SIMPLE, serverCertificate: {}, privateKey: {}}}\n    hosts: [a.example.com]\n",
        leaf.crt.display(),
        leaf.key.display()
    ));
    y.push_str(&format!(
        "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: up}}\nspec:\n  hosts: [up.internal]\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {}}}}}]\n",
        up.addr.port()
    ));
    y.push_str(&format!(
        "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: dead}}\nspec:\n  hosts: [dead.internal]\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {dead}}}}}]\n"
    ));
    y.push_str(&format!(
        "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: tls}}\nspec:\n  hosts: [tls.internal]\n  ports: [{{number: 443, name: https, protocol: HTTPS}}]\n  resolution: STATIC\n  endpoints: [{{address: 127.0.0.1, ports: {{https: {dead}}}}}]\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: tls}}\nspec:\n  host: tls.internal\n  trafficPolicy: {{tls: {{mode: SIMPLE, insecureSkipVerify: true}}}}\n"
    ));
    y.push_str(&vs(
        "v",
        "[a.example.com]",
        "[gw]",
        "  - match: [{uri: {prefix: /proto}, headers: {x-forwarded-proto: {exact: http}}}]\n    route: [{destination: {host: up.internal}}]\n  - match: [{uri: {prefix: /proto}}]\n    route: [{destination: {host: dead.internal}}]\n  - match: [{uri: {prefix: /split}}]\n    route: [{destination: {host: up.internal}, weight: 100}, {destination: {host: tls.internal, port: {number: 443}}, weight: 0}]\n  - match: [{uri: {prefix: /dead}}]\n    route: [{destination: {host: dead.internal}}]\n  - match: [{uri: {prefix: /slow}}]\n    timeout: 0.2s\n    route: [{destination: {host: up.internal}}]\n  - match: [{uri: {prefix: /busy/retried}}]\n    retries: {attempts: 2, retryOn: 5xx}\n    route: [{destination: {host: up.internal}}]\n  - match: [{uri: {prefix: /headers}}]\n    headers: {request: {set: {x-route: r}}}\n    route: [{destination: {host: up.internal}}]\n  - route: [{destination: {host: up.internal}}]\n",
    ));
    let port = free_port();
    common::write(&dir, "conf/mesh.yaml", MESH);
    common::write(
        &dir,
        "conf/all.yaml",
        &y.replace("{PORT}", &port.to_string()),
    );
    let gw = Gateway::try_start_with(&dir, |c| {
        if !fast {
            c.env("MESHGATE_HTTP1_FAST_PATH", "off");
        }
    })
    .unwrap();
    Side {
        _gw: gw,
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
        tls_addr: format!("127.0.0.1:{tls_port}").parse().unwrap(),
        ca,
        up,
    }
}

const H: &str = "Host: a.example.com\r\n";

fn req(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\n{H}User-Agent: t/1\r\nAccept: */*\r\n{extra}\r\n").into_bytes()
}

#[test]
fn the_fast_path_puts_the_same_bytes_on_both_wires_as_the_full_pipeline() {
    let full = side("fast_path_full", false);
    let fast = side("fast_path_fast", true);
    // Each case: its requests on one connection, and how many of them the fast path
    // serves.
    let cases: Vec<(&str, Vec<Vec<u8>>, u64)> = vec![
        (
            "plain",
            vec![
                req("/", ""),
                req("/a/b?x=1&y=%2F", ""),
                req("/", "X-Custom: MiXeD\r\nx-custom: second\r\n"),
            ],
            3,
        ),
        (
            "head",
            vec![
                format!("HEAD / HTTP/1.1\r\n{H}\r\n").into_bytes(),
                req("/", ""),
            ],
            2,
        ),
        ("chunked", vec![req("/chunked", ""), req("/", "")], 2),
        ("trailers", vec![req("/trailers", ""), req("/", "")], 2),
        ("close-delimited", vec![req("/close", "")], 1),
        ("no content", vec![req("/nocontent", ""), req("/", "")], 2),
        ("503 not retried", vec![req("/busy", "")], 1),
        ("503 retried", vec![req("/busy/retried", "")], 1),
        ("route timeout", vec![req("/slow", ""), req("/", "")], 1),
        (
            "404 upstream, own reason",
            vec![req("/missing", ""), req("/", "")],
            2,
        ),
        ("hop-by-hop", vec![req("/hop", ""), req("/", "")], 2),
        ("cookies", vec![req("/cookies", "")], 1),
        ("100 continue", vec![req("/continue", "")], 1),
        ("http/1.0 upstream", vec![req("/old", ""), req("/", "")], 2),
        ("big", vec![req("/big", "")], 1),
        ("client close", vec![req("/", "Connection: close\r\nX-After: 1\r\n")], 1),
        ("client close last", vec![req("/", "Connection: close\r\n")], 1),
        ("client close, more", vec![req("/", "Connection: close, x-after\r\nX-After: 1\r\n")], 0),
        ("hop-by-hop request headers", vec![req("/", "Trailer: x-t\r\nProxy-Authorization: basic x\r\nConnection: close\r\nX-Last: 1\r\n")], 1),
        (
            "client http/1.0",
            vec![format!("GET / HTTP/1.0\r\n{H}\r\n").into_bytes()],
            0,
        ),
        (
            "no route",
            vec![
                b"GET / HTTP/1.1\r\nHost: nowhere.example\r\n\r\n".to_vec(),
                req("/", ""),
            ],
            1,
        ),
        ("dead upstream", vec![req("/dead", ""), req("/", "")], 1),
        ("route headers", vec![req("/headers", "")], 0),
        (
            "forwarded",
            vec![req(
                "/",
                "X-Forwarded-For: 10.0.0.1\r\nX-Request-Id: abc\r\n",
            )],
            0,
        ),
        (
            "envoy header",
            vec![req("/", "x-envoy-retry-on: 5xx\r\n")],
            0,
        ),
        (
            "post",
            vec![
                format!("POST / HTTP/1.1\r\n{H}Content-Length: 3\r\n\r\nabc").into_bytes(),
                req("/", ""),
            ],
            1,
        ),
        ("underscore", vec![req("/", "x_under: 1\r\n")], 1),
        ("dot segments", vec![req("/a/../b//c", "")], 0),
        ("routed by a gateway header", vec![req("/proto", "")], 1),
        ("a split with a TLS destination", vec![req("/split", "")], 0),
        ("HEAD, failed", vec![format!("HEAD /dead HTTP/1.1\r\n{H}\r\n").into_bytes(), req("/", "")], 1),
        ("content-length beside transfer-encoding", vec![req("/both", ""), req("/", "")], 2),
        ("transfer-encoding not chunked", vec![req("/gzip", ""), req("/", "")], 1),
        ("content-length list, space before colon", vec![req("/dupcl", ""), req("/", "")], 2),
        ("folded header", vec![req("/folded", "")], 1),
        ("150 headers", vec![req("/many", "")], 1),
    ];
    const TLS_CASES: [&str; 6] = [
        "plain",
        "chunked",
        "dead upstream",
        "post",
        "client close",
        "routed by a gateway header",
    ];
    let mut differ = Vec::new();
    for (name, reqs, fast_count) in &cases {
        let reqs: Vec<&[u8]> = reqs.iter().map(|r| r.as_slice()).collect();
        let a = (mask(&exchange(full.addr, &reqs)), mask(&full.up.take()));
        let before = served_fast(&fast);
        let b = (mask(&exchange(fast.addr, &reqs)), mask(&fast.up.take()));
        let served = served_fast(&fast) - before;
        if served != *fast_count {
            differ.push(format!(
                "== {name}: the fast path served {served} requests, not {fast_count}"
            ));
        }
        if std::env::var_os("FAST_PATH_SHOW").is_some() {
            println!("== {name}\n-- client\n{}\n-- upstream\n{}", a.0, a.1);
        }
        assert!(
            !a.0.is_empty(),
            "{name}: the full pipeline answered nothing"
        );
        if a != b {
            differ.push(format!(
                "== {name}\n-- full, client:\n{}\n-- fast, client:\n{}\n-- full, upstream:\n{}\n-- fast, upstream:\n{}",
                a.0, b.0, a.1, b.1
            ));
        }
    }
    // The same over TLS the gateway terminates (the request line's scheme: https).
    for (name, reqs, fast_count) in cases.iter().filter(|c| TLS_CASES.contains(&c.0)) {
        let reqs: Vec<&[u8]> = reqs.iter().map(|r| r.as_slice()).collect();
        // The full pipeline ends a connection after an error answer without TLS's
        // close_notify (Pingora drops it); the fast path closes it properly.
        let truncated = "<closed without close_notify>";
        let a = exchange_tls(full.tls_addr, &full.ca, &reqs);
        let a = (mask(&a).replace(truncated, ""), mask(&full.up.take()));
        let before = served_fast(&fast);
        let b = (
            mask(&exchange_tls(fast.tls_addr, &fast.ca, &reqs)),
            mask(&fast.up.take()),
        );
        assert!(!b.0.contains(truncated), "{name}: {}", b.0);
        let served = served_fast(&fast) - before;
        if served != *fast_count {
            differ.push(format!(
                "== {name} (TLS): the fast path served {served} requests, not {fast_count}"
            ));
        }
        assert!(
            a.1.is_empty() || a.1.contains("x-forwarded-proto: https"),
            "{name}: {}",
            a.1
        );
        if a != b {
            differ.push(format!(
                "== {name} (TLS)\n-- full, client:\n{}\n-- fast, client:\n{}\n-- full, upstream:\n{}\n-- fast, upstream:\n{}",
                a.0, b.0, a.1, b.1
            ));
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
    assert_eq!(served_fast(&full), 0, "MESHGATE_HTTP1_FAST_PATH=off");
    // Istio's metrics count the same requests, codes, flags and response sizes.
    assert_eq!(istio_counts(&full), istio_counts(&fast));
}

/// Istio's request counts and response size sums, as the gateway exposes them.
fn istio_counts(side: &Side) -> Vec<String> {
    let m = common::net::get(side._gw.admin, "admin", "/metrics", &[]).text();
    let mut lines: Vec<String> = m
        .lines()
        .filter(|l| {
            l.starts_with("istio_requests_total{")
                || l.starts_with("istio_response_bytes_sum{")
                || l.starts_with("istio_request_bytes_sum{")
        })
        .map(String::from)
        .collect();
    lines.sort();
    assert!(!lines.is_empty(), "{m}");
    lines
}

/// The gateway's count of requests its fast path served.
fn served_fast(side: &Side) -> u64 {
    let m = common::net::get(side._gw.admin, "admin", "/metrics", &[]).text();
    m.lines()
        .find_map(|l| l.strip_prefix("meshgate_http1_fast_path_requests_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Pipelined requests (sent together, before any answer) are answered in order. The
/// full pipeline answers only the first (Pingora's HTTP/1 session drops the bytes after
/// it), a difference the README records.
#[test]
fn pipelined_requests_are_answered_in_order() {
    let fast = side("fast_path_pipelined", true);
    let both = [req("/", ""), req("/chunked", ""), req("/missing", "")].concat();
    let got = mask(&exchange(fast.addr, &[&both]));
    let statuses: Vec<&str> = got
        .split("HTTP/1.1 ")
        .skip(1)
        .map(|r| &r[..r.find("\r\n").unwrap()])
        .collect();
    assert_eq!(statuses, ["200 OK", "200 OK", "404 Nope"], "{got}");
    assert!(got.contains("hello world") && got.ends_with("nah"), "{got}");
    assert_eq!(served_fast(&fast), 3);
}

/// A client that goes away while the answer is awaited ends the request: counted with
/// status 0 and DC on both paths, the fast path's included.
#[test]
fn a_client_gone_before_the_answer_is_counted_as_such() {
    for fast in [false, true] {
        let side = side(&format!("fast_path_gone_{fast}"), fast);
        let mut s = TcpStream::connect(side.addr).unwrap();
        s.write_all(&req("/lag", "")).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        drop(s);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let gone = loop {
            let m = common::net::get(side._gw.admin, "admin", "/metrics", &[]).text();
            let gone = m.lines().any(|l| {
                l.starts_with("istio_requests_total{")
                    && l.contains("response_code=\"0\"")
                    && l.contains("response_flags=\"DC\"")
            });
            if gone || std::time::Instant::now() > deadline {
                break gone;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(gone, "fast path {fast}: no request counted 0 DC");
        assert_eq!(served_fast(&side), u64::from(fast));
    }
}

/// Bytes a client sends while its answer is awaited (the start of a pipelined request)
/// are kept for later and do not extend the wait: the route's 0.2 s timeout still
/// answers 504 in time.
#[test]
fn client_bytes_during_the_wait_do_not_extend_the_timeout() {
    let fast = side("fast_path_dribble", true);
    let mut s = TcpStream::connect(fast.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let started = std::time::Instant::now();
    s.write_all(&req("/slow", "")).unwrap();
    let mut got = Vec::new();
    while started.elapsed() < Duration::from_secs(2) && !got.ends_with(b"upstream request timeout")
    {
        let _ = s.write_all(b"G");
        let mut chunk = [0u8; 4096];
        if let Ok(n) = s.read(&mut chunk) {
            got.extend_from_slice(&chunk[..n]);
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 504 "), "{text}");
    assert!(
        started.elapsed() < Duration::from_millis(550),
        "answered after {:?}",
        started.elapsed()
    );
    assert_eq!(served_fast(&fast), 1);
}
