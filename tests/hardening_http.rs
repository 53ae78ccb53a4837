//! The HTTP pipeline hardened as Envoy runs at Istio's edge: path normalization before
//! matching, `x-envoy-*` and forwarding headers sanitized for external clients (and per
//! `numTrustedProxies`), gateway headers a client cannot strip with `Connection:`,
//! `forwardClientCertDetails`, header matching on non-ASCII values, HTTP/2 rewrites that
//! keep `:authority`, `headersWithUnderscoresAction`, and `streamIdleTimeout` bounding
//! silent upstreams and stalled clients. Each test drives the real binary with raw
//! requests or curl.

mod common;
use common::config::{gateway, service, start, vs, MESH};
use common::net::{free_port, get, raw, request, Gateway, Reply, Upstream};
use common::peers::{curl, https_args};
use common::pki;
use common::{scratch, write};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Starts the gateway with a MeshConfig of `defaultBindAddress: 127.0.0.1` plus `extra`
/// (flow-style fields, e.g. `streamIdleTimeout: 1s`).
fn start_mesh(name: &str, extra: &str, yaml: &str) -> (Gateway, SocketAddr) {
    if extra.is_empty() {
        return start(name, yaml);
    }
    let dir = scratch(name);
    let port = free_port();
    write(
        &dir,
        "conf/mesh.yaml",
        &MESH.replace(
            "defaultBindAddress: 127.0.0.1",
            &format!("defaultBindAddress: 127.0.0.1, {extra}"),
        ),
    );
    write(
        &dir,
        "conf/all.yaml",
        &yaml.replace("{PORT}", &port.to_string()),
    );
    let gw = Gateway::start(&dir);
    (gw, format!("127.0.0.1:{port}").parse().unwrap())
}

/// A gateway for `*` routing everything to `up` (rules in `http`, default: one route).
fn simple(name: &str, extra: &str, up: &Upstream, http: Option<&str>) -> (Gateway, SocketAddr) {
    let route = "  - route: [{destination: {host: app.internal}}]\n".to_string();
    let yaml = format!(
        "{}{}{}",
        gateway("gw", "[\"*\"]"),
        service("app.internal", &[(up, "")]),
        vs("app", "[\"*\"]", "[gw]", http.unwrap_or(&route)),
    );
    start_mesh(name, extra, &yaml)
}

