//! The egress role end to end, through the real binary: a Gateway selecting
//! `istio: egressgateway` (the instance carries that label through MeshConfig `labels`),
//! external services played by local servers under a test CA that curl and the gateway
//! trust (`--cacert`, and `SSL_CERT_FILE` for the gateway's system roots, so Istio's task
//! YAML stays unchanged), their names pinned to loopback with MeshConfig `hostAliases`.
//!
//! - Istio's egress-gateway-tls-passthrough task: a `tls` route by `sniHosts` to the
//!   ServiceEntry; curl verifies the external server's own certificate through the gateway.
//! - An SNI no route takes goes by the ServiceEntry registry: a registered name to its
//!   entry's endpoints, a wildcard entry without endpoints (`resolution` DNS, DYNAMIC_DNS or
//!   NONE) to the name itself resolved;
//!   an unregistered name is closed after the ClientHello under REGISTRY_ONLY (nothing
//!   reaches any server) or passed through to the name under ALLOW_ANY.
//! - HTTP egress: Istio's egress-tls-origination DestinationRule (plain HTTP in, TLS out,
//!   SNI = Host, verified with the system roots); an unregistered Host is 502 NR under
//!   REGISTRY_ONLY and passed through under ALLOW_ANY.
//! - The audit trail: one access-log line per egress connection
//!   (`%RESPONSE_CODE_DETAILS%`, `%UPSTREAM_CLUSTER%`, `%REQUESTED_SERVER_NAME%`) and
//!   `meshgate_egress_connections_total`, which never carries an unregistered name.
//!
//! Every test serves Istio's own ports (443, 80) on addresses of its own in
//! `127.78.0.0/16` (`.1`: the gateway, `.2`: "the internet" under ALLOW_ANY, `.3`, `.5`:
//! further gateways), so no free-port race and no clash between tests; like
//! tests/istio_routing.rs this needs root or `CAP_NET_BIND_SERVICE`.

mod common;
use common::net::{get, Gateway, Reply};
use common::peers::{curl, CurlOut};
use common::{pki, scratch, validate, warning_lines, write};
use regex::Regex;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The access log: one line per exchange, fields separated by spaces (none of them holds
/// one).
const LOG_FORMAT: &str = "%REQUESTED_SERVER_NAME% %REQ(:AUTHORITY)% %REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %UPSTREAM_CLUSTER% %UPSTREAM_HOST%\\n";

/// The egress counter of the admin scrape.
const METRIC: &str = "meshgate_egress_connections_total";

// ---------------------------------------------------------------------------------------
// Peers: "external" servers on loopback.
// ---------------------------------------------------------------------------------------

/// A TLS server playing an external host: its own certificate, the SNI it saw reported in
/// `x-seen-sni` (and the body), every accepted TCP connection counted and every event
/// kept (`request SNI HOST PATH`, `handshake-failed SNI ERROR`).
struct TlsServer {
    addr: SocketAddr,
    conns: Arc<AtomicUsize>,
    events: Arc<Mutex<Vec<String>>>,
}

impl TlsServer {
    /// Listens on `bind` (`IP:PORT`, port 0 for any) with `cert`.
    fn start(bind: &str, name: &str, cert: &pki::Cert) -> TlsServer {
        let config = common::peers::server_config(cert);
        let listener =
            TcpListener::bind(bind).unwrap_or_else(|e| panic!("bind the TLS server {bind}: {e}"));
        let addr = listener.local_addr().unwrap();
        let conns = Arc::new(AtomicUsize::new(0));
        let events = Arc::new(Mutex::new(Vec::new()));
        let (c, ev, name) = (conns.clone(), events.clone(), name.to_string());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                c.fetch_add(1, Ordering::SeqCst);
                let (config, ev, name) = (config.clone(), ev.clone(), name.clone());
                std::thread::spawn(move || serve_tls(conn, config, &ev, &name));
            }
        });
        TlsServer {
            addr,
            conns,
            events,
        }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn conns(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }

    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }

    fn requests(&self) -> Vec<String> {
        self.events()
            .into_iter()
            .filter(|e| e.starts_with("request "))
            .collect()
    }
}

