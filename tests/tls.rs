//! TLS at the edge, end to end: the real binary, certificates made at test time (a CA,
//! server leaves, client certificates from a trusted and an untrusted CA), real upstreams
//! and curl as the client. Configs follow istio.io's secure-ingress, ingress-mtls,
//! ingress-sni-passthrough and https-redirect tasks.

mod common;
use common::net::*;
use common::peers::*;
use common::pki::{self, Cert};
use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const MESH: &str = "apiVersion: meshgate.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: m}\nspec: {defaultBindAddress: 127.0.0.1, credentialsDir: ../creds}\n";

/// The head of every test's Gateway `gw`; its servers follow.
const GW: &str = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n";

/// A test's directory: config under `conf/`, credentials under `creds/`, PKI under `pki/`.
struct Setup {
    dir: PathBuf,
    port: u16,
}

impl Setup {
    fn new(name: &str) -> Setup {
        let dir = scratch(name);
        write(&dir, "conf/mesh.yaml", MESH);
        Setup {
            dir,
            port: free_port(),
        }
    }
    fn pki(&self) -> PathBuf {
        self.dir.join("pki")
    }
    fn creds(&self) -> PathBuf {
        self.dir.join("creds")
    }
    /// Writes the config with `{PORT}` and `{PKI}` filled in.
    fn config(&self, yaml: &str) -> PathBuf {
        write(
            &self.dir,
            "conf/all.yaml",
            &yaml
                .replace("{PORT}", &self.port.to_string())
                .replace("{PKI}", self.pki().to_str().unwrap()),
        )
    }
    fn start(&self) -> Gateway {
        Gateway::start(&self.dir)
    }
    fn addr(&self) -> SocketAddr {
        format!("127.0.0.1:{}", self.port).parse().unwrap()
    }
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("meshgate.log")).unwrap_or_default()
    }
}

/// A STATIC ServiceEntry `host` on port 80 (or `port`) served by one 127.0.0.1 endpoint.
fn service(host: &str, port: u32, target: u16, labels: &str) -> String {
    format!("---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {host}-{target}}}\nspec:\n  hosts: [{host}]\n  ports: [{{number: {port}, name: p{port}, protocol: TCP}}]\n  resolution: STATIC\n  endpoints: [{{address: 127.0.0.1, ports: {{p{port}: {target}}}, labels: {{{labels}}}}}]\n")
}

fn http_vs(name: &str, host: &str, dest: &str) -> String {
    format!("---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}}}\nspec:\n  hosts: [{host}]\n  gateways: [gw]\n  http:\n  - route: [{{destination: {{host: {dest}}}}}]\n")
}

fn ca_arg(c: &Cert) -> [String; 2] {
    ["--cacert".into(), c.crt.display().to_string()]
}

fn client_args(c: &Cert) -> [String; 4] {
    [
        "--cert".into(),
        c.crt.display().to_string(),
        "--key".into(),
        c.key.display().to_string(),
    ]
}

fn run_curl(parts: &[&[String]]) -> CurlOut {
    let args: Vec<&str> = parts
        .iter()
        .flat_map(|p| p.iter().map(String::as_str))
        .collect();
    curl(&args)
}

