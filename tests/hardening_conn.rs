//! A slow, idle or greedy client costs bounded time and memory (MeshConfig
//! `requestHeadersTimeout`, `idleTimeout`, `maxConnections`, `maxRequestHeadersKb`), on
//! the real binary with real sockets: silent connections (plain and TLS), a head sent a
//! byte at a time, idle keep-alive and h2c connections, a short HTTP/1.0 request beside
//! h2c detection, connection floods under a small descriptor limit, and header floods.

mod common;
use common::config::service;
use common::net::{free_port, get, raw, Gateway, Upstream};
use common::{pki, scratch, write};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A gateway with an HTTP port and an HTTPS port, short timeouts, and extra MeshConfig.
struct Rig {
    gw: Gateway,
    http: SocketAddr,
    https: SocketAddr,
    _up: Upstream,
}

fn config(dir: &Path, mesh_extra: &str) -> (SocketAddr, SocketAddr, Upstream) {
    let up = Upstream::start("up");
    let (http, https) = (free_port(), free_port());
    let ca = pki::ca(&dir.join("pki"), "ca");
    let leaf = pki::leaf(
        &dir.join("pki"),
        &ca,
        "a",
        "/CN=a.example.com",
        &["DNS:a.example.com"],
    );
    pki::install_credential(&dir.join("creds"), "a", &leaf, None);
    write(
        dir,
        "conf/mesh.yaml",
        &format!(
            "apiVersion: meshgate.io/v1alpha1\nkind: MeshConfig\nmetadata: {{name: m}}\nspec:\n  defaultBindAddress: 127.0.0.1\n  credentialsDir: ../creds\n  requestHeadersTimeout: 1s\n  idleTimeout: 1s\n{mesh_extra}"
        ),
    );
    write(
        dir,
        "conf/all.yaml",
        &format!(
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec:\n  selector: {{istio: ingressgateway}}\n  servers:\n  - port: {{number: {http}, name: http, protocol: HTTP}}\n    hosts: [\"*\"]\n  - port: {{number: {https}, name: https, protocol: HTTPS}}\n    hosts: [\"*\"]\n    tls: {{mode: SIMPLE, credentialName: a}}\n{}---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: v}}\nspec:\n  hosts: [\"*\"]\n  gateways: [gw]\n  http:\n  - route: [{{destination: {{host: up.internal}}}}]\n",
            service("up.internal", &[(&up, "")])
        ),
    );
    (
        format!("127.0.0.1:{http}").parse().unwrap(),
        format!("127.0.0.1:{https}").parse().unwrap(),
        up,
    )
}

fn rig(name: &str, mesh_extra: &str) -> Rig {
    let dir = scratch(name);
    let (http, https, up) = config(&dir, mesh_extra);
    let gw = Gateway::start(&dir);
    Rig {
        gw,
        http,
        https,
        _up: up,
    }
}

/// How long until the server closes `s` (reading and discarding what it sends).
fn time_to_close(mut s: TcpStream, limit: Duration) -> Option<Duration> {
    let t = Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(t.elapsed()),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(t.elapsed()),
            Err(_) => return None, // still open at the limit
        }
    }
}

fn within(d: Option<Duration>, lo: f64, hi: f64, what: &str) {
    let d = d.unwrap_or_else(|| panic!("{what}: still open"));
    assert!(
        d.as_secs_f64() >= lo && d.as_secs_f64() < hi,
        "{what}: closed after {d:?}, expected within [{lo}, {hi}) s"
    );
}

