//! Telemetry end to end: after a known mix of requests and a TCP connection through the
//! real binary, `/stats/prometheus` (parsed by the Prometheus Python client's own parser)
//! shows exactly those counts with Istio's labels, and the access log (Istio's TEXT and
//! JSON defaults, a custom format) has one line per exchange, checked field by field;
//! SIGUSR1 reopens the log after logrotate moves it.

mod common;
use common::net::*;
use common::{scratch, write};
use regex::Regex;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const HOST: &str = "a.example.com";
const SERVICE: &str = "reviews.default.svc.cluster.local";

/// What the mix needs running: two subsets' upstreams and a TCP echo server.
struct Backends {
    v1: Upstream,
    v2: Upstream,
    echo: common::peers::EchoUpstream,
}

impl Backends {
    fn start() -> Backends {
        Backends {
            v1: Upstream::start("reviews-v1"),
            v2: Upstream::start("reviews-v2"),
            echo: common::peers::EchoUpstream::start("echo"),
        }
    }
}

/// The gateway (HTTP on `http`, TCP on `tcp`), the services and routes of the mix, and
/// a MeshConfig with `mesh_extra` (access log settings) added.
fn config(b: &Backends, http: u16, tcp: u16, dead: u16) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: gw}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {http}, name: http, protocol: HTTP}}
    hosts: ["*"]
  - port: {{number: {tcp}, name: tcp, protocol: TCP}}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: reviews}}
spec:
  hosts: [{SERVICE}]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints:
  - {{address: 127.0.0.1, ports: {{http: {v1}}}, labels: {{version: v1}}}}
  - {{address: 127.0.0.1, ports: {{http: {v2}}}, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews}}
spec:
  host: {SERVICE}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: dead}}
spec:
  hosts: [dead.internal]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{http: {dead}}}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: echo}}
spec:
  hosts: [echo.internal]
  ports: [{{number: 9000, name: tcp, protocol: TCP}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{tcp: {echo}}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: web}}
spec:
  hosts: [{HOST}]
  gateways: [gw]
  http:
  - name: v1
    match: [{{uri: {{prefix: /v1}}}}]
    route: [{{destination: {{host: {SERVICE}, subset: v1}}}}]
  - name: v2
    match: [{{uri: {{prefix: /v2}}}}]
    route: [{{destination: {{host: {SERVICE}, subset: v2}}}}]
  - name: fail
    match: [{{uri: {{prefix: /fail}}}}]
    retries: {{attempts: 0}}
    route: [{{destination: {{host: dead.internal}}}}]
  - name: fault
    match: [{{uri: {{prefix: /fault}}}}]
    fault: {{abort: {{httpStatus: 500, percentage: {{value: 100}}}}}}
    route: [{{destination: {{host: {SERVICE}, subset: v1}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: tcp}}
spec:
  hosts: ["*"]
  gateways: [gw]
  tcp:
  - match: [{{port: {tcp}}}]
    route: [{{destination: {{host: echo.internal, port: {{number: 9000}}}}}}]
"#,
        v1 = b.v1.port(),
        v2 = b.v2.port(),
        echo = b.echo.port(),
    )
}

struct Running {
    gw: Gateway,
    dir: PathBuf,
    http: SocketAddr,
    tcp: SocketAddr,
}

impl Running {
    fn log_path(&self) -> PathBuf {
        self.dir.join("conf/access.log")
    }
}

fn start(name: &str, b: &Backends, mesh_extra: &str) -> Running {
    let dir = scratch(name);
    let (http, tcp, dead) = (free_port(), free_port(), free_port());
    write(
        &dir,
        "conf/mesh.yaml",
        &format!(
            "apiVersion: meshgate.io/v1alpha1\nkind: MeshConfig\nmetadata: {{name: m}}\nspec:\n  defaultBindAddress: 127.0.0.1\n{mesh_extra}"
        ),
    );
    write(&dir, "conf/all.yaml", &config(b, http, tcp, dead));
    let gw = Gateway::start(&dir);
    Running {
        gw,
        dir,
        http: format!("127.0.0.1:{http}").parse().unwrap(),
        tcp: format!("127.0.0.1:{tcp}").parse().unwrap(),
    }
}

