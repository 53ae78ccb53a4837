//! "Pingora as it comes": a stock `ProxyHttp` that sends every request to one upstream
//! and does nothing else, the reference bench/telemetry.sh measures meshgate against (its
//! own cost is the difference). Built with `cargo build --release --example bare_pingora`.
//!
//!   bare_pingora LISTEN_ADDR UPSTREAM_ADDR [THREADS]
//!
//! `WORK_STEALING=0` runs Pingora's per-thread runtimes (`ServerConf.work_stealing`
//! false), one of the knobs the performance work measured.

use async_trait::async_trait;
use pingora::prelude::*;
use std::net::SocketAddr;

struct Bare(SocketAddr);

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.0, false, String::new())))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(listen), Some(upstream)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: bare_pingora LISTEN_ADDR UPSTREAM_ADDR [THREADS]");
        std::process::exit(2);
    };
    let upstream: SocketAddr = upstream.parse().expect("UPSTREAM_ADDR is ip:port");
    let threads = args.get(3).and_then(|t| t.parse().ok()).unwrap_or(1);
    // The configuration `Server::new(None)` makes, with only work stealing settable.
    let mut conf = pingora::server::configuration::ServerConf::new().expect("Pingora's defaults");
    conf.work_stealing = std::env::var("WORK_STEALING").map_or(true, |v| v != "0");
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut service = http_proxy_service(&server.configuration, Bare(upstream));
    service.add_tcp(listen);
    service.threads = Some(threads);
    server.add_service(service);
    server.run_forever();
}