#[test]
fn sni_chooses_the_certificate_among_servers_on_one_port() {
    // istio.io secure-ingress, "multiple hosts": httpbin and helloworld on one port, each
    // with its own credential.
    let s = Setup::new("sni");
    let ca = pki::ca(&s.pki(), "ca");
    let httpbin = pki::leaf(
        &s.pki(),
        &ca,
        "httpbin",
        "/CN=httpbin.example.com",
        &["DNS:httpbin.example.com"],
    );
    let hello = pki::leaf(
        &s.pki(),
        &ca,
        "hello",
        "/CN=helloworld.example.com",
        &["DNS:helloworld.example.com"],
    );
    pki::install_credential(&s.creds(), "httpbin-credential", &httpbin, None);
    pki::install_credential(&s.creds(), "helloworld-credential", &hello, None);
    let (u1, u2) = (Upstream::start("httpbin"), Upstream::start("helloworld"));
    s.config(&format!(
        "{GW}  - port: {{number: {{PORT}}, name: https-httpbin, protocol: HTTPS}}\n    tls: {{mode: SIMPLE, credentialName: httpbin-credential}}\n    hosts: [httpbin.example.com]\n  - port: {{number: {{PORT}}, name: https-helloworld, protocol: HTTPS}}\n    tls: {{mode: SIMPLE, credentialName: helloworld-credential}}\n    hosts: [helloworld.example.com]\n{}{}{}{}",
        service("httpbin.internal", 80, u1.port(), "app: httpbin"),
        service("hello.internal", 80, u2.port(), "app: hello"),
        http_vs("httpbin", "httpbin.example.com", "httpbin.internal"),
        http_vs("hello", "helloworld.example.com", "hello.internal"),
    ));
    let gw = s.start();
    for (host, body, subject) in [
        ("httpbin.example.com", "httpbin 0", "CN=httpbin.example.com"),
        (
            "helloworld.example.com",
            "helloworld 0",
            "CN=helloworld.example.com",
        ),
    ] {
        // curl checks the certificate against the CA and the host name.
        let r = run_curl(&[&ca_arg(&ca), &https_args(host, s.port, "/status/418")]);
        assert_eq!((r.exit, r.status), (0, 200), "{host}: {}", r.trace);
        assert_eq!(r.body, body);
        assert_eq!(r.server_subject(), Some(subject));
    }
    let seen = u1.last();
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    assert_eq!(
        seen.header("x-forwarded-client-cert"),
        None,
        "no client certificate"
    );
    // A client without SNI (an IP address in the URL) gets the port's first certificate.
    let r = curl(&["-k", &format!("https://127.0.0.1:{}/", s.port)]);
    assert_eq!(
        r.server_subject(),
        Some("CN=httpbin.example.com"),
        "{}",
        r.trace
    );
    // Routes belong to the server that terminated: SNI helloworld with Host httpbin is 404.
    let r = run_curl(&[
        &ca_arg(&ca),
        &["-H".into(), "host: httpbin.example.com".into()],
        &https_args("helloworld.example.com", s.port, "/"),
    ]);
    assert_eq!(r.status, 404, "{}", r.trace);
    // The admin dump shows the port's filter chains.
    let dump: serde_json::Value =
        serde_json::from_slice(&get(gw.admin, "admin", "/config_dump", &[]).body).unwrap();
    let chains = &dump["listeners"][0]["filter_chains"];
    assert_eq!(dump["listeners"][0]["protocol"], "TLS");
    assert_eq!(chains[1]["server_names"][0], "helloworld.example.com");
    assert_eq!(
        chains[1]["virtual_hosts"][0]["domain"],
        "helloworld.example.com"
    );
}

