//! Running as a service: `SIGHUP` reloads (routes flipped, ports added and removed) under
//! concurrent load without a failed request, refused reloads keep the running config and
//! are reported, and `SIGTERM` drains (`/ready` 503 at once, in-flight requests finish,
//! exit 0 within the drain times).

mod common;
use common::net::*;
use common::{scratch, write};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const HOST: &str = "a.example.com";

/// The gateway's config: a Gateway server on each of `ports`, and `a.example.com` routed
/// to the upstream `to` (one of the two services).
fn config(ports: &[u16], to: &str, v1: &Upstream, v2: &Upstream) -> String {
    let servers: String = ports
        .iter()
        .map(|p| {
            format!(
                "  - port: {{number: {p}, name: http-{p}, protocol: HTTP}}\n    hosts: [\"*\"]\n"
            )
        })
        .collect();
    let service = |name: &str, u: &Upstream| {
        format!("---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}}}\nspec:\n  hosts: [{name}.internal]\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {}}}}}]\n", u.port())
    };
    format!(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec:\n  selector: {{istio: ingressgateway}}\n  servers:\n{servers}{}{}---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: web}}\nspec:\n  hosts: [{HOST}]\n  gateways: [gw]\n  http:\n  - route: [{{destination: {{host: {to}.internal}}}}]\n",
        service("v1", v1),
        service("v2", v2),
    )
}

fn mesh(extra: &str) -> String {
    format!("apiVersion: meshgate.io/v1alpha1\nkind: MeshConfig\nmetadata: {{name: m}}\nspec:\n  defaultBindAddress: 127.0.0.1\n{extra}")
}

fn hup(gw: &Gateway) {
    signal(gw, "-HUP");
}

fn signal(gw: &Gateway, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &gw.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig}");
}

fn server_info(gw: &Gateway) -> Value {
    let r = get(gw.admin, "admin", "/server_info", &[]);
    serde_json::from_str(&r.text()).unwrap()
}

fn generation(gw: &Gateway) -> u64 {
    server_info(gw)["config_generation"].as_u64().unwrap()
}