#[test]
fn silent_slow_and_idle_connections_are_closed() {
    let r = rig("slow-clients", "");
    // Silent plain and TLS connections: closed at requestHeadersTimeout (1 s).
    let silent = TcpStream::connect(r.http).unwrap();
    let silent_tls = TcpStream::connect(r.https).unwrap();
    within(
        time_to_close(silent, Duration::from_secs(8)),
        0.8,
        3.0,
        "silent",
    );
    within(
        time_to_close(silent_tls, Duration::from_secs(8)),
        0.0,
        3.0,
        "silent TLS",
    );

    // A head sent a byte every 300 ms: 408 and closed about 1 s after its first byte.
    let mut slow = TcpStream::connect(r.http).unwrap();
    let t = Instant::now();
    let writer = {
        let mut w = slow.try_clone().unwrap();
        std::thread::spawn(move || {
            for b in b"GET / HTTP/1.1\r\nhost: a\r\nx-slow: 123456789" {
                if w.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };
    slow.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    let mut answer = Vec::new();
    let _ = slow.read_to_end(&mut answer);
    let took = t.elapsed();
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
    writer.join().unwrap();

    // A kept-alive connection idle after its first response: closed at idleTimeout.
    let mut ka = TcpStream::connect(r.http).unwrap();
    ka.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n").unwrap();
    ka.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 4096];
    let n = ka.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    within(
        time_to_close(ka, Duration::from_secs(8)),
        0.5,
        3.0,
        "idle keep-alive",
    );

    // An h2c client that sends the preface and nothing more: GOAWAY, closed.
    let mut h2 = TcpStream::connect(r.http).unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    within(
        time_to_close(h2, Duration::from_secs(8)),
        0.5,
        5.0,
        "idle h2c",
    );

    // A short HTTP/1.0 request (shorter than the h2c preface) is answered at once.
    let t = Instant::now();
    let reply = raw(r.http, b"GET / HTTP/1.0\r\n\r\n").expect("an answer");
    assert_eq!(reply.status, 200);
    assert!(
        t.elapsed() < Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    drop(r.gw);
}

#[test]
fn oversized_heads_are_refused_while_reading_and_memory_stays_bounded() {
    let r = rig("header-flood", "");
    let pid = r.gw.child.id();
    let rss = || -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap()
    };
    // Warm up, then measure.
    assert_eq!(get(r.http, "a", "/", &[]).status, 200);
    let before = rss();
    let floods: Vec<_> = (0..40)
        .map(|_| {
            let addr = r.http;
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let _ = s.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n");
                let line = format!("x-pad: {}\r\n", "a".repeat(1000));
                for _ in 0..1024 {
                    if s.write_all(line.as_bytes()).is_err() {
                        break;
                    }
                }
                let mut answer = Vec::new();
                let _ = s.read_to_end(&mut answer);
                answer
            })
        })
        .collect();
    let mut refused = 0;
    for f in floods {
        let answer = f.join().unwrap();
        if String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 431") {
            refused += 1;
        }
    }
    let after = rss();
    assert!(refused >= 30, "{refused} of 40 floods got 431");
    assert!(
        after < before + 20 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    assert_eq!(get(r.http, "a", "/", &[]).status, 200, "still serving");
}

#[test]
fn connections_beyond_max_connections_are_closed_and_admin_answers() {
    let r = rig("max-conns", "  maxConnections: 10\n");
    let held: Vec<TcpStream> = (0..10)
        .map(|_| TcpStream::connect(r.http).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // The 11th to 30th: closed at once.
    let extra: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(r.http).unwrap())
        .collect();
    let closed_fast = extra
        .into_iter()
        .filter(|s| {
            time_to_close(s.try_clone().unwrap(), Duration::from_millis(500))
                .is_some_and(|d| d < Duration::from_millis(500))
        })
        .count();
    assert_eq!(
        closed_fast, 20,
        "connections over the limit are closed on accept"
    );
    let ready = raw(
        r.gw.admin,
        b"GET /ready HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n",
    )
    .expect("admin answers");
    assert_eq!(ready.status, 200);
    // Once the silent ones are shed (requestHeadersTimeout), requests are served.
    std::thread::sleep(Duration::from_millis(1500));
    drop(held);
    assert_eq!(get(r.http, "a", "/", &[]).status, 200);
}

#[test]
fn a_connection_flood_under_a_small_descriptor_limit_is_shed() {
    // The gateway under `ulimit -n 256` with the default maxConnections.
    let dir = scratch("fd-limit");
    let (http, _https, _up) = config(&dir, "");
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let log = std::fs::File::create(dir.join("meshgate.log")).unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 256 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_meshgate"))
        .args(["run", "--config"])
        .arg(dir.join("conf"))
        .args(["--admin", &admin.to_string()])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let ready = || {
        raw(
            admin,
            b"GET /ready HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n",
        )
        .is_some_and(|r| r.status == 200)
    };
    let t = Instant::now();
    while !ready() {
        assert!(t.elapsed() < Duration::from_secs(20), "not ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    // 400 silent connections: more than the process could hold.
    let flood: Vec<TcpStream> = (0..400)
        .filter_map(|_| TcpStream::connect(http).ok())
        .collect();
    assert!(flood.len() >= 300, "{} connections made", flood.len());
    assert!(ready(), "the admin listener answers during the flood");
    // Once they are shed (each after the 1 s head timeout; connections still in the
    // accept queue are admitted and shed in turn), normal requests and /ready succeed.
    let t = Instant::now();
    let served = loop {
        let r = raw(
            http,
            b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
        );
        if r.as_ref().is_some_and(|r| r.status == 200) || t.elapsed() > Duration::from_secs(8) {
            break r.map(|r| r.status);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        served,
        Some(200),
        "served again {:?} after the flood",
        t.elapsed()
    );
    assert!(ready());
    drop(flood);
    let _ = child.kill();
    let _ = child.wait();
}