#[test]
fn mutual_optional_san_and_protocol_versions_per_host_on_one_port() {
    let s = Setup::new("mtls");
    let ca = pki::ca(&s.pki(), "ca");
    let client_ca = pki::ca(&s.pki(), "client-ca");
    let rogue_ca = pki::ca(&s.pki(), "rogue-ca");
    let server = pki::leaf(
        &s.pki(),
        &ca,
        "server",
        "/CN=gateway",
        &["DNS:*.example.com"],
    );
    let good = pki::leaf(
        &s.pki(),
        &client_ca,
        "good",
        "/CN=client/O=Example",
        &["URI:spiffe://example.com/good", "DNS:client.example.com"],
    );
    let other = pki::leaf(
        &s.pki(),
        &client_ca,
        "other",
        "/CN=other",
        &["URI:spiffe://example.com/other"],
    );
    let rogue = pki::leaf(
        &s.pki(),
        &rogue_ca,
        "rogue",
        "/CN=client",
        &["URI:spiffe://example.com/good"],
    );
    pki::install_credential(&s.creds(), "optional-credential", &server, Some(&client_ca));
    let up = Upstream::start("app");
    let files = "serverCertificate: {PKI}/server.crt, privateKey: {PKI}/server.key";
    s.config(&format!(
        "{GW}  - port: {{number: {{PORT}}, name: https-mtls, protocol: HTTPS}}\n    tls: {{mode: MUTUAL, {files}, caCertificates: {{PKI}}/client-ca.crt}}\n    hosts: [mtls.example.com]\n  - port: {{number: {{PORT}}, name: https-optional, protocol: HTTPS}}\n    tls: {{mode: OPTIONAL_MUTUAL, credentialName: optional-credential}}\n    hosts: [optional.example.com]\n  - port: {{number: {{PORT}}, name: https-san, protocol: HTTPS}}\n    tls: {{mode: MUTUAL, {files}, caCertificates: {{PKI}}/client-ca.crt, subjectAltNames: [spiffe://example.com/good]}}\n    hosts: [san.example.com]\n  - port: {{number: {{PORT}}, name: https-13, protocol: HTTPS}}\n    tls: {{mode: SIMPLE, {files}, minProtocolVersion: TLSV1_3}}\n    hosts: [tls13.example.com]\n  - port: {{number: {{PORT}}, name: https-cipher, protocol: HTTPS}}\n    tls: {{mode: SIMPLE, {files}, maxProtocolVersion: TLSV1_2, cipherSuites: [ECDHE-ECDSA-AES256-GCM-SHA384]}}\n    hosts: [cipher.example.com]\n{}{}",
        service("app.internal", 80, up.port(), "app: a"),
        http_vs("all", "\"*.example.com\"", "app.internal"),
    ));
    let _gw = s.start();
    let get = |host: &str, client: Option<&Cert>, extra: &[&str]| {
        let mut parts: Vec<String> = ca_arg(&ca).to_vec();
        if let Some(c) = client {
            parts.extend(client_args(c));
        }
        parts.extend(extra.iter().map(|s| s.to_string()));
        parts.extend(https_args(host, s.port, "/"));
        run_curl(&[&parts])
    };

    // MUTUAL: no certificate and a certificate from another CA fail the handshake.
    let r = get("mtls.example.com", None, &[]);
    assert!(
        r.exit != 0 && r.status == 0,
        "no client cert must be refused: {}",
        r.trace
    );
    let r = get("mtls.example.com", Some(&rogue), &[]);
    assert!(
        r.exit != 0 && r.status == 0,
        "wrong CA must be refused: {}",
        r.trace
    );
    let r = get("mtls.example.com", Some(&good), &[]);
    assert_eq!((r.exit, r.status), (0, 200), "{}", r.trace);
    // The verified identity reaches the upstream as Envoy's x-forwarded-client-cert.
    let xfcc = up
        .last()
        .header("x-forwarded-client-cert")
        .unwrap_or("")
        .to_string();
    assert!(xfcc.starts_with("Hash="), "{xfcc}");
    assert!(xfcc.contains(";Subject=\"O=Example,CN=client\""), "{xfcc}");
    assert!(
        xfcc.contains(";URI=spiffe://example.com/good;DNS=client.example.com"),
        "{xfcc}"
    );

    // A client's own x-forwarded-client-cert never passes (Istio SANITIZE_SET).
    let r = get(
        "optional.example.com",
        None,
        &["-H", "x-forwarded-client-cert: By=forged"],
    );
    assert_eq!(
        (r.exit, r.status),
        (0, 200),
        "OPTIONAL_MUTUAL without a certificate: {}",
        r.trace
    );
    assert_eq!(up.last().header("x-forwarded-client-cert"), None);
    let r = get("optional.example.com", Some(&good), &[]);
    assert_eq!(r.status, 200, "{}", r.trace);
    assert!(up.last().header("x-forwarded-client-cert").is_some());
    let r = get("optional.example.com", Some(&rogue), &[]);
    assert!(
        r.exit != 0 && r.status == 0,
        "a presented certificate is still verified: {}",
        r.trace
    );

    // subjectAltNames: right CA, wrong identity → refused.
    assert_eq!(get("san.example.com", Some(&good), &[]).status, 200);
    let r = get("san.example.com", Some(&other), &[]);
    assert!(r.exit != 0 && r.status == 0, "SAN not allowed: {}", r.trace);

    // minProtocolVersion TLSV1_3 refuses a TLS 1.2-only client; TLS 1.2 works elsewhere.
    let tls12 = ["--tlsv1.2", "--tls-max", "1.2"];
    let r = get("tls13.example.com", None, &tls12);
    assert!(
        r.exit != 0 && r.status == 0,
        "TLS 1.2 must be refused: {}",
        r.trace
    );
    let r = get("tls13.example.com", None, &[]);
    assert_eq!(r.status, 200);
    assert!(r.trace.contains("TLSv1.3"), "{}", r.trace);
    let r = get("optional.example.com", None, &tls12);
    assert_eq!(r.status, 200, "{}", r.trace);
    assert!(r.trace.contains("TLSv1.2"));

    // cipherSuites (TLS 1.2): only the listed suite is agreed.
    let r = get(
        "cipher.example.com",
        None,
        &["--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256"],
    );
    assert!(
        r.exit != 0 && r.status == 0,
        "an unlisted suite must be refused: {}",
        r.trace
    );
    let r = get(
        "cipher.example.com",
        None,
        &["--ciphers", "ECDHE-ECDSA-AES256-GCM-SHA384"],
    );
    assert_eq!(r.status, 200, "{}", r.trace);
    assert!(
        r.trace.contains("ECDHE-ECDSA-AES256-GCM-SHA384"),
        "{}",
        r.trace
    );
}

#[test]
fn https_redirect_and_http2_over_tls() {
    let s = Setup::new("redirect");
    let ca = pki::ca(&s.pki(), "ca");
    let leaf = pki::leaf(
        &s.pki(),
        &ca,
        "bookinfo",
        "/CN=bookinfo.example.com",
        &["DNS:bookinfo.example.com"],
    );
    pki::install_credential(&s.creds(), "bookinfo", &leaf, None);
    let up = Upstream::start("productpage");
    let http_port = free_port();
    s.config(&format!(
        "{GW}  - port: {{number: {http_port}, name: http, protocol: HTTP}}\n    hosts: [bookinfo.example.com]\n    tls: {{httpsRedirect: true}}\n  - port: {{number: {{PORT}}, name: https, protocol: HTTPS}}\n    hosts: [bookinfo.example.com]\n    tls: {{mode: SIMPLE, credentialName: bookinfo}}\n{}{}",
        service("productpage.internal", 80, up.port(), "app: p"),
        http_vs("bookinfo", "bookinfo.example.com", "productpage.internal"),
    ));
    let _gw = s.start();
    let plain: SocketAddr = format!("127.0.0.1:{http_port}").parse().unwrap();
    let r = get(
        plain,
        "bookinfo.example.com:8080",
        "/productpage?u=normal",
        &[],
    );
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some("https://bookinfo.example.com/productpage?u=normal")
    );
    assert_eq!(up.count(), 0, "a redirect never reaches the upstream");

    let r = run_curl(&[
        &ca_arg(&ca),
        &["--http2".into()],
        &https_args("bookinfo.example.com", s.port, "/productpage"),
    ]);
    assert_eq!(
        (r.status, r.http_version.as_str()),
        (200, "2"),
        "{}",
        r.trace
    );
    assert_eq!(r.body, "productpage 0");
    assert_eq!(up.last().header("x-forwarded-proto"), Some("https"));
    let r = run_curl(&[
        &ca_arg(&ca),
        &["--http1.1".into()],
        &https_args("bookinfo.example.com", s.port, "/"),
    ]);
    assert_eq!((r.status, r.http_version.as_str()), (200, "1.1"));
}

