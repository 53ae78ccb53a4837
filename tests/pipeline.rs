//! The VirtualService HTTP pipeline end to end: rewrite, redirect, direct response,
//! headers, faults, timeouts, retries, mirroring, CORS, delegation and WebSocket, with the
//! real binary and real upstreams (some of them slow or failing on purpose).

mod common;
use common::config::*;
use common::net::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const HOST: &str = "a.example.com";

/// A gateway on `{PORT}` for `*`, the services, and one VirtualService for HOST with
/// `http` rules.
fn config(services: &[String], http: &str) -> String {
    let mut y = gateway("gw", "[\"*\"]");
    for s in services {
        y.push_str(s);
    }
    y.push_str(&vs("v", &format!("[{HOST}]"), "[gw]", http));
    y
}

fn host(addr: SocketAddr) -> String {
    format!("{HOST}:{}", addr.port())
}

#[test]
fn rewrite_redirect_direct_response_and_header_operations() {
    let up = Upstream::start("ratings");
    let http = "  - match: [{uri: {prefix: /ratings}}]
    rewrite: {uri: /v1/bookRatings, authority: ratings.internal}
    route: [{destination: {host: ratings.internal}}]
  - match: [{uri: {exact: /exact}}]
    rewrite: {uri: /whole}
    route: [{destination: {host: ratings.internal}}]
  - match: [{uri: {prefix: /service}}]
    rewrite: {uriRegexRewrite: {match: \"^/service/([^/]+)(/.*)$\", rewrite: \"\\\\2/instance/\\\\1\"}}
    route: [{destination: {host: ratings.internal}}]
  - match: [{uri: {exact: /old}}]
    redirect: {uri: /new, redirectCode: 302}
  - match: [{uri: {prefix: /moved}}]
    redirect: {authority: b.example.com, scheme: https, port: 8443}
  - match: [{uri: {prefix: /default-port}}]
    redirect: {scheme: https, derivePort: FROM_PROTOCOL_DEFAULT}
  - match: [{uri: {prefix: /direct}}]
    directResponse: {status: 418, body: {string: \"short and stout\"}}
  - match: [{uri: {prefix: /bytes}}]
    directResponse: {status: 200, body: {bytes: aGVsbG8gd29ybGQ=}}
  - match: [{uri: {prefix: /headers}}]
    headers:
      request: {set: {x-route: r, host: route-wins.internal}, add: {x-added: a}, remove: [x-drop]}
      response: {set: {x-resp: r}, remove: [x-upstream]}
    route:
    - destination: {host: ratings.internal}
      headers:
        request: {set: {x-dest: d, host: dest.internal}}
        response: {add: {x-dest-resp: d}}
";
    let (_gw, addr) = start(
        "rewrite",
        &config(&[service("ratings.internal", &[(&up, "")])], http),
    );
    let h = host(addr);

    let r = get(addr, &h, "/ratings/2?x=1", &[]);
    assert_eq!(r.status, 200);
    let seen = up.last();
    assert_eq!(
        seen.path, "/v1/bookRatings/2?x=1",
        "prefix replaced, query kept"
    );
    assert_eq!(seen.header("host"), Some("ratings.internal"));
    assert_eq!(seen.header("x-envoy-attempt-count"), Some("1"));
    assert!(r
        .header("x-envoy-upstream-service-time")
        .is_some_and(|t| t.parse::<u64>().is_ok()));
    get(addr, &h, "/exact", &[]);
    assert_eq!(
        up.last().path,
        "/whole",
        "an exact match's whole path is replaced"
    );
    get(addr, &h, "/service/foo/v1/api", &[]);
    assert_eq!(up.last().path, "/v1/api/instance/foo");

    let r = get(addr, &h, "/old?keep=1", &[]);
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some(format!("http://{h}/new?keep=1").as_str())
    );
    let r = get(addr, &h, "/moved/x", &[]);
    assert_eq!(
        (r.status, r.header("location")),
        (301, Some("https://b.example.com:8443/moved/x"))
    );
    let r = get(addr, &h, "/default-port", &[]);
    assert_eq!(
        r.header("location"),
        Some("https://a.example.com/default-port")
    );

    let r = get(addr, &h, "/direct", &[]);
    assert_eq!((r.status, r.text().as_str()), (418, "short and stout"));
    let r = get(addr, &h, "/bytes", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "hello world"));

    let r = get(
        addr,
        &h,
        "/headers",
        &[("x-drop", "1"), ("x-added", "client")],
    );
    let seen = up.last();
    assert_eq!(seen.header("x-route"), Some("r"));
    assert_eq!(seen.header("x-dest"), Some("d"));
    assert_eq!(seen.header("x-drop"), None);
    assert_eq!(
        seen.header("host"),
        Some("route-wins.internal"),
        "the route level wins"
    );
    let added: Vec<&str> = seen
        .headers
        .iter()
        .filter(|(k, _)| k == "x-added")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(added, vec!["client", "a"], "add appends");
    assert_eq!(r.header("x-resp"), Some("r"));
    assert_eq!(r.header("x-dest-resp"), Some("d"));
    assert_eq!(r.header("x-upstream"), None);
    assert_eq!(
        up.count(),
        4,
        "redirects and direct responses never reach the upstream"
    );
}

#[test]
fn faults_abort_a_share_and_delay() {
    let up = Upstream::start("f");
    let http = "  - match: [{uri: {prefix: /half}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 50}}}
    route: [{destination: {host: f.internal}}]
  - match: [{uri: {prefix: /slow}}]
    fault: {delay: {fixedDelay: 300ms, percentage: {value: 100}}}
    route: [{destination: {host: f.internal}}]
  - match: [{uri: {prefix: /grpc}}]
    fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}
    route: [{destination: {host: f.internal}}]
  - match: [{uri: {prefix: /unset}}]
    fault: {abort: {httpStatus: 500}}
    route: [{destination: {host: f.internal}}]
";
    let (_gw, addr) = start(
        "faults",
        &config(&[service("f.internal", &[(&up, "")])], http),
    );
    let h = host(addr);
    let mut aborted = 0;
    for _ in 0..200 {
        let r = get(addr, &h, "/half", &[]);
        match r.status {
            503 => {
                assert_eq!(r.text(), "fault filter abort");
                aborted += 1;
            }
            200 => {}
            s => panic!("unexpected {s}"),
        }
    }
    assert!(
        (80..=120).contains(&aborted),
        "50% ± 10% of 200, got {aborted}"
    );
    assert_eq!(
        up.count(),
        200 - aborted,
        "an aborted request never reaches the upstream"
    );

    let t = Instant::now();
    assert_eq!(get(addr, &h, "/slow", &[]).status, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );

    let before = up.count();
    let r = get(addr, &h, "/grpc", &[("content-type", "application/grpc")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("grpc-status"), Some("14"));
    assert_eq!(r.header("content-type"), Some("application/grpc"));
    // A request that is not gRPC gets Envoy's fault filter answer: a plain 200.
    let r = get(addr, &h, "/grpc", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "fault filter abort"));
    assert_eq!(r.header("grpc-status"), None);
    assert_eq!(up.count(), before);
    // Envoy applies an abort without a percentage to no request.
    assert_eq!(get(addr, &h, "/unset", &[]).status, 200);
}

#[test]
fn route_timeout_answers_504_before_a_slow_upstream() {
    let slow = Upstream::start_with(
        "slow",
        Behavior {
            delay: Duration::from_secs(3),
            ..Behavior::default()
        },
    );
    let http = "  - match: [{uri: {prefix: /retried}}]
    timeout: 1s
    retries: {attempts: 5, perTryTimeout: 400ms, retryOn: gateway-error}
    route: [{destination: {host: slow.internal}}]
  - timeout: 500ms
    route: [{destination: {host: slow.internal}}]
";
    let (_gw, addr) = start(
        "timeout",
        &config(&[service("slow.internal", &[(&slow, "")])], http),
    );
    let t = Instant::now();
    let r = get(addr, &host(addr), "/", &[]);
    let took = t.elapsed();
    assert_eq!(
        (r.status, r.text().as_str()),
        (504, "upstream request timeout")
    );
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    // The route timeout covers every try: 400 ms tries are cut off at 1 s in all.
    let before = slow.count();
    let t = Instant::now();
    let r = get(addr, &host(addr), "/retried", &[]);
    let took = t.elapsed();
    assert_eq!(r.status, 504);
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_millis(1900),
        "{took:?}"
    );
    let tries = slow.count() - before;
    assert!(
        (2..=4).contains(&tries),
        "per-try timeouts retried within the route timeout: {tries}"
    );
}

