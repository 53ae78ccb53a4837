//! `meshgate explain`: the routing decision step by step, from a config (`--config`) and
//! from a running gateway's admin listener (`--admin`, `GET /explain`), through the real
//! binary. What is asserted is what an operator reads: the key lines of the trace and the
//! exit status.

mod common;

use common::net::{free_port, raw, Gateway};
use common::{meshgate, pki, scratch, write};
use std::path::{Path, PathBuf};

/// `meshgate explain ARGS` → (exit code, stdout, stderr).
fn explain(args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["explain"];
    all.extend_from_slice(args);
    let out = meshgate(&all);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The one line of `text` starting with `prefix`.
fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
    let found: Vec<&str> = text.lines().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(found.len(), 1, "one {prefix:?} line in:\n{text}");
    found[0]
}

fn conf() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("conf")
        .display()
        .to_string()
}

// ---------------------------------------------------------------------------------------
// The shipped example. Only what the README documents of it is asserted (the bookinfo
// routes on 127.0.0.1:8080), so other changes to conf/ do not break these.

#[test]
fn conf_reviews_for_jason_go_to_v2() {
    let (code, out, err) = explain(&[
        "--config",
        &conf(),
        "--host",
        "bookinfo.example.com:8080",
        "--path",
        "/reviews/1",
        "--header",
        "end-user=jason",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        line(&out, "request:"),
        "request: GET /reviews/1, Host bookinfo.example.com:8080, header end-user: jason"
    );
    assert!(line(&out, "listener:").starts_with("listener: 127.0.0.1:8080 HTTP"));
    assert!(line(&out, "route:").starts_with("route: VirtualService default/bookinfo http["));
    assert_eq!(
        line(&out, "destination[0]:"),
        "destination[0]: outbound|9080|v2|reviews.default.svc.cluster.local, weight 100 (100%), subset v2"
    );
    assert_eq!(
        line(&out, "  endpoints:"),
        "  endpoints: 127.0.0.1:9082 (version=v2)"
    );
    assert_eq!(
        line(&out, "result:"),
        "result: forwarded to outbound|9080|v2|reviews.default.svc.cluster.local"
    );
}

#[test]
fn conf_other_reviews_say_why_the_jason_rule_did_not_match() {
    let (code, out, err) = explain(&[
        "--config",
        &conf(),
        "--port",
        "8080",
        "--path",
        "/reviews/1",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let jason: Vec<&str> = out
        .lines()
        .filter(|l| {
            l.ends_with(": no match: header end-user exact \"jason\": the request has none")
        })
        .collect();
    assert_eq!(jason.len(), 1, "{out}");
    assert!(
        out.contains(
            "outbound|9080|v1|reviews.default.svc.cluster.local, weight 80 (80%), subset v1\n"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "outbound|9080|v2|reviews.default.svc.cluster.local, weight 20 (20%), subset v2\n"
        ),
        "{out}"
    );
    assert_eq!(
        line(&out, "result:"),
        "result: forwarded by weight to one of 2 destinations"
    );
}

#[test]
fn conf_no_listener_on_a_port() {
    let (code, out, _) = explain(&["--config", &conf(), "--port", "9", "--path", "/"]);
    assert_eq!(code, 3, "{out}");
    assert!(line(&out, "listener:")
        .starts_with("listener: none on port 9 (listeners: 127.0.0.1:8080 HTTP"));
    assert_eq!(
        line(&out, "result:"),
        "result: connection refused: no listener"
    );
}

#[test]
fn conf_welcome_page_redirect_and_404_as_nginx() {
    let run = |path: &str| {
        explain(&[
            "--config",
            &conf(),
            "--host",
            "www.example.org:8080",
            "--path",
            path,
        ])
    };
    let (code, out, _) = run("/");
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        line(&out, "result:"),
        "result: answered: direct response 200"
    );
    let (code, out, _) = run("/index.html");
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        line(&out, "result:"),
        "result: answered: 301 redirect to http://www.example.org:8080/"
    );
    let (code, out, _) = run("/nothing-here");
    assert_eq!(code, 3, "no route: {out}");
    assert!(
        out.contains("uri exact \"/\" does not match path \"/nothing-here\""),
        "says which condition failed: {out}"
    );
    assert!(line(&out, "result:").starts_with("result: 404 Not Found (NR)"));
}

// ---------------------------------------------------------------------------------------
// A fixture of our own: HTTP on one port, HTTPS (SIMPLE) on another.

struct Fixture {
    dir: PathBuf,
    http: u16,
    https: u16,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let dir = scratch(name);
        let (http, https) = (free_port(), free_port());
        let pki_dir = dir.join("pki");
        let ca = pki::ca(&pki_dir, "ca");
        let cert = pki::leaf(
            &pki_dir,
            &ca,
            "www",
            "/CN=www.example.com",
            &["DNS:www.example.com"],
        );
        write(
            &dir,
            "conf/mesh.yaml",
            "apiVersion: meshgate.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: m}\nspec: {defaultBindAddress: 127.0.0.1}\n",
        );
        write(
            &dir,
            "conf/all.yaml",
            &FIXTURE
                .replace("{HTTP}", &http.to_string())
                .replace("{HTTPS}", &https.to_string())
                .replace("{CRT}", &cert.crt.display().to_string())
                .replace("{KEY}", &cert.key.display().to_string()),
        );
        Fixture { dir, http, https }
    }

    fn conf(&self) -> String {
        self.dir.join("conf").display().to_string()
    }
}