#[test]
fn passthrough_by_sni_and_mixed_with_termination() {
    // istio.io ingress-sni-passthrough: the backend's own certificate reaches the client.
    let s = Setup::new("passthrough");
    let gw_ca = pki::ca(&s.pki(), "gateway-ca");
    let backend_ca = pki::ca(&s.pki(), "backend-ca");
    let backend = pki::leaf(
        &s.pki(),
        &backend_ca,
        "nginx",
        "/CN=nginx.example.com",
        &["DNS:nginx.example.com"],
    );
    let terminated = pki::leaf(
        &s.pki(),
        &gw_ca,
        "local",
        "/CN=local.example.com",
        &["DNS:local.example.com"],
    );
    pki::install_credential(&s.creds(), "local", &terminated, None);
    let nginx = TlsUpstream::start("my-nginx", &backend);
    let up = Upstream::start("local");
    s.config(&format!(
        "{GW}  - port: {{number: {{PORT}}, name: https, protocol: HTTPS}}\n    tls: {{mode: PASSTHROUGH}}\n    hosts: [nginx.example.com]\n  - port: {{number: {{PORT}}, name: https-local, protocol: HTTPS}}\n    tls: {{mode: SIMPLE, credentialName: local}}\n    hosts: [local.example.com]\n{}{}---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: nginx}}\nspec:\n  hosts: [nginx.example.com]\n  gateways: [gw]\n  tls:\n  - match: [{{port: {{PORT}}, sniHosts: [nginx.example.com]}}]\n    route: [{{destination: {{host: my-nginx.internal, port: {{number: 443}}}}}}]\n{}",
        service("my-nginx.internal", 443, nginx.port(), "run: my-nginx"),
        service("local.internal", 80, up.port(), "app: l"),
        http_vs("local", "local.example.com", "local.internal"),
    ));
    let _gw = s.start();
    let r = run_curl(&[
        &ca_arg(&backend_ca),
        &https_args("nginx.example.com", s.port, "/"),
    ]);
    assert_eq!((r.exit, r.status), (0, 200), "{}", r.trace);
    assert_eq!(r.body, "my-nginx\n");
    assert_eq!(r.server_subject(), Some("CN=nginx.example.com"));
    // Trusting only the gateway's CA fails: the gateway did not terminate.
    let r = run_curl(&[
        &ca_arg(&gw_ca),
        &https_args("nginx.example.com", s.port, "/"),
    ]);
    assert_ne!(r.exit, 0);
    // The same port terminates local.example.com with the gateway's certificate.
    let r = run_curl(&[
        &ca_arg(&gw_ca),
        &https_args("local.example.com", s.port, "/"),
    ]);
    assert_eq!((r.status, r.body.as_str()), (200, "local 0"), "{}", r.trace);
    // An SNI nothing names falls to the port's first terminating server.
    let r = curl(&[
        "-k",
        "--resolve",
        &format!("unknown.org:{}:127.0.0.1", s.port),
        &format!("https://unknown.org:{}/", s.port),
    ]);
    assert_eq!(
        r.server_subject(),
        Some("CN=local.example.com"),
        "{}",
        r.trace
    );
}

