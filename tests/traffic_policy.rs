//! DestinationRule `trafficPolicy` end to end, through the real binary and real upstreams
//! on 127.0.0.1: load balancers (round robin's exact rotation, least request's preference
//! for the fast endpoint, endpoint weights, consistent hashing on a header, a cookie and
//! the source IP, and what a reload that removes an endpoint moves), circuit breaking (the
//! istio.io task's shape: 503 `x-envoy-overloaded`, UO), outlier detection (ejection,
//! `/clusters`, return), DNS clusters, `maxRequestsPerConnection`, and `maxConnections`
//! on a TCP route.

mod common;
use common::net::*;
use common::peers::EchoUpstream;
use common::{scratch, write};
use regex::Regex;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// The host clients ask for; routed to `SERVICE`.
const HOST: &str = "shop.example.com";
/// The ServiceEntry host every test balances over.
const SERVICE: &str = "svc.internal";
/// Its cluster, as `/clusters` and the access log name it.
const CLUSTER: &str = "outbound|80||svc.internal";

/// One ServiceEntry endpoint on upstream `u` (with an endpoint `weight`, if given).
fn ep(u: &Upstream, weight: Option<u32>) -> String {
    let weight = weight.map(|w| format!(", weight: {w}")).unwrap_or_default();
    format!(
        "  - {{address: 127.0.0.1, ports: {{http: {}}}{weight}}}\n",
        u.port()
    )
}

/// The endpoint list of `ups`, unweighted.
fn eps(ups: &[&Upstream]) -> Vec<String> {
    ups.iter().map(|u| ep(u, None)).collect()
}

