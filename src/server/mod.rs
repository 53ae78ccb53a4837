//! Assembles the Pingora server and runs it for the process's life: the gateway's
//! listeners (own accept loops, so a reload can add and remove ports), the admin
//! listener, and the `Control` that reloads the config on `SIGHUP` (`reload.rs`) and
//! drains on `SIGTERM` (`lifecycle.rs`). The serving generation lives behind an
//! `ArcSwap` shared by the pipeline, the listeners and the admin listener.

mod lifecycle;
mod reload;

use crate::admin::AdminApp;
use crate::http::GatewayProxy;
use crate::listener::accept::Acceptors;
use crate::listener::ListenerApp;
use crate::snapshot::Snapshot;
use crate::telemetry::Telemetry;
use crate::upstream::{Generation, Registry};
use arc_swap::ArcSwap;
use pingora::apps::HttpServerOptions;
use pingora::proxy::HttpProxy;
use pingora::server::configuration::ServerConf;
use pingora::server::{ListenFds, RunArgs, Server, ShutdownWatch};
use pingora::services::listening::Service;
use pingora::services::{ServiceReadyNotifier, ServiceWithDependents};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::watch;

/// Where a reload reads the config from: what `meshgate run` was given.
pub struct Source {
    pub paths: Vec<PathBuf>,
    pub cli_labels: Vec<(String, String)>,
    /// The documents parsed at start (or the last reload): a reload parses only those
    /// that changed.
    pub parsed: crate::config::loader::DocCache,
    /// The MeshConfig fields read only at start (access log, admin address), as they
    /// were: a reload that changes them says they wait for the next start.
    pub start_only: String,
}

/// The MeshConfig fields `run` reads only at start, in a form to compare.
pub fn start_only_fields(c: &crate::config::Config) -> String {
    let Some(mc) = c.mesh_config() else {
        return String::new();
    };
    format!(
        "{:?}",
        (
            &mc.access_log_file,
            &mc.access_log_encoding,
            &mc.access_log_format,
            &mc.admin_address
        )
    )
}

/// The binary upgrade hand-over: the unix socket the listening sockets pass through, and
/// whether this process is the new one (it takes them instead of binding).
pub struct Upgrade {
    pub socket: PathBuf,
    pub take_over: bool,
}

type Gateway = ListenerApp<HttpProxy<GatewayProxy>>;

/// What reloads and stops act on.
pub(crate) struct Control {
    source: Source,
    shared: Arc<ArcSwap<Generation>>,
    registry: Arc<Registry>,
    telemetry: Arc<Telemetry>,
    listeners: Arc<Gateway>,
    acceptors: Acceptors<Gateway>,
    /// The gateway runtime, where accept loops run (set once it starts).
    runtime: OnceLock<tokio::runtime::Handle>,
    generation: AtomicU64,
    /// Set by SIGTERM: `/ready` answers 503.
    draining: Arc<AtomicBool>,
    /// Tells open connections the gateway is going away (keep-alive ends, GOAWAY).
    connections_shutdown: watch::Sender<bool>,
    /// One reload at a time.
    reloading: std::sync::Mutex<()>,
    upgrade_socket: PathBuf,
    /// Set once the sockets were handed to a new process (SIGUSR2): the stop watcher
    /// drains and exits.
    handed_over: tokio::sync::Notify,
}

impl Control {
    fn listener_addresses(g: &Generation) -> Vec<SocketAddr> {
        g.snapshot.listeners.iter().map(|l| l.address).collect()
    }
}

