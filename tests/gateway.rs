//! `meshgate run` end to end: the real binary, real upstream servers on 127.0.0.1, real
//! HTTP clients. Configs are modelled on Istio's bookinfo and httpbin samples.

mod common;
use common::config::*;
use common::net::*;
use common::*;
use std::net::SocketAddr;

#[test]
fn host_selection_and_no_fallback() {
    let (exact, wild, all) = (
        Upstream::start("exact"),
        Upstream::start("wild"),
        Upstream::start("all"),
    );
    let yaml = format!(
        "{}{}{}{}{}{}{}",
        gateway("gw", "[\"*\"]"),
        service("exact.internal", &[(&exact, "")]),
        service("wild.internal", &[(&wild, "")]),
        service("all.internal", &[(&all, "")]),
        vs(
            "exact",
            "[api.example.com]",
            "[gw]",
            &format!(
                "  - match: [{{uri: {{prefix: /only}}}}]\n{}",
                to("exact.internal")
            )
        ),
        vs(
            "wild",
            "[\"*.example.com\"]",
            "[gw]",
            &format!("  -\n{}", to("wild.internal"))
        ),
        vs(
            "all",
            "[\"*\"]",
            "[gw]",
            &format!("  -\n{}", to("all.internal"))
        ),
    );
    let (_gw, addr) = start("hosts", &yaml);
    assert_eq!(
        get(addr, "api.example.com", "/only/x", &[]).text(),
        "exact 0"
    );
    assert_eq!(
        get(addr, "API.Example.COM:8080", "/only", &[]).text(),
        "exact 0",
        "case and port ignored"
    );
    // The exact virtual host is selected; its routes do not match; no fallback.
    let r = get(addr, "api.example.com", "/other", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(
        get(addr, "a.b.example.com", "/", &[]).text(),
        "wild 0",
        "wildcard at any depth"
    );
    assert_eq!(get(addr, "example.org", "/", &[]).text(), "all 0");
    assert_eq!(exact.count(), 2);
}

#[test]
fn gateway_binding_rules() {
    let up = Upstream::start("up");
    let yaml = format!(
        "{}{}{}{}{}{}",
        gateway("gw", "[\"*\"]"),
        service("up.internal", &[(&up, "")]),
        vs("listed", "[listed.example.com]", "[default/gw]", &format!("  -\n{}", to("up.internal"))),
        vs("mesh-only", "[mesh.example.com]", "[mesh]", &format!("  -\n{}", to("up.internal"))),
        vs("other-gw", "[other.example.com]", "[istio-system/gw]", &format!("  -\n{}", to("up.internal"))),
        "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: nogw}\nspec:\n  hosts: [nogw.example.com]\n  http:\n  - route: [{destination: {host: up.internal}}]\n",
    );
    let (_gw, addr) = start("binding", &yaml);
    assert_eq!(get(addr, "listed.example.com", "/", &[]).status, 200);
    for h in ["mesh.example.com", "other.example.com", "nogw.example.com"] {
        assert_eq!(get(addr, h, "/", &[]).status, 404, "{h} must not be served");
    }
}

#[test]
fn every_match_kind_and_first_match_wins() {
    let rule = |m: &str, body: &str| {
        format!("  - match: [{m}]\n    directResponse: {{status: 200, body: {{string: {body}}}}}\n")
    };
    let http = [
        rule("{uri: {exact: /exact}}", "uri-exact"),
        rule("{uri: {regex: \"/re/[0-9]+\"}}", "uri-regex"),
        rule("{uri: {prefix: /CaSe}, ignoreUriCase: true}", "ignore-case"),
        rule(
            "{uri: {prefix: /h}, headers: {x-v: {exact: one}}}",
            "header-exact",
        ),
        rule(
            "{uri: {prefix: /h}, headers: {x-v: {prefix: tw}}}",
            "header-prefix",
        ),
        rule(
            "{uri: {prefix: /h}, headers: {x-v: {regex: \"th.*\"}}}",
            "header-regex",
        ),
        rule(
            "{uri: {prefix: /h}, headers: {x-present: {}}}",
            "header-present",
        ),
        rule(
            "{uri: {prefix: /wo}, withoutHeaders: {x-debug: {}}}",
            "without-header",
        ),
        rule(
            "{uri: {prefix: /q}, queryParams: {v: {exact: \"2\"}}}",
            "query",
        ),
        rule("{uri: {prefix: /m}, method: {exact: DELETE}}", "method"),
        rule(
            "{uri: {prefix: /a}, authority: {prefix: admin.}}",
            "authority",
        ),
        rule(
            "{uri: {prefix: /s}, scheme: {exact: https}}",
            "scheme-https",
        ),
        rule("{uri: {prefix: /p}, port: 1}", "wrong-port"),
        rule("{uri: {prefix: /first}}", "first"),
        rule("{uri: {prefix: /first/second}}", "second"),
        "  - directResponse: {status: 200, body: {string: fallthrough}}\n".to_string(),
    ]
    .concat();
    let yaml = format!(
        "{}{}",
        gateway("gw", "[\"*\"]"),
        vs("m", "[\"*\"]", "[gw]", &http)
    );
    let (_gw, addr) = start("matches", &yaml);
    let body = |host: &str, method: &str, path: &str, headers: &[(&str, &str)]| {
        request(addr, method, host, path, headers, b"").text()
    };
    let h = "www.example.com";
    assert_eq!(body(h, "GET", "/exact", &[]), "uri-exact");
    assert_eq!(body(h, "GET", "/exact/x", &[]), "fallthrough");
    assert_eq!(body(h, "GET", "/re/123", &[]), "uri-regex");
    assert_eq!(
        body(h, "GET", "/re/12a", &[]),
        "fallthrough",
        "regex is a full match"
    );
    assert_eq!(body(h, "GET", "/case/x", &[]), "ignore-case");
    assert_eq!(body(h, "GET", "/h", &[("x-v", "one")]), "header-exact");
    assert_eq!(body(h, "GET", "/h", &[("x-v", "two")]), "header-prefix");
    assert_eq!(body(h, "GET", "/h", &[("x-v", "three")]), "header-regex");
    assert_eq!(body(h, "GET", "/h", &[("x-present", "")]), "header-present");
    assert_eq!(body(h, "GET", "/h", &[]), "fallthrough");
    assert_eq!(body(h, "GET", "/wo", &[]), "without-header");
    assert_eq!(body(h, "GET", "/wo", &[("x-debug", "1")]), "fallthrough");
    assert_eq!(body(h, "GET", "/q?a=1&v=2", &[]), "query");
    assert_eq!(body(h, "GET", "/q?v=3", &[]), "fallthrough");
    assert_eq!(body(h, "DELETE", "/m", &[]), "method");
    assert_eq!(body(h, "GET", "/m", &[]), "fallthrough");
    assert_eq!(body("admin.example.com", "GET", "/a", &[]), "authority");
    assert_eq!(body(h, "GET", "/a", &[]), "fallthrough");
    assert_eq!(
        body(h, "GET", "/s", &[]),
        "fallthrough",
        "plain HTTP is scheme http"
    );
    assert_eq!(body(h, "GET", "/p", &[]), "fallthrough");
    assert_eq!(
        body(h, "GET", "/first/second", &[]),
        "first",
        "the first matching rule wins"
    );
}

#[test]
fn weighted_split_and_subsets() {
    let (v1, v2, v3) = (
        Upstream::start("v1"),
        Upstream::start("v2"),
        Upstream::start("v3"),
    );
    let dr = "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\nspec:\n  host: reviews.internal\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n  - {name: v3, labels: {version: v3}}\n";
    let http = "  - match: [{headers: {end-user: {exact: jason}}}]\n    route: [{destination: {host: reviews.internal, subset: v2}}]\n  - route:\n    - {destination: {host: reviews.internal, subset: v1}, weight: 80}\n    - {destination: {host: reviews.internal, subset: v2}, weight: 20}\n    - {destination: {host: reviews.internal, subset: v3}, weight: 0}\n";
    let yaml = format!(
        "{}{}{dr}{}",
        gateway("gw", "[\"*\"]"),
        service(
            "reviews.internal",
            &[
                (&v1, "version: v1"),
                (&v2, "version: v2"),
                (&v3, "version: v3")
            ]
        ),
        vs("reviews", "[\"*\"]", "[gw]", http)
    );
    let (_gw, addr) = start("split", &yaml);
    for _ in 0..5 {
        assert_eq!(
            get(
                addr,
                "bookinfo.example.com",
                "/reviews",
                &[("end-user", "jason")]
            )
            .text(),
            "v2 0"
        );
    }
    let before = (v1.count(), v2.count());
    let n = 600;
    for _ in 0..n {
        assert_eq!(
            get(addr, "bookinfo.example.com", "/reviews", &[]).status,
            200
        );
    }
    let share1 = (v1.count() - before.0) as f64 / n as f64;
    let share2 = (v2.count() - before.1) as f64 / n as f64;
    assert!((share1 - 0.8).abs() <= 0.07, "v1 got {share1}");
    assert!((share2 - 0.2).abs() <= 0.07, "v2 got {share2}");
    assert_eq!(v3.count(), 0, "weight 0 is never chosen");
}

#[test]
fn not_found_and_unavailable_as_envoy_answers() {
    let live = Upstream::start("live");
    let dead_port = free_port(); // nothing listens here
    let dead_se = format!("---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: dead}}\nspec:\n  hosts: [dead.internal]\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {dead_port}}}}}]\n");
    let half_se = format!("---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: half}}\nspec:\n  hosts: [half.internal]\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints:\n  - {{address: 127.0.0.1, ports: {{http: {dead_port}}}}}\n  - {{address: 127.0.0.1, ports: {{http: {}}}}}\n", live.port());
    let yaml = format!(
        "{}{}{}{}{}{}",
        gateway("gw", "[\"*.example.com\"]"),
        service("live.internal", &[(&live, "version: v1")]),
        dead_se,
        half_se,
        "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: empty}\nspec:\n  hosts: [empty.internal]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: STATIC\n  workloadSelector: {labels: {app: nobody}}\n",
        vs(
            "routes",
            "[\"*.example.com\"]",
            "[gw]",
            "  - match: [{uri: {prefix: /nosubset}}]\n    route: [{destination: {host: live.internal, subset: v9}}]\n  - match: [{uri: {prefix: /nohost}}]\n    route: [{destination: {host: nowhere.internal}}]\n  - match: [{uri: {prefix: /empty}}]\n    route: [{destination: {host: empty.internal}}]\n  - match: [{uri: {prefix: /dead}}]\n    route: [{destination: {host: dead.internal}}]\n  - match: [{uri: {prefix: /half}}]\n    route: [{destination: {host: half.internal}}]\n"
        ),
    );
    let (_gw, addr) = start("errors", &yaml);
    assert_eq!(
        get(addr, "x.other.org", "/nosubset", &[]).status,
        404,
        "no virtual host: NR"
    );
    assert_eq!(
        get(addr, "a.example.com", "/unrouted", &[]).status,
        404,
        "no route: NR"
    );
    assert_eq!(
        get(addr, "a.example.com", "/nosubset", &[]).status,
        503,
        "subset missing: NC"
    );
    assert_eq!(
        get(addr, "a.example.com", "/nohost", &[]).status,
        503,
        "cluster missing: NC"
    );
    let r = get(addr, "a.example.com", "/empty", &[]);
    assert_eq!(
        (r.status, r.text().as_str()),
        (503, "no healthy upstream"),
        "no endpoints: UH"
    );
    let r = get(addr, "a.example.com", "/dead", &[]);
    assert_eq!(r.status, 503, "connect failure: UF");
    assert!(
        r.text().starts_with("upstream connect error"),
        "{}",
        r.text()
    );
    assert!(
        !r.text().contains("127.0.0.1"),
        "error bodies reveal nothing internal"
    );
    // A dead endpoint beside a live one is hidden by the default connect retry.
    for _ in 0..10 {
        assert_eq!(get(addr, "a.example.com", "/half", &[]).status, 200);
    }
}

#[test]
fn forwarding_headers_large_bodies_and_bad_requests() {
    let up = Upstream::start("echo");
    let yaml = format!(
        "{}{}{}",
        gateway("gw", "[\"*\"]"),
        service("echo.internal", &[(&up, "")]),
        vs(
            "echo",
            "[\"*\"]",
            "[gw]",
            &format!("  -\n{}", to("echo.internal"))
        )
    );
    let (_gw, addr) = start("bodies", &yaml);

    let r = get(
        addr,
        "httpbin.example.com",
        "/headers",
        &[("x-forwarded-for", "203.0.113.7")],
    );
    assert_eq!(r.status, 200);
    let seen = up.last();
    assert_eq!(
        seen.header("x-forwarded-for"),
        Some("203.0.113.7, 127.0.0.1")
    );
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    let id = seen
        .header("x-request-id")
        .expect("x-request-id generated")
        .to_string();
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(seen.header("host"), Some("httpbin.example.com"));
    get(
        addr,
        "httpbin.example.com",
        "/headers",
        &[("x-request-id", "keep-me")],
    );
    assert_eq!(up.last().header("x-request-id"), Some("keep-me"));

    // Upstream connections are kept alive and reused across client connections.
    let conns_before = up.conns.load(std::sync::atomic::Ordering::SeqCst);
    for _ in 0..20 {
        assert_eq!(get(addr, "httpbin.example.com", "/get", &[]).status, 200);
    }
    let opened = up.conns.load(std::sync::atomic::Ordering::SeqCst) - conns_before;
    assert!(
        opened <= 2,
        "20 requests opened {opened} upstream connections"
    );

    // A large POST body reaches the upstream whole.
    let big = vec![b'x'; 8 * 1024 * 1024];
    let r = request(addr, "POST", "httpbin.example.com", "/post", &[], &big);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), format!("echo {}", big.len()));

    // Malformed requests get 4xx or a closed connection; the gateway keeps serving.
    let bad: Vec<Vec<u8>> = vec![
        b"GARBAGE\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nhost: a\r\ncontent-length: nope\r\n\r\n".to_vec(),
        format!(
            "GET / HTTP/1.1\r\nhost: a\r\nx-big: {}\r\n\r\n",
            "a".repeat(200_000)
        )
        .into_bytes(),
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03".to_vec(),
    ];
    for b in &bad {
        if let Some(r) = raw(addr, b) {
            assert!(
                (400..500).contains(&r.status),
                "{} for {:?}",
                r.status,
                String::from_utf8_lossy(&b[..20.min(b.len())])
            );
        }
    }
    assert_eq!(get(addr, "httpbin.example.com", "/get", &[]).status, 200);
}

