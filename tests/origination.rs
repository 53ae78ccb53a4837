//! TLS origination (DestinationRule `trafficPolicy.tls`, modes SIMPLE and MUTUAL) as
//! Istio documents it: plain HTTP in, TLS to a real TLS upstream out, verified against the
//! rule's `caCertificates` and the SNI (or a `subjectAltNames` entry); an upstream the CA
//! does not vouch for gets 503 UF, never plain text and never a 200; MUTUAL presents
//! `clientCertificate`/`privateKey` to an upstream that requires one; the upstream sees
//! the rule's `sni`, else the request's host (Istio's auto SNI, verified too).
//!
//! Two real upstreams, with certificates made at test time: the rustls one of
//! `common::peers`, and Python's `http.server` + `ssl` (tests/tools/origination_upstream.py),
//! which reports the SNI and client certificate it saw, can require a client certificate,
//! and logs handshakes it refused.

mod common;
use common::config::{gateway, start, vs};
use common::net::*;
use common::peers::TlsUpstream;
use common::{pki, scratch, write};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

const HOST: &str = "a.example.com";

fn setup(name: &str, tls: &str) -> (Gateway, std::net::SocketAddr, TlsUpstream) {
    let dir = scratch(name);
    let ca = pki::ca(&dir.join("pki"), "ca");
    let leaf = pki::leaf(
        &dir.join("pki"),
        &ca,
        "api",
        "/CN=api.internal",
        // The client's host too: without `sni` the gateway sends and verifies it.
        &["DNS:api.internal", &format!("DNS:{HOST}")],
    );
    let other_ca = pki::ca(&dir.join("pki-other"), "other");
    let up = TlsUpstream::start("secure", &leaf);
    let yaml = format!(
        "{}---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: api}}\nspec:\n  hosts: [api.internal]\n  ports: [{{number: 443, name: https, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints: [{{address: 127.0.0.1, ports: {{https: {}}}}}]\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: api}}\nspec:\n  host: api.internal\n  trafficPolicy:\n    tls: {}\n{}",
        gateway("gw", "[\"*\"]"),
        up.port(),
        tls.replace("{CA}", &ca.crt.display().to_string())
            .replace("{OTHER_CA}", &other_ca.crt.display().to_string()),
        vs("v", &format!("[{HOST}]"), "[gw]", "  - route: [{destination: {host: api.internal}}]\n"),
    );
    let (gw, addr) = start(name, &yaml);
    (gw, addr, up)
}

#[test]
fn simple_tls_to_the_upstream_verified_by_the_rules_ca() {
    let (_gw, addr, up) = setup(
        "origination-simple",
        "{mode: SIMPLE, caCertificates: \"{CA}\"}",
    );
    let r = get(addr, HOST, "/x", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("secure"), "{}", r.text());
    let _ = up;
}

#[test]
fn an_upstream_the_ca_does_not_vouch_for_is_refused_not_sent_plain_text() {
    let (_gw, addr, _up) = setup(
        "origination-wrong-ca",
        "{mode: SIMPLE, caCertificates: \"{OTHER_CA}\"}",
    );
    let r = get(addr, HOST, "/x", &[]);
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("upstream connect error"), "{}", r.text());
}

#[test]
fn the_name_checked_is_the_sni_or_a_subject_alt_name() {
    // The SNI names a host the certificate lacks: refused ...
    let (_gw, addr, _up) = setup(
        "origination-wrong-sni",
        "{mode: SIMPLE, caCertificates: \"{CA}\", sni: nope.internal}",
    );
    assert_eq!(get(addr, HOST, "/x", &[]).status, 503);
    // ... unless subjectAltNames names the one it has.
    let (_gw, addr, _up) = setup(
        "origination-san",
        "{mode: SIMPLE, caCertificates: \"{CA}\", sni: nope.internal, subjectAltNames: [api.internal]}",
    );
    assert_eq!(get(addr, HOST, "/x", &[]).status, 200);
    // insecureSkipVerify: any certificate.
    let (_gw, addr, _up) = setup(
        "origination-insecure",
        "{mode: SIMPLE, insecureSkipVerify: true}",
    );
    assert_eq!(get(addr, HOST, "/x", &[]).status, 200);
}

// ---------------------------------------------------------------------------------------
// Against a second real upstream: Python's `http.server` behind `ssl.SSLContext`
// (tests/tools/origination_upstream.py), which reports the SNI it received and the client
// certificate it was shown, can require a client certificate, and logs failed handshakes,
// so "refused at the handshake" is told from "a request arrived".
// ---------------------------------------------------------------------------------------