fn serve_tls(
    conn: TcpStream,
    config: Arc<rustls::ServerConfig>,
    events: &Mutex<Vec<String>>,
    name: &str,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(session) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(session, conn);
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match tls.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            Ok(_) => return,
            Err(e) => {
                let sni = tls.conn.server_name().unwrap_or("-").to_string();
                if tls.conn.is_handshaking() {
                    events
                        .lock()
                        .unwrap()
                        .push(format!("handshake-failed {sni} {e}"));
                }
                return;
            }
        }
    }
    let sni = tls.conn.server_name().unwrap_or("-").to_string();
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = head.split_whitespace().nth(1).unwrap_or("-").to_string();
    let host = head
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("host"))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "-".into());
    events
        .lock()
        .unwrap()
        .push(format!("request {sni} {host} {path}"));
    let body = format!("{name} sni={sni} path={path}\n");
    let _ = tls.write_all(
        format!(
            "HTTP/1.1 200 OK\r\nx-seen-sni: {sni}\r\nx-upstream: {name}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

/// A plain HTTP/1.1 server on `bind` answering `200` with `x-upstream: <name>`, keeping
/// `HOST PATH` of every request and counting connections.
struct HttpServer {
    conns: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl HttpServer {
    fn start(bind: &str, name: &str) -> HttpServer {
        let listener =
            TcpListener::bind(bind).unwrap_or_else(|e| panic!("bind the HTTP server {bind}: {e}"));
        let conns = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (c, s, name) = (conns.clone(), seen.clone(), name.to_string());
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                c.fetch_add(1, Ordering::SeqCst);
                let (s, name) = (s.clone(), name.clone());
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
                        match conn.read(&mut byte) {
                            Ok(1) => head.push(byte[0]),
                            _ => return,
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let path = head.split_whitespace().nth(1).unwrap_or("-").to_string();
                    let host = head
                        .lines()
                        .find_map(|l| {
                            l.split_once(':')
                                .filter(|(k, _)| k.eq_ignore_ascii_case("host"))
                                .map(|(_, v)| v.trim().to_string())
                        })
                        .unwrap_or_else(|| "-".into());
                    s.lock().unwrap().push(format!("{host} {path}"));
                    let body = format!("{name} {path}\n");
                    let _ = conn.write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nx-upstream: {name}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    );
                });
            }
        });
        HttpServer { conns, seen }
    }

    fn conns(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// A test CA and one server leaf for `names` (DNS SANs), under `dir/pki`.
fn pki_for(dir: &Path, names: &[&str]) -> (pki::Cert, pki::Cert) {
    let ca = pki::ca(&dir.join("pki"), "egress-test-ca");
    let sans: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
    let sans: Vec<&str> = sans.iter().map(String::as_str).collect();
    let leaf = pki::leaf(
        &dir.join("pki"),
        &ca,
        "external",
        &format!("/CN={}/O=external", names[0]),
        &sans,
    );
    (ca, leaf)
}

// ---------------------------------------------------------------------------------------
// The gateway: `meshgate run` with SSL_CERT_FILE, an egress MeshConfig and an access log.
// ---------------------------------------------------------------------------------------

/// A running egress gateway listening on `ip`.
struct Egress {
    gw: Gateway,
    dir: PathBuf,
    ip: String,
}

/// Writes the MeshConfig (instance label `istio: egressgateway`, bind address `ip`, the
/// access log in [`LOG_FORMAT`], plus `mesh_extra` lines under `spec`) and `yaml`, and
/// starts `meshgate run` with `SSL_CERT_FILE=<roots>` (or with SSL_CERT_FILE and
/// SSL_CERT_DIR removed for `None`); waits for `/ready`.
fn start(name: &str, ip: &str, mesh_extra: &str, yaml: &str, roots: Option<&Path>) -> Egress {
    let dir = scratch(name);
    write(
        &dir,
        "conf/mesh.yaml",
        &format!(
            "apiVersion: meshgate.io/v1alpha1\nkind: MeshConfig\nmetadata: {{name: m}}\nspec:\n  defaultBindAddress: {ip}\n  labels: {{istio: egressgateway}}\n  accessLogFile: access.log\n  accessLogFormat: \"{LOG_FORMAT}\"\n{mesh_extra}"
        ),
    );
    write(&dir, "conf/all.yaml", yaml);
    let gw = Gateway::try_start_with(&dir, |cmd| match roots {
        Some(p) => {
            cmd.env("SSL_CERT_FILE", p);
        }
        None => {
            cmd.env_remove("SSL_CERT_FILE").env_remove("SSL_CERT_DIR");
        }
    })
    .unwrap_or_else(|e| panic!("meshgate: {e}"));
    Egress {
        gw,
        dir,
        ip: ip.to_string(),
    }
}

/// One access-log line, split into the fields of [`LOG_FORMAT`].
#[derive(Debug, Clone)]
struct LogLine {
    sni: String,
    authority: String,
    path: String,
    code: String,
    flags: String,
    details: String,
    cluster: String,
    upstream: String,
}

impl LogLine {
    fn parse(l: &str) -> Option<LogLine> {
        let f: Vec<&str> = l.split(' ').collect();
        if f.len() != 8 {
            return None;
        }
        Some(LogLine {
            sni: f[0].into(),
            authority: f[1].into(),
            path: f[2].into(),
            code: f[3].into(),
            flags: f[4].into(),
            details: f[5].into(),
            cluster: f[6].into(),
            upstream: f[7].into(),
        })
    }

    fn has_flag(&self, flag: &str) -> bool {
        self.flags.split(',').any(|f| f == flag)
    }
}

impl Egress {
    /// The gateway's address on `port`.
    fn addr(&self, port: u16) -> SocketAddr {
        format!("{}:{port}", self.ip).parse().unwrap()
    }

    /// `curl https://NAME:443/PATH` through the gateway, trusting only `ca`.
    fn curl_tls(&self, name: &str, path: &str, ca: &pki::Cert) -> CurlOut {
        curl(&[
            "--resolve",
            &format!("{name}:443:{}", self.ip),
            "--cacert",
            ca.crt.to_str().unwrap(),
            &format!("https://{name}:443{path}"),
        ])
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("meshgate.log")).unwrap_or_default()
    }

    fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("conf/access.log")).unwrap_or_default()
    }

    /// Every parsed access-log line so far.
    fn lines(&self) -> Vec<LogLine> {
        self.access_log()
            .lines()
            .filter_map(LogLine::parse)
            .collect()
    }

    /// The first access-log line `pick` accepts, waiting (8 s at most) for the writer's
    /// one-second flush.
    fn line(&self, what: &str, pick: impl Fn(&LogLine) -> bool) -> LogLine {
        let t = Instant::now();
        loop {
            if let Some(l) = self.lines().into_iter().find(|l| pick(l)) {
                return l;
            }
            assert!(
                t.elapsed() < Duration::from_secs(8),
                "no access-log line for {what}:\n{}\ngateway log:\n{}",
                self.access_log(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The access-log line of the connection with SNI `sni`.
    fn sni_line(&self, sni: &str) -> LogLine {
        self.line(&format!("SNI {sni}"), |l| l.sni == sni)
    }

    /// `/stats/prometheus`.
    fn scrape(&self) -> String {
        let r: Reply = get(self.gw.admin, "admin", "/stats/prometheus", &[]);
        assert_eq!(r.status, 200, "{}", r.text());
        r.text()
    }
}

/// The value of `meshgate_egress_connections_total` with these labels in `scrape`.
fn egress_count(scrape: &str, decision: &str, service_entry: &str) -> f64 {
    let sample = Regex::new(&format!(r"^{METRIC}\{{([^}}]*)\}} (\S+)$")).unwrap();
    let label = Regex::new(r#"(\w+)="([^"]*)""#).unwrap();
    let mut total = 0.0;
    for l in scrape.lines() {
        let Some(c) = sample.captures(l) else {
            continue;
        };
        let labels: Vec<(String, String)> = label
            .captures_iter(&c[1])
            .map(|m| (m[1].to_string(), m[2].to_string()))
            .collect();
        let has = |k: &str, v: &str| labels.iter().any(|(lk, lv)| lk == k && lv == v);
        if has("decision", decision) && has("service_entry", service_entry) {
            total += c[2].parse::<f64>().unwrap();
        }
    }
    total
}

/// The metric's lines of a scrape (for messages).
fn metric_lines(scrape: &str) -> String {
    scrape
        .lines()
        .filter(|l| l.starts_with(METRIC))
        .collect::<Vec<_>>()
        .join("\n")
}

/// curl's outcome, for messages.
fn show(c: &CurlOut) -> String {
    format!(
        "exit {} status {} body {:?}\n{}",
        c.exit, c.status, c.body, c.trace
    )
}

/// curl went through the gateway and got the answer of the test server `server`: 200,
/// and the body it writes (the SNI it saw and the path).
fn assert_answered(c: &CurlOut, server: &str, sni: &str, path: &str) {
    assert_eq!(c.exit, 0, "curl through the gateway ({sni}): {}", show(c));
    assert_eq!(c.status, 200, "{sni}: {}", show(c));
    assert_eq!(
        c.body,
        format!("{server} sni={sni} path={path}\n"),
        "{}",
        show(c)
    );
}

/// An egress Gateway `name` with one PASSTHROUGH server on 443 for `hosts`.
fn tls_gateway(name: &str, hosts: &str) -> String {
    format!("---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: {name}}}\nspec:\n  selector: {{istio: egressgateway}}\n  servers:\n  - port: {{number: 443, name: tls, protocol: TLS}}\n    hosts: {hosts}\n    tls: {{mode: PASSTHROUGH}}\n")
}

/// An egress Gateway `name` with one HTTP server on 80 for `hosts`.
fn http_gateway(name: &str, hosts: &str) -> String {
    format!("---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: {name}}}\nspec:\n  selector: {{istio: egressgateway}}\n  servers:\n  - port: {{number: 80, name: http, protocol: HTTP}}\n    hosts: {hosts}\n")
}

/// A STATIC ServiceEntry `name` for `host` on port 443 (TLS) whose one endpoint is
/// 127.0.0.1:`port`.
fn static_tls_entry(name: &str, host: &str, port: u16) -> String {
    format!("---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}}}\nspec:\n  hosts: [{host}]\n  ports: [{{number: 443, name: tls, protocol: TLS}}]\n  resolution: STATIC\n  location: MESH_EXTERNAL\n  endpoints: [{{address: 127.0.0.1, ports: {{tls: {port}}}}}]\n")
}

// ---------------------------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------------------------

/// Istio's egress-gateway-tls-passthrough task, pasted (the sidecar half, `gateways:
/// [mesh]`, has no effect on a gateway): the `tls` route by `sniHosts` takes the SNI to the
/// ServiceEntry, and the client verifies the external server's own certificate.
#[test]
fn tls_passthrough_task_routes_the_sni_to_the_service_entry_end_to_end() {
    let dir = scratch("egress-task-passthrough");
    let (ca, leaf) = pki_for(&dir, &["edition.cnn.com"]);
    let cnn = TlsServer::start("127.0.0.1:0", "cnn", &leaf);
    let yaml = format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: cnn
spec:
  hosts:
  - edition.cnn.com
  ports:
  - number: 443
    name: tls
    protocol: TLS
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports:
      tls: {port}
{gateway}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: egressgateway-for-cnn
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
  - name: cnn
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: direct-cnn-through-egress-gateway
spec:
  hosts:
  - edition.cnn.com
  gateways:
  - mesh
  - istio-egressgateway
  tls:
  - match:
    - gateways:
      - mesh
      port: 443
      sniHosts:
      - edition.cnn.com
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        subset: cnn
        port:
          number: 443
  - match:
    - gateways:
      - istio-egressgateway
      port: 443
      sniHosts:
      - edition.cnn.com
    route:
    - destination:
        host: edition.cnn.com
        port:
          number: 443
      weight: 100
"#,
        port = cnn.port(),
        gateway = tls_gateway("istio-egressgateway", "[edition.cnn.com]"),
    );
    let g = start(
        "egress-task-passthrough",
        "127.78.1.1",
        "",
        &yaml,
        Some(&ca.crt),
    );

    let c = g.curl_tls("edition.cnn.com", "/politics", &ca);
    assert_answered(&c, "cnn", "edition.cnn.com", "/politics");
    // The certificate curl verified is the external server's own (the gateway has none).
    assert!(
        c.server_subject()
            .is_some_and(|s| s.contains("edition.cnn.com")),
        "server certificate: {:?}",
        c.server_subject()
    );
    assert_eq!(
        cnn.requests(),
        vec!["request edition.cnn.com edition.cnn.com /politics".to_string()]
    );
    let l = g.sni_line("edition.cnn.com");
    assert_eq!(l.cluster, "outbound|443||edition.cnn.com", "{l:?}");
    assert_eq!(l.upstream, cnn.addr.to_string(), "{l:?}");
    assert_eq!(l.flags, "-", "{l:?}");
}

/// An SNI no `tls` route takes, registered by a ServiceEntry on the port: to that entry's
/// endpoints, under REGISTRY_ONLY too; the audit line says `egress_allowed` with the
/// entry's cluster, and the metric counts it under the entry's `ns/name`.
#[test]
fn sni_without_a_route_goes_to_the_registered_service_entry() {
    let dir = scratch("egress-sni-registered");
    let (ca, leaf) = pki_for(&dir, &["api.partner.example"]);
    let partner = TlsServer::start("127.0.0.1:0", "partner", &leaf);
    let yaml = format!(
        "{}{}",
        tls_gateway("egress", "[\"*\"]"),
        static_tls_entry("partner", "api.partner.example", partner.port()),
    );
    let g = start(
        "egress-sni-registered",
        "127.78.2.1",
        "  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n",
        &yaml,
        Some(&ca.crt),
    );

    let c = g.curl_tls("api.partner.example", "/v1/orders", &ca);
    assert_answered(&c, "partner", "api.partner.example", "/v1/orders");
    assert_eq!(partner.requests().len(), 1, "{:?}", partner.events());

    let l = g.sni_line("api.partner.example");
    assert_eq!(l.details, "egress_allowed", "{l:?}");
    assert_eq!(l.cluster, "outbound|443||api.partner.example", "{l:?}");
    assert_eq!(l.upstream, partner.addr.to_string(), "{l:?}");
    assert_eq!(l.flags, "-", "{l:?}");
    let scrape = g.scrape();
    assert_eq!(
        egress_count(&scrape, "allowed", "default/partner"),
        1.0,
        "{}",
        metric_lines(&scrape)
    );
}

/// REGISTRY_ONLY: an SNI no ServiceEntry registers is closed after the ClientHello;
/// nothing reaches the registered server nor the server the name resolves to; the audit
/// line says refused (NR) and the metric counts `refused`/`unregistered`, never the name.
/// The same config under ALLOW_ANY takes the name to its resolved address on the
/// listener's port (Envoy's PassthroughCluster).
#[test]
fn registry_only_closes_an_unregistered_sni_and_allow_any_passes_it_through() {
    const NAME: &str = "unlisted-42.example.net";
    let dir = scratch("egress-sni-unregistered");
    let (ca, leaf) = pki_for(&dir, &["api.partner.example", NAME]);
    let partner = TlsServer::start("127.0.0.1:0", "partner", &leaf);
    // Where the unregistered name resolves (hostAliases), on the gateway's port.
    let internet = TlsServer::start("127.78.3.2:443", "internet", &leaf);
    let yaml = format!(
        "{}{}",
        tls_gateway("egress", "[\"*\"]"),
        static_tls_entry("partner", "api.partner.example", partner.port()),
    );
    let aliases = format!("  hostAliases: [{{ip: 127.78.3.2, hostnames: [{NAME}]}}]\n");

    let g = start(
        "egress-sni-registry-only",
        "127.78.3.1",
        &format!("  outboundTrafficPolicy: {{mode: REGISTRY_ONLY}}\n{aliases}"),
        &yaml,
        Some(&ca.crt),
    );
    let c = g.curl_tls(NAME, "/", &ca);
    assert_ne!(
        c.exit,
        0,
        "an unregistered SNI must not connect: {}",
        show(&c)
    );
    assert_eq!(c.status, 0, "{}", show(&c));
    let l = g.sni_line(NAME);
    assert_eq!(l.details, "egress_refused_unregistered", "{l:?}");
    assert!(l.has_flag("NR"), "{l:?}");
    assert_eq!(l.upstream, "-", "{l:?}");
    // The registered name still goes (the control), and only it reached a server.
    let ok = g.curl_tls("api.partner.example", "/", &ca);
    assert_eq!(ok.status, 200, "{}", show(&ok));
    assert_eq!(internet.conns(), 0, "{:?}", internet.events());
    assert_eq!(partner.conns(), 1, "{:?}", partner.events());
    let scrape = g.scrape();
    assert_eq!(
        egress_count(&scrape, "refused", "unregistered"),
        1.0,
        "{}",
        metric_lines(&scrape)
    );
    assert_eq!(
        egress_count(&scrape, "allowed", "default/partner"),
        1.0,
        "{}",
        metric_lines(&scrape)
    );
    assert!(
        !scrape.contains(NAME) && !scrape.contains("unlisted-42"),
        "the raw unregistered name is in the scrape:\n{}",
        metric_lines(&scrape)
    );
    drop(g);

    // The same config, ALLOW_ANY (here said explicitly; it is the default).
    let g = start(
        "egress-sni-allow-any",
        "127.78.3.3",
        &format!("  outboundTrafficPolicy: {{mode: ALLOW_ANY}}\n{aliases}"),
        &yaml,
        Some(&ca.crt),
    );
    let c = g.curl_tls(NAME, "/anything", &ca);
    assert_answered(&c, "internet", NAME, "/anything");
    assert_eq!(internet.requests().len(), 1, "{:?}", internet.events());
    let l = g.sni_line(NAME);
    assert_eq!(l.details, "egress_passthrough", "{l:?}");
    assert_eq!(l.cluster, "PassthroughCluster", "{l:?}");
    assert_eq!(l.upstream, "127.78.3.2:443", "{l:?}");
    let scrape = g.scrape();
    assert_eq!(
        egress_count(&scrape, "passthrough", "unregistered"),
        1.0,
        "{}",
        metric_lines(&scrape)
    );
    assert!(
        !scrape.contains(NAME) && !scrape.contains("unlisted-42"),
        "the raw unregistered name is in the scrape:\n{}",
        metric_lines(&scrape)
    );
}

/// A wildcard ServiceEntry `*.wikipedia.org` without endpoints, its port's `targetPort`
/// the local server's, with `resolution` (`None`: the field left out, Istio's NONE), on a
/// PASSTHROUGH server under REGISTRY_ONLY: SNIs `en.` and `de.wikipedia.org` (hostAliases
/// to 127.0.0.1) are themselves resolved and connected on the `targetPort`.
fn wildcard_case(name: &str, ip: &str, resolution: Option<&str>) {
    let dir = scratch(name);
    let (ca, leaf) = pki_for(&dir, &["*.wikipedia.org"]);
    let wiki = TlsServer::start("127.0.0.1:0", "wikipedia", &leaf);
    let resolution = resolution
        .map(|r| format!("  resolution: {r}\n"))
        .unwrap_or_default();
    let yaml = format!(
        "{}---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: wikipedia}}\nspec:\n  hosts: [\"*.wikipedia.org\"]\n  ports: [{{number: 443, name: tls, protocol: TLS, targetPort: {}}}]\n{resolution}",
        tls_gateway("egress", "[\"*.wikipedia.org\"]"),
        wiki.port(),
    );
    let g = start(
        name,
        ip,
        "  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n  hostAliases: [{ip: 127.0.0.1, hostnames: [en.wikipedia.org, de.wikipedia.org]}]\n",
        &yaml,
        Some(&ca.crt),
    );

    for sni in ["en.wikipedia.org", "de.wikipedia.org"] {
        let c = g.curl_tls(sni, "/wiki/Main_Page", &ca);
        assert_answered(&c, "wikipedia", sni, "/wiki/Main_Page");
        let l = g.sni_line(sni);
        assert_eq!(l.details, "egress_allowed", "{l:?}");
        assert_eq!(l.cluster, "outbound|443||*.wikipedia.org", "{l:?}");
        assert_eq!(l.upstream, wiki.addr.to_string(), "{l:?}");
    }
    assert_eq!(wiki.requests().len(), 2, "{:?}", wiki.events());
    let scrape = g.scrape();
    assert_eq!(
        egress_count(&scrape, "allowed", "default/wikipedia"),
        2.0,
        "{}",
        metric_lines(&scrape)
    );
}

#[test]
fn wildcard_dynamic_dns_service_entry_resolves_the_sni_itself() {
    wildcard_case(
        "egress-wildcard-dynamic-dns",
        "127.78.4.3",
        Some("DYNAMIC_DNS"),
    );
}

/// The same with no `resolution` (NONE), as Istio's wildcard egress hosts task writes it.
#[test]
fn wildcard_service_entry_without_resolution_resolves_the_sni_itself() {
    wildcard_case("egress-wildcard-none", "127.78.4.5", None);
}

/// Istio's egress-tls-origination task (ServiceEntry port 80 with `targetPort`, the
/// DestinationRule's `portLevelSettings` unchanged) on an egress HTTP server without a
/// VirtualService: plain HTTP in, TLS out with SNI = Host, the upstream verified with the
/// system roots (`SSL_CERT_FILE`); without those roots it is refused (503), never sent
/// unverified.
#[test]
fn http_egress_originates_tls_to_the_registered_service_entry() {
    let dir = scratch("egress-origination");
    let (ca, leaf) = pki_for(&dir, &["edition.cnn.com"]);
    let cnn = TlsServer::start("127.0.0.1:0", "cnn", &leaf);
    let yaml = format!(
        r#"{gateway}---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: edition-cnn-com
spec:
  hosts:
  - edition.cnn.com
  ports:
  - number: 80
    name: http-port
    protocol: HTTP
    targetPort: {port}
  - number: 443
    name: https-port
    protocol: HTTPS
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: edition-cnn-com
spec:
  host: edition.cnn.com
  trafficPolicy:
    portLevelSettings:
    - port:
        number: 80
      tls:
        mode: SIMPLE # initiates HTTPS when accessing edition.cnn.com
"#,
        gateway = http_gateway("istio-egressgateway", "[edition.cnn.com]"),
        port = cnn.port(),
    );
    let mesh = "  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n  hostAliases: [{ip: 127.0.0.1, hostnames: [edition.cnn.com]}]\n";
    let g = start(
        "egress-origination",
        "127.78.5.1",
        mesh,
        &yaml,
        Some(&ca.crt),
    );

    let r = get(g.addr(80), "edition.cnn.com", "/politics", &[]);
    assert_eq!(
        r.status,
        200,
        "{} {}\ngateway log:\n{}",
        r.status,
        r.text(),
        g.log()
    );
    assert_eq!(r.header("x-seen-sni"), Some("edition.cnn.com"), "{r:?}");
    assert_eq!(r.text(), "cnn sni=edition.cnn.com path=/politics\n");
    assert_eq!(
        cnn.requests(),
        vec!["request edition.cnn.com edition.cnn.com /politics".to_string()]
    );
    let l = g.line("GET /politics", |l| l.path == "/politics");
    assert_eq!(l.code, "200", "{l:?}");
    assert_eq!(l.cluster, "outbound|80||edition.cnn.com", "{l:?}");
    assert_eq!(l.upstream, cnn.addr.to_string(), "{l:?}");
    drop(g);

    // Without the test CA among the system roots the upstream is not trusted: refused.
    let g = start(
        "egress-origination-untrusted",
        "127.78.5.3",
        mesh,
        &yaml,
        None,
    );
    let before = cnn.requests().len();
    let r = get(g.addr(80), "edition.cnn.com", "/untrusted", &[]);
    assert_eq!(r.status, 503, "{} {}", r.status, r.text());
    assert_eq!(cnn.requests().len(), before, "{:?}", cnn.events());
    let l = g.line("GET /untrusted", |l| l.path == "/untrusted");
    assert!(l.has_flag("UF"), "{l:?}");
}

/// HTTP egress for a Host nothing routes or registers: REGISTRY_ONLY answers 502 with
/// flag NR (Envoy's BlackHoleCluster) and nothing leaves; ALLOW_ANY takes it to the Host
/// resolved (hostAliases) on the listener's port (PassthroughCluster).
#[test]
fn http_unregistered_host_is_502_nr_or_passed_through() {
    const NAME: &str = "unlisted-http.example.net";
    let internet = HttpServer::start("127.78.6.2:80", "internet");
    let yaml = format!(
        "{}---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: partner}}\nspec:\n  hosts: [api.partner.example]\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints: [{{address: 127.78.6.2}}]\n",
        http_gateway("egress", "[\"*\"]"),
    );
    let aliases = format!("  hostAliases: [{{ip: 127.78.6.2, hostnames: [{NAME}]}}]\n");

    let g = start(
        "egress-http-registry-only",
        "127.78.6.1",
        &format!("  outboundTrafficPolicy: {{mode: REGISTRY_ONLY}}\n{aliases}"),
        &yaml,
        None,
    );
    let r = get(g.addr(80), NAME, "/refused", &[]);
    assert_eq!(r.status, 502, "{} {}", r.status, r.text());
    let l = g.line("GET /refused", |l| l.path == "/refused");
    assert_eq!(l.code, "502", "{l:?}");
    assert!(l.has_flag("NR"), "{l:?}");
    assert_eq!(l.details, "egress_refused_unregistered", "{l:?}");
    assert_eq!(internet.conns(), 0, "{:?}", internet.seen());
    // The registered Host goes (the control).
    let ok = get(g.addr(80), "api.partner.example", "/registered", &[]);
    assert_eq!(ok.status, 200, "{} {}", ok.status, ok.text());
    assert_eq!(
        internet.seen(),
        vec!["api.partner.example /registered".to_string()]
    );
    let l = g.line("GET /registered", |l| l.path == "/registered");
    assert_eq!(l.cluster, "outbound|80||api.partner.example", "{l:?}");
    drop(g);

    let g = start(
        "egress-http-allow-any",
        "127.78.6.3",
        &format!("  outboundTrafficPolicy: {{mode: ALLOW_ANY}}\n{aliases}"),
        &yaml,
        None,
    );
    let r = get(g.addr(80), NAME, "/through", &[]);
    assert_eq!(r.status, 200, "{} {}\n{}", r.status, r.text(), g.log());
    assert_eq!(r.header("x-upstream"), Some("internet"), "{r:?}");
    assert!(
        internet.seen().contains(&format!("{NAME} /through")),
        "{:?}",
        internet.seen()
    );
    let l = g.line("GET /through", |l| l.path == "/through");
    assert_eq!(l.code, "200", "{l:?}");
    assert_eq!(l.cluster, "PassthroughCluster", "{l:?}");
    assert_eq!(l.upstream, "127.78.6.2:80", "{l:?}");
    assert_eq!(l.authority, NAME, "{l:?}");
}

/// `meshgate validate` takes the egress MeshConfig (`outboundTrafficPolicy`, `labels`,
/// `hostAliases`) without a warning.
#[test]
fn validate_accepts_the_outbound_traffic_policy_without_a_warning() {
    let dir = scratch("egress-validate");
    let mesh = write(
        &dir,
        "mesh.yaml",
        "apiVersion: meshgate.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: m}\nspec:\n  labels: {istio: egressgateway}\n  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n  hostAliases: [{ip: 127.0.0.1, hostnames: [edition.cnn.com]}]\n",
    );
    let all = write(
        &dir,
        "all.yaml",
        &format!(
            "{}{}",
            tls_gateway("egress", "[edition.cnn.com]"),
            static_tls_entry("cnn", "edition.cnn.com", 8443)
        ),
    );
    let (code, stderr, _) = validate(&[&mesh, &all], &["--strict"]);
    assert_eq!(code, 0, "{stderr}");
    let w = warning_lines(&stderr);
    assert!(w.is_empty(), "{w:?}");
    assert!(!stderr.contains("outboundTrafficPolicy"), "{stderr}");
}
