//! Assembles the Pingora server: one HTTP proxy service listening on every gateway
//! listener, and the admin listener. The snapshot lives behind an `ArcSwap` shared by both.

use crate::admin::AdminApp;
use crate::proxy::GatewayProxy;
use crate::snapshot::Snapshot;
use arc_swap::ArcSwap;
use pingora::apps::HttpServerOptions;
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::services::listening::Service;
use std::sync::Arc;

/// Runs until the process is signalled; never returns.
pub fn serve(snapshot: Snapshot, admin: &str) -> ! {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let conf = ServerConf {
        threads,
        // Istio: 2 retries on connect failure → up to 3 attempts.
        max_retries: 3,
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
            eprintln!("meshgate: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    }
    for n in &snapshot.notes {
        eprintln!("meshgate: note: {n}");
    }
    let shared = Arc::new(ArcSwap::from_pointee(snapshot));

    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        GatewayProxy::new(shared.clone()),
        "meshgate gateway",
    );
    let mut options = HttpServerOptions::default();
    options.h2c = true;
    if let Some(logic) = proxy.app_logic_mut() {
        logic.server_options = Some(options);
    }
    for addr in &listeners {
        proxy.add_tcp(addr);
        eprintln!("meshgate: listening on {addr}");
    }
    if !listeners.is_empty() {
        server.add_service(proxy);
    }

    let mut admin_service = Service::new("meshgate admin".to_string(), AdminApp::new(shared));
    admin_service.add_tcp(admin);
    eprintln!("meshgate: admin on {admin}");
    server.add_service(admin_service);
    server.run_forever()
}