#[test]
fn passthrough_only_port_closes_unknown_or_missing_sni() {
    let s = Setup::new("passthrough-only");
    let backend_ca = pki::ca(&s.pki(), "backend-ca");
    let backend = pki::leaf(
        &s.pki(),
        &backend_ca,
        "b",
        "/CN=b.example.com",
        &["DNS:b.example.com"],
    );
    let b = TlsUpstream::start("b", &backend);
    s.config(&format!(
        "{GW}  - port: {{number: {{PORT}}, name: tls, protocol: TLS}}\n    tls: {{mode: PASSTHROUGH}}\n    hosts: [\"*.example.com\"]\n{}---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: b}}\nspec:\n  hosts: [\"*.example.com\"]\n  gateways: [gw]\n  tls:\n  - match: [{{sniHosts: [\"*.example.com\"]}}]\n    route: [{{destination: {{host: b.internal}}}}]\n",
        service("b.internal", 443, b.port(), "app: b"),
    ));
    let _gw = s.start();
    let r = run_curl(&[
        &ca_arg(&backend_ca),
        &https_args("b.example.com", s.port, "/"),
    ]);
    assert_eq!((r.status, r.body.as_str()), (200, "b\n"), "{}", r.trace);
    for url in [
        format!("https://127.0.0.1:{}/", s.port), // no SNI
        format!("https://other.org:{}/", s.port),
    ] {
        let r = curl(&[
            "-k",
            "--resolve",
            &format!("other.org:{}:127.0.0.1", s.port),
            &url,
        ]);
        assert!(
            r.exit != 0 && r.status == 0,
            "{url} must be closed: {}",
            r.trace
        );
        assert!(r.server_subject().is_none());
    }
}

#[test]
fn tcp_weighted_split_half_close_and_idle_timeout() {
    // istio.io tcp-traffic-shifting: tcp-echo v1 80%, v2 20%.
    let s = Setup::new("tcp");
    let (v1, v2) = (EchoUpstream::start("one"), EchoUpstream::start("two"));
    let idle_port = free_port();
    let tcp_echo = format!("---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: tcp-echo}}\nspec:\n  hosts: [tcp-echo.internal]\n  ports: [{{number: 9000, name: tcp, protocol: TCP}}]\n  resolution: STATIC\n  endpoints:\n  - {{address: 127.0.0.1, ports: {{tcp: {}}}, labels: {{version: v1}}}}\n  - {{address: 127.0.0.1, ports: {{tcp: {}}}, labels: {{version: v2}}}}\n", v1.port(), v2.port());
    s.config(&format!(
        "{GW}  - port: {{number: {{PORT}}, name: tcp, protocol: TCP}}\n    hosts: [\"*\"]\n  - port: {{number: {idle_port}, name: tcp-idle, protocol: TCP}}\n    hosts: [\"*\"]\n{}{}---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: tcp-echo}}\nspec:\n  host: tcp-echo.internal\n  subsets:\n  - {{name: v1, labels: {{version: v1}}}}\n  - name: v2\n    labels: {{version: v2}}\n    trafficPolicy: {{connectionPool: {{tcp: {{idleTimeout: 1s}}}}}}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: tcp-echo}}\nspec:\n  hosts: [\"*\"]\n  gateways: [gw]\n  tcp:\n  - match: [{{port: {idle_port}}}]\n    route: [{{destination: {{host: tcp-echo.internal, port: {{number: 9000}}, subset: v2}}}}]\n  - match: [{{port: {{PORT}}}}]\n    route:\n    - {{destination: {{host: tcp-echo.internal, port: {{number: 9000}}, subset: v1}}, weight: 80}}\n    - {{destination: {{host: tcp-echo.internal, port: {{number: 9000}}, subset: v2}}, weight: 20}}\n",
        tcp_echo,
        "",
    ));
    let _gw = s.start();
    let mut ones = 0;
    for i in 0..200 {
        let reply = echo_once(s.addr(), &format!("hello {i}")).expect("a reply");
        if reply == format!("one hello {i}") {
            ones += 1;
        } else {
            assert_eq!(reply, format!("two hello {i}"));
        }
    }
    assert!((144..=176).contains(&ones), "80% ± 8% of 200, got {ones}");

    // Half-close: the client shuts its side and still reads the server's answer.
    let mut c = TcpStream::connect(s.addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"last words\n").unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut all = String::new();
    c.read_to_string(&mut all).unwrap();
    assert!(
        all.ends_with(" last words\none bye\n") || all.ends_with(" last words\ntwo bye\n"),
        "{all:?}"
    );

    // DestinationRule idleTimeout 1s: a silent connection is closed by the gateway.
    let mut c = TcpStream::connect(format!("127.0.0.1:{idle_port}")).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"hi\n").unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 64];
    let n = c.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"two hi\n");
    let n = c.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "closed");
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}

