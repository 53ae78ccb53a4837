//! The egress role's HTTP CONNECT proxy (Gateway annotation `meshgate.io/connect-proxy:
//! "true"`), with real clients: curl `--proxy`, Python's `requests` with `HTTPS_PROXY`,
//! and openssl s_client for a tunnel whose SNI is not the CONNECT host. "External" hosts
//! are local TLS servers under a test CA, named through MeshConfig `hostAliases`.
//! Each decision has an audit line in the access log and a count in
//! `meshgate_egress_connections_total`.

mod common;
use common::net::{free_port, raw, Gateway};
use common::peers::{curl, TlsUpstream};
use common::{pki, scratch, write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A TCP listener that counts the connections reaching it (and closes them).
struct Counter {
    port: u16,
    hits: Arc<AtomicUsize>,
}

impl Counter {
    fn start() -> Counter {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                h.fetch_add(1, Ordering::SeqCst);
                drop(c);
            }
        });
        Counter { port, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

struct Setup {
    _gw: Gateway,
    proxy: SocketAddr,
    ca: PathBuf,
    log: PathBuf,
    /// The port of the TLS server playing `api.example.com` (registered).
    api_port: u16,
    /// Playing `free.example.com` (not registered), counting connections.
    free: Counter,
    _api: TlsUpstream,
}

/// An egress gateway with a CONNECT proxy on its HTTP port; `api.example.com` is
/// registered on the TLS server's port, `free.example.com` is not.
fn setup(name: &str, mode: &str) -> Setup {
    let dir = scratch(name);
    let ca = pki::ca(&dir.join("pki"), "ca");
    let leaf = pki::leaf(
        &dir.join("pki"),
        &ca,
        "api",
        "/CN=api.example.com",
        &["DNS:api.example.com", "DNS:free.example.com"],
    );
    let api = TlsUpstream::start("api-page", &leaf);
    let free = Counter::start();
    let port = free_port();
    let log = dir.join("access.log");
    let yaml = format!(
        r#"apiVersion: meshgate.io/v1alpha1
kind: MeshConfig
metadata: {{name: m}}
spec:
  defaultBindAddress: 127.0.0.1
  labels: {{istio: egressgateway}}
  outboundTrafficPolicy: {{mode: {mode}}}
  accessLogFile: {log}
  accessLogFormat: "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %REQUESTED_SERVER_NAME% %UPSTREAM_CLUSTER% %UPSTREAM_HOST%\n"
  hostAliases: [{{ip: 127.0.0.1, hostnames: [api.example.com, free.example.com]}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: egress
  annotations: {{meshgate.io/connect-proxy: "true"}}
spec:
  selector: {{istio: egressgateway}}
  servers:
  - port: {{number: {port}, name: http, protocol: HTTP}}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: api}}
spec:
  hosts: [api.example.com]
  ports: [{{number: {api}, name: tls, protocol: TLS}}]
  resolution: DNS
  location: MESH_EXTERNAL
"#,
        log = log.display(),
        api = api.port(),
    );
    write(&dir, "conf/all.yaml", &yaml);
    Setup {
        _gw: Gateway::start(&dir),
        proxy: format!("127.0.0.1:{port}").parse().unwrap(),
        ca: ca.crt.clone(),
        log,
        api_port: api.port(),
        free,
        _api: api,
    }
}

impl Setup {
    fn proxy_url(&self) -> String {
        format!("http://{}", self.proxy)
    }

    /// The access log's lines once one contains `needle` (the writer flushes every
    /// second).
    fn log_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(l) = text.lines().find(|l| l.contains(needle)) {
                return l.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no line with {needle:?} in:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn metrics(&self) -> String {
        let admin = self._gw.admin;
        raw(
            admin,
            b"GET /stats/prometheus HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n",
        )
        .map(|r| r.text())
        .unwrap_or_default()
    }
}

fn ca_arg(ca: &Path) -> String {
    ca.display().to_string()
}

#[test]
fn an_allowed_target_tunnels_and_curl_verifies_the_real_server() {
    let s = setup("egress-connect-allowed", "REGISTRY_ONLY");
    let url = format!("https://api.example.com:{}/page", s.api_port);
    let out = curl(&["--proxy", &s.proxy_url(), "--cacert", &ca_arg(&s.ca), &url]);
    assert_eq!(out.status, 200, "{out:?}");
    assert!(out.body.contains("api-page"), "{out:?}");
    let line = s.log_line("egress_allowed");
    assert!(
        line.contains(&format!("outbound|{}||api.example.com", s.api_port))
            && line.contains("api.example.com")
            && line.contains(&format!("127.0.0.1:{}", s.api_port)),
        "{line}"
    );
    let m = s.metrics();
    assert!(
        m.contains("meshgate_egress_connections_total{decision=\"allowed\",service_entry=\"default/api\"} 1"),
        "{m}"
    );
}

#[test]
fn python_requests_with_https_proxy_goes_through() {
    let s = setup("egress-connect-requests", "REGISTRY_ONLY");
    let script = format!(
        "import requests\nr = requests.get('https://api.example.com:{}/', verify='{}', timeout=10)\nprint(r.status_code, r.text.strip())\n",
        s.api_port,
        s.ca.display()
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .env("HTTPS_PROXY", s.proxy_url())
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .stdin(Stdio::null())
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.trim() == "200 api-page",
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_unregistered_target_gets_403_naming_the_reason_and_nothing_leaves() {
    let s = setup("egress-connect-refused", "REGISTRY_ONLY");
    let head = format!(
        "CONNECT free.example.com:{0} HTTP/1.1\r\nhost: free.example.com:{0}\r\n\r\n",
        s.free.port
    );
    let r = raw(s.proxy, head.as_bytes()).expect("an answer");
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.text().contains("free.example.com")
            && r.text().contains("no ServiceEntry registers")
            && r.text().contains("REGISTRY_ONLY"),
        "{}",
        r.text()
    );
    // A registered host on a port its ServiceEntry lacks is unregistered there.
    let head = format!(
        "CONNECT api.example.com:{0} HTTP/1.1\r\nhost: api.example.com:{0}\r\n\r\n",
        s.free.port
    );
    assert_eq!(raw(s.proxy, head.as_bytes()).map(|r| r.status), Some(403));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(s.free.hits(), 0, "nothing reached the unregistered host");
    let line = s.log_line("egress_refused_unregistered");
    assert!(line.starts_with("403 NR "), "{line}");
    let m = s.metrics();
    assert!(
        m.contains("meshgate_egress_connections_total{decision=\"refused\",service_entry=\"unregistered\"} 2"),
        "{m}"
    );
    assert!(
        !m.contains("free.example.com"),
        "raw names never become labels"
    );
}

#[test]
fn a_tunnel_whose_sni_is_not_the_connect_host_is_closed() {
    let s = setup("egress-connect-fronting", "ALLOW_ANY");
    // Allowed target (ALLOW_ANY), but the ClientHello names another host.
    let connect = format!("free.example.com:{}", s.free.port);
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-proxy",
            &s.proxy.to_string(),
            "-connect",
            &connect,
            "-servername",
            "api.example.com",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("openssl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("no peer certificate available") && !text.contains("BEGIN CERTIFICATE"),
        "no handshake completes: {text}"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(s.free.hits(), 0, "nothing left the gateway");
    let line = s.log_line("egress_refused_sni_mismatch");
    assert!(line.contains("NR"), "{line}");
}

#[test]
fn allow_any_tunnels_to_an_unregistered_name_itself() {
    let s = setup("egress-connect-allow-any", "ALLOW_ANY");
    // free.example.com is not registered: PassthroughCluster, to the name (hostAliases)
    // on the CONNECT port. The counting listener is a plain TCP server, so the TLS
    // handshake fails after the tunnel, but the connection arrived.
    let url = format!("https://free.example.com:{}/", s.free.port);
    let out = curl(&["--proxy", &s.proxy_url(), "--cacert", &ca_arg(&s.ca), &url]);
    assert_ne!(out.status, 200, "{out:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.free.hits() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(s.free.hits(), 1, "the tunnel reached the name itself");
    let line = s.log_line("egress_passthrough");
    assert!(line.contains("PassthroughCluster"), "{line}");
    // The registered host still goes by its ServiceEntry.
    let url = format!("https://api.example.com:{}/", s.api_port);
    let out = curl(&["--proxy", &s.proxy_url(), "--cacert", &ca_arg(&s.ca), &url]);
    assert_eq!(out.status, 200, "{out:?}");
}

#[test]
fn allow_any_never_reaches_local_or_link_local_addresses_by_name() {
    let s = setup("egress-connect-local", "ALLOW_ANY");
    // A Host naming loopback (the counting server, or the gateway itself: a loop) or the
    // cloud metadata address: refused, nothing reached.
    for host in [
        format!("127.0.0.1:{}", s.free.port),
        format!("localhost:{}", s.proxy.port()),
        "169.254.169.254".to_string(),
    ] {
        let head =
            format!("GET /latest/meta-data HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
        let r = raw(s.proxy, head.as_bytes()).expect("an answer");
        assert_eq!(r.status, 502, "{host}: {}", r.text());
    }
    assert_eq!(s.free.hits(), 0);
    let line = s.log_line("egress_refused_local_address");
    assert!(line.starts_with("502 NR "), "{line}");
}