#[test]
fn retries_follow_the_policy() {
    let fail = |n, status| Behavior {
        fail_first: n,
        fail_status: status,
        ..Behavior::default()
    };
    let flaky = Upstream::start_with("flaky", fail(2, 503));
    let once = Upstream::start_with("once", fail(1, 503));
    let never = Upstream::start_with("never", fail(1, 503));
    let reset = Upstream::start_with("reset", fail(1, 0));
    let slow = Upstream::start_with(
        "slow",
        Behavior {
            delay: Duration::from_secs(3),
            ..Behavior::default()
        },
    );
    let fast = Upstream::start("fast");
    let http = "  - match: [{uri: {prefix: /flaky}}]
    retries: {attempts: 3, retryOn: 5xx}
    route: [{destination: {host: flaky.internal}}]
  - match: [{uri: {prefix: /default}}]
    route: [{destination: {host: once.internal}}]
  - match: [{uri: {prefix: /off}}]
    retries: {attempts: 0}
    route: [{destination: {host: never.internal}}]
  - match: [{uri: {prefix: /reset}}]
    retries: {attempts: 2, retryOn: reset}
    route: [{destination: {host: reset.internal}}]
  - match: [{uri: {prefix: /pertry}}]
    retries: {attempts: 2, perTryTimeout: 300ms, retryOn: gateway-error}
    route: [{destination: {host: mixed.internal}}]
";
    let services = [
        service("flaky.internal", &[(&flaky, "")]),
        service("once.internal", &[(&once, "")]),
        service("never.internal", &[(&never, "")]),
        service("reset.internal", &[(&reset, "")]),
        service("mixed.internal", &[(&slow, ""), (&fast, "")]),
    ];
    let (_gw, addr) = start("retries", &config(&services, http));
    let h = host(addr);

    let r = post(addr, &h, "/flaky", b"payload");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "flaky 7"),
        "the body is replayed"
    );
    assert_eq!(flaky.count(), 3);
    assert_eq!(flaky.last().header("x-envoy-attempt-count"), Some("3"));

    // Istio's default policy does not retry a plain 503: the client sees it.
    assert_eq!(get(addr, &h, "/default", &[]).status, 503);
    assert_eq!(once.count(), 1);
    assert_eq!(get(addr, &h, "/default", &[]).status, 200);

    assert_eq!(
        get(addr, &h, "/off", &[]).status,
        503,
        "attempts: 0 disables retries"
    );
    assert_eq!(never.count(), 1);

    assert_eq!(
        get(addr, &h, "/reset", &[]).status,
        200,
        "a reset is retried under `reset`"
    );
    assert_eq!(reset.count(), 2);

    // A try that outlives perTryTimeout is abandoned for another endpoint.
    for _ in 0..4 {
        let t = Instant::now();
        let r = get(addr, &h, "/pertry", &[]);
        assert_eq!((r.status, r.text().as_str()), (200, "fast 0"));
        assert!(
            t.elapsed() < Duration::from_millis(1500),
            "{:?}",
            t.elapsed()
        );
    }
}