#[test]
fn a_bad_certificate_takes_only_its_server_out() {
    let s = Setup::new("badcert");
    let ca = pki::ca(&s.pki(), "ca");
    pki::leaf(
        &s.pki(),
        &ca,
        "good",
        "/CN=good.example.com",
        &["DNS:good.example.com"],
    );
    let up = Upstream::start("good");
    let conf = s.config(&format!(
        "{GW}  - port: {{number: {{PORT}}, name: https-bad, protocol: HTTPS}}\n    tls: {{mode: SIMPLE, serverCertificate: {{PKI}}/missing.crt, privateKey: {{PKI}}/good.key}}\n    hosts: [bad.example.com]\n  - port: {{number: {{PORT}}, name: https-mismatch, protocol: HTTPS}}\n    tls: {{mode: SIMPLE, serverCertificate: {{PKI}}/good.crt, privateKey: {{PKI}}/ca.key}}\n    hosts: [mismatch.example.com]\n  - port: {{number: {{PORT}}, name: https-good, protocol: HTTPS}}\n    tls: {{mode: SIMPLE, serverCertificate: {{PKI}}/good.crt, privateKey: {{PKI}}/good.key}}\n    hosts: [good.example.com]\n{}{}",
        service("good.internal", 80, up.port(), "app: g"),
        http_vs("all", "\"*.example.com\"", "good.internal"),
    ));
    let conf_dir = conf.parent().unwrap();
    let (code, stderr, _) = validate(&[conf_dir], &[]);
    assert_eq!(code, 0, "{stderr}");
    let missing = s.pki().join("missing.crt");
    assert!(
        stderr.lines().any(|l| l.contains("warning: Gateway default/gw: spec.servers[0].tls.serverCertificate: cannot read certificate")
            && l.contains(missing.to_str().unwrap())
            && l.contains("[InvalidGatewayCredential]")),
        "{stderr}"
    );
    assert!(
        stderr.lines().any(
            |l| l.contains("spec.servers[1].tls.privateKey: private key")
                && l.contains("does not match certificate")
        ),
        "{stderr}"
    );
    let (code, _, _) = validate(&[conf_dir], &["--strict"]);
    assert_ne!(code, 0, "--strict fails on the warnings");

    let _gw = s.start();
    let r = run_curl(&[&ca_arg(&ca), &https_args("good.example.com", s.port, "/")]);
    assert_eq!((r.status, r.body.as_str()), (200, "good 0"), "{}", r.trace);
    let log = s.log();
    assert!(
        log.contains("servers[0]")
            && log.contains("missing.crt")
            && log.contains("this server is out"),
        "{log}"
    );
    assert!(
        log.contains("servers[1]") && log.contains("does not match"),
        "{log}"
    );
}

#[test]
fn new_credential_files_are_used_without_a_restart() {
    let s = Setup::new("rotate");
    let ca = pki::ca(&s.pki(), "ca");
    let one = pki::leaf(
        &s.pki(),
        &ca,
        "one",
        "/CN=rotate.example.com/O=one",
        &["DNS:rotate.example.com"],
    );
    let two = pki::leaf(
        &s.pki(),
        &ca,
        "two",
        "/CN=rotate.example.com/O=two",
        &["DNS:rotate.example.com"],
    );
    pki::install_credential(&s.creds(), "rotate", &one, None);
    let up = Upstream::start("r");
    s.config(&format!(
        "{GW}  - port: {{number: {{PORT}}, name: https, protocol: HTTPS}}\n    tls: {{mode: SIMPLE, credentialName: rotate}}\n    hosts: [rotate.example.com]\n{}{}",
        service("r.internal", 80, up.port(), "app: r"),
        http_vs("r", "rotate.example.com", "r.internal"),
    ));
    let _gw = s.start();
    let subject = || {
        run_curl(&[&ca_arg(&ca), &https_args("rotate.example.com", s.port, "/")])
            .server_subject()
            .map(str::to_string)
    };
    assert_eq!(subject().as_deref(), Some("CN=rotate.example.com; O=one"));
    pki::install_credential(&s.creds(), "rotate", &two, None);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if subject().as_deref() == Some("CN=rotate.example.com; O=two") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was not picked up:\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Unusable new files keep the previous credential serving.
    std::fs::write(s.creds().join("rotate/tls.crt"), "garbage").unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(subject().as_deref(), Some("CN=rotate.example.com; O=two"));
    assert!(
        s.log().contains("keeping the previous credential"),
        "{}",
        s.log()
    );
}

/// Reads until the peer closes; returns how long that took (or `None` if it stayed open
/// past `limit`).
fn closed_within(mut c: TcpStream, limit: Duration) -> Option<Duration> {
    let t = Instant::now();
    c.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return Some(t.elapsed()),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(t.elapsed()),
            Err(_) => return None,
        }
    }
}

#[test]
fn silent_and_stalled_handshakes_are_dropped() {
    let s = Setup::new("stall");
    let ca = pki::ca(&s.pki(), "ca");
    let leaf = pki::leaf(
        &s.pki(),
        &ca,
        "a",
        "/CN=a.example.com",
        &["DNS:a.example.com"],
    );
    pki::install_credential(&s.creds(), "a", &leaf, None);
    s.config(&format!("{GW}  - port: {{number: {{PORT}}, name: https, protocol: HTTPS}}\n    tls: {{mode: SIMPLE, credentialName: a}}\n    hosts: [a.example.com]\n"));
    let _gw = s.start();
    let addr = s.addr();
    // One client sends nothing; one sends a record header promising a ClientHello it
    // never finishes.
    let silent = std::thread::spawn(move || {
        closed_within(TcpStream::connect(addr).unwrap(), Duration::from_secs(20))
    });
    let stalled = std::thread::spawn(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(&[22, 3, 1, 0, 200, 1, 0, 0]).unwrap();
        closed_within(c, Duration::from_secs(20))
    });
    for (what, t) in [
        ("silent", silent.join().unwrap()),
        ("stalled", stalled.join().unwrap()),
    ] {
        let t = t.unwrap_or_else(|| panic!("{what} client not dropped in 20 s"));
        assert!(
            t >= Duration::from_secs(9) && t < Duration::from_secs(13),
            "{what}: {t:?}"
        );
    }
    // The gateway still serves.
    let r = run_curl(&[&ca_arg(&ca), &https_args("a.example.com", s.port, "/")]);
    assert_eq!(
        r.status, 404,
        "no routes bound: Envoy's 404 (NR) {}",
        r.trace
    );
}