/// The real TLS upstream of tests/tools/origination_upstream.py; stopped when dropped
/// (and, should the test process die, when its stdin closes).
struct PyTlsUpstream {
    child: Child,
    _stdin: ChildStdin,
    port: u16,
    events: PathBuf,
}

impl PyTlsUpstream {
    /// Serves `leaf`; with `client_ca`, requires a client certificate that CA signed.
    fn start(dir: &Path, leaf: &pki::Cert, client_ca: Option<&pki::Cert>) -> PyTlsUpstream {
        let events = dir.join("upstream-events.log");
        let stderr_path = dir.join("upstream-stderr.log");
        let mut cmd = Command::new("python3");
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/origination_upstream.py"))
            .arg("--cert")
            .arg(&leaf.crt)
            .arg("--key")
            .arg(&leaf.key)
            .arg("--log")
            .arg(&events);
        if let Some(ca) = client_ca {
            cmd.arg("--client-ca").arg(&ca.crt);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .expect("python3 is installed");
        let stdin = child.stdin.take().unwrap();
        let mut line = String::new();
        let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        let Some(port) = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
        else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the TLS upstream did not start ({line:?}): {}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        };
        PyTlsUpstream {
            child,
            _stdin: stdin,
            port,
            events,
        }
    }

    /// Every event so far: `request METHOD PATH sni=S client=C`, `handshake-failed ...`.
    fn events(&self) -> Vec<String> {
        std::fs::read_to_string(&self.events)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The requests that reached the upstream (over a completed handshake) for `path`.
    fn requests_for(&self, path: &str) -> Vec<String> {
        let prefix = format!("request GET {path} ");
        self.events()
            .into_iter()
            .filter(|l| l.starts_with(&prefix))
            .collect()
    }

    /// Handshakes the upstream refused, once it has logged at least `at_least` (or 5 s
    /// passed): the upstream logs a refusal after the gateway has seen it fail.
    fn handshake_failures(&self, at_least: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let n = self
                .events()
                .iter()
                .filter(|l| l.starts_with("handshake-failed"))
                .count();
            if n >= at_least || Instant::now() > deadline {
                return n;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PyTlsUpstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A ServiceEntry `host` on port 443 (the gateway speaks HTTP to it; the DestinationRule
/// adds TLS, as in Istio's egress TLS origination task) whose one endpoint is the
/// upstream, and its DestinationRule with `trafficPolicy.tls: <tls>`.
fn tls_service(host: &str, port: u16, tls: &str) -> String {
    let name = host.replace('.', "-");
    format!(
        "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}}}\nspec:\n  hosts: [{host}]\n  ports: [{{number: 443, name: https, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints: [{{address: 127.0.0.1, ports: {{https: {port}}}}}]\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}}}\nspec:\n  host: {host}\n  trafficPolicy:\n    tls: {tls}\n"
    )
}

/// HTTP routes of a VirtualService: each `(prefix, service host)`.
fn prefix_routes(routes: &[(&str, &str)]) -> String {
    routes
        .iter()
        .map(|(prefix, host)| {
            format!(
                "  - match: [{{uri: {{prefix: {prefix}}}}}]\n    route: [{{destination: {{host: {host}}}}}]\n"
            )
        })
        .collect()
}

/// `"PATH"`: a PEM file's path as a quoted YAML scalar.
fn q(p: &Path) -> String {
    format!("\"{}\"", p.display())
}

/// What the access log says about one request (format below).
#[derive(Debug)]
struct LogLine {
    code: String,
    flags: String,
    details: String,
}

/// A started gateway writing an access log: `%REQ(:PATH)% %RESPONSE_CODE%
/// %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%` per request.
struct Logged {
    _gw: Gateway,
    addr: SocketAddr,
    log: PathBuf,
}

impl Logged {
    /// The access log's line for `path` (waiting for the writer's one-second flush).
    fn line(&self, path: &str) -> LogLine {
        let t = Instant::now();
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(l) = text.lines().find(|l| l.split(' ').next() == Some(path)) {
                let f: Vec<&str> = l.splitn(4, ' ').collect();
                return LogLine {
                    code: f.get(1).unwrap_or(&"").to_string(),
                    flags: f.get(2).unwrap_or(&"").to_string(),
                    details: f.get(3).unwrap_or(&"").to_string(),
                };
            }
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "no access log line for {path}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Writes a MeshConfig with an access log and `yaml` (`{PORT}`: the HTTP port), and
/// starts the gateway.
fn start_logged(name: &str, yaml: &str) -> Logged {
    let dir = scratch(name);
    let port = free_port();
    write(
        &dir,
        "conf/mesh.yaml",
        "apiVersion: meshgate.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: m}\nspec:\n  defaultBindAddress: 127.0.0.1\n  accessLogFile: access.log\n  accessLogFormat: \"%REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%\\n\"\n",
    );
    write(
        &dir,
        "conf/all.yaml",
        &yaml.replace("{PORT}", &port.to_string()),
    );
    let gw = Gateway::start(&dir);
    Logged {
        _gw: gw,
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
        log: dir.join("conf/access.log"),
    }
}

/// Envoy's local reply for an upstream that could not be connected to (TLS included).
fn assert_connect_failure(r: &Reply, what: &str) {
    assert_eq!(r.status, 503, "{what}: {} {}", r.status, r.text());
    assert!(
        r.text()
            .starts_with("upstream connect error or disconnect/reset before headers."),
        "{what}: {}",
        r.text()
    );
}

#[test]
fn simple_with_a_ca_that_did_not_sign_the_upstream_is_503_uf_and_never_reaches_it() {
    let dir = scratch("origination-py-wrong-ca");
    let ca = pki::ca(&dir.join("pki"), "ca");
    // A second CA made now: valid, but it signed nothing the upstream has.
    let other = pki::ca(&dir.join("pki-other"), "other");
    let leaf = pki::leaf(
        &dir.join("pki"),
        &ca,
        "srv",
        "/CN=right.internal",
        &[
            "DNS:right.internal",
            "DNS:wrong.internal",
            &format!("DNS:{HOST}"),
        ],
    );
    let up = PyTlsUpstream::start(&dir, &leaf, None);
    let yaml = format!(
        "{}{}{}{}",
        gateway("gw", "[\"*\"]"),
        tls_service(
            "right.internal",
            up.port,
            &format!("{{mode: SIMPLE, caCertificates: {}}}", q(&ca.crt))
        ),
        tls_service(
            "wrong.internal",
            up.port,
            &format!("{{mode: SIMPLE, caCertificates: {}}}", q(&other.crt))
        ),
        vs(
            "v",
            &format!("[{HOST}]"),
            "[gw]",
            &prefix_routes(&[("/right", "right.internal"), ("/wrong", "wrong.internal")])
        ),
    );
    let g = start_logged("origination-py-wrong-ca", &yaml);

    // The same upstream, the right CA: 200 over TLS (the control).
    let ok = get(g.addr, HOST, "/right", &[]);
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(
        ok.header("x-seen-sni"),
        Some(HOST),
        "no `sni`: the request's host"
    );

    let failures_before = up.handshake_failures(0);
    let r = get(g.addr, HOST, "/wrong", &[]);
    assert_connect_failure(&r, "a CA that did not sign the upstream's certificate");
    assert!(
        r.text().contains("connection failure"),
        "Envoy's reset reason: {}",
        r.text()
    );
    let l = g.line("/wrong");
    assert_eq!(l.code, "503", "{l:?}");
    assert!(
        l.flags.split(',').any(|f| f == "UF"),
        "response flags say UF: {l:?}"
    );
    assert!(
        l.details.contains("connection_failure"),
        "response code details: {l:?}"
    );
    assert_eq!(g.line("/right").flags, "-");
    // TLS was tried (the upstream saw handshakes it lost), and no request reached it.
    assert!(
        up.handshake_failures(failures_before + 1) > failures_before,
        "{:?}",
        up.events()
    );
    assert!(up.requests_for("/wrong").is_empty(), "{:?}", up.events());
}

#[test]
fn subject_alt_names_are_the_names_the_upstream_certificate_must_carry() {
    let dir = scratch("origination-py-san");
    let ca = pki::ca(&dir.join("pki"), "ca");
    // The certificate carries only the right name, none of the service hosts.
    let leaf = pki::leaf(
        &dir.join("pki"),
        &ca,
        "srv",
        "/CN=right-name.example",
        &["DNS:right-name.example"],
    );
    let up = PyTlsUpstream::start(&dir, &leaf, None);
    let simple = |san: &str| {
        format!(
            "{{mode: SIMPLE, caCertificates: {}, subjectAltNames: [{san}]}}",
            q(&ca.crt)
        )
    };
    let yaml = format!(
        "{}{}{}{}",
        gateway("gw", "[\"*\"]"),
        tls_service(
            "other.internal",
            up.port,
            &simple("some-other-name.example")
        ),
        tls_service("right.internal", up.port, &simple("right-name.example")),
        vs(
            "v",
            &format!("[{HOST}]"),
            "[gw]",
            &prefix_routes(&[("/other", "other.internal"), ("/right", "right.internal")])
        ),
    );
    let g = start_logged("origination-py-san", &yaml);

    let r = get(g.addr, HOST, "/other", &[]);
    assert_connect_failure(&r, "subjectAltNames the certificate does not carry");
    assert!(g.line("/other").flags.split(',').any(|f| f == "UF"));
    assert!(up.requests_for("/other").is_empty(), "{:?}", up.events());

    let r = get(g.addr, HOST, "/right", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().starts_with("origination-upstream "),
        "{}",
        r.text()
    );
    assert_eq!(up.requests_for("/right").len(), 1, "{:?}", up.events());
}

#[test]
fn mutual_presents_the_client_certificate_an_upstream_requires() {
    let dir = scratch("origination-py-mutual");
    let ca = pki::ca(&dir.join("pki"), "ca");
    let client_ca = pki::ca(&dir.join("pki-client"), "client-ca");
    let leaf = pki::leaf(
        &dir.join("pki"),
        &ca,
        "srv",
        "/CN=mutual.internal",
        &[
            "DNS:mutual.internal",
            "DNS:simple.internal",
            "DNS:rogue.internal",
            &format!("DNS:{HOST}"),
        ],
    );
    let client = pki::leaf(
        &dir.join("pki-client"),
        &client_ca,
        "gateway-client",
        "/CN=gateway-client",
        &["DNS:gateway-client.example"],
    );
    // A client certificate the upstream's client CA did not sign.
    let rogue = pki::leaf(
        &dir.join("pki"),
        &ca,
        "rogue-client",
        "/CN=rogue-client",
        &["DNS:rogue-client.example"],
    );
    let up = PyTlsUpstream::start(&dir, &leaf, Some(&client_ca));
    let mutual = |c: &pki::Cert| {
        format!(
            "{{mode: MUTUAL, clientCertificate: {}, privateKey: {}, caCertificates: {}}}",
            q(&c.crt),
            q(&c.key),
            q(&ca.crt)
        )
    };
    let yaml = format!(
        "{}{}{}{}{}",
        gateway("gw", "[\"*\"]"),
        tls_service("mutual.internal", up.port, &mutual(&client)),
        tls_service(
            "simple.internal",
            up.port,
            &format!("{{mode: SIMPLE, caCertificates: {}}}", q(&ca.crt))
        ),
        tls_service("rogue.internal", up.port, &mutual(&rogue)),
        vs(
            "v",
            &format!("[{HOST}]"),
            "[gw]",
            &prefix_routes(&[
                ("/mutual", "mutual.internal"),
                ("/simple", "simple.internal"),
                ("/rogue", "rogue.internal"),
            ])
        ),
    );
    let g = start_logged("origination-py-mutual", &yaml);

    let r = get(g.addr, HOST, "/mutual", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-client-cert"),
        Some("gateway-client"),
        "the upstream saw the rule's client certificate"
    );
    assert_eq!(
        r.header("x-seen-sni"),
        Some(HOST),
        "no `sni`: the request's host"
    );

    // The same upstream without a client certificate (SIMPLE): refused.
    let r = get(g.addr, HOST, "/simple", &[]);
    assert_connect_failure(
        &r,
        "SIMPLE to an upstream that requires a client certificate",
    );
    assert_eq!(g.line("/simple").code, "503");
    assert!(up.requests_for("/simple").is_empty(), "{:?}", up.events());

    // MUTUAL with a certificate the upstream's client CA did not sign: refused too.
    let r = get(g.addr, HOST, "/rogue", &[]);
    assert_connect_failure(&r, "a client certificate of another CA");
    assert!(up.requests_for("/rogue").is_empty(), "{:?}", up.events());
    assert!(up.handshake_failures(2) >= 2, "{:?}", up.events());
}

/// The SNI tests' upstream: its certificate carries every name an SNI below may be, so
/// only the SNI sent is under test.
fn sni_setup(
    name: &str,
    services_and_routes: impl Fn(u16, &Path) -> String,
) -> (Logged, PyTlsUpstream) {
    let dir = scratch(name);
    let ca = pki::ca(&dir.join("pki"), "ca");
    let leaf = pki::leaf(
        &dir.join("pki"),
        &ca,
        "srv",
        "/CN=api.internal",
        &[
            "DNS:api.internal",
            "DNS:custom.internal",
            "DNS:custom-sni.example",
            "DNS:right-name.example",
            &format!("DNS:{HOST}"),
        ],
    );
    let up = PyTlsUpstream::start(&dir, &leaf, None);
    let yaml = format!(
        "{}{}",
        gateway("gw", "[\"*\"]"),
        services_and_routes(up.port, &ca.crt)
    );
    (start_logged(name, &yaml), up)
}

#[test]
fn the_upstream_sees_the_rules_sni_else_the_requests_host() {
    let (g, _up) = sni_setup("origination-py-sni", |port, ca| {
        format!(
            "{}{}{}{}",
            tls_service(
                "custom.internal",
                port,
                &format!(
                    "{{mode: SIMPLE, caCertificates: {}, sni: custom-sni.example}}",
                    q(ca)
                )
            ),
            tls_service(
                "api.internal",
                port,
                &format!("{{mode: SIMPLE, caCertificates: {}}}", q(ca))
            ),
            vs(
                "custom",
                &format!("[{HOST}]"),
                "[gw]",
                &prefix_routes(&[("/", "custom.internal")])
            ),
            // Istio's egress TLS origination task: the client names the service itself.
            vs(
                "api",
                "[api.internal]",
                "[gw]",
                &prefix_routes(&[("/", "api.internal")])
            ),
        )
    });
    let r = get(g.addr, HOST, "/custom", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-seen-sni"), Some("custom-sni.example"));

    let r = get(g.addr, "api.internal", "/default", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-seen-sni"),
        Some("api.internal"),
        "no `sni`: the request's host, here the service's own name"
    );
}

#[test]
fn without_sni_the_upstream_sees_the_requests_authority_as_istio_documents() {
    let (g, _up) = sni_setup("origination-py-auto-sni", |port, ca| {
        format!(
            "{}{}",
            tls_service(
                "api.internal",
                port,
                &format!("{{mode: SIMPLE, caCertificates: {}}}", q(ca))
            ),
            vs(
                "v",
                &format!("[{HOST}]"),
                "[gw]",
                &prefix_routes(&[("/", "api.internal")])
            ),
        )
    });
    let r = get(g.addr, HOST, "/auto", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-seen-sni"), Some(HOST));
}

#[test]
fn unusable_origination_files_are_warned_and_only_that_destination_gets_503() {
    let up = Upstream::start("plain");
    let yaml = format!(
        "{}{}---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: api}}\nspec:\n  hosts: [api.internal]\n  ports: [{{number: 443, name: https, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints: [{{address: 127.0.0.1, ports: {{https: {}}}}}]\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: api}}\nspec:\n  host: api.internal\n  trafficPolicy:\n    tls: {{mode: SIMPLE, caCertificates: /nonexistent/ca.pem}}\n{}",
        gateway("gw", "[\"*\"]"),
        common::config::service("plain.internal", &[(&up, "")]),
        up.port(),
        vs(
            "v",
            &format!("[{HOST}]"),
            "[gw]",
            "  - match: [{uri: {prefix: /plain}}]\n    route: [{destination: {host: plain.internal}}]\n  - route: [{destination: {host: api.internal}}]\n"
        ),
    );
    // `validate` names the field and the file.
    let dir = scratch("origination-bad-files-validate");
    let file = write(&dir, "all.yaml", &yaml.replace("{PORT}", "18080"));
    let (code, stderr, _) = common::validate(&[&file], &[]);
    assert_eq!(code, 0, "a warning, not an error: {stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("spec.trafficPolicy.tls.caCertificates")
                && l.contains("/nonexistent/ca.pem")
                && l.contains("503")),
        "{stderr}"
    );
    // `run` serves: that destination answers 503 (never plain text), the other 200.
    let (_gw, addr) = start("origination-bad-files", &yaml);
    let r = get(addr, HOST, "/x", &[]);
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("upstream connect error"), "{}", r.text());
    assert_eq!(
        up.conns.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing reached it in plain text"
    );
    assert_eq!(get(addr, HOST, "/plain", &[]).status, 200);
}
