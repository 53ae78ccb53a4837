//! Memory held by idle HTTP/1.1 keep-alive connections: 1,000 clients each send one
//! proxied request and then hold their connection open; the gateway's RSS may grow by at
//! most 16 KiB per connection (the performance issue's target; nginx holds about 1 KiB).
//! Measured with bench/tools/idle_conns.py, the tool `bench/idle.sh` runs at scale.

mod common;
use common::config::{gateway, service, start, vs};
use common::net::Upstream;
use std::process::Command;

#[test]
fn an_idle_keep_alive_connection_costs_at_most_16_kib() {
    let up = Upstream::start("idle");
    let yaml = format!(
        "{}{}{}",
        gateway("gw", "[\"*\"]"),
        service("idle.internal", &[(&up, "")]),
        vs(
            "v",
            "[\"*\"]",
            "[gw]",
            "  - route: [{destination: {host: idle.internal}}]\n"
        ),
    );
    let (gw, addr) = start("idle-memory", &yaml);
    let tool = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/tools/idle_conns.py");
    let out = Command::new("python3")
        .args([
            tool,
            &addr.port().to_string(),
            &gw.child.id().to_string(),
            "1000",
        ])
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let per_connection: f64 = text
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no figure in {text:?}"));
    assert!(
        per_connection <= 16.0,
        "{per_connection} KiB per idle connection (RSS before, after: {text})"
    );
    assert!(
        up.count() >= 1000,
        "every request was proxied: {}",
        up.count()
    );
}