/// `openssl s_client` with `sni`: sends `input`, then reads its output until a line holds
/// `expect` (then stops it) or the connection ends. Returns what was read.
fn s_client(addr: SocketAddr, sni: &str, ca: &Cert, input: &str, expect: &str) -> String {
    use std::io::BufRead;
    let mut child = std::process::Command::new("openssl")
        .args(["s_client", "-quiet", "-verify_return_error", "-connect"])
        .arg(addr.to_string())
        .args(["-servername", sni, "-CAfile"])
        .arg(&ca.crt)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl is installed by tests/setup.sh");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    let mut out = String::new();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while lines.read_line(&mut line).unwrap_or(0) > 0 {
        out.push_str(&line);
        if line.contains(expect) {
            break;
        }
        line.clear();
    }
    let _ = child.kill();
    let _ = child.wait();
    out
}

#[test]
fn auto_passthrough_and_terminated_tcp() {
    let s = Setup::new("auto");
    let backend_ca = pki::ca(&s.pki(), "backend-ca");
    let ca = pki::ca(&s.pki(), "ca");
    // The backend's certificate names the cluster's SNI, as Istio's mTLS peers' do not
    // need to: here it lets s_client verify end to end.
    let backend = pki::leaf(
        &s.pki(),
        &backend_ca,
        "b",
        "/CN=b",
        &["DNS:outbound_.443_.v1_.b.internal"],
    );
    let echo_cert = pki::leaf(
        &s.pki(),
        &ca,
        "echo",
        "/CN=echo.example.com",
        &["DNS:echo.example.com"],
    );
    pki::install_credential(&s.creds(), "echo", &echo_cert, None);
    let b = TlsUpstream::start("b-v1", &backend);
    let echo = EchoUpstream::start("echo");
    let tcp_port = free_port();
    s.config(&format!(
        "{GW}  - port: {{number: {{PORT}}, name: tls-auto, protocol: TLS}}\n    tls: {{mode: AUTO_PASSTHROUGH}}\n    hosts: [\"*.internal\"]\n  - port: {{number: {tcp_port}, name: tls-echo, protocol: TLS}}\n    tls: {{mode: SIMPLE, credentialName: echo}}\n    hosts: [echo.example.com]\n{}{}---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: b}}\nspec:\n  host: b.internal\n  subsets: [{{name: v1, labels: {{version: v1}}}}]\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: echo}}\nspec:\n  hosts: [echo.example.com]\n  gateways: [gw]\n  tcp:\n  - route: [{{destination: {{host: echo.internal}}}}]\n",
        service("b.internal", 443, b.port(), "version: v1"),
        service("echo.internal", 9000, echo.port(), "app: echo"),
    ));
    let _gw = s.start();
    let out = s_client(
        s.addr(),
        "outbound_.443_.v1_.b.internal",
        &backend_ca,
        "GET / HTTP/1.1\r\nhost: b\r\n\r\n",
        "b-v1",
    );
    assert!(out.contains("b-v1"), "{out}");
    // An outbound_ name for a host the server does not cover is closed.
    let out = s_client(
        s.addr(),
        "outbound_.443_.v1_.b.example.org",
        &backend_ca,
        "GET / HTTP/1.1\r\n\r\n",
        "b-v1",
    );
    assert!(!out.contains("b-v1"), "{out}");
    // TLS SIMPLE: terminated, then the VirtualService's tcp route.
    let tls_echo: SocketAddr = format!("127.0.0.1:{tcp_port}").parse().unwrap();
    let out = s_client(tls_echo, "echo.example.com", &ca, "hello\n", "echo hello");
    assert!(out.contains("echo hello"), "{out}");
}