/// A Gateway on `{PORT}`, `SERVICE` with `endpoints` (resolution `resolution`), a
/// DestinationRule with `trafficPolicy: <policy>` (flow style; none when empty) and
/// `HOST` routed to it.
fn config_with(endpoints: &[String], resolution: &str, policy: &str) -> String {
    let dr = if policy.is_empty() {
        String::new()
    } else {
        format!("---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: svc}}\nspec:\n  host: {SERVICE}\n  trafficPolicy: {policy}\n")
    };
    format!(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec:\n  selector: {{istio: ingressgateway}}\n  servers:\n  - port: {{number: {{PORT}}, name: http, protocol: HTTP}}\n    hosts: [\"*\"]\n---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: svc}}\nspec:\n  hosts: [{SERVICE}]\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  resolution: {resolution}\n  endpoints:\n{}{dr}---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: web}}\nspec:\n  hosts: [{HOST}]\n  gateways: [gw]\n  http:\n  - route: [{{destination: {{host: {SERVICE}}}}}]\n",
        endpoints.concat()
    )
}

/// [`config_with`] for a STATIC ServiceEntry.
fn config(endpoints: &[String], policy: &str) -> String {
    config_with(endpoints, "STATIC", policy)
}

/// A running gateway with its scratch directory and HTTP listener.
struct Running {
    gw: Gateway,
    dir: PathBuf,
    port: u16,
    addr: SocketAddr,
}

/// Writes a MeshConfig (plus `mesh_extra` lines) and `yaml` (`{PORT}` replaced by a free
/// port) and starts `meshgate run`.
fn start(name: &str, mesh_extra: &str, yaml: &str) -> Running {
    let dir = scratch(name);
    let port = free_port();
    write(
        &dir,
        "conf/mesh.yaml",
        &format!("apiVersion: meshgate.io/v1alpha1\nkind: MeshConfig\nmetadata: {{name: m}}\nspec:\n  defaultBindAddress: 127.0.0.1\n{mesh_extra}"),
    );
    write(
        &dir,
        "conf/all.yaml",
        &yaml.replace("{PORT}", &port.to_string()),
    );
    let gw = Gateway::start(&dir);
    Running {
        gw,
        dir,
        port,
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
    }
}

impl Running {
    /// `GET path` for `HOST` on a fresh connection.
    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        get(self.addr, HOST, path, headers)
    }

    /// An admin listener page.
    fn admin(&self, path: &str) -> Reply {
        get(self.gw.admin, "admin", path, &[])
    }

    fn generation(&self) -> u64 {
        let info: Value = serde_json::from_str(&self.admin("/server_info").text()).unwrap();
        info["config_generation"].as_u64().unwrap()
    }

    /// Rewrites the config to `yaml` (same port), sends SIGHUP and waits (10 s at most)
    /// for the next generation to serve.
    fn reload(&self, yaml: &str) {
        let want = self.generation() + 1;
        write(
            &self.dir,
            "conf/all.yaml",
            &yaml.replace("{PORT}", &self.port.to_string()),
        );
        let ok = Command::new("kill")
            .args(["-HUP", &self.gw.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -HUP");
        let t = Instant::now();
        while self.generation() != want {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "generation {want} not reached; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("meshgate.log")).unwrap_or_default()
    }

    /// `/clusters` (Envoy's text form).
    fn clusters_text(&self) -> String {
        self.admin("/clusters").text()
    }

    /// `/clusters?format=json`.
    fn clusters_json(&self) -> Value {
        serde_json::from_str(&self.admin("/clusters?format=json").text()).unwrap()
    }
}

/// Which upstream answered: its `x-upstream` header, else the status and body of the
/// gateway's own answer.
fn who(r: &Reply) -> String {
    r.header("x-upstream")
        .map(str::to_string)
        .unwrap_or_else(|| format!("<{} {}>", r.status, r.text()))
}

/// `clients` threads, started together, each sending up to `each` requests
/// (`GET path` with `headers`) one after another until `limit` has passed: every reply,
/// per client.
fn concurrent(
    addr: SocketAddr,
    clients: usize,
    each: usize,
    limit: Duration,
    path: &str,
) -> Vec<Vec<Reply>> {
    let barrier = Barrier::new(clients);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let t = Instant::now();
                    let mut out = Vec::new();
                    while out.len() < each && t.elapsed() < limit {
                        out.push(get(addr, HOST, path, &[]));
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// How many replies each upstream (or gateway answer) gave.
fn tally<'r>(replies: impl IntoIterator<Item = &'r Reply>) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in replies {
        *out.entry(who(r)).or_insert(0) += 1;
    }
    out
}

#[test]
fn round_robin_rotates_exactly_over_three_endpoints() {
    let ups = [
        Upstream::start("rr-a"),
        Upstream::start("rr-b"),
        Upstream::start("rr-c"),
    ];
    let r = start(
        "tp-round-robin",
        "",
        &config(
            &eps(&[&ups[0], &ups[1], &ups[2]]),
            "{loadBalancer: {simple: ROUND_ROBIN}}",
        ),
    );
    let seq: Vec<String> = (0..30)
        .map(|i| {
            let reply = r.get(&format!("/rr/{i}"), &[]);
            assert_eq!(reply.status, 200, "{}", who(&reply));
            who(&reply)
        })
        .collect();
    let counts = tally_names(&seq);
    assert_eq!(
        counts,
        BTreeMap::from([
            ("rr-a".to_string(), 10),
            ("rr-b".to_string(), 10),
            ("rr-c".to_string(), 10)
        ]),
        "each endpoint serves exactly a third: {seq:?}"
    );
    for w in seq.windows(2) {
        assert_ne!(w[0], w[1], "an endpoint served twice in a row: {seq:?}");
    }
    for (i, name) in seq.iter().enumerate() {
        assert_eq!(name, &seq[i % 3], "not a fixed rotation: {seq:?}");
    }
}

fn tally_names(names: &[String]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for n in names {
        *out.entry(n.clone()).or_insert(0) += 1;
    }
    out
}

#[test]
fn least_request_by_default_sends_most_requests_to_the_fast_endpoint() {
    let slow = Upstream::start_with(
        "lr-slow",
        Behavior {
            delay: Duration::from_millis(200),
            ..Behavior::default()
        },
    );
    let fast = Upstream::start("lr-fast");
    // No DestinationRule at all: Istio's default balancer, LEAST_REQUEST.
    let r = start("tp-least-request", "", &config(&eps(&[&slow, &fast]), ""));
    let replies = concurrent(r.addr, 8, 150, Duration::from_secs(3), "/lr");
    let counts = tally(replies.iter().flatten());
    let (n_fast, n_slow) = (
        counts.get("lr-fast").copied().unwrap_or(0),
        counts.get("lr-slow").copied().unwrap_or(0),
    );
    assert_eq!(
        n_fast + n_slow,
        replies.iter().map(Vec::len).sum::<usize>(),
        "only 200s from the two endpoints: {counts:?}"
    );
    assert!(n_fast + n_slow >= 40, "too few requests: {counts:?}");
    // Power of two choices draws two endpoints at random (with replacement, as Envoy's
    // N_CHOICES): with two endpoints, a quarter of the picks draw the slow one twice, so
    // the expected split is about 3:1 (round robin or random would give 1:1 by count).
    assert!(
        n_fast > 2 * n_slow,
        "least request should favour the endpoint with fewer requests in flight: {counts:?}"
    );
}

#[test]
fn round_robin_honours_endpoint_weights_exactly() {
    let (heavy, light) = (Upstream::start("w-heavy"), Upstream::start("w-light"));
    let r = start(
        "tp-weights",
        "",
        &config(
            &[ep(&heavy, Some(3)), ep(&light, Some(1))],
            "{loadBalancer: {simple: ROUND_ROBIN}}",
        ),
    );
    let seq: Vec<String> = (0..400).map(|_| who(&r.get("/w", &[]))).collect();
    assert_eq!(
        tally_names(&seq),
        BTreeMap::from([("w-heavy".to_string(), 300), ("w-light".to_string(), 100)]),
    );
    // Every window of 4 consecutive picks is one whole cycle of the schedule: 3 + 1.
    for (i, w) in seq.windows(4).enumerate() {
        let light_n = w.iter().filter(|n| *n == "w-light").count();
        assert_eq!(light_n, 1, "window at {i}: {w:?}");
    }
}

#[test]
fn header_hash_sticks_and_removing_an_endpoint_moves_only_its_keys() {
    let ups = [
        Upstream::start("h-a"),
        Upstream::start("h-b"),
        Upstream::start("h-c"),
    ];
    let policy = "{loadBalancer: {consistentHash: {httpHeaderName: x-user}}}";
    let all = config(&eps(&[&ups[0], &ups[1], &ups[2]]), policy);
    let r = start("tp-header-hash", "", &all);

    let users: Vec<String> = (0..20).map(|i| format!("user-{i}")).collect();
    // Each user's endpoints over `n` requests.
    let place = |n: usize| -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for _ in 0..n {
            for u in &users {
                let reply = r.get("/h", &[("x-user", u)]);
                assert_eq!(reply.status, 200, "{}", who(&reply));
                out.entry(u.clone()).or_default().insert(who(&reply));
            }
        }
        out
    };
    let single = |m: &BTreeMap<String, BTreeSet<String>>| -> BTreeMap<String, String> {
        m.iter()
            .map(|(u, set)| {
                assert_eq!(set.len(), 1, "{u} reached {set:?}");
                (u.clone(), set.iter().next().unwrap().clone())
            })
            .collect()
    };
    let before = single(&place(10));
    let used: BTreeSet<&String> = before.values().collect();
    assert!(used.len() >= 2, "20 keys all on one endpoint: {before:?}");

    // Remove the endpoint holding the most keys (so some must move).
    let mut per_ep: BTreeMap<&String, usize> = BTreeMap::new();
    for e in before.values() {
        *per_ep.entry(e).or_default() += 1;
    }
    let removed = per_ep
        .iter()
        .max_by_key(|(_, n)| **n)
        .unwrap()
        .0
        .to_string();
    let keep: Vec<&Upstream> = ups.iter().filter(|u| u.name != removed).collect();
    let gone = ups.iter().find(|u| u.name == removed).unwrap();
    r.reload(&config(&eps(&keep), policy));
    let gone_before = gone.count();

    let after = single(&place(5));
    assert_eq!(
        gone.count(),
        gone_before,
        "the removed endpoint got requests"
    );
    for u in &users {
        let (b, a) = (&before[u], &after[u]);
        if *b == removed {
            assert_ne!(a, &removed);
        } else {
            assert_eq!(
                a, b,
                "{u} was on {b} (kept) but moved to {a}; removed {removed}\nbefore {before:?}\nafter {after:?}"
            );
        }
    }
}

#[test]
fn cookie_hash_sets_the_cookie_and_sticks_to_it() {
    let ups = [
        Upstream::start("c-a"),
        Upstream::start("c-b"),
        Upstream::start("c-c"),
    ];
    let r = start(
        "tp-cookie-hash",
        "",
        &config(
            &eps(&[&ups[0], &ups[1], &ups[2]]),
            "{loadBalancer: {consistentHash: {httpCookie: {name: user, ttl: 60s, path: /}}}}",
        ),
    );
    let first = r.get("/c", &[]);
    assert_eq!(first.status, 200, "{}", who(&first));
    let set = first
        .header("set-cookie")
        .unwrap_or_else(|| panic!("no set-cookie: {:?}", first.headers))
        .to_string();
    let shape = Regex::new(r#"^user="([0-9a-f]+)"; Max-Age=60; Path=/; HttpOnly$"#).unwrap();
    let value = shape.captures(&set).unwrap_or_else(|| {
        panic!("set-cookie {set:?} is not user=\"<hex>\"; Max-Age=60; Path=/; HttpOnly")
    })[1]
        .to_string();
    let cookie = format!("user=\"{value}\"");
    let mut seen = BTreeSet::new();
    for _ in 0..20 {
        let reply = r.get("/c", &[("cookie", &cookie)]);
        assert_eq!(reply.status, 200, "{}", who(&reply));
        assert_eq!(
            reply.header("set-cookie"),
            None,
            "a request carrying the cookie gets no new one"
        );
        seen.insert(who(&reply));
    }
    assert_eq!(seen.len(), 1, "the cookie reached {seen:?}");
    assert_eq!(
        seen.iter().next().unwrap(),
        &who(&first),
        "the cookie leads where the request that got it went"
    );
}

/// `GET /s` for `HOST` from source address `src` (a loopback address); `None` when the
/// local address cannot be bound.
fn get_from(src: IpAddr, to: SocketAddr) -> Option<Reply> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let stream = rt
        .block_on(async {
            let sock = tokio::net::TcpSocket::new_v4()?;
            sock.bind(SocketAddr::new(src, 0))?;
            sock.connect(to).await?.into_std()
        })
        .ok()?;
    let mut stream: TcpStream = stream;
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
        .write_all(
            format!("GET /s HTTP/1.1\r\nhost: {HOST}\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    parse_reply(&buf)
}

#[test]
fn source_ip_hash_sticks_per_client_address() {
    let ups = [
        Upstream::start("s-a"),
        Upstream::start("s-b"),
        Upstream::start("s-c"),
    ];
    let r = start(
        "tp-source-ip",
        "",
        &config(
            &eps(&[&ups[0], &ups[1], &ups[2]]),
            "{loadBalancer: {consistentHash: {useSourceIp: true}}}",
        ),
    );
    // The same client (127.0.0.1), new connections (new source ports) each time.
    let mut seen = BTreeSet::new();
    for _ in 0..20 {
        let reply = r.get("/s", &[]);
        assert_eq!(reply.status, 200, "{}", who(&reply));
        seen.insert(who(&reply));
    }
    assert_eq!(seen.len(), 1, "127.0.0.1 reached {seen:?}");

    // Other loopback client addresses: each sticks too, and they spread.
    let mut by_client: BTreeMap<IpAddr, BTreeSet<String>> = BTreeMap::new();
    for host in 2..=13u8 {
        let src = IpAddr::V4(Ipv4Addr::new(127, 0, 0, host));
        for _ in 0..5 {
            let Some(reply) = get_from(src, r.addr) else {
                panic!("cannot connect from {src}");
            };
            assert_eq!(reply.status, 200, "{}", who(&reply));
            by_client.entry(src).or_default().insert(who(&reply));
        }
    }
    for (src, set) in &by_client {
        assert_eq!(set.len(), 1, "{src} reached {set:?}");
    }
    let used: BTreeSet<&String> = by_client.values().flatten().collect();
    assert!(
        used.len() >= 2,
        "12 client addresses all on one endpoint: {by_client:?}"
    );
}

const OVERFLOW_BODY: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: overflow";

/// The access log's lines (at least `n`, waiting 5 s at most).
fn log_lines(path: &std::path::Path, n: usize) -> Vec<String> {
    let t = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n || t.elapsed() > Duration::from_secs(5) {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn circuit_breaker_overflows_with_503_uo_as_the_istio_task_shows() {
    let up = Upstream::start_with(
        "cb",
        Behavior {
            delay: Duration::from_millis(100),
            ..Behavior::default()
        },
    );
    let r = start(
        "tp-circuit-breaker",
        "  accessLogFile: access.log\n  accessLogEncoding: TEXT\n",
        &config(
            &eps(&[&up]),
            "{connectionPool: {tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1}}}",
        ),
    );

    // (a) Two clients: one request in flight, one pending: everything gets through.
    let two = concurrent(r.addr, 2, 10, Duration::from_secs(12), "/two");
    let two: Vec<&Reply> = two.iter().flatten().collect();
    assert_eq!(two.len(), 20, "all 20 requests answered");
    let ok = two.iter().filter(|r| r.status == 200).count();
    assert!(
        ok >= 19,
        "2 clients over 1 connection + 1 pending: {:?}",
        tally(two.iter().copied())
    );

    // (b) Four clients: the third and fourth overflow.
    let four = concurrent(r.addr, 4, 10, Duration::from_secs(12), "/four");
    let four: Vec<&Reply> = four.iter().flatten().collect();
    assert_eq!(four.len(), 40, "all 40 requests answered");
    let counts = tally(four.iter().copied());
    let overflowed: Vec<&&Reply> = four.iter().filter(|r| r.status == 503).collect();
    let ok = four.iter().filter(|r| r.status == 200).count();
    assert_eq!(ok + overflowed.len(), 40, "only 200s and 503s: {counts:?}");
    assert!(
        !overflowed.is_empty(),
        "no overflow with 4 clients: {counts:?}"
    );
    assert!(ok >= 10, "the 200s still come: {counts:?}");
    for o in &overflowed {
        assert_eq!(
            o.header("x-envoy-overloaded"),
            Some("true"),
            "{:?}",
            o.headers
        );
        assert_eq!(o.text(), OVERFLOW_BODY);
    }

    // The access log: 503s carry UO, 200s no flag.
    let lines = log_lines(&r.dir.join("conf/access.log"), 60);
    let re = Regex::new(r#"^\[[^\]]+\] "GET (/\S+) HTTP/1.1" (\d+) (\S+) "#).unwrap();
    let parsed: Vec<(String, String, String)> = lines
        .iter()
        .filter_map(|l| {
            re.captures(l)
                .map(|c| (c[1].to_string(), c[2].to_string(), c[3].to_string()))
        })
        .collect();
    assert_eq!(
        parsed.len(),
        60,
        "one line per request:\n{}",
        lines.join("\n")
    );
    let four_503 = parsed
        .iter()
        .filter(|(p, code, _)| p == "/four" && code == "503")
        .count();
    assert_eq!(four_503, overflowed.len(), "{}", lines.join("\n"));
    for (path, code, flags) in &parsed {
        match code.as_str() {
            "503" => assert_eq!(flags, "UO", "{path}: {}", lines.join("\n")),
            "200" => assert_eq!(flags, "-", "{path}"),
            other => panic!("{path}: status {other}"),
        }
    }
}

#[test]
fn outlier_detection_ejects_the_failing_endpoint_then_lets_it_back() {
    let bad = Upstream::start_with(
        "od-bad",
        Behavior {
            fail_first: usize::MAX,
            fail_status: 500,
            ..Behavior::default()
        },
    );
    let good = Upstream::start("od-good");
    let r = start(
        "tp-outlier",
        "",
        &config(
            &eps(&[&bad, &good]),
            "{loadBalancer: {simple: ROUND_ROBIN}, outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 3s, maxEjectionPercent: 100}}",
        ),
    );
    let bad_line = format!("{CLUSTER}::{}::health_flags::", bad.addr);

    // Round robin alternates: the bad endpoint's second 500 ejects it.
    let mut fives = 0;
    let mut seq = Vec::new();
    while fives < 2 {
        assert!(seq.len() < 10, "not two 500s in 10 requests: {seq:?}");
        let reply = r.get("/od", &[]);
        if reply.status == 500 {
            assert_eq!(who(&reply), "od-bad");
            fives += 1;
        } else {
            assert_eq!((reply.status, who(&reply).as_str()), (200, "od-good"));
        }
        seq.push(who(&reply));
    }
    let ejected_at = Instant::now();

    // While ejected (3 s), every request reaches the good endpoint.
    let mut during = Vec::new();
    while during.len() < 20 && ejected_at.elapsed() < Duration::from_secs(2) {
        during.push(r.get("/od", &[]));
    }
    assert!(during.len() >= 5, "only {} requests in 2 s", during.len());
    assert!(
        during
            .iter()
            .all(|r| r.status == 200 && who(r) == "od-good"),
        "requests during the ejection: {:?}",
        during.iter().map(who).collect::<Vec<_>>()
    );
    let text = r.clusters_text();
    assert!(
        text.contains(&format!("{bad_line}/failed_outlier_check")),
        "/clusters while ejected:\n{text}"
    );
    assert!(
        text.contains(&format!("{CLUSTER}::{}::health_flags::healthy", good.addr)),
        "{text}"
    );
    let ejected_during = bad.count();

    // Past baseEjectionTime (plus Envoy's sweep interval): back in the rotation.
    let back = Duration::from_millis(4500);
    std::thread::sleep(back.saturating_sub(ejected_at.elapsed()));
    let text = r.clusters_text();
    assert!(
        text.contains(&format!("{bad_line}healthy")),
        "/clusters after the ejection:\n{text}"
    );
    let mut after = Vec::new();
    while !after.iter().any(|r: &Reply| r.status == 500) {
        assert!(
            after.len() < 10,
            "the bad endpoint never came back: {:?}",
            after.iter().map(who).collect::<Vec<_>>()
        );
        after.push(r.get("/od", &[]));
    }
    assert!(bad.count() > ejected_during);
}

#[test]
fn dns_cluster_resolves_localhost_and_lists_the_address() {
    let up = Upstream::start("dns");
    let endpoint = format!(
        "  - {{address: localhost, ports: {{http: {}}}}}\n",
        up.port()
    );
    let r = start("tp-dns", "", &config_with(&[endpoint], "DNS", ""));
    for _ in 0..5 {
        let reply = r.get("/dns", &[]);
        assert_eq!((reply.status, who(&reply).as_str()), (200, "dns"));
    }
    let json = r.clusters_json();
    let cluster = json["cluster_statuses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == CLUSTER)
        .unwrap_or_else(|| panic!("no {CLUSTER} in {json:#}"));
    let hosts: Vec<(String, u64)> = cluster["host_statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let a = &h["address"]["socket_address"];
            (
                a["address"].as_str().unwrap().to_string(),
                a["port_value"].as_u64().unwrap(),
            )
        })
        .collect();
    let port = u64::from(up.port());
    assert!(
        hosts
            .iter()
            .any(|(a, p)| (a == "127.0.0.1" || a == "::1") && *p == port),
        "{hosts:?}"
    );
    assert!(
        hosts.iter().all(|(a, _)| a == "127.0.0.1" || a == "::1"),
        "{hosts:?}"
    );
}

#[test]
fn max_requests_per_connection_one_opens_a_connection_per_request() {
    let once = Upstream::start("mrpc-once");
    let pooled = Upstream::start("mrpc-pooled");
    // Two services: `svc.internal` limited to one request per connection, `pooled.internal`
    // without a limit (the control: its connections are reused).
    let yaml = format!(
        "{}---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: pooled}}\nspec:\n  hosts: [pooled.internal]\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {}}}}}]\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: pooled}}\nspec:\n  hosts: [pooled.example.com]\n  gateways: [gw]\n  http:\n  - route: [{{destination: {{host: pooled.internal}}}}]\n",
        config(
            &eps(&[&once]),
            "{connectionPool: {http: {maxRequestsPerConnection: 1}}}"
        ),
        pooled.port()
    );
    let r = start("tp-max-requests-per-connection", "", &yaml);
    for i in 0..10 {
        let a = r.get(&format!("/once/{i}"), &[]);
        assert_eq!((a.status, who(&a).as_str()), (200, "mrpc-once"));
        let b = get(r.addr, "pooled.example.com", &format!("/pooled/{i}"), &[]);
        assert_eq!((b.status, who(&b).as_str()), (200, "mrpc-pooled"));
    }
    assert_eq!(once.count(), 10);
    assert_eq!(
        once.conns.load(std::sync::atomic::Ordering::SeqCst),
        10,
        "one upstream connection per request"
    );
    assert_eq!(pooled.count(), 10);
    let pooled_conns = pooled.conns.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        pooled_conns <= 2,
        "without the limit the gateway reuses its upstream connections: {pooled_conns} for 10 requests"
    );
}

#[test]
fn tcp_route_max_connections_closes_the_second_connection() {
    let echo = EchoUpstream::start("echo");
    let yaml = format!(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec:\n  selector: {{istio: ingressgateway}}\n  servers:\n  - port: {{number: {{PORT}}, name: tcp, protocol: TCP}}\n    hosts: [\"*\"]\n---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: echo}}\nspec:\n  hosts: [echo.internal]\n  ports: [{{number: 9000, name: tcp, protocol: TCP}}]\n  resolution: STATIC\n  endpoints: [{{address: 127.0.0.1, ports: {{tcp: {}}}}}]\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: echo}}\nspec:\n  host: echo.internal\n  trafficPolicy: {{connectionPool: {{tcp: {{maxConnections: 1}}}}}}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: tcp}}\nspec:\n  hosts: [\"*\"]\n  gateways: [gw]\n  tcp:\n  - route: [{{destination: {{host: echo.internal, port: {{number: 9000}}}}}}]\n",
        echo.port()
    );
    let r = start("tp-tcp-max-connections", "", &yaml);
    let conns = || echo.conns.load(std::sync::atomic::Ordering::SeqCst);

    // The first connection: echoes, and stays open.
    let first = TcpStream::connect(r.addr).unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut first_r = BufReader::new(first.try_clone().unwrap());
    let mut first_w = first;
    let mut line = String::new();
    first_w.write_all(b"one\n").unwrap();
    first_r.read_line(&mut line).unwrap();
    assert_eq!(line, "echo one\n");
    assert_eq!(conns(), 1);

    // A second, while the first is open: closed at once, never reaching the echo.
    let mut second = TcpStream::connect(r.addr).unwrap();
    second
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let t = Instant::now();
    let _ = second.write_all(b"two\n");
    let mut got = Vec::new();
    let read = second.read_to_end(&mut got);
    assert!(
        read.is_ok()
            || matches!(
                read.as_ref().map_err(|e| e.kind()),
                Err(std::io::ErrorKind::ConnectionReset)
            ),
        "the second connection was not closed: {read:?} after {:?}",
        t.elapsed()
    );
    assert!(got.is_empty(), "the second connection got {got:?}");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "closed only after {:?}",
        t.elapsed()
    );
    assert_eq!(conns(), 1, "the second connection reached the upstream");

    // The first still works.
    line.clear();
    first_w.write_all(b"still\n").unwrap();
    first_r.read_line(&mut line).unwrap();
    assert_eq!(line, "echo still\n");

    // Once the first closes, its slot is free again.
    drop(first_w);
    drop(first_r);
    let t = Instant::now();
    let third = loop {
        if let Some(reply) = common::peers::echo_once(r.addr, "three") {
            break reply;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the slot was never freed"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(third, "echo three");
}