fn post(addr: SocketAddr, host: &str, path: &str, body: &[u8]) -> Reply {
    request(addr, "POST", host, path, &[], body)
}

#[test]
fn mirrors_get_a_copy_and_never_slow_the_client() {
    let v1 = Upstream::start("v1");
    let v2 = Upstream::start_with(
        "v2",
        Behavior {
            delay: Duration::from_secs(2),
            ..Behavior::default()
        },
    );
    let http = "  - match: [{uri: {prefix: /dead}}]
    route: [{destination: {host: v1.internal}}]
    mirrors: [{destination: {host: dead.internal}}]
  - route: [{destination: {host: v1.internal}, weight: 100}]
    mirror: {host: v2.internal}
    mirrorPercentage: {value: 100.0}
";
    // A mirror whose endpoint refuses connections.
    let dead = format!("---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: dead}}\nspec:\n  hosts: [dead.internal]\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {}}}}}]\n", free_port());
    let services = [
        service("v1.internal", &[(&v1, "")]),
        service("v2.internal", &[(&v2, "")]),
        dead,
    ];
    let (_gw, addr) = start("mirror", &config(&services, http));
    let h = host(addr);
    let t = Instant::now();
    let r = post(addr, &h, "/headers", b"mirrored body");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "v1 13"),
        "the client only sees the primary"
    );
    assert!(
        t.elapsed() < Duration::from_millis(1000),
        "{:?}",
        t.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while v2.count() == 0 {
        assert!(Instant::now() < deadline, "the mirror never got its copy");
        std::thread::sleep(Duration::from_millis(20));
    }
    let seen = v2.last();
    assert_eq!(seen.path, "/headers");
    assert_eq!(
        seen.header("host"),
        Some(format!("{HOST}-shadow:{}", addr.port()).as_str())
    );
    assert_eq!(seen.body_len, 13, "the body is mirrored too");
    assert_eq!(v1.last().header("host"), Some(h.as_str()));
    // A failing mirror does not fail the client's request.
    let r = post(addr, &h, "/dead", b"x");
    assert_eq!((r.status, r.text().as_str()), (200, "v1 1"));
}