/// One `openssl s_client` request to `addr` with SNI `sni` at `version` (`-tls1_2` or
/// `-tls1_3`), saving its session to `sess`, or resuming from it when `resume`; with
/// `client`, a client certificate. Returns whether the session was reused (`None` if
/// the handshake failed).
fn handshake(
    addr: SocketAddr,
    sni: &str,
    ca: &Cert,
    client: Option<&Cert>,
    version: &str,
    sess: &std::path::Path,
    resume: bool,
) -> Option<bool> {
    let mut cmd = std::process::Command::new("openssl");
    cmd.args(["s_client", "-ign_eof", "-verify_return_error", version])
        .arg("-connect")
        .arg(addr.to_string())
        .args(["-servername", sni, "-CAfile"])
        .arg(&ca.crt)
        .arg(if resume { "-sess_in" } else { "-sess_out" })
        .arg(sess);
    if let Some(c) = client {
        cmd.arg("-cert").arg(&c.crt).arg("-key").arg(&c.key);
    }
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl is installed by tests/setup.sh");
    let request = format!("GET / HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    if !text.contains("HTTP/1.1 200") {
        return None;
    }
    let proto = if version == "-tls1_3" {
        "TLSv1.3"
    } else {
        "TLSv1.2"
    };
    if text.contains(&format!("Reused, {proto}")) {
        Some(true)
    } else if text.contains(&format!("New, {proto}")) {
        Some(false)
    } else {
        None
    }
}

#[test]
fn sessions_resume_across_reloads_but_not_across_servers_or_client_cas() {
    let s = Setup::new("resume");
    let ca = pki::ca(&s.pki(), "ca");
    let client_ca = pki::ca(&s.pki(), "client-ca");
    let leaf = pki::leaf(&s.pki(), &ca, "leaf", "/CN=gateway", &["DNS:*.example.com"]);
    let client = pki::leaf(
        &s.pki(),
        &client_ca,
        "client",
        "/CN=client",
        &["DNS:c.example.com"],
    );
    pki::install_credential(&s.creds(), "simple", &leaf, None);
    pki::install_credential(&s.creds(), "mutual", &leaf, Some(&client_ca));
    let other_port = free_port();
    let up = Upstream::start("app");
    let yaml = |extra_host: &str| {
        format!(
            "{GW}  - port: {{number: {{PORT}}, name: https, protocol: HTTPS}}\n    tls: {{mode: SIMPLE, credentialName: simple}}\n    hosts: [a.example.com{extra_host}]\n  - port: {{number: {{PORT}}, name: https-mutual, protocol: HTTPS}}\n    tls: {{mode: MUTUAL, credentialName: mutual}}\n    hosts: [m.example.com]\n  - port: {{number: {other_port}, name: https-other, protocol: HTTPS}}\n    tls: {{mode: SIMPLE, serverCertificate: {{PKI}}/leaf.crt, privateKey: {{PKI}}/leaf.key}}\n    hosts: [a.example.com]\n{}{}",
            service("app.internal", 80, up.port(), "app: a"),
            http_vs("all", "\"*.example.com\"", "app.internal"),
        )
    };
    s.config(&yaml(""));
    let gw = s.start();
    let other: SocketAddr = format!("127.0.0.1:{other_port}").parse().unwrap();
    let sess = |name: &str| s.dir.join(format!("{name}.sess"));
    for v in ["-tls1_2", "-tls1_3"] {
        let f = sess(v);
        assert_eq!(
            handshake(s.addr(), "a.example.com", &ca, None, v, &f, false),
            Some(false),
            "{v}"
        );
        assert_eq!(
            handshake(s.addr(), "a.example.com", &ca, None, v, &f, true),
            Some(true),
            "{v} resumes"
        );
        // Another server (its own port and credential) does not take the session.
        assert_eq!(
            handshake(other, "a.example.com", &ca, None, v, &f, true),
            Some(false),
            "{v} elsewhere"
        );
    }
    // A reload (a host added to the server) keeps the server's sessions.
    s.config(&yaml(", b.example.com"));
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &gw.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let t = Instant::now();
    while !get(gw.admin, "admin", "/server_info", &[])
        .text()
        .replace(' ', "")
        .contains("\"config_generation\":2")
    {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no reload:\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        handshake(
            s.addr(),
            "b.example.com",
            &ca,
            None,
            "-tls1_2",
            &sess("b"),
            false
        ),
        Some(false)
    );
    for v in ["-tls1_2", "-tls1_3"] {
        assert_eq!(
            handshake(s.addr(), "a.example.com", &ca, None, v, &sess(v), true),
            Some(true),
            "{v} after reload"
        );
    }
    // MUTUAL: resumes while the client CA stays; a changed CA file starts afresh, so a
    // session verified against the old CA cannot come back.
    let m = sess("mutual");
    let mutual = |resume| {
        handshake(
            s.addr(),
            "m.example.com",
            &ca,
            Some(&client),
            "-tls1_3",
            &m,
            resume,
        )
    };
    assert_eq!(mutual(false), Some(false));
    assert_eq!(mutual(true), Some(true));
    let ca_file = s.creds().join("mutual/ca.crt");
    let mut pem = std::fs::read_to_string(&ca_file).unwrap();
    pem.push('\n');
    std::fs::write(&ca_file, pem).unwrap();
    let t = Instant::now();
    while s.log().matches("credential reloaded").count() < 1 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no refresh:\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        mutual(true),
        Some(false),
        "a session from before the CA change resumed"
    );
}
