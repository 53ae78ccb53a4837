//! Assembles the Pingora server: one service listening on every gateway listener (the
//! listener layer hands HTTP to the proxy pipeline), and the admin listener. The snapshot
//! lives behind an `ArcSwap` shared by both.

use crate::admin::AdminApp;
use crate::http::GatewayProxy;
use crate::listener::ListenerApp;
use crate::snapshot::Snapshot;
use crate::telemetry::Telemetry;
use crate::upstream::{Generation, Registry};
use arc_swap::ArcSwap;
use pingora::apps::HttpServerOptions;
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::server::ShutdownWatch;
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;
use std::sync::Arc;
use std::time::Duration;

/// Runs until the process is signalled; never returns.
pub fn serve(snapshot: Snapshot, admin: &str, telemetry: Telemetry) -> ! {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let conf = ServerConf {
        threads,
        // Pingora's cap on tries per request; route retry policies decide below it.
        max_retries: crate::snapshot::route_policy::MAX_RETRIES as usize + 1,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(5),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let listeners: Vec<String> = snapshot
        .listeners
        .iter()
        .map(|l| l.address.to_string())
        .collect();
    // Pingora keeps running when a bind fails; refuse to start instead, naming the address.
    for addr in listeners
        .iter()
        .map(String::as_str)
        .chain(std::iter::once(admin))
    {
        if let Err(e) = std::net::TcpListener::bind(addr) {
            log::error!("cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    }
    for n in &snapshot.notes {
        log::warn!("{n}");
    }
    let registry = Arc::new(Registry::default());
    let telemetry = Arc::new(telemetry);
    let snapshot = Arc::new(snapshot);
    // The first configuration is generation 1 (reloads count on from it).
    telemetry.adopt(&snapshot, 1);
    let shared: Arc<ArcSwap<Generation>> =
        Arc::new(ArcSwap::from_pointee(registry.adopt(snapshot)));
    reopen_on_sigusr1();

    let mut http = pingora::proxy::http_proxy(
        &server.configuration,
        GatewayProxy::new(shared.clone(), registry, telemetry.clone()),
    );
    let mut options = HttpServerOptions::default();
    options.h2c = true;
    // HTTP/2 connections idle this long end with GOAWAY (MeshConfig `idleTimeout`).
    options.h2_idle_timeout = Some(shared.load().snapshot.downstream.idle_timeout);
    http.server_options = Some(options);
    let mut gateway = Service::new(
        "meshgate gateway".to_string(),
        ListenerApp::new(
            shared.clone(),
            http,
            telemetry.clone(),
            shared.load().snapshot.listeners.iter().map(|l| l.address),
        ),
    );
    for addr in &listeners {
        gateway.add_tcp(addr);
        log::info!("listening on {addr}");
    }
    if !listeners.is_empty() {
        server.add_service(gateway);
    }
    credential_refresher(shared.clone());
    server.add_service(background_service(
        "access log flush at shutdown",
        FlushOnShutdown(telemetry.clone()),
    ));

    let mut admin_service = Service::new(
        "meshgate admin".to_string(),
        AdminApp::new(shared, telemetry),
    );
    admin_service.add_tcp(admin);
    log::info!("admin on {admin}");
    server.add_service(admin_service);
    server.run_forever()
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

/// `SIGUSR1` reopens the access log (logrotate's `postrotate`, as Envoy's admin
/// `/reopen_logs`). Handled from the start, so the signal never ends the process.
fn reopen_on_sigusr1() {
    use tokio::signal::unix::{signal, SignalKind};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    // Registered before serving starts, so an early signal cannot end the process.
    let handler = runtime.and_then(|rt| {
        let usr1 = {
            let _in = rt.enter();
            signal(SignalKind::user_defined1())?
        };
        Ok((rt, usr1))
    });
    let (runtime, mut usr1) = match handler {
        Ok(h) => h,
        Err(e) => {
            log::warn!("SIGUSR1 is not handled: {e}");
            return;
        }
    };
    std::thread::spawn(move || {
        runtime.block_on(async {
            while usr1.recv().await.is_some() {
                log::info!("SIGUSR1: reopening the access log");
                crate::telemetry::access_log::writer::request_reopen();
            }
        })
    });
}

/// Writes the access log's last lines (up to a second's worth wait in its buffer) when
/// the server shuts down; a disk that does not answer within 2 s is given up on.
struct FlushOnShutdown(Arc<Telemetry>);

#[async_trait::async_trait]
impl BackgroundService for FlushOnShutdown {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
        let telemetry = self.0.clone();
        let (done, flushed) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            telemetry.flush();
            let _ = done.send(());
        });
        let _ = tokio::time::timeout(Duration::from_secs(2), flushed).await;
    }
}