/// The TCP connection of the mix: `SENT` bytes in, the echo's answer out.
const TCP_LINES: &str = "ping\npong\n";

/// Sends the known mix; returns the bytes the TCP client received.
fn send_mix(r: &Running) -> usize {
    let ua = [("user-agent", "mix-client/1.0")];
    for _ in 0..3 {
        assert_eq!(get(r.http, HOST, "/v1/a", &ua).status, 200);
    }
    for _ in 0..2 {
        assert_eq!(get(r.http, HOST, "/v2/b", &ua).status, 200);
    }
    assert_eq!(get(r.http, "nobody.example.org", "/x", &ua).status, 404);
    assert_eq!(get(r.http, HOST, "/fail", &ua).status, 503);
    assert_eq!(get(r.http, HOST, "/fault", &ua).status, 500);

    let mut c = TcpStream::connect(r.tcp).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(TCP_LINES.as_bytes()).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut back = Vec::new();
    c.read_to_end(&mut back).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&back),
        "echo ping\necho pong\necho bye\n"
    );
    back.len()
}

#[derive(Debug, Clone)]
struct Sample {
    family: String,
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// `/stats/prometheus`, parsed by `prometheus_client`'s text parser.
fn scrape(admin: SocketAddr) -> (String, Vec<Sample>) {
    let reply = get(admin, "admin", "/stats/prometheus", &[]);
    assert_eq!(reply.status, 200);
    assert!(reply
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")));
    let text = reply.text();
    let mut py = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/prom_parse.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    py.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = py.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the scrape does not parse: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            Sample {
                family: v["family"].as_str().unwrap().to_string(),
                name: v["name"].as_str().unwrap().to_string(),
                labels: v["labels"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                    .collect(),
                value: v["value"].as_f64().unwrap(),
            }
        })
        .collect();
    (text, samples)
}

/// The samples named `name` whose labels include every `(key, value)` of `with`.
fn find<'a>(samples: &'a [Sample], name: &str, with: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            with.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

fn value(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    let found = find(samples, name, with);
    assert_eq!(found.len(), 1, "one {name} with {with:?}: {found:#?}");
    found[0].value
}

/// Polls the scrape until `cond` holds (connection-close metrics land when the proxy
/// sees the close), for at most 5 s.
fn scrape_until(admin: SocketAddr, cond: impl Fn(&[Sample]) -> bool) -> (String, Vec<Sample>) {
    let t = Instant::now();
    loop {
        let s = scrape(admin);
        if cond(&s.1) || t.elapsed() > Duration::from_secs(5) {
            return s;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn prometheus_shows_exactly_the_mix_with_istios_labels() {
    let b = Backends::start();
    let r = start("telemetry-metrics", &b, "");
    let tcp_back = send_mix(&r);
    let (text, s) = scrape_until(r.gw.admin, |s| {
        find(s, "istio_tcp_connections_closed_total", &[])
            .iter()
            .any(|x| x.value > 0.0)
    });

    // Every HTTP series carries the gateway's own labels, as Istio's ingress gateway.
    let requests = find(&s, "istio_requests_total", &[]);
    assert_eq!(requests.len(), 5, "one series per outcome: {requests:#?}");
    for r in &requests {
        for (k, v) in [
            ("reporter", "source"),
            ("source_workload", "istio-ingressgateway"),
            ("source_workload_namespace", "istio-system"),
            ("source_app", "istio-ingressgateway"),
            ("request_protocol", "http"),
            ("connection_security_policy", "unknown"),
        ] {
            assert_eq!(r.labels.get(k).map(String::as_str), Some(v), "{k} of {r:?}");
        }
    }
    let svc = [
        ("destination_service", SERVICE),
        ("destination_service_name", "reviews"),
        ("destination_service_namespace", "default"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> {
        svc.iter().chain(extra).copied().collect()
    };
    let ok = [("response_code", "200"), ("response_flags", "-")];
    let v1 = with(&[("destination_version", "v1"), ok[0], ok[1]]);
    let v2 = with(&[("destination_version", "v2"), ok[0], ok[1]]);
    assert_eq!(value(&s, "istio_requests_total", &v1), 3.0);
    assert_eq!(value(&s, "istio_requests_total", &v2), 2.0);
    let nr = [
        ("destination_service", "unknown"),
        ("response_code", "404"),
        ("response_flags", "NR"),
    ];
    assert_eq!(value(&s, "istio_requests_total", &nr), 1.0);
    let uf = [
        ("destination_service", "dead.internal"),
        ("destination_service_name", "dead.internal"),
        ("response_code", "503"),
        ("response_flags", "UF"),
    ];
    assert_eq!(value(&s, "istio_requests_total", &uf), 1.0);
    let fi = with(&[
        ("destination_version", "v1"),
        ("response_code", "500"),
        ("response_flags", "FI"),
    ]);
    assert_eq!(value(&s, "istio_requests_total", &fi), 1.0);

    // Each histogram's count is the request count of its series.
    for (labels, n) in [
        (&v1[..], 3.0),
        (&v2[..], 2.0),
        (&nr[..], 1.0),
        (&uf[..], 1.0),
    ] {
        for h in [
            "istio_request_duration_milliseconds",
            "istio_request_bytes",
            "istio_response_bytes",
        ] {
            assert_eq!(
                value(&s, &format!("{h}_count"), labels),
                n,
                "{h} {labels:?}"
            );
            let inf: Vec<(&str, &str)> = labels.iter().copied().chain([("le", "+Inf")]).collect();
            assert_eq!(value(&s, &format!("{h}_bucket"), &inf), n);
        }
    }
    // The upstream answers `<name> <request body length>`: "reviews-v1 0", 12 bytes, thrice.
    assert_eq!(value(&s, "istio_response_bytes_sum", &v1), 36.0);

    // The TCP connection: opened, closed, bytes each way as Istio defines them.
    let tcp = [
        ("destination_service", "echo.internal"),
        ("request_protocol", "tcp"),
    ];
    assert_eq!(value(&s, "istio_tcp_connections_opened_total", &tcp), 1.0);
    assert_eq!(value(&s, "istio_tcp_connections_closed_total", &tcp), 1.0);
    assert_eq!(
        value(&s, "istio_tcp_received_bytes_total", &tcp),
        TCP_LINES.len() as f64
    );
    assert_eq!(
        value(&s, "istio_tcp_sent_bytes_total", &tcp),
        tcp_back as f64
    );
    for t in find(&s, "istio_tcp_sent_bytes_total", &[]) {
        assert!(!t.labels.contains_key("response_code"), "{t:?}");
    }

    // Cardinality is the config's: the Host no route took appears nowhere.
    assert!(!text.contains("nobody.example.org"), "{text}");

    // meshgate's own families are there.
    assert_eq!(value(&s, "meshgate_config_generation", &[]), 1.0);
    assert_eq!(
        value(
            &s,
            "meshgate_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    let listener = r.http.to_string();
    assert_eq!(
        value(
            &s,
            "meshgate_downstream_connections_active",
            &[("listener", listener.as_str())]
        ),
        0.0,
        "every connection of the mix is closed"
    );
    assert!(s
        .iter()
        .any(|x| x.family == "meshgate_tls_handshake_failures"));

    // `/metrics` is the same exposition; `/stats` the same counters as `name: value`.
    assert_eq!(get(r.gw.admin, "admin", "/metrics", &[]).status, 200);
    let plain = get(r.gw.admin, "admin", "/stats", &[]).text();
    let line = plain
        .lines()
        .find(|l| l.starts_with("istio_requests_total{") && l.contains("response_flags=\"NR\""))
        .unwrap_or_else(|| panic!("{plain}"));
    assert!(line.ends_with(": 1"), "{line}");
    let info: Value =
        serde_json::from_str(&get(r.gw.admin, "admin", "/server_info", &[]).text()).unwrap();
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["config_generation"], 1);
    assert_eq!(info["state"], "LIVE");
}

/// Waits until the access log has `n` lines.
fn log_lines(path: &Path, n: usize) -> Vec<String> {
    let t = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n || t.elapsed() > Duration::from_secs(5) {
            assert_eq!(lines.len(), n, "{text}");
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Istio's default TEXT format, one capture per operator.
const TEXT_LINE: &str = r#"^\[(?P<start>[^\]]+)\] "(?P<method>\S+) (?P<path>\S+) (?P<protocol>\S+)" (?P<code>\d+) (?P<flags>\S+) (?P<details>\S+) (?P<term>\S+) "(?P<tfr>[^"]*)" (?P<rx>\d+) (?P<tx>\d+) (?P<duration>\d+) (?P<ust>\S+) "(?P<xff>[^"]*)" "(?P<ua>[^"]*)" "(?P<rid>[^"]*)" "(?P<authority>[^"]*)" "(?P<uhost>[^"]*)" (?P<cluster>\S+) (?P<ulocal>\S+) (?P<dlocal>\S+) (?P<dremote>\S+) (?P<sni>\S+) (?P<route>\S+)$"#;

#[test]
fn text_access_log_has_istios_default_line_per_exchange_and_reopens_on_sigusr1() {
    let b = Backends::start();
    let r = start(
        "telemetry-text",
        &b,
        "  accessLogFile: access.log\n  accessLogEncoding: TEXT\n",
    );
    let tcp_back = send_mix(&r);
    let lines = log_lines(&r.log_path(), 9);
    let re = Regex::new(TEXT_LINE).unwrap();
    let caps: Vec<_> = lines
        .iter()
        .map(|l| {
            re.captures(l)
                .unwrap_or_else(|| panic!("not Istio's format: {l}"))
        })
        .collect();
    let by_path = |p: &'static str| caps.iter().filter(move |c| &c["path"] == p);

    let v1: Vec<_> = by_path("/v1/a").collect();
    assert_eq!(v1.len(), 3);
    let seen = b.v1.last();
    let c = v1[2];
    let start_re = Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$").unwrap();
    assert!(start_re.is_match(&c["start"]), "{}", &c["start"]);
    assert_eq!(&c["method"], "GET");
    assert_eq!(&c["protocol"], "HTTP/1.1");
    assert_eq!(&c["code"], "200");
    assert_eq!(&c["flags"], "-");
    assert_eq!(&c["details"], "via_upstream");
    assert_eq!(&c["term"], "-");
    assert_eq!(&c["rx"], "0");
    assert_eq!(&c["tx"], "12", "the body `reviews-v1 0`");
    assert!(c["ust"].parse::<u64>().is_ok(), "upstream service time");
    assert_eq!(&c["ua"], "mix-client/1.0");
    assert_eq!(
        Some(&c["rid"]),
        seen.header("x-request-id"),
        "the id the upstream saw"
    );
    assert_eq!(&c["authority"], HOST);
    assert_eq!(&c["uhost"], b.v1.addr.to_string().as_str());
    assert_eq!(&c["cluster"], format!("outbound|80|v1|{SERVICE}").as_str());
    assert!(c["ulocal"].starts_with("127.0.0.1:"), "{}", &c["ulocal"]);
    assert_eq!(&c["dlocal"], r.http.to_string().as_str());
    assert!(c["dremote"].starts_with("127.0.0.1:"));
    assert_eq!(&c["sni"], "-");
    assert_eq!(&c["route"], "v1");

    let nr = by_path("/x").next().unwrap();
    assert_eq!(
        (&nr["code"], &nr["flags"], &nr["details"]),
        ("404", "NR", "route_not_found")
    );
    assert_eq!(
        (&nr["uhost"], &nr["cluster"], &nr["route"]),
        ("-", "-", "-")
    );
    let uf = by_path("/fail").next().unwrap();
    assert_eq!((&uf["code"], &uf["flags"]), ("503", "UF"));
    assert_eq!(
        &uf["details"],
        "upstream_reset_before_response_started{connection_failure}"
    );
    assert_eq!(&uf["cluster"], "outbound|80||dead.internal");
    let fi = by_path("/fault").next().unwrap();
    assert_eq!(
        (&fi["code"], &fi["flags"], &fi["details"]),
        ("500", "FI", "fault_filter_abort")
    );

    // The TCP connection: HTTP operators print `-`, bytes each way.
    let tcp = caps.iter().find(|c| &c["method"] == "-").unwrap();
    assert_eq!(
        (&tcp["path"], &tcp["protocol"], &tcp["code"]),
        ("-", "-", "0")
    );
    assert_eq!(&tcp["rx"], TCP_LINES.len().to_string().as_str());
    assert_eq!(&tcp["tx"], tcp_back.to_string().as_str());
    assert_eq!(&tcp["cluster"], "outbound|9000||echo.internal");
    assert_eq!(&tcp["uhost"], b.echo.addr.to_string().as_str());
    assert_eq!(&tcp["dlocal"], r.tcp.to_string().as_str());

    // logrotate: move the file, SIGUSR1, and the next line goes to a new file.
    let rotated = r.dir.join("conf/access.log.1");
    std::fs::rename(r.log_path(), &rotated).unwrap();
    let pid = r.gw.child.id().to_string();
    let kill = Command::new("kill").args(["-USR1", &pid]).status().unwrap();
    assert!(kill.success());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(get(r.http, HOST, "/v2/after-rotate", &[]).status, 200);
    let fresh = log_lines(&r.log_path(), 1);
    assert!(fresh[0].contains("/v2/after-rotate"), "{fresh:?}");
    assert_eq!(
        log_lines(&rotated, 9).len(),
        9,
        "the old file keeps its lines"
    );
    assert_eq!(
        get(r.http, HOST, "/v1/still", &[]).status,
        200,
        "still serving"
    );
}

#[test]
fn json_access_log_has_istios_keys_and_types() {
    let b = Backends::start();
    let r = start(
        "telemetry-json",
        &b,
        "  accessLogFile: access.log\n  accessLogEncoding: JSON\n",
    );
    let tcp_back = send_mix(&r);
    let lines = log_lines(&r.log_path(), 9);
    let objs: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let keys = [
        "start_time",
        "method",
        "path",
        "protocol",
        "response_code",
        "response_flags",
        "response_code_details",
        "connection_termination_details",
        "bytes_received",
        "bytes_sent",
        "duration",
        "upstream_service_time",
        "x_forwarded_for",
        "user_agent",
        "request_id",
        "authority",
        "upstream_host",
        "upstream_cluster",
        "upstream_local_address",
        "downstream_local_address",
        "downstream_remote_address",
        "requested_server_name",
        "route_name",
        "upstream_transport_failure_reason",
    ];
    for o in &objs {
        for k in keys {
            assert!(o.get(k).is_some(), "{k} missing in {o}");
        }
    }
    let v2 = objs.iter().find(|o| o["path"] == "/v2/b").unwrap();
    assert_eq!(v2["method"], "GET");
    assert_eq!(v2["response_code"], 200, "a number, as Envoy's json_format");
    assert_eq!(v2["response_flags"], "-");
    assert_eq!(v2["bytes_sent"], 12);
    assert!(v2["duration"].is_u64());
    assert_eq!(v2["route_name"], "v2");
    assert_eq!(v2["upstream_cluster"], format!("outbound|80|v2|{SERVICE}"));
    assert_eq!(v2["upstream_host"], b.v2.addr.to_string());
    assert_eq!(v2["user_agent"], "mix-client/1.0");
    assert_eq!(v2["authority"], HOST);
    assert_eq!(v2["requested_server_name"], Value::Null, "absent is null");
    let nr = objs.iter().find(|o| o["path"] == "/x").unwrap();
    assert_eq!(nr["response_code"], 404);
    assert_eq!(nr["response_flags"], "NR");
    assert_eq!(nr["upstream_cluster"], Value::Null);
    let tcp = objs.iter().find(|o| o["method"].is_null()).unwrap();
    assert_eq!(tcp["bytes_received"], TCP_LINES.len());
    assert_eq!(tcp["bytes_sent"], tcp_back);
    assert_eq!(tcp["upstream_cluster"], "outbound|9000||echo.internal");
}

#[test]
fn custom_access_log_format_and_bad_formats_are_refused_naming_the_field() {
    let b = Backends::start();
    let r = start(
        "telemetry-custom",
        &b,
        "  accessLogFile: access.log\n  accessLogFormat: \"%REQ(:METHOD)% %REQ(X-MISSING?USER-AGENT):3% %RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_CLUSTER% %START_TIME(%s)%\\n\"\n",
    );
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(
        get(r.http, HOST, "/v1/c", &[("user-agent", "curl/8")]).status,
        200
    );
    assert_eq!(get(r.http, "nobody.example.org", "/", &[]).status, 404);
    // A head too large is refused before the pipeline sees it: still logged and counted.
    let big = format!(
        "GET / HTTP/1.1\r\nhost: {HOST}\r\nx-big: {}\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    assert_eq!(raw(r.http, big.as_bytes()).map(|r| r.status), Some(431));
    let lines = log_lines(&r.log_path(), 3);
    let f: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!(
        &f[..5],
        [
            "GET",
            "cur",
            "200",
            "-",
            &format!("outbound|80|v1|{SERVICE}")
        ]
    );
    let t: u64 = f[5].parse().unwrap();
    assert!(t >= before && t <= before + 5, "{t} vs {before}");
    assert!(lines[1].starts_with("GET - 404 NR - "), "{}", lines[1]);
    assert!(lines[2].starts_with("- - 431 DPE - "), "{}", lines[2]);
    let (_, s) = scrape(r.gw.admin);
    let refused = [
        ("destination_service", "unknown"),
        ("response_code", "431"),
        ("response_flags", "DPE"),
    ];
    assert_eq!(value(&s, "istio_requests_total", &refused), 1.0);

    // A format that does not compile: `validate` and `run` refuse it, naming the file,
    // the MeshConfig and the field.
    let dir = scratch("telemetry-bad-format");
    let mesh = write(
        &dir,
        "conf/mesh.yaml",
        "apiVersion: meshgate.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: m}\nspec:\n  accessLogFile: /dev/stdout\n  accessLogFormat: \"%START_TIME% %NOT_AN_OPERATOR%\"\n",
    );
    let (code, stderr, _) = common::validate(&[&mesh], &[]);
    assert_eq!(code, 1, "{stderr}");
    let err = common::error_lines(&stderr).join("\n");
    assert!(err.contains("mesh.yaml"), "{err}");
    assert!(err.contains("MeshConfig"), "{err}");
    assert!(err.contains("spec.accessLogFormat"), "{err}");
    assert!(err.contains("NOT_AN_OPERATOR"), "{err}");
    let run = Gateway::try_start(&dir);
    assert!(run.is_err(), "run refuses it too");
}

#[test]
fn lines_still_buffered_are_written_when_the_gateway_stops() {
    let b = Backends::start();
    let mut r = start(
        "telemetry-flush",
        &b,
        "  accessLogFile: access.log\n  drainDuration: 100ms\n  accessLogFormat: \"%REQ(:PATH)% %RESPONSE_CODE%\\n\"\n",
    );
    assert_eq!(get(r.http, HOST, "/v1/last", &[]).status, 200);
    // At once: the writer flushes each second, so the line is most likely still buffered.
    let pid = r.gw.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let t = Instant::now();
    while r.gw.child.try_wait().unwrap().is_none() {
        assert!(t.elapsed() < Duration::from_secs(15), "still running");
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(r.log_path()).unwrap_or_default();
    assert_eq!(text, "/v1/last 200\n");
}