const FIXTURE: &str = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: {HTTP}, name: http, protocol: HTTP}
    hosts: [www.example.com, "*.example.com"]
  - port: {number: {HTTPS}, name: https, protocol: HTTPS}
    hosts: [www.example.com]
    tls: {mode: SIMPLE, serverCertificate: "{CRT}", privateKey: "{KEY}"}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shop}
spec:
  hosts: [shop.default.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: 9501}, labels: {version: v1}}
  - {address: 127.0.0.1, ports: {http: 9502}, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: shop}
spec:
  host: shop
  trafficPolicy:
    connectionPool:
      tcp: {connectTimeout: 2s}
      http: {h2UpgradePolicy: UPGRADE}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: www}
spec:
  hosts: [www.example.com]
  gateways: [edge]
  http:
  - name: legacy
    match:
    - uri: {prefix: /legacy}
    redirect: {uri: /shop, scheme: https}
  - name: beta
    match:
    - uri: {prefix: /shop}
      headers:
        x-user: {exact: alice}
    route:
    - destination: {host: shop, subset: v2}
  - name: shop
    match:
    - uri: {prefix: /shop}
      scheme: {exact: https}
    rewrite: {uri: /v1}
    timeout: 5s
    route:
    - destination: {host: shop, subset: v1}
      weight: 90
    - destination: {host: shop, subset: v2}
      weight: 10
"#;