/// A raw HTTP/1.1 request from its head lines (`connection: close` added).
fn raw_get(addr: SocketAddr, target: &[u8], headers: &[&[u8]]) -> Reply {
    let mut req = b"GET ".to_vec();
    req.extend_from_slice(target);
    req.extend_from_slice(b" HTTP/1.1\r\nhost: app.example.com\r\nconnection: close\r\n");
    for h in headers {
        req.extend_from_slice(h);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    raw(addr, &req).expect("a response")
}

/// Routes on prefix `/admin` to the `admin` upstream and prefix `/public` to `public`.
fn admin_and_public(name: &str, extra: &str) -> (Gateway, SocketAddr, Upstream, Upstream) {
    let (admin, public) = (Upstream::start("admin"), Upstream::start("public"));
    let yaml = format!(
        "{}{}{}{}",
        gateway("gw", "[\"*\"]"),
        service("admin.internal", &[(&admin, "")]),
        service("public.internal", &[(&public, "")]),
        vs(
            "app",
            "[\"*\"]",
            "[gw]",
            "  - match: [{uri: {prefix: /admin}}]\n    route: [{destination: {host: admin.internal}}]\n  - match: [{uri: {prefix: /public}}]\n    route: [{destination: {host: public.internal}}]\n",
        ),
    );
    let (gw, addr) = start_mesh(name, extra, &yaml);
    (gw, addr, admin, public)
}

/// (upstream that answered, path it saw) for a raw request target.
fn routed(addr: SocketAddr, target: &str, admin: &Upstream, public: &Upstream) -> (String, String) {
    let (a, p) = (admin.count(), public.count());
    let r = raw_get(addr, target.as_bytes(), &[]);
    assert_eq!(r.status, 200, "{target}: {}", r.text());
    if admin.count() > a {
        ("admin".into(), admin.last().path)
    } else {
        assert!(public.count() > p, "{target}: no upstream saw it");
        ("public".into(), public.last().path)
    }
}

#[test]
fn paths_are_normalized_before_matching_and_sent_normalized() {
    // BASE (the default): Envoy's normalize_path, RFC 3986 dot segments, `\` as `/`, %2e as
    // a dot and escaped unreserved characters decoded; %2F stays.
    let (_gw, addr, admin, public) = admin_and_public("norm-base", "");
    let at = |t: &str| routed(addr, t, &admin, &public);
    assert_eq!(at("/public/../admin"), ("admin".into(), "/admin".into()));
    assert_eq!(
        at("/public/%2e%2e/admin"),
        ("admin".into(), "/admin".into())
    );
    assert_eq!(
        at("/public/%2E%2e/admin/./x?q=/../y"),
        ("admin".into(), "/admin/x?q=/../y".into())
    );
    assert_eq!(at("/public\\..\\admin"), ("admin".into(), "/admin".into()));
    assert_eq!(
        at("/%61dmin/%7Euser"),
        ("admin".into(), "/admin/~user".into())
    );
    assert_eq!(
        at("/public/..%2Fadmin"),
        ("public".into(), "/public/..%2Fadmin".into())
    );
    assert_eq!(at("/admin//x"), ("admin".into(), "/admin//x".into()));
    // A NUL in the path fails normalization: 400, as Envoy.
    assert_eq!(raw_get(addr, b"/admin/%00", &[]).status, 400);

    let (_gw, addr, admin, public) = admin_and_public(
        "norm-merge",
        "pathNormalization: {normalization: MERGE_SLASHES}",
    );
    let at = |t: &str| routed(addr, t, &admin, &public);
    assert_eq!(at("//admin//x/"), ("admin".into(), "/admin/x/".into()));
    assert_eq!(at("/public/..//admin"), ("admin".into(), "/admin".into()));
    assert_eq!(
        at("/public/..%2fadmin"),
        ("public".into(), "/public/..%2fadmin".into())
    );

    let (_gw, addr, admin, public) = admin_and_public(
        "norm-decode",
        "pathNormalization: {normalization: DECODE_AND_MERGE_SLASHES}",
    );
    let at = |t: &str| routed(addr, t, &admin, &public);
    assert_eq!(at("/public/..%2Fadmin"), ("admin".into(), "/admin".into()));
    assert_eq!(
        at("/public%5c..%5Cadmin"),
        ("admin".into(), "/admin".into())
    );
    assert_eq!(
        at("/public%2f%2Fadmin"),
        ("public".into(), "/public/admin".into())
    );

    let (_gw, addr, admin, public) =
        admin_and_public("norm-none", "pathNormalization: {normalization: NONE}");
    let at = |t: &str| routed(addr, t, &admin, &public);
    assert_eq!(
        at("/public/../admin"),
        ("public".into(), "/public/../admin".into())
    );
}

#[test]
fn external_requests_lose_envoy_internal_headers() {
    let up = Upstream::start("app");
    let (_gw, addr) = simple("xenvoy", "", &up, None);
    let forged = [
        "x-envoy-retry-on",
        "x-envoy-retry-grpc-on",
        "x-envoy-max-retries",
        "x-envoy-upstream-rq-timeout-ms",
        "x-envoy-upstream-rq-per-try-timeout-ms",
        "x-envoy-expected-rq-timeout-ms",
        "x-envoy-internal",
        "x-envoy-force-trace",
        "x-envoy-decorator-operation",
        "x-envoy-downstream-service-cluster",
        "x-envoy-downstream-service-node",
        "x-envoy-ip-tags",
        "x-envoy-upstream-alt-stat-name",
        "x-envoy-hedge-on-per-try-timeout",
        "x-envoy-retriable-status-codes",
        "x-envoy-retriable-header-names",
        "x-envoy-original-url",
        "x-envoy-upstream-stream-duration-ms",
    ];
    let mut headers: Vec<(&str, &str)> = forged.iter().map(|h| (*h, "1")).collect();
    headers.extend([
        ("x-envoy-external-address", "6.6.6.6"),
        ("x-envoy-attempt-count", "7"),
        ("x-forwarded-for", "9.9.9.9"),
        ("x-forwarded-proto", "https"),
    ]);
    let r = get(addr, "app.example.com", "/", &headers);
    assert_eq!(r.status, 200);
    let seen = up.last();
    for h in forged {
        assert_eq!(seen.header(h), None, "{h} must not reach the upstream");
    }
    assert_eq!(seen.header("x-envoy-external-address"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-envoy-attempt-count"), Some("1"));
    assert_eq!(seen.header("x-forwarded-for"), Some("9.9.9.9, 127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));

    // numTrustedProxies: 1: the client is the last x-forwarded-for entry the trusted
    // proxy in front appended; its x-forwarded-proto is kept.
    let up = Upstream::start("app");
    let (_gw, addr) = simple(
        "xff-trust1",
        "gatewayTopology: {numTrustedProxies: 1}",
        &up,
        None,
    );
    get(
        addr,
        "app.example.com",
        "/",
        &[
            ("x-forwarded-for", "1.1.1.1, 2.2.2.2"),
            ("x-forwarded-proto", "https"),
        ],
    );
    let seen = up.last();
    assert_eq!(seen.header("x-envoy-external-address"), Some("2.2.2.2"));
    assert_eq!(
        seen.header("x-forwarded-for"),
        Some("1.1.1.1, 2.2.2.2, 127.0.0.1")
    );
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    // Without x-forwarded-for, the peer is the client.
    get(addr, "app.example.com", "/", &[]);
    assert_eq!(
        up.last().header("x-envoy-external-address"),
        Some("127.0.0.1")
    );

    let up = Upstream::start("app");
    let (_gw, addr) = simple(
        "xff-trust2",
        "gatewayTopology: {numTrustedProxies: 2}",
        &up,
        None,
    );
    get(
        addr,
        "app.example.com",
        "/",
        &[("x-forwarded-for", "1.1.1.1, 2.2.2.2")],
    );
    assert_eq!(
        up.last().header("x-envoy-external-address"),
        Some("1.1.1.1")
    );
    // Fewer entries than trusted hops: the peer.
    get(
        addr,
        "app.example.com",
        "/",
        &[("x-forwarded-for", "3.3.3.3")],
    );
    assert_eq!(
        up.last().header("x-envoy-external-address"),
        Some("127.0.0.1")
    );
}

#[test]
fn connection_header_cannot_remove_gateway_headers() {
    let up = Upstream::start("app");
    let (_gw, addr) = simple(
        "conn-nominated",
        "",
        &up,
        Some("  - headers: {request: {set: {x-set-by-route: yes}}}\n    route: [{destination: {host: app.internal}}]\n"),
    );
    let r = get(
        addr,
        "app.example.com",
        "/",
        &[
            ("connection", "x-request-id, x-forwarded-for"),
            (
                "connection",
                "x-forwarded-proto, x-envoy-external-address, x-set-by-route, x-client-hop",
            ),
            ("x-client-hop", "1"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = up.last();
    assert!(seen.header("x-request-id").is_some_and(|v| v.len() == 36));
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("x-envoy-external-address"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-set-by-route"), Some("yes"));
    // The client's own hop-by-hop header still goes.
    assert_eq!(seen.header("x-client-hop"), None);
}

#[test]
fn forward_client_cert_details_over_plain_http() {
    // Envoy's mutateXfccRequestHeader: without mutual TLS only ALWAYS_FORWARD_ONLY keeps a
    // client's x-forwarded-client-cert; the other modes remove it and set none.
    for (mode, kept) in [
        ("SANITIZE", false),
        ("FORWARD_ONLY", false),
        ("APPEND_FORWARD", false),
        ("SANITIZE_SET", false),
        ("ALWAYS_FORWARD_ONLY", true),
    ] {
        let up = Upstream::start("app");
        let (_gw, addr) = simple(
            &format!("xfcc-{mode}"),
            &format!("gatewayTopology: {{forwardClientCertDetails: {mode}}}"),
            &up,
            None,
        );
        let r = get(
            addr,
            "app.example.com",
            "/",
            &[("x-forwarded-client-cert", "By=spiffe://forged")],
        );
        assert_eq!(r.status, 200);
        assert_eq!(
            up.last().header("x-forwarded-client-cert"),
            kept.then_some("By=spiffe://forged"),
            "{mode}"
        );
    }
}

#[test]
fn forward_client_cert_details_over_mutual_tls() {
    let dir = scratch("xfcc-mtls");
    let pki_dir = dir.join("pki");
    let ca = pki::ca(&pki_dir, "ca");
    let server = pki::leaf(&pki_dir, &ca, "server", "/CN=gw", &["DNS:app.example.com"]);
    let client = pki::leaf(
        &pki_dir,
        &ca,
        "client",
        "/CN=client",
        &["URI:spiffe://example.com/client"],
    );
    for (mode, want) in [
        ("SANITIZE", None),
        ("FORWARD_ONLY", Some("forged")),
        ("APPEND_FORWARD", Some("forged,Hash=")),
        ("SANITIZE_SET", Some("Hash=")),
        ("ALWAYS_FORWARD_ONLY", Some("forged")),
    ] {
        let up = Upstream::start("app");
        let port = free_port();
        let d = scratch(&format!("xfcc-mtls-{mode}"));
        write(
            &d,
            "conf/mesh.yaml",
            &MESH.replace(
                "defaultBindAddress: 127.0.0.1",
                &format!("defaultBindAddress: 127.0.0.1, gatewayTopology: {{forwardClientCertDetails: {mode}}}"),
            ),
        );
        let tls = format!(
            "{{mode: MUTUAL, serverCertificate: {}, privateKey: {}, caCertificates: {}}}",
            server.crt.display(),
            server.key.display(),
            ca.crt.display()
        );
        write(
            &d,
            "conf/all.yaml",
            &format!(
                "---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec:\n  selector: {{istio: ingressgateway}}\n  servers:\n  - port: {{number: {port}, name: https, protocol: HTTPS}}\n    tls: {tls}\n    hosts: [app.example.com]\n{}{}",
                service("app.internal", &[(&up, "")]),
                vs("app", "[app.example.com]", "[gw]", "  - route: [{destination: {host: app.internal}}]\n"),
            ),
        );
        let _gw = Gateway::start(&d);
        let mut args: Vec<String> = vec![
            "--cacert".into(),
            ca.crt.display().to_string(),
            "--cert".into(),
            client.crt.display().to_string(),
            "--key".into(),
            client.key.display().to_string(),
            "-H".into(),
            "x-forwarded-client-cert: forged".into(),
        ];
        args.extend(https_args("app.example.com", port, "/"));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = curl(&args);
        assert_eq!(r.status, 200, "{mode}: {}", r.trace);
        let seen = up
            .last()
            .header("x-forwarded-client-cert")
            .map(String::from);
        match want {
            None => assert_eq!(seen, None, "{mode}"),
            Some(prefix) => assert!(
                seen.as_deref().is_some_and(|s| s.starts_with(prefix)
                    && (prefix.ends_with('=') == s.contains("URI=spiffe://example.com/client"))),
                "{mode}: {seen:?}"
            ),
        }
    }
}

#[test]
fn non_ascii_header_values_count_as_present() {
    let up = Upstream::start("app");
    let http = "  - match: [{headers: {x-external: {}}}]\n    directResponse: {status: 403, body: {string: external}}\n  - match: [{headers: {x-name: {exact: \"é\"}}}]\n    directResponse: {status: 200, body: {string: accent}}\n  - match: [{headers: {x-name: {}}}]\n    directResponse: {status: 200, body: {string: other}}\n  - match: [{withoutHeaders: {x-debug: {regex: \"*\"}}}]\n    route: [{destination: {host: app.internal}}]\n  - directResponse: {status: 403, body: {string: debug}}\n";
    let (_gw, addr) = simple("non-ascii", "", &up, Some(http));
    assert_eq!(raw_get(addr, b"/", &[]).status, 200);
    assert_eq!(up.count(), 1);
    let r = raw_get(addr, b"/", &[b"x-external: \xff"]);
    assert_eq!((r.status, r.text().as_str()), (403, "external"));
    let r = raw_get(addr, b"/", &[b"x-external: caf\xc3\xa9"]);
    assert_eq!((r.status, r.text().as_str()), (403, "external"));
    let r = raw_get(addr, b"/", &[b"x-debug: \xfe\xff"]);
    assert_eq!((r.status, r.text().as_str()), (403, "debug"));
    // A UTF-8 value matches its exact condition byte for byte; other bytes do not.
    let r = raw_get(addr, b"/", &[b"x-name: \xc3\xa9"]);
    assert_eq!((r.status, r.text().as_str()), (200, "accent"));
    let r = raw_get(addr, b"/", &[b"x-name: \xe9"]);
    assert_eq!((r.status, r.text().as_str()), (200, "other"));
    assert_eq!(up.count(), 1);
}

#[test]
fn http2_rewrites_keep_the_authority() {
    let up = Upstream::start("app");
    let http = "  - match: [{uri: {prefix: /old}}]\n    rewrite: {uri: /new}\n    route: [{destination: {host: app.internal}}]\n  - match: [{uri: {prefix: /host}}]\n    rewrite: {authority: other.example.com}\n    route: [{destination: {host: app.internal}}]\n";
    let (_gw, addr) = simple("h2-rewrite", "", &up, Some(http));
    let port = addr.port();
    let h2 = |path: &str| {
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "--http2-prior-knowledge",
                "-o",
                "/dev/null",
                "-w",
                "%{http_version} %{http_code}",
            ])
            .arg(format!("http://app.example.com:{port}{path}"))
            .args(["--resolve", &format!("app.example.com:{port}:127.0.0.1")])
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(h2("/old/x?q=1"), "2 200");
    let seen = up.last();
    assert_eq!(seen.path, "/new/x?q=1");
    assert_eq!(
        seen.header("host").map(String::from),
        Some(format!("app.example.com:{port}"))
    );
    assert_eq!(h2("/host"), "2 200");
    assert_eq!(up.last().header("host"), Some("other.example.com"));
    // A path normalized over HTTP/2 keeps the authority too.
    assert_eq!(h2("/old/../old/y"), "2 200");
    let seen = up.last();
    assert_eq!(seen.path, "/new/y");
    assert_eq!(
        seen.header("host").map(String::from),
        Some(format!("app.example.com:{port}"))
    );
}

#[test]
fn headers_with_underscores_action() {
    for (action, status, seen_value) in [
        ("", 200, Some("1")),
        ("headersWithUnderscoresAction: ALLOW", 200, Some("1")),
        ("headersWithUnderscoresAction: REJECT_REQUEST", 400, None),
        ("headersWithUnderscoresAction: DROP_HEADER", 200, None),
    ] {
        let up = Upstream::start("app");
        let http = "  - match: [{headers: {x_route: {}}}]\n    directResponse: {status: 418}\n  - route: [{destination: {host: app.internal}}]\n";
        let (_gw, addr) = simple("underscores", action, &up, Some(http));
        let r = get(addr, "app.example.com", "/", &[("x_custom", "1")]);
        assert_eq!(r.status, status, "{action}");
        assert_eq!(up.count(), usize::from(status == 200), "{action}");
        if status == 200 {
            assert_eq!(up.last().header("x_custom"), seen_value, "{action}");
        }
        // A dropped header is gone before matching, too.
        let r = get(addr, "app.example.com", "/", &[("x_route", "1")]);
        let want = match action {
            a if a.ends_with("DROP_HEADER") => 200,
            a if a.ends_with("REJECT_REQUEST") => 400,
            _ => 418,
        };
        assert_eq!(r.status, want, "{action}");
    }
}

/// A TCP server that accepts connections and never answers (holding them open).
fn silent_upstream() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in l.incoming().flatten() {
            held.push(c);
        }
    });
    port
}

#[test]
fn stream_idle_timeout_bounds_a_silent_upstream() {
    let port = silent_upstream();
    let se = format!("---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: silent}}\nspec:\n  hosts: [silent.internal]\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {port}}}}}]\n");
    let yaml = format!(
        "{}{se}{}",
        gateway("gw", "[\"*\"]"),
        vs(
            "app",
            "[\"*\"]",
            "[gw]",
            "  - match: [{uri: {prefix: /short}}]\n    timeout: 300ms\n    route: [{destination: {host: silent.internal}}]\n  - match: [{uri: {prefix: /long}}]\n    timeout: 30s\n    route: [{destination: {host: silent.internal}}]\n  - route: [{destination: {host: silent.internal}}]\n"
        )
    );
    let (_gw, addr) = start_mesh("idle-upstream", "streamIdleTimeout: 1s", &yaml);
    for path in ["/", "/long"] {
        let t = Instant::now();
        let r = get(addr, "app.example.com", path, &[]);
        let took = t.elapsed();
        assert_eq!(
            (r.status, r.text().as_str()),
            (504, "stream timeout"),
            "{path}"
        );
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(3),
            "{path}: {took:?}"
        );
    }
    // A route timeout shorter than the idle timeout still wins.
    let t = Instant::now();
    let r = get(addr, "app.example.com", "/short", &[]);
    assert_eq!(
        (r.status, r.text().as_str()),
        (504, "upstream request timeout")
    );
    assert!(
        t.elapsed() < Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn stream_idle_timeout_bounds_a_stalled_request_body() {
    let up = Upstream::start("app");
    let (_gw, addr) = simple("idle-body", "streamIdleTimeout: 1s", &up, None);
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t = Instant::now();
    s.write_all(
        b"POST /upload HTTP/1.1\r\nhost: app.example.com\r\ncontent-length: 100\r\n\r\n0123456789",
    )
    .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let took = t.elapsed();
    assert!(took < Duration::from_secs(3), "{took:?}");
    let r = common::net::parse_reply(&buf).expect("an answer before the close");
    assert_eq!((r.status, r.text().as_str()), (408, "stream timeout"));
    // A complete body within the timeout is proxied as usual.
    let r = request(addr, "POST", "app.example.com", "/", &[], b"0123456789");
    assert_eq!(r.status, 200);
}

#[test]
fn stream_idle_timeout_cuts_a_client_that_stops_reading() {
    // An upstream streaming a large answer; it records when the gateway gives up on it.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && c.read(&mut b).unwrap_or(0) == 1 {
            head.push(b[0]);
        }
        let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000000\r\n\r\n");
        let chunk = vec![b'x'; 64 * 1024];
        let started = Instant::now();
        while c.write_all(&chunk).is_ok() {
            if started.elapsed() > Duration::from_secs(20) {
                break;
            }
        }
        let _ = tx.send(Instant::now());
    });
    let se = format!("---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: big}}\nspec:\n  hosts: [big.internal]\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {port}}}}}]\n");
    let yaml = format!(
        "{}{se}{}",
        gateway("gw", "[\"*\"]"),
        vs(
            "app",
            "[\"*\"]",
            "[gw]",
            "  - route: [{destination: {host: big.internal}}]\n"
        )
    );
    let (_gw, addr) = start_mesh("idle-reader", "streamIdleTimeout: 1s", &yaml);
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: app.example.com\r\n\r\n")
        .unwrap();
    let sent = Instant::now();
    // The client reads nothing; the gateway's writes stall, then it drops the exchange.
    let done = rx
        .recv_timeout(Duration::from_secs(15))
        .expect("the gateway let go of the upstream");
    let took = done - sent;
    assert!(took < Duration::from_secs(6), "{took:?}");
    drop(s);
}
