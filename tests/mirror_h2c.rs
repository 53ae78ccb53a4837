//! Mirroring to a cluster that speaks HTTP/2 only: the copy goes out as h2c with prior
//! knowledge (as the proxy itself reaches that cluster), not as HTTP/1.1, with the body
//! and Envoy's `-shadow` authority.

mod common;
use common::config::*;
use common::h2c::H2cUpstream;
use common::net::*;
use std::time::Duration;

const HOST: &str = "a.example.com";

/// A STATIC ServiceEntry whose port speaks `protocol`, with one endpoint on `port`.
fn service_with_protocol(host: &str, protocol: &str, port: u16) -> String {
    format!("---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {host}}}\nspec:\n  hosts: [{host}]\n  ports: [{{number: 80, name: {p}, protocol: {protocol}}}]\n  resolution: STATIC\n  endpoints: [{{address: 127.0.0.1, ports: {{{p}: {port}}}}}]\n", p = protocol.to_ascii_lowercase())
}

#[test]
fn a_mirror_to_an_http2_cluster_is_sent_as_h2c() {
    let main = Upstream::start("main");
    let shadow = H2cUpstream::start("shadow");
    let mut y = gateway("gw", "[\"*\"]");
    y.push_str(&service("main.internal", &[(&main, "")]));
    y.push_str(&service_with_protocol(
        "shadow.internal",
        "HTTP2",
        shadow.port(),
    ));
    y.push_str(&vs(
        "v",
        &format!("[{HOST}]"),
        "[gw]",
        "  - route: [{destination: {host: main.internal}}]
    mirror: {host: shadow.internal}
    mirrorPercentage: {value: 100}
",
    ));
    let (_gw, addr) = start("mirror-h2c", &y);
    let host = format!("{HOST}:{}", addr.port());
    let body = b"mirrored over h2c";

    let r = request(addr, "POST", &host, "/submit?x=1", &[], body);
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, format!("main {}", body.len()).as_str()),
        "the client gets the primary's answer"
    );
    assert_eq!(main.last().path, "/submit?x=1");

    let seen = shadow
        .wait_first(Duration::from_secs(5))
        .unwrap_or_else(|| {
            panic!(
                "the h2c upstream got no request ({} connections, {} not HTTP/2)",
                shadow.conns.load(std::sync::atomic::Ordering::SeqCst),
                shadow.bad_conns.load(std::sync::atomic::Ordering::SeqCst)
            )
        });
    let shadow_host = format!("{HOST}-shadow:{}", addr.port());
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path, "/submit?x=1");
    assert_eq!(seen.body, body, "the body is mirrored byte for byte");
    assert_eq!(
        seen.authority.as_deref().or(seen.host.as_deref()),
        Some(shadow_host.as_str()),
        "{seen:?}"
    );
    if let Some(h) = &seen.host {
        assert_eq!(h, &shadow_host, "a host header agrees with :authority");
    }
    assert_eq!(
        shadow.bad_conns.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "every connection to the h2c upstream was HTTP/2"
    );
    assert_eq!(shadow.count(), 1, "one copy per request");
}