#[test]
fn admin_reports_readiness_and_the_active_config() {
    let up = Upstream::start("up");
    let yaml = format!(
        "{}{}{}",
        gateway("gw", "[\"*\"]"),
        service("up.internal", &[(&up, "version: v1")]),
        vs(
            "up",
            "[\"*\"]",
            "[gw]",
            &format!(
                "  - match: [{{uri: {{prefix: /a}}}}]\n{}",
                to("up.internal")
            )
        )
    );
    let (gw, addr) = start("admin", &yaml);
    let r = get(gw.admin, "admin", "/ready", &[]);
    assert_eq!(r.status, 200);
    let dump: serde_json::Value =
        serde_json::from_slice(&get(gw.admin, "admin", "/config_dump", &[]).body).unwrap();
    assert_eq!(dump["listeners"][0]["address"], addr.to_string());
    assert_eq!(dump["listeners"][0]["virtual_hosts"][0]["domain"], "*");
    assert_eq!(
        dump["listeners"][0]["virtual_hosts"][0]["routes"][0]["match"][0],
        "uri prefix:/a"
    );
    assert_eq!(dump["clusters"][0]["name"], "outbound|80||up.internal");
    assert_eq!(
        dump["clusters"][0]["endpoints"][0]["address"],
        up.addr.to_string()
    );
}