/// Runs until the process is stopped; never returns.
pub fn serve(
    snapshot: Snapshot,
    admin: &str,
    telemetry: Telemetry,
    source: Source,
    upgrade: Upgrade,
) -> ! {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let conf = ServerConf {
        threads,
        // Pingora's cap on tries per request; route retry policies decide below it.
        max_retries: crate::snapshot::route_policy::MAX_RETRIES as usize + 1,
        // The drain happens before Pingora is told to stop (lifecycle.rs).
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        upgrade_sock: upgrade.socket.display().to_string(),
        ..ServerConf::default()
    };
    let opt = pingora::server::configuration::Opt {
        upgrade: upgrade.take_over,
        ..Default::default()
    };
    if upgrade.take_over {
        log::info!(
            "upgrade: waiting for the running process's sockets on {} (send it SIGQUIT)",
            upgrade.socket.display()
        );
    }
    let mut server = Server::new_with_opt_and_conf(Some(opt), conf);
    // With --upgrade, this waits for the old process's listening sockets.
    server.bootstrap();

    let addresses: Vec<SocketAddr> = snapshot.listeners.iter().map(|l| l.address).collect();
    // Refuse to start when an address is taken, naming it (an upgrade takes them over).
    // The trial sockets stay open until all are bound, so the admin address given on the
    // same port as a Gateway server is refused too.
    let taken_over = if upgrade.take_over {
        &addresses[..0]
    } else {
        &addresses[..]
    };
    let admin_check = (!upgrade.take_over).then(|| admin.to_string());
    let mut trial = Vec::new();
    for addr in taken_over.iter().map(|a| a.to_string()).chain(admin_check) {
        match std::net::TcpListener::bind(&addr) {
            Ok(l) => trial.push(l),
            Err(e) => {
                log::error!("cannot listen on {addr}: {e}");
                std::process::exit(1);
            }
        }
    }
    drop(trial);
    for n in &snapshot.notes {
        log::warn!("{n}");
    }
    let registry = Arc::new(Registry::default());
    let telemetry = Arc::new(telemetry);
    let snapshot = Arc::new(snapshot);
    // The first configuration is generation 1; each accepted reload adds one.
    telemetry.adopt(&snapshot);
    telemetry.own.config_adopted(1);
    let shared: Arc<ArcSwap<Generation>> =
        Arc::new(ArcSwap::from_pointee(registry.adopt(snapshot)));

    let mut http = pingora::proxy::http_proxy(
        &server.configuration,
        GatewayProxy::new(shared.clone(), registry.clone(), telemetry.clone()),
    );
    let mut options = HttpServerOptions::default();
    options.h2c = true;
    // HTTP/2 connections idle this long end with GOAWAY (MeshConfig `idleTimeout`).
    options.h2_idle_timeout = Some(shared.load().snapshot.downstream.idle_timeout);
    http.server_options = Some(options);
    let listeners = Arc::new(ListenerApp::new(
        shared.clone(),
        http,
        telemetry.clone(),
        registry.clone(),
        addresses.iter().copied(),
    ));
    let (connections_shutdown, connections_watch) = watch::channel(false);
    let draining = Arc::new(AtomicBool::new(false));
    let control = Arc::new(Control {
        source,
        shared: shared.clone(),
        registry,
        telemetry: telemetry.clone(),
        acceptors: Acceptors::new(listeners.clone(), connections_watch),
        listeners,
        runtime: OnceLock::new(),
        generation: AtomicU64::new(1),
        draining: draining.clone(),
        connections_shutdown,
        reloading: std::sync::Mutex::new(()),
        upgrade_socket: upgrade.socket,
        handed_over: tokio::sync::Notify::new(),
    });

    server.add_service(GatewayService {
        control: control.clone(),
        threads,
    });
    credential_refresher(shared.clone());
    lifecycle::handle_signals(control.clone());

    let mut admin_service = Service::new(
        "meshgate admin".to_string(),
        AdminApp::new(shared, telemetry).with_draining(draining),
    );
    admin_service.add_tcp(admin);
    log::info!("admin on {admin}");
    server.add_service(admin_service);
    server.run(RunArgs {
        shutdown_signal: Box::new(lifecycle::Stop(control)),
    });
    std::process::exit(0)
}

/// Hosts the gateway's accept loops on a runtime of `threads` workers: binds the first
/// generation's listeners (or takes them from the process it upgrades), then tells
/// systemd the gateway is ready.
struct GatewayService {
    control: Arc<Control>,
    threads: usize,
}

#[async_trait::async_trait]
impl ServiceWithDependents for GatewayService {
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        _shutdown: ShutdownWatch,
        _listeners_per_fd: usize,
        ready: ServiceReadyNotifier,
    ) {
        let c = &self.control;
        let _ = c.runtime.set(tokio::runtime::Handle::current());
        tokio::spawn(keep_time_driver_awake());
        if let Some(fds) = fds {
            c.acceptors.use_fds(fds);
        }
        let addresses = Control::listener_addresses(&c.shared.load());
        if let Err((addr, e)) = c.acceptors.add(&addresses) {
            log::error!("cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
        ready.notify_ready();
        crate::notify::notify(&format!("READY=1\nMAINPID={}", std::process::id()));
        // The loops run on this runtime until the process ends; Pingora's shutdown is
        // told only once the drain is over (lifecycle.rs).
    }

    fn name(&self) -> &str {
        "gateway listeners"
    }

    fn threads(&self) -> Option<usize> {
        Some(self.threads)
    }

    /// The sockets this service claims: on an upgrade, handed-over sockets no service
    /// claims (ports the new config dropped) are closed by Pingora.
    fn listen_addresses(&self) -> Option<Vec<String>> {
        let g = self.control.shared.load();
        Some(
            Control::listener_addresses(&g)
                .iter()
                .map(ToString::to_string)
                .collect(),
        )
    }
}

/// Keeps a timer due within a second on the serving runtime, for ever. Tokio's time
/// driver wakes itself through its eventfd (a `write` syscall, then an extra `epoll_wait`)
/// whenever a timer is registered while it has no wake-up planned; each request arms
/// such timers (the keep-alive wait, the upstream pool's idle watch), so without this a
/// busy gateway paid that wake on a good share of its requests (seen with strace, `perf
/// record -e syscalls:sys_enter_write`). With a wake-up always planned within a second,
/// timers due later (the idle timeouts, 10 s and more) register without one; this task
/// costs one wake a second.
async fn keep_time_driver_awake() {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// How often credential files are checked for changes.
const CREDENTIAL_POLL: Duration = Duration::from_secs(1);

/// Watches every terminating server's certificate, key and CA files; when they change,
/// new handshakes use the new files. Unusable new files are logged and the previous
/// credential stays in use.
fn credential_refresher(shared: Arc<ArcSwap<Generation>>) {
    std::thread::spawn(move || loop {
        std::thread::sleep(CREDENTIAL_POLL);
        let active = shared.load_full();
        for (server, tls) in active.snapshot.server_tls() {
            match tls.refresh() {
                Ok(true) => log::info!("{server}: credential reloaded"),
                Ok(false) => {}
                Err(e) => log::warn!("{server}: {e}; keeping the previous credential"),
            }
        }
    });
}

impl Control {
    fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}