/// Waits until the generation is `want` (a reload was applied), at most 10 s.
fn await_generation(gw: &Gateway, want: u64) {
    let t = Instant::now();
    while generation(gw) != want {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "generation {want} not reached"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn counter(gw: &Gateway, series: &str) -> u64 {
    let text = get(gw.admin, "admin", "/stats", &[]).text();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(": ")?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

/// One request on a kept-alive connection: (status, body, whether the gateway closes the
/// connection after it). `None` when the connection broke before a whole response.
fn keepalive_get(conn: &mut BufReader<TcpStream>) -> Option<(u16, String, bool)> {
    let req = format!("GET /k HTTP/1.1\r\nhost: {HOST}\r\n\r\n");
    conn.get_mut().write_all(req.as_bytes()).ok()?;
    let mut line = String::new();
    conn.read_line(&mut line).ok()?;
    let status: u16 = line.split(' ').nth(1)?.parse().ok()?;
    let mut len = 0;
    let mut close = false;
    loop {
        line.clear();
        conn.read_line(&mut line).ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let lower = l.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().ok()?;
        }
        if lower == "connection: close" {
            close = true;
        }
    }
    let mut body = vec![0; len];
    conn.read_exact(&mut body).ok()?;
    Some((status, String::from_utf8_lossy(&body).into_owned(), close))
}

#[test]
fn a_hundred_reloads_under_load_fail_no_request() {
    let (v1, v2) = (Upstream::start("v1"), Upstream::start("v2"));
    let dir = scratch("reload-load");
    let (a, b) = (free_port(), free_port());
    write(&dir, "conf/mesh.yaml", &mesh(""));
    write(&dir, "conf/all.yaml", &config(&[a], "v1", &v1, &v2));
    let gw = Gateway::start(&dir);
    let addr_a: SocketAddr = format!("127.0.0.1:{a}").parse().unwrap();
    let addr_b: SocketAddr = format!("127.0.0.1:{b}").parse().unwrap();
    assert_eq!(generation(&gw), 1);

    // Kept-alive connections are never closed by a reload: any break is a failure.
    let load = Load::start(
        addr_a,
        |b| b.starts_with("v1") || b.starts_with("v2"),
        false,
    );

    for n in 0..100u64 {
        // Even reloads: route to v2 and add port b; odd: back to v1 on port a only.
        let flip = n % 2 == 0;
        let ports: &[u16] = if flip { &[a, b] } else { &[a] };
        let to = if flip { "v2" } else { "v1" };
        write(&dir, "conf/all.yaml", &config(ports, to, &v1, &v2));
        hup(&gw);
        await_generation(&gw, n + 2);
        let reply = raw(
            addr_b,
            format!("GET /b HTTP/1.1\r\nhost: {HOST}\r\nconnection: close\r\n\r\n").as_bytes(),
        );
        if flip {
            let r = reply.expect("the added port serves");
            assert_eq!((r.status, r.text().starts_with("v2")), (200, true));
        } else {
            assert!(
                TcpStream::connect(addr_b).is_err(),
                "the removed port no longer accepts"
            );
        }
    }
    let served = load.finish();
    assert!(served > 400, "{served} requests served during 100 reloads");
    assert!(v1.count() > 0 && v2.count() > 0, "both routes served");
    assert_eq!(
        counter(&gw, "meshgate_config_reloads_total{result=\"accepted\"}"),
        100
    );
    assert_eq!(generation(&gw), 101);
}

#[test]
fn a_refused_reload_keeps_serving_and_is_reported() {
    let (v1, v2) = (Upstream::start("v1"), Upstream::start("v2"));
    let dir = scratch("reload-refused");
    let a = free_port();
    write(&dir, "conf/mesh.yaml", &mesh(""));
    write(&dir, "conf/all.yaml", &config(&[a], "v1", &v1, &v2));
    let gw = Gateway::start(&dir);
    let addr: SocketAddr = format!("127.0.0.1:{a}").parse().unwrap();
    let refused = "meshgate_config_reloads_total{result=\"refused\"}";
    let serves_v1 = || get(addr, HOST, "/", &[]).text().starts_with("v1");

    // A YAML syntax error.
    write(
        &dir,
        "conf/all.yaml",
        "apiVersion: networking.istio.io/v1\nkind: [oops\n",
    );
    hup(&gw);
    await_counter(&gw, refused, 1);
    assert!(serves_v1(), "still serving the running config");
    // A semantic error (Istio's validation): retries.attempts may not be negative.
    let bad = config(&[a], "v2", &v1, &v2)
        .replace("  - route: [", "  - retries: {attempts: -1}\n    route: [");
    write(&dir, "conf/all.yaml", &bad);
    hup(&gw);
    await_counter(&gw, refused, 2);
    assert!(serves_v1());
    // A new port another process holds.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap().port();
    write(&dir, "conf/all.yaml", &config(&[a, taken], "v2", &v1, &v2));
    hup(&gw);
    await_counter(&gw, refused, 3);
    assert!(serves_v1());
    assert_eq!(generation(&gw), 1, "the running config stays");
    let log = std::fs::read_to_string(dir.join("meshgate.log")).unwrap();
    assert!(log.contains("reload refused"), "{log}");
    assert!(
        log.contains("all.yaml"),
        "validate's messages name the file: {log}"
    );
    assert!(
        log.contains(&format!("cannot listen on 127.0.0.1:{taken}")),
        "{log}"
    );
    // Fixed: accepted.
    write(&dir, "conf/all.yaml", &config(&[a], "v2", &v1, &v2));
    hup(&gw);
    await_generation(&gw, 2);
    assert!(get(addr, HOST, "/", &[]).text().starts_with("v2"));
    let dump: Value =
        serde_json::from_str(&get(gw.admin, "admin", "/config_dump", &[]).text()).unwrap();
    assert_eq!(dump["generation"], 2);
    drop(holder);
}

fn await_counter(gw: &Gateway, series: &str, want: u64) {
    let t = Instant::now();
    while counter(gw, series) != want {
        assert!(t.elapsed() < Duration::from_secs(10), "{series} not {want}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn ready_status(gw: &Gateway) -> Option<u16> {
    raw(
        gw.admin,
        b"GET /ready HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n",
    )
    .map(|r| r.status)
}

#[test]
fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let slow = Upstream::start_with(
        "slow",
        Behavior {
            delay: Duration::from_millis(1500),
            ..Behavior::default()
        },
    );
    let fast = Upstream::start("fast");
    let dir = scratch("drain");
    let a = free_port();
    write(
        &dir,
        "conf/mesh.yaml",
        &mesh("  drainDuration: 1s\n  terminationDrainDuration: 10s\n"),
    );
    write(&dir, "conf/all.yaml", &config(&[a], "v1", &slow, &fast));
    let mut gw = Gateway::start(&dir);
    let addr: SocketAddr = format!("127.0.0.1:{a}").parse().unwrap();
    // An idle kept-alive connection: closed by the drain.
    let mut idle = BufReader::new(TcpStream::connect(addr).unwrap());
    assert_eq!(
        keepalive_get(&mut idle).map(|r| (r.0, r.2)),
        Some((200, false))
    );

    let in_flight = std::thread::spawn(move || get(addr, HOST, "/slow", &[]));
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    signal(&gw, "-TERM");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(ready_status(&gw), Some(503), "/ready turns 503 at once");
    // Within drainDuration the listener still accepts (load balancers are moving away).
    let during = std::thread::spawn(move || {
        raw(
            addr,
            format!("GET /during HTTP/1.1\r\nhost: {HOST}\r\nconnection: close\r\n\r\n").as_bytes(),
        )
    });
    let slow_reply = in_flight.join().unwrap();
    assert_eq!(slow_reply.status, 200, "the in-flight request completes");
    assert!(slow_reply.text().starts_with("slow"));
    assert_eq!(during.join().unwrap().map(|r| r.status), Some(200));
    // The idle kept-alive connection was closed, not left to its idle timeout.
    let mut rest = Vec::new();
    let _ = idle
        .get_mut()
        .set_read_timeout(Some(Duration::from_secs(5)));
    assert_eq!(
        idle.read_to_end(&mut rest).ok(),
        Some(0),
        "closed by the drain"
    );
    let status = loop {
        if let Some(s) = gw.child.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "still running");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    assert!(
        t.elapsed() >= Duration::from_millis(1400),
        "waited for the in-flight request"
    );
    let log = std::fs::read_to_string(dir.join("meshgate.log")).unwrap();
    assert!(log.contains("drained"), "{log}");
    assert!(Path::new(&dir).exists());
}

/// `meshgate run` with an upgrade socket (and `--upgrade` for the new process).
fn spawn_gateway(
    dir: &Path,
    admin: SocketAddr,
    socket: &Path,
    upgrade: bool,
) -> std::process::Child {
    let log = std::fs::File::create(dir.join(if upgrade { "new.log" } else { "old.log" })).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshgate"));
    cmd.args(["run", "--config"])
        .arg(dir.join("conf"))
        .args(["--admin", &admin.to_string(), "--upgrade-socket"])
        .arg(socket)
        .stdout(std::process::Stdio::null())
        .stderr(log);
    if upgrade {
        cmd.arg("--upgrade");
    }
    cmd.spawn().unwrap()
}

#[test]
fn a_binary_upgrade_under_load_refuses_no_connection() {
    let (v1, v2) = (Upstream::start("v1"), Upstream::start("v2"));
    let dir = scratch("upgrade");
    let a = free_port();
    write(&dir, "conf/mesh.yaml", &mesh("  drainDuration: 1s\n"));
    write(&dir, "conf/all.yaml", &config(&[a], "v1", &v1, &v2));
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let socket = dir.join("upgrade.sock");
    let mut old = spawn_gateway(&dir, admin, &socket, false);
    let t = Instant::now();
    while raw(
        admin,
        b"GET /ready HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
    )
    .map(|r| r.status)
        != Some(200)
    {
        assert!(t.elapsed() < Duration::from_secs(20), "old not ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let addr: SocketAddr = format!("127.0.0.1:{a}").parse().unwrap();

    let load = Load::start(addr, |b| b.starts_with("v1"), true);
    std::thread::sleep(Duration::from_millis(300));
    let mut new = spawn_gateway(&dir, admin, &socket, true);
    // The new process waits on the upgrade socket; then the old one is told to hand over.
    let t = Instant::now();
    while !socket.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the new process does not wait"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = load.served();
    let ok = Command::new("kill")
        .args(["-QUIT", &old.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    exits_zero(&mut old, "the old process");
    // The new process serves alone now, on the same sockets (the admin listener's too).
    let info: Value =
        serde_json::from_str(&get(admin, "admin", "/server_info", &[]).text()).unwrap();
    assert_eq!(info["pid"], new.id());
    let during = load.served();
    std::thread::sleep(Duration::from_millis(500));
    let after = load.finish();
    let _ = new.kill();
    let _ = new.wait();
    assert!(
        during > before && after > during + 50,
        "{before} {during} {after}"
    );
}

/// Four clients sending requests until told to stop: two on kept-alive connections, two
/// opening a connection per request. Every answer must be a 200 whose body `answers`
/// accepts. With `resend_on_close`, a kept-alive connection the gateway closes under a
/// request is replaced and the request sent again (as HTTP clients do while a process
/// drains); without, that is a failure too.
struct Load {
    stop: Arc<AtomicBool>,
    served: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    clients: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr, answers: fn(&str) -> bool, resend_on_close: bool) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(Mutex::new(Vec::<String>::new()));
        let mut clients = Vec::new();
        for i in 0..4 {
            let (stop, served, failures) = (stop.clone(), served.clone(), failures.clone());
            clients.push(std::thread::spawn(move || {
                let keepalive = i % 2 == 0;
                let mut conn: Option<BufReader<TcpStream>> = None;
                let mut reused = false;
                while !stop.load(Ordering::Relaxed) {
                    let answer = if keepalive {
                        if conn.is_none() {
                            match TcpStream::connect(addr) {
                                Ok(c) => {
                                    conn = Some(BufReader::new(c));
                                    reused = false;
                                }
                                Err(e) => {
                                    failures.lock().unwrap().push(format!("connect: {e}"));
                                    continue;
                                }
                            }
                        }
                        let a = keepalive_get(conn.as_mut().unwrap());
                        let broke = a.is_none();
                        if a.as_ref().is_none_or(|a| a.2) {
                            conn = None;
                        }
                        if broke && reused && resend_on_close {
                            // A kept-alive connection the old process closed as it drained,
                            // just as the request went out: a client sends it again on a
                            // new connection (RFC 9112 9.3.1), as these do.
                            continue;
                        }
                        reused = true;
                        a.map(|(status, body, _)| (status, body))
                    } else {
                        raw(
                            addr,
                            format!("GET /n HTTP/1.1\r\nhost: {HOST}\r\nconnection: close\r\n\r\n")
                                .as_bytes(),
                        )
                        .map(|r| (r.status, r.text()))
                    };
                    match answer {
                        Some((200, body)) if answers(&body) => {
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                        other => failures.lock().unwrap().push(format!("{other:?}")),
                    }
                }
            }));
        }
        Load {
            stop,
            served,
            failures,
            clients,
        }
    }

    fn served(&self) -> usize {
        self.served.load(Ordering::Relaxed)
    }

    /// Stops the clients; fails the test if any request failed; the requests served.
    fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        for c in self.clients {
            c.join().unwrap();
        }
        let served = self.served.load(Ordering::Relaxed);
        let failures = self.failures.lock().unwrap();
        assert!(
            failures.is_empty(),
            "{} failed of {served}: {:?}",
            failures.len(),
            &failures[..failures.len().min(5)]
        );
        served
    }
}

#[test]
fn sigusr2_upgrades_in_place_and_hands_systemd_the_new_main_pid() {
    let (v1, v2) = (Upstream::start("v1"), Upstream::start("v2"));
    let dir = scratch("upgrade-in-place");
    let a = free_port();
    write(&dir, "conf/mesh.yaml", &mesh(""));
    write(&dir, "conf/all.yaml", &config(&[a], "v1", &v1, &v2));
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let socket = dir.join("upgrade.sock");
    // systemd's notify socket, played by the test.
    let notify_path = dir.join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let log = std::fs::File::create(dir.join("gateway.log")).unwrap();
    let mut old = Command::new(env!("CARGO_BIN_EXE_meshgate"))
        .args(["run", "--config"])
        .arg(dir.join("conf"))
        .args(["--admin", &admin.to_string(), "--upgrade-socket"])
        .arg(&socket)
        .env("NOTIFY_SOCKET", &notify_path)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut messages = Vec::new();
    let next = || {
        let mut buf = [0u8; 512];
        let n = notify.recv(&mut buf).expect("a notify message");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    messages.push(next());
    assert!(messages[0].starts_with("READY=1"), "{messages:?}");
    let addr: SocketAddr = format!("127.0.0.1:{a}").parse().unwrap();
    let load = Load::start(addr, |b| b.starts_with("v1"), true);
    std::thread::sleep(Duration::from_millis(300));
    signal_pid(old.id(), "-USR2");
    // The old process names the new main pid, then stops; the new one says it is ready.
    let mainpid = loop {
        let m = next();
        if let Some(pid) = m.strip_prefix("MAINPID=") {
            break pid.trim().parse::<u32>().unwrap();
        }
        messages.push(m);
    };
    assert_ne!(mainpid, old.id());
    exits_zero(&mut old, "the old process");
    let info: Value =
        serde_json::from_str(&get(admin, "admin", "/server_info", &[]).text()).unwrap();
    assert_eq!(info["pid"], mainpid, "the new process serves");
    std::thread::sleep(Duration::from_millis(300));
    let served = load.finish();
    assert!(served > 100, "{served}");
    signal_pid(mainpid, "-INT");
    let log = std::fs::read_to_string(dir.join("gateway.log")).unwrap();
    assert!(log.contains("handed to process"), "{log}");
}

fn signal_pid(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

#[test]
fn a_reload_says_which_settings_wait_for_the_next_start() {
    let (v1, v2) = (Upstream::start("v1"), Upstream::start("v2"));
    let dir = scratch("reload-start-only");
    let a = free_port();
    write(&dir, "conf/mesh.yaml", &mesh(""));
    write(&dir, "conf/all.yaml", &config(&[a], "v1", &v1, &v2));
    let gw = Gateway::start(&dir);
    write(
        &dir,
        "conf/mesh.yaml",
        &mesh("  accessLogFile: /dev/stdout\n"),
    );
    hup(&gw);
    await_generation(&gw, 2);
    let log = std::fs::read_to_string(dir.join("meshgate.log")).unwrap();
    assert!(log.contains("accessLogFile"), "{log}");
    assert!(log.contains("apply at the next start"), "{log}");
}

/// Waits (at most 15 s) for `child` to exit, and asserts it exited 0.
fn exits_zero(child: &mut std::process::Child, what: &str) {
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "{what} does not exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{what}: {status}");
}