/// `meshgate run` on a config whose Gateway listens on `port`, with the admin listener on
/// `admin`: its stderr, once it has exited non-zero (it must, within 10 s).
fn refused_start(name: &str, port: u16, admin: SocketAddr) -> String {
    let dir = scratch(name);
    write(&dir, "conf/mesh.yaml", MESH);
    write(
        &dir,
        "conf/gw.yaml",
        &gateway("gw", "[\"*\"]").replace("{PORT}", &port.to_string()),
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_meshgate"))
        .args(["run", "--config"])
        .arg(dir.join("conf"))
        .args(["--admin", &admin.to_string()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("meshgate kept running (Gateway port {port}, admin {admin})");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    stderr
}

#[test]
fn run_refuses_to_start_when_a_listener_port_is_taken() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let admin = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let stderr = refused_start("taken", port, admin);
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
    // The admin listener on a Gateway server's own port: refused, naming it, rather than
    // one of the two answering the other's requests.
    let port = free_port();
    let admin = format!("127.0.0.1:{port}").parse().unwrap();
    let stderr = refused_start("admin-on-gateway-port", port, admin);
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
}

#[test]
fn h2c_requests_run_the_same_routing() {
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    let yaml = format!(
        "{}{}{}{}",
        gateway("gw", "[\"*\"]"),
        service("a.internal", &[(&a, "")]),
        service("b.internal", &[(&b, "")]),
        vs(
            "h2",
            "[h2.example.com]",
            "[gw]",
            &format!(
                "  - match: [{{uri: {{prefix: /b}}}}]\n{}  -\n{}",
                to("b.internal"),
                to("a.internal")
            )
        )
    );
    let (_gw, addr) = start("h2c", &yaml);
    for (path, want) in [("/a", "a 0"), ("/b/x", "b 0")] {
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "--http2-prior-knowledge",
                "-w",
                "\n%{http_version} %{http_code}",
            ])
            .arg(format!("http://h2.example.com:{}{path}", addr.port()))
            .args([
                "--resolve",
                &format!("h2.example.com:{}:127.0.0.1", addr.port()),
            ])
            .output()
            .expect("curl (installed by tests/setup.sh)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text, format!("{want}\n2 200"), "{path}");
    }
}