#[test]
fn a_matched_request() {
    let f = Fixture::new("explain-matched");
    let host = format!("www.example.com:{}", f.http);
    let (code, out, err) = explain(&[
        "--config",
        &f.conf(),
        "--host",
        &host,
        "--path",
        "/shop/cart",
        "--header",
        "X-User=alice",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        line(&out, "listener:"),
        format!(
            "listener: 127.0.0.1:{} HTTP (the Host's port {})",
            f.http, f.http
        )
    );
    assert_eq!(
        line(&out, "gateway server:"),
        "gateway server: Gateway default/edge servers[0]"
    );
    assert_eq!(
        line(&out, "virtual host:"),
        "virtual host: \"www.example.com\" (exact name), 3 rule(s)"
    );
    assert_eq!(
        line(&out, "rule VirtualService default/www http[0] \"legacy\":"),
        "rule VirtualService default/www http[0] \"legacy\": no match: uri prefix \"/legacy\" does not match path \"/shop/cart\""
    );
    assert!(
        line(&out, "rule VirtualService default/www http[1] \"beta\":")
            .ends_with(": matches (uri prefix:/shop, header x-user exact:alice)")
    );
    assert!(
        !out.contains("http[2]"),
        "rules after the match are not tried:\n{out}"
    );
    assert_eq!(
        line(&out, "route:"),
        "route: VirtualService default/www http[1] \"beta\""
    );
    assert_eq!(
        line(&out, "destination[0]:"),
        "destination[0]: outbound|80|v2|shop.default.svc.cluster.local, weight 100 (100%), subset v2"
    );
    assert_eq!(
        line(&out, "  cluster:"),
        "  cluster: HTTP/2 (h2c) upstream, connectTimeout 2s, tcp idleTimeout 1h (default)"
    );
    assert_eq!(
        line(&out, "  endpoints:"),
        "  endpoints: 127.0.0.1:9502 (version=v2)"
    );
    assert_eq!(
        line(&out, "result:"),
        "result: forwarded to outbound|80|v2|shop.default.svc.cluster.local"
    );
}

#[test]
fn not_found_says_why() {
    let f = Fixture::new("explain-404");
    let port = f.http.to_string();
    // No virtual host.
    let (code, out, _) = explain(&[
        "--config",
        &f.conf(),
        "--port",
        &port,
        "--host",
        "example.org",
        "--path",
        "/shop",
    ]);
    assert_eq!(code, 3, "{out}");
    assert_eq!(
        line(&out, "virtual host:"),
        "virtual host: none for \"example.org\" (virtual hosts: \"www.example.com\")"
    );
    assert_eq!(
        line(&out, "result:"),
        "result: 404 Not Found (NR): no virtual host"
    );
    // A virtual host, no rule: each rule says which condition failed.
    let (code, out, _) = explain(&[
        "--config",
        &f.conf(),
        "--port",
        &port,
        "--host",
        "www.example.com",
        "--path",
        "/shop",
        "--header",
        "x-user=bob",
    ]);
    assert_eq!(code, 3, "{out}");
    assert_eq!(
        line(&out, "rule VirtualService default/www http[1] \"beta\":"),
        "rule VirtualService default/www http[1] \"beta\": no match: header x-user exact \"alice\": the request has \"bob\""
    );
    assert_eq!(
        line(&out, "rule VirtualService default/www http[2] \"shop\":"),
        "rule VirtualService default/www http[2] \"shop\": no match: scheme exact \"https\": the scheme is \"http\""
    );
    assert_eq!(
        line(&out, "result:"),
        "result: 404 Not Found (NR): no rule of virtual host \"www.example.com\" matches"
    );
    // The wildcard host has no VirtualService: its virtual host is not built at all.
    let (code, out, _) = explain(&[
        "--config",
        &f.conf(),
        "--port",
        &port,
        "--host",
        "a.example.com",
    ]);
    assert_eq!(code, 3, "{out}");
    assert!(line(&out, "virtual host:").starts_with("virtual host: none for \"a.example.com\""));
}

#[test]
fn a_redirect_shows_its_target() {
    let f = Fixture::new("explain-redirect");
    let host = format!("www.example.com:{}", f.http);
    let (code, out, err) = explain(&[
        "--config",
        &f.conf(),
        "--host",
        &host,
        "--path",
        "/legacy/x?y=1",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        line(&out, "rule VirtualService default/www http[0] \"legacy\":"),
        "rule VirtualService default/www http[0] \"legacy\": matches (uri prefix:/legacy)"
    );
    let target = format!("https://www.example.com:{}/shop?y=1", f.http);
    assert_eq!(
        line(&out, "redirect:"),
        format!("redirect: 301 to {target}")
    );
    assert_eq!(
        line(&out, "result:"),
        format!("result: answered: 301 redirect to {target}")
    );
}

#[test]
fn tls_sni_picks_the_filter_chain_then_https_routes() {
    let f = Fixture::new("explain-tls");
    let port = f.https.to_string();
    let (code, out, err) = explain(&[
        "--config",
        &f.conf(),
        "--port",
        &port,
        "--sni",
        "WWW.example.com",
        "--path",
        "/shop/cart",
        "--method",
        "post",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        line(&out, "listener:"),
        format!("listener: 127.0.0.1:{port} TLS (--port {port})")
    );
    assert_eq!(
        line(&out, "filter chain:"),
        "filter chain: Gateway default/edge servers[1]: server name \"www.example.com\" (exact name)"
    );
    assert!(
        line(&out, "tls:").starts_with("tls: terminated with certificate "),
        "{out}"
    );
    assert!(
        line(&out, "tls:").ends_with("www.crt; the requests inside are https"),
        "{out}"
    );
    assert_eq!(
        line(&out, "request:"),
        "request: POST /shop/cart, Host WWW.example.com (the SNI), TLS SNI WWW.example.com"
    );
    // The Host defaults to the SNI; over TLS the scheme is https, so the `shop` rule
    // (scheme https) takes it.
    assert_eq!(
        line(&out, "virtual host:"),
        "virtual host: \"www.example.com\" (exact name), 3 rule(s)"
    );
    assert!(
        line(&out, "rule VirtualService default/www http[2] \"shop\":")
            .ends_with(": matches (uri prefix:/shop, scheme exact:https)"),
        "{out}"
    );
    assert_eq!(
        line(&out, "rewrite:"),
        "rewrite: path \"/shop/cart\" to \"/v1/cart\""
    );
    assert_eq!(
        line(&out, "timeout:"),
        "timeout: 5s for the whole request, retries included (then 504 UT)"
    );
    assert!(out.contains("destination[0]: outbound|80|v1|shop.default.svc.cluster.local, weight 90 (90%), subset v1\n"), "{out}");
    assert_eq!(
        line(&out, "result:"),
        "result: forwarded by weight to one of 2 destinations"
    );

    // An SNI no server names: the port's first terminating server, still.
    let (code, out, _) = explain(&[
        "--config",
        &f.conf(),
        "--port",
        &port,
        "--sni",
        "other.org",
        "--host",
        "www.example.com",
        "--path",
        "/shop",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        line(&out, "filter chain:").starts_with(
            "filter chain: Gateway default/edge servers[1]: no server name takes SNI \"other.org\": the port's first terminating server"
        ),
        "{out}"
    );
}

#[test]
fn bad_arguments_and_bad_configs() {
    let f = Fixture::new("explain-args");
    let (code, _, err) = explain(&["--config", &f.conf(), "--port", "eighty"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = explain(&["--config", &f.conf(), "--header", "novalue"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = explain(&["--config", &f.conf(), "--path", "/x"]);
    assert_eq!(code, 2, "several listeners and no port: {err}");
    assert!(
        err.contains("several listeners; say which with --port"),
        "{err}"
    );
    let (code, _, err) = explain(&["--config", &f.conf(), "--admin", "127.0.0.1:1"]);
    assert_eq!(code, 2, "--config and --admin exclude each other: {err}");
    let bad = scratch("explain-bad-config");
    write(&bad, "bad.yaml", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec: {hosts: []}\n");
    let (code, out, err) = explain(&["--config", &bad.display().to_string(), "--port", "80"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("meshgate explain: the configuration is invalid"),
        "{err}"
    );
    assert!(out.is_empty(), "{out}");
}

#[test]
fn the_admin_listener_explains_the_same_decision() {
    let f = Fixture::new("explain-admin");
    let gw = Gateway::start(&f.dir);
    let admin = gw.admin.to_string();
    let http = format!("www.example.com:{}", f.http);
    let https = f.https.to_string();
    let cases: Vec<Vec<&str>> = vec![
        vec![
            "--host",
            &http,
            "--path",
            "/shop/cart",
            "--header",
            "x-user=alice",
        ],
        vec![
            "--host",
            &http,
            "--path",
            "/shop?a=1&b=%20",
            "--header",
            "x-user=bob",
        ],
        vec!["--host", &http, "--path", "/legacy/x?y=1"],
        vec![
            "--port",
            &https,
            "--sni",
            "www.example.com",
            "--path",
            "/shop/cart",
            "--method",
            "POST",
        ],
    ];
    let conf = f.conf();
    for case in cases {
        let mut local = vec!["--config", conf.as_str()];
        local.extend(&case);
        let mut remote = vec!["--admin", admin.as_str()];
        remote.extend(&case);
        let (lc, lo, le) = explain(&local);
        let (rc, ro, re) = explain(&remote);
        assert_eq!((rc, &ro), (lc, &lo), "{case:?}: {le}{re}");
        assert!(lo.contains("\nresult: "), "{lo}");
    }
    // Refused requests exit 3 through the admin listener too.
    let (code, out, _) = explain(&["--admin", &admin, "--host", &http, "--path", "/nowhere"]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("result: 404 Not Found (NR)"), "{out}");
    // The endpoint itself: text, the outcome in a header, 400 for a bad query.
    let reply = raw(
        gw.admin,
        format!(
            "GET /explain?host={http}&path=%2Flegacy HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .expect("an answer");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-meshgate-explain"), Some("answered"));
    assert!(
        reply
            .text()
            .contains("redirect: 301 to https://www.example.com:"),
        "{}",
        reply.text()
    );
    let reply = raw(
        gw.admin,
        b"GET /explain?hots=x HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n",
    )
    .expect("an answer");
    assert_eq!(reply.status, 400);
    assert!(
        reply.text().contains("unknown parameter \"hots\""),
        "{}",
        reply.text()
    );
    // And a bad argument through --admin exits 2, as locally.
    let (code, _, err) = explain(&["--admin", &admin, "--path", "/x"]);
    assert_eq!(code, 2, "{err}");
}
