//! The request path fuzzed through a running gateway: random bytes and mutated HTTP/1.1
//! requests (bad framing, huge or odd header names and values, control bytes, non-ASCII,
//! absolute-form and CONNECT targets, h2c preface fragments, TLS-looking starts) over
//! many connections, and after each batch a normal request must still be answered and
//! the gateway must still be running. Bounded for CI; for a long run:
//!
//!   MESHGATE_FUZZ_SECONDS=3600 cargo test --release --test fuzz_requests -- --nocapture
//!
//! (`MESHGATE_FUZZ_SEED` replays a run; the seed is printed.)

mod common;
use common::config::service;
use common::net::{free_port, get, Gateway, Upstream};
use common::{scratch, write};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// xorshift64*: small, seedable, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const SEEDS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\nhost: a.example.com\r\n\r\n",
    b"GET /public/../admin?x=1 HTTP/1.1\r\nhost: a.example.com\r\nend-user: jason\r\n\r\n",
    b"POST /p HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\n\r\nhello",
    b"POST /p HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"GET http://a.example.com/x HTTP/1.1\r\nhost: b\r\n\r\n",
    b"CONNECT a.example.com:443 HTTP/1.1\r\nhost: a.example.com:443\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nhost: a\r\norigin: x\r\naccess-control-request-method: GET\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"GET / HTTP/1.1\r\nhost: a\r\nconnection: x-request-id, x-forwarded-for\r\nupgrade: websocket\r\n\r\n",
    b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00",
];

const PIECES: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b"\0",
    b" ",
    b":",
    b"\xff\xfe",
    b"%2e%2e/",
    b"//",
    b"\\",
    b"content-length: 99999999999999999999\r\n",
    b"content-length: -1\r\n",
    b"transfer-encoding: chunked, identity\r\n",
    b"x-envoy-retry-on: 5xx\r\n",
    b"host: \r\n",
    b"grpc-timeout: 1S\r\n",
    b"content-type: application/grpc\r\n",
    b"ffffffffffffffff\r\n",
];

fn mutate(rng: &mut Rng) -> Vec<u8> {
    if rng.below(10) == 0 {
        return (0..rng.below(300)).map(|_| rng.next() as u8).collect();
    }
    let mut v = rng.pick(SEEDS).to_vec();
    for _ in 0..1 + rng.below(6) {
        let at = rng.below(v.len() + 1);
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            1 if !v.is_empty() => {
                let end = (at + rng.below(8)).min(v.len());
                v.drain(at.min(end)..end);
            }
            2 => {
                let p = rng.pick(PIECES);
                v.splice(at..at, p.iter().copied());
            }
            3 => {
                let len = 1 + rng.below(3000);
                let filler = vec![b'a' + (rng.below(26) as u8); len];
                v.splice(at..at, filler);
            }
            4 if !v.is_empty() => {
                let end = (at + rng.below(40)).min(v.len());
                let dup = v[at.min(end)..end].to_vec();
                v.splice(at..at, dup);
            }
            _ => v.truncate(at),
        }
    }
    v
}

/// Sends one input and reads what comes back within a short time.
fn send(addr: SocketAddr, input: &[u8]) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
    let _ = s.write_all(input);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 8192];
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(500) {
        match s.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

#[test]
fn random_and_malformed_requests_never_take_the_gateway_down() {
    let seconds: u64 = std::env::var("MESHGATE_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let seed: u64 = std::env::var("MESHGATE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("fuzz seed {seed} (MESHGATE_FUZZ_SEED={seed} replays it)");

    let up = Upstream::start("up");
    let dir = scratch("fuzz");
    let port = free_port();
    write(
        &dir,
        "conf/mesh.yaml",
        "apiVersion: meshgate.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: m}\nspec: {defaultBindAddress: 127.0.0.1, requestHeadersTimeout: 1s, streamIdleTimeout: 2s}\n",
    );
    write(
        &dir,
        "conf/all.yaml",
        &format!(
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec:\n  selector: {{istio: ingressgateway}}\n  servers:\n  - port: {{number: {port}, name: http, protocol: HTTP}}\n    hosts: [\"*\"]\n{}---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: v}}\nspec:\n  hosts: [\"*\"]\n  gateways: [gw]\n  http:\n  - match: [{{uri: {{prefix: /admin}}}}]\n    directResponse: {{status: 403}}\n  - match: [{{headers: {{end-user: {{regex: \"j.*n\"}}}}, withoutHeaders: {{x-b: {{}}}}}}]\n    fault: {{abort: {{httpStatus: 418, percentage: {{value: 50}}}}}}\n    route: [{{destination: {{host: up.internal}}}}]\n  - corsPolicy: {{allowOrigins: [{{prefix: x}}], allowMethods: [GET]}}\n    retries: {{attempts: 2, retryOn: 5xx}}\n    mirror: {{host: up.internal}}\n    route: [{{destination: {{host: up.internal}}}}]\n",
            service("up.internal", &[(&up, "")])
        ),
    );
    let mut gw = Gateway::start(&dir);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut rng = Rng(seed);
    let mut sent = 0u64;
    let mut batches = 0;
    loop {
        // A batch of inputs over 8 parallel connections.
        let inputs: Vec<Vec<u8>> = (0..48).map(|_| mutate(&mut rng)).collect();
        std::thread::scope(|s| {
            for chunk in inputs.chunks(6) {
                s.spawn(move || {
                    for input in chunk {
                        send(addr, input);
                    }
                });
            }
        });
        sent += inputs.len() as u64;
        batches += 1;
        assert!(
            gw.child.try_wait().unwrap().is_none(),
            "the gateway exited after {sent} inputs (seed {seed})"
        );
        let r = get(addr, "a.example.com", "/ok", &[]);
        assert!(
            r.status == 200 || r.status == 418,
            "a normal request after {sent} inputs got {} (seed {seed})",
            r.status
        );
        if batches >= 6 && Instant::now() >= deadline {
            break;
        }
    }
    let log = std::fs::read_to_string(dir.join("meshgate.log")).unwrap_or_default();
    assert!(
        !log.contains("panicked"),
        "a panic in the gateway's log (seed {seed}):\n{log}"
    );
    println!("fuzz: {sent} inputs in {batches} batches, gateway alive");
}