#[test]
fn cors_preflights_and_simple_requests() {
    // Istio's routing integration test "cors".
    let up = Upstream::start("b");
    let http = "  - match: [{uri: {prefix: /ignore}}]
    corsPolicy: {allowOrigins: [{prefix: \"https://\"}], unmatchedPreflights: IGNORE, exposeHeaders: [X-Exposed], allowCredentials: true}
    route: [{destination: {host: b.internal}}]
  - corsPolicy:
      allowOrigins: [{exact: cors.com}]
      allowMethods: [POST, GET]
      allowCredentials: false
      allowHeaders: [X-Foo-Bar, X-Foo-Baz]
      maxAge: 24h
    route: [{destination: {host: b.internal}}]
";
    let (_gw, addr) = start(
        "cors",
        &config(&[service("b.internal", &[(&up, "")])], http),
    );
    let h = host(addr);
    let preflight = |origin: &str| {
        request(
            addr,
            "OPTIONS",
            &h,
            "/",
            &[
                ("origin", origin),
                ("access-control-request-method", "DELETE"),
            ],
            b"",
        )
    };
    let r = preflight("cors.com");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some("cors.com"));
    assert_eq!(r.header("access-control-allow-methods"), Some("POST,GET"));
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("X-Foo-Bar,X-Foo-Baz")
    );
    assert_eq!(r.header("access-control-max-age"), Some("86400"));
    assert_eq!(
        up.count(),
        0,
        "an allowed preflight is answered at the gateway"
    );
    let r = preflight("evil.com");
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(
        up.count(),
        1,
        "an unmatched preflight is forwarded (Envoy's default)"
    );

    let r = get(addr, &h, "/", &[("origin", "cors.com")]);
    assert_eq!(
        (r.status, r.header("access-control-allow-origin")),
        (200, Some("cors.com"))
    );
    let r = get(addr, &h, "/", &[("origin", "other.com")]);
    assert_eq!(
        (r.status, r.header("access-control-allow-origin")),
        (200, None)
    );
    let r = get(addr, &h, "/", &[]);
    assert_eq!(r.header("access-control-allow-origin"), None);

    // unmatchedPreflights: IGNORE answers an unknown origin's preflight without CORS headers.
    let before = up.count();
    let r = request(
        addr,
        "OPTIONS",
        &h,
        "/ignore",
        &[
            ("origin", "evil.com"),
            ("access-control-request-method", "GET"),
        ],
        b"",
    );
    assert_eq!(
        (r.status, r.header("access-control-allow-origin")),
        (200, None)
    );
    assert_eq!(up.count(), before, "not forwarded");
    // A simple request from an allowed origin (prefix match): the origin echoed, with the
    // exposed headers and credentials.
    let r = get(
        addr,
        &h,
        "/ignore",
        &[("origin", "https://app.example.com")],
    );
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(r.header("access-control-expose-headers"), Some("X-Exposed"));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
}

#[test]
fn delegated_routes_merge_under_the_root_match() {
    let (v1, v2) = (Upstream::start("v1"), Upstream::start("v2"));
    let yaml = format!(
        "{}{}{}{}---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: productpage, namespace: default}}\nspec:\n  http:\n  - match: [{{uri: {{prefix: /productpage/v2}}}}]\n    route: [{{destination: {{host: v2.internal}}}}]\n  - route: [{{destination: {{host: v1.internal}}}}]\n",
        gateway("gw", "[\"*\"]"),
        service("v1.internal", &[(&v1, "")]),
        service("v2.internal", &[(&v2, "")]),
        vs(
            "root",
            &format!("[{HOST}]"),
            "[gw]",
            "  - match: [{uri: {prefix: /productpage}}]\n    delegate: {name: productpage, namespace: default}\n"
        ),
    );
    let (_gw, addr) = start("delegate", &yaml);
    let h = host(addr);
    assert_eq!(get(addr, &h, "/productpage/v2/x", &[]).text(), "v2 0");
    assert_eq!(get(addr, &h, "/productpage", &[]).text(), "v1 0");
    assert_eq!(
        get(addr, &h, "/other", &[]).status,
        404,
        "outside the root's match"
    );
}

/// An upstream that answers an Upgrade with 101 and then echoes every byte.
fn upgrade_echo() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if c.read(&mut b).unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(b[0]);
                }
                let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
                if !text.contains("upgrade: websocket") {
                    return;
                }
                let _ = c.write_all(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
                let mut buf = [0u8; 1024];
                while let Ok(n) = c.read(&mut buf) {
                    if n == 0 || c.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn websocket_upgrade_round_trip() {
    let ws = upgrade_echo();
    let svc = format!("---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: ws}}\nspec:\n  hosts: [ws.internal]\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {}}}}}]\n", ws.port());
    let (_gw, addr) = start(
        "ws",
        &config(&[svc], "  - route: [{destination: {host: ws.internal}}]\n"),
    );
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(c, "GET /chat HTTP/1.1\r\nhost: {}\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n", host(addr)).unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(c.read(&mut b).unwrap(), 1, "closed during the upgrade");
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // A masked text frame "hello", echoed back byte for byte.
    let frame = [
        0x81,
        0x85,
        1,
        2,
        3,
        4,
        b'h' ^ 1,
        b'e' ^ 2,
        b'l' ^ 3,
        b'l' ^ 4,
        b'o' ^ 1,
    ];
    c.write_all(&frame).unwrap();
    let mut back = [0u8; 11];
    c.read_exact(&mut back).unwrap();
    assert_eq!(back, frame);
}
