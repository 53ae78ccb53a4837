//! The largest values `validate` accepts cannot make the request path panic: durations
//! of u64::MAX seconds (route timeout, per-try timeout, back-off, fault delay, CORS
//! max age, DestinationRule connect and idle timeouts) and weights of i32::MAX on every
//! destination, served by the real binary to real clients.

mod common;
use common::config::*;
use common::net::{get, request, Upstream};
use common::validate;

const MAX_DURATION: &str = "18446744073709551615s";

#[test]
fn the_largest_accepted_durations_and_weights_serve_requests() {
    let up = Upstream::start("big");
    let dead = common::net::free_port(); // nothing listens there
    let http = format!(
        "  - match: [{{uri: {{prefix: /live}}}}]
    timeout: {MAX_DURATION}
    retries: {{attempts: 2147483647, perTryTimeout: {MAX_DURATION}, retryOn: 5xx, backoff: {MAX_DURATION}}}
    fault: {{delay: {{fixedDelay: {MAX_DURATION}, percentage: {{value: 0}}}}}}
    corsPolicy: {{allowOrigins: [{{exact: cors.com}}], maxAge: {MAX_DURATION}}}
    route:
    - {{destination: {{host: big.internal}}, weight: 2147483647}}
    - {{destination: {{host: big.internal}}, weight: 2147483647}}
    - {{destination: {{host: big.internal}}, weight: 2147483647}}
  - match: [{{uri: {{prefix: /dead}}}}]
    timeout: {MAX_DURATION}
    route: [{{destination: {{host: dead.internal}}}}]
"
    );
    let yaml = format!(
        "{}{}---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: dead}}\nspec:\n  hosts: [dead.internal]\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {dead}}}}}]\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: dead}}\nspec:\n  host: dead.internal\n  trafficPolicy:\n    connectionPool:\n      tcp: {{connectTimeout: {MAX_DURATION}, idleTimeout: {MAX_DURATION}}}\n{}",
        gateway("gw", "[\"*\"]"),
        service("big.internal", &[(&up, "")]),
        vs("v", "[\"*\"]", "[gw]", &http)
    );
    // `validate` accepts it: these are the largest values a user can give.
    let dir = common::scratch("limits-validate");
    let file = common::write(&dir, "all.yaml", &yaml.replace("{PORT}", "8080"));
    let (code, stderr, _) = validate(&[&file], &[]);
    assert_eq!(code, 0, "{stderr}");

    let (mut gw, addr) = start("limits", &yaml);
    for _ in 0..20 {
        let r = get(addr, "a.example.com", "/live", &[("origin", "cors.com")]);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("access-control-allow-origin"), Some("cors.com"));
    }
    // A preflight answered at the gateway with the largest max-age.
    let r = request(
        addr,
        "OPTIONS",
        "a.example.com",
        "/live",
        &[
            ("origin", "cors.com"),
            ("access-control-request-method", "GET"),
        ],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-max-age"),
        Some("18446744073709551615")
    );
    // A dead endpoint behind the largest connect timeout: refused at once, retried by
    // Istio's default policy, answered 503 UF.
    let r = get(addr, "a.example.com", "/dead", &[]);
    assert_eq!(r.status, 503);
    assert!(r.text().contains("connection failure"), "{}", r.text());
    assert!(
        gw.child.try_wait().unwrap().is_none(),
        "the gateway is still running"
    );
}
