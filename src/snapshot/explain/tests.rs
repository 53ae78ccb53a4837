//! The trace on compiled configs: what an operator reads for matched, unmatched,
//! redirected, answered and TCP / passthrough requests.

use super::*;
use crate::config::{check, loader};
use crate::snapshot::compile;
use std::path::Path;

fn snapshot(yaml: &str) -> Snapshot {
    let mut loaded = loader::Loaded::default();
    loader::load_text(Path::new("s.yaml"), yaml, &mut loaded);
    let checked = check(loaded, &[]);
    assert!(!checked.has_errors(), "{:#?}", checked.diagnostics);
    let labels = checked.config.instance_labels(&[]);
    compile(&checked.config, &labels)
}

/// The path as sent, except that `..` segments are refused (a stand-in for the
/// pipeline's normalization, which lives in a higher layer).
fn no_dots(p: &str) -> Result<String, String> {
    if p.contains("/../") {
        Err("dot segments".into())
    } else {
        Ok(p.replace("//", "/"))
    }
}

fn run(s: &Snapshot, q: Query) -> Explanation {
    explain(s, &q, &no_dots).expect("explainable")
}

fn q(host: &str, path: &str) -> Query {
    Query {
        host: Some(host.into()),
        path: Some(path.into()),
        ..Query::default()
    }
}

/// The one line starting with `prefix`.
fn line<'a>(e: &'a Explanation, prefix: &str) -> &'a str {
    let found: Vec<&String> = e.lines.iter().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(found.len(), 1, "one {prefix:?} line in:\n{}", e.text());
    found[0]
}

const MESH: &str = "apiVersion: meshgate.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: m}\nspec: {defaultBindAddress: 127.0.0.1}\n";

const HTTP: &str = r#"
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: edge}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*.example.com", "www.example.com", "api.example.com"]
  - port: {number: 8081, name: http-redirect, protocol: HTTP}
    hosts: ["secure.example.com"]
    tls: {httpsRedirect: true}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: edge}
spec:
  hosts: [reviews.edge.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: 9081}, labels: {version: v1}}
  - {address: 127.0.0.2, ports: {http: 9082}, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: grpc, namespace: edge}
spec:
  hosts: [grpc.edge.svc.cluster.local]
  ports: [{number: 7070, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.3}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: edge}
spec:
  host: reviews
  trafficPolicy:
    connectionPool:
      tcp: {connectTimeout: 250ms, idleTimeout: 90s}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: www, namespace: edge}
spec:
  hosts: [www.example.com]
  gateways: [gw]
  http:
  - name: old
    match:
    - uri: {prefix: /old}
    redirect: {uri: /new, authority: new.example.com, redirectCode: 302}
  - name: api
    match:
    - uri: {prefix: /api}
      method: {exact: POST}
    - uri: {prefix: /api}
      headers:
        x-canary: {exact: "yes"}
    rewrite: {uri: /v2}
    headers:
      request:
        set: {x-from: gateway}
        remove: [cookie]
      response:
        add: {x-served-by: meshgate}
    timeout: 3s
    retries: {attempts: 3, perTryTimeout: 1s, retryOn: "gateway-error,503"}
    fault:
      delay: {fixedDelay: 2s, percentage: {value: 10}}
    mirror: {host: reviews, subset: v2}
    mirrorPercentage: {value: 25}
    corsPolicy:
      allowOrigins: [{exact: "https://app.example.com"}]
      allowMethods: [GET, POST]
      maxAge: 1h
    route:
    - destination: {host: reviews, subset: v1}
      weight: 75
    - destination: {host: reviews, subset: v3}
      weight: 25
  - name: grpc
    match:
    - port: 9999
    - uri: {prefix: /grpc}
      queryParams: {debug: {exact: "1"}}
    route:
    - destination: {host: grpc}
  - name: teapot
    match:
    - uri: {exact: /teapot}
      withoutHeaders:
        x-real: {}
    directResponse: {status: 418, body: {string: "short and stout"}}
  - name: missing
    match:
    - uri: {exact: /missing}
    route:
    - destination: {host: nowhere.example.org}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: wild, namespace: edge}
spec:
  hosts: ["*.example.com"]
  gateways: [gw]
  http:
  - match:
    - uri: {prefix: /shop}
    route:
    - destination: {host: reviews, subset: v2}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: secure, namespace: edge}
spec:
  hosts: [secure.example.com]
  gateways: [gw]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
"#;

fn http_snapshot() -> Snapshot {
    snapshot(&format!("{MESH}{HTTP}"))
}

#[test]
fn a_matched_request_shows_the_rules_tried_route_destinations_and_endpoints() {
    let s = http_snapshot();
    let mut req = q("www.example.com:8080", "/api/books?x=1");
    req.headers = vec![
        ("X-Canary".into(), "yes".into()),
        ("origin".into(), "https://app.example.com".into()),
    ];
    let e = run(&s, req);
    assert_eq!(e.outcome, Outcome::Routed, "{}", e.text());
    assert_eq!(
        line(&e, "listener:"),
        "listener: 127.0.0.1:8080 HTTP (the Host's port 8080)"
    );
    assert_eq!(
        line(&e, "gateway server:"),
        "gateway server: Gateway edge/gw servers[0]"
    );
    assert_eq!(
        line(&e, "virtual host:"),
        "virtual host: \"www.example.com\" (exact name), 6 rule(s)"
    );
    assert_eq!(
        line(&e, "rule VirtualService edge/www http[0] \"old\":"),
        "rule VirtualService edge/www http[0] \"old\": no match: uri prefix \"/old\" does not match path \"/api/books\""
    );
    assert!(
        line(&e, "rule VirtualService edge/www http[1] \"api\":")
            .ends_with("matches (match[1]: uri prefix:/api, header x-canary exact:yes)"),
        "{}",
        e.text()
    );
    assert_eq!(
        line(&e, "route:"),
        "route: VirtualService edge/www http[1] \"api\""
    );
    assert!(line(&e, "cors:").starts_with(
        "cors: origin \"https://app.example.com\" allowed: the response gets access-control-allow-origin (allowMethods GET,POST, maxAge 3600s)"
    ));
    assert_eq!(
        line(&e, "fault:"),
        "fault: delay 2s for 10% of requests (DI)"
    );
    assert_eq!(
        line(&e, "rewrite:"),
        "rewrite: path \"/api/books\" to \"/v2/books\""
    );
    assert_eq!(
        line(&e, "request headers:"),
        "request headers: set x-from: gateway; remove cookie"
    );
    assert_eq!(
        line(&e, "response headers:"),
        "response headers: add x-served-by: meshgate"
    );
    assert_eq!(
        line(&e, "timeout:"),
        "timeout: 3s for the whole request, retries included (then 504 UT)"
    );
    assert_eq!(
        line(&e, "retries:"),
        "retries: 3 attempt(s) on gateway-error,retriable-status-codes,503, perTryTimeout 1s"
    );
    assert_eq!(
        line(&e, "mirror:"),
        "mirror: a copy to outbound|9080|v2|reviews.edge.svc.cluster.local for 25% of requests"
    );
    assert_eq!(
        line(&e, "destination[0]:"),
        "destination[0]: outbound|9080|v1|reviews.edge.svc.cluster.local, weight 75 (75%), subset v1"
    );
    let text = e.text();
    assert!(
        text.contains("  cluster: HTTP/1.1 upstream, connectTimeout 250ms, tcp idleTimeout 1m30s\n  endpoints: 127.0.0.1:9081 (version=v1)\n"),
        "{text}"
    );
    // Subset v3 selects no endpoint.
    assert!(
        text.contains("destination[1]: outbound|9080|v3|reviews.edge.svc.cluster.local, weight 25 (25%), subset v3\n  cluster: HTTP/1.1 upstream, connectTimeout 250ms, tcp idleTimeout 1m30s\n  endpoints: none\n"),
        "{text}"
    );
    assert_eq!(
        line(&e, "result:"),
        "result: forwarded by weight; 25% of requests get 503 UH (no healthy upstream)"
    );
}

#[test]
fn unmatched_conditions_are_named() {
    let s = http_snapshot();
    let mut req = q("www.example.com", "/grpc/x?debug=2");
    req.port = Some("8080".into());
    req.method = Some("put".into());
    let e = run(&s, req);
    assert_eq!(e.outcome, Outcome::Refused, "{}", e.text());
    assert_eq!(
        line(&e, "request:"),
        "request: PUT /grpc/x?debug=2, Host www.example.com"
    );
    assert_eq!(
        line(&e, "rule VirtualService edge/www http[1] \"api\":"),
        "rule VirtualService edge/www http[1] \"api\": no match: path \"/grpc/x\" matches none of uri prefix \"/api\", prefix \"/api\""
    );
    assert_eq!(
        line(&e, "rule VirtualService edge/www http[2] \"grpc\":"),
        "rule VirtualService edge/www http[2] \"grpc\": no match: match[0] port 9999: the request came in on port 8080; match[1] queryParams debug exact \"1\": the query has \"2\""
    );
    assert_eq!(
        line(&e, "result:"),
        "result: 404 Not Found (NR): no rule of virtual host \"www.example.com\" matches"
    );

    let mut req = q("www.example.com:8080", "/teapot");
    req.headers = vec![("x-real".into(), "1".into())];
    let e = run(&s, req);
    assert_eq!(
        line(&e, "rule VirtualService edge/www http[3] \"teapot\":"),
        "rule VirtualService edge/www http[3] \"teapot\": no match: withoutHeaders x-real present: the request has \"1\""
    );
    let mut req = q("www.example.com:8080", "/api");
    req.method = Some("GET".into());
    let e = run(&s, req);
    assert!(
        line(&e, "rule VirtualService edge/www http[1] \"api\":").ends_with(
            "no match: match[0] method exact \"POST\": the method is \"GET\"; match[1] header x-canary exact \"yes\": the request has none"
        ),
        "{}",
        e.text()
    );
}

#[test]
fn virtual_hosts_exact_wildcard_and_none() {
    let s = http_snapshot();
    let e = run(&s, q("shop.example.com:8080", "/shop/cart"));
    assert_eq!(
        line(&e, "virtual host:"),
        "virtual host: \"*.example.com\" (wildcard: no exact name takes \"shop.example.com\", it ends with \".example.com\"), 1 rule(s)"
    );
    assert_eq!(
        line(&e, "result:"),
        "result: forwarded to outbound|9080|v2|reviews.edge.svc.cluster.local"
    );
    assert!(e
        .text()
        .contains("  endpoints: 127.0.0.2:9082 (version=v2)\n"));

    let e = run(&s, q("example.org:8080", "/"));
    assert_eq!(e.outcome, Outcome::Refused);
    assert_eq!(
        line(&e, "virtual host:"),
        "virtual host: none for \"example.org\" (virtual hosts: \"www.example.com\", \"*.example.com\", \"api.example.com\", \"secure.example.com\")"
    );
    assert_eq!(
        line(&e, "result:"),
        "result: 404 Not Found (NR): no virtual host"
    );
}

#[test]
fn redirects_direct_responses_and_https_redirects_are_answers() {
    let s = http_snapshot();
    let e = run(&s, q("www.example.com:8080", "/old/page?a=1"));
    assert_eq!(e.outcome, Outcome::Answered);
    assert_eq!(
        line(&e, "redirect:"),
        "redirect: 302 to http://new.example.com/new?a=1"
    );
    assert_eq!(
        line(&e, "result:"),
        "result: answered: 302 redirect to http://new.example.com/new?a=1"
    );

    let e = run(&s, q("www.example.com:8080", "/teapot"));
    assert_eq!(e.outcome, Outcome::Answered);
    assert_eq!(
        line(&e, "direct response:"),
        "direct response: 418, body 15 bytes \"short and stout\""
    );

    let e = run(&s, q("secure.example.com:8081", "/a?b=c"));
    assert_eq!(e.outcome, Outcome::Answered);
    assert_eq!(
        line(&e, "result:"),
        "result: answered: 301 redirect to https://secure.example.com/a?b=c"
    );
}

#[test]
fn missing_clusters_cors_preflights_and_bad_paths() {
    let s = http_snapshot();
    let e = run(&s, q("www.example.com:8080", "/missing"));
    assert_eq!(e.outcome, Outcome::Routed, "a route is found");
    assert_eq!(
        line(&e, "  cluster:"),
        "  cluster: not found: no ServiceEntry host, port or DestinationRule subset gives it"
    );
    assert_eq!(line(&e, "result:"), "result: 503 NC (no cluster)");

    let mut req = q("www.example.com:8080", "/api");
    req.method = Some("OPTIONS".into());
    req.headers = vec![
        ("origin".into(), "https://app.example.com".into()),
        ("access-control-request-method".into(), "POST".into()),
        ("x-canary".into(), "yes".into()),
    ];
    let e = run(&s, req);
    assert_eq!(e.outcome, Outcome::Answered);
    assert!(line(&e, "cors:").starts_with(
        "cors: preflight from allowed origin \"https://app.example.com\": answered at the gateway"
    ));

    let e = run(&s, q("www.example.com:8080", "/a/../b"));
    assert_eq!(e.outcome, Outcome::Refused);
    assert_eq!(line(&e, "result:"), "result: 400 Bad Request");
    let e = run(&s, q("shop.example.com:8080", "/shop//x"));
    assert_eq!(
        line(&e, "path:"),
        "path: \"/shop//x\" normalized to \"/shop/x\" (MeshConfig pathNormalization BASE)"
    );
}

#[test]
fn listeners_by_port_address_or_alone() {
    let s = http_snapshot();
    let err = explain(&s, &q("www.example.com", "/"), &no_dots).unwrap_err();
    assert!(
        err.starts_with("several listeners; say which with --port"),
        "{err}"
    );
    let mut r = q("www.example.com", "/old");
    r.port = Some("127.0.0.1:8080".into());
    let e = run(&s, r.clone());
    assert_eq!(
        line(&e, "listener:"),
        "listener: 127.0.0.1:8080 HTTP (--port 127.0.0.1:8080)"
    );
    r.port = Some("9090".into());
    let e = run(&s, r);
    assert_eq!(e.outcome, Outcome::Refused);
    assert_eq!(
        line(&e, "listener:"),
        "listener: none on port 9090 (listeners: 127.0.0.1:8080 HTTP, 127.0.0.1:8081 HTTP)"
    );
    assert_eq!(
        line(&e, "result:"),
        "result: connection refused: no listener"
    );
}

const L4: &str = r#"
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: edge}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 9000, name: tcp, protocol: TCP}
    hosts: ["*"]
  - port: {number: 8443, name: tls, protocol: TLS}
    hosts: ["*.example.com"]
    tls: {mode: PASSTHROUGH}
  - port: {number: 6379, name: redis, protocol: REDIS}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: edge}
spec:
  hosts: [db.edge.svc.cluster.local]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.9}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: l4, namespace: edge}
spec:
  hosts: ["*.example.com"]
  gateways: [gw]
  tcp:
  - match:
    - {port: 9001}
    - {destinationSubnets: [10.0.0.0/8]}
    route:
    - destination: {host: nowhere.example.org, port: {number: 1}}
  - route:
    - destination: {host: db, port: {number: 5432}}
  tls:
  - match:
    - sniHosts: [a.example.com]
      destinationSubnets: [10.0.0.0/8]
    route:
    - destination: {host: nowhere.example.org, port: {number: 1}}
  - match:
    - sniHosts: ["*.example.com"]
    route:
    - destination: {host: db, port: {number: 5432}}
"#;

#[test]
fn tcp_routes_in_order() {
    let s = snapshot(&format!("{MESH}{L4}"));
    let e = run(
        &s,
        Query {
            port: Some("9000".into()),
            ..Query::default()
        },
    );
    assert_eq!(e.outcome, Outcome::Routed, "{}", e.text());
    assert_eq!(
        line(&e, "listener:"),
        "listener: 127.0.0.1:9000 TCP (--port 9000)"
    );
    assert_eq!(
        line(&e, "tcp route VirtualService edge/l4 tcp[0]:"),
        "tcp route VirtualService edge/l4 tcp[0]: no match: match[0] port 9001: the connection came in on port 9000; match[1] destinationSubnets (1 block(s)) do not hold the gateway address 127.0.0.1"
    );
    assert_eq!(
        line(&e, "tcp route VirtualService edge/l4 tcp[1]:"),
        "tcp route VirtualService edge/l4 tcp[1]: matches (no match conditions)"
    );
    assert!(e.text().contains(
        "  cluster: connectTimeout 10s (default), tcp idleTimeout 1h (default)\n  endpoints: 127.0.0.9:5432\n"
    ));
    assert_eq!(
        line(&e, "result:"),
        "result: proxied to outbound|5432||db.edge.svc.cluster.local"
    );
    // The snapshot's notes about the Gateway met on the way close the trace.
    assert_eq!(
        e.lines.last().map(String::as_str),
        Some("note: Gateway edge/gw servers[2]: protocol REDIS is not served")
    );
}

#[test]
fn passthrough_by_sni() {
    let s = snapshot(&format!("{MESH}{L4}"));
    let tls = |sni: Option<&str>| Query {
        port: Some("8443".into()),
        sni: sni.map(Into::into),
        ..Query::default()
    };
    let e = run(&s, tls(Some("A.example.com")));
    assert_eq!(e.outcome, Outcome::Routed, "{}", e.text());
    assert_eq!(
        line(&e, "filter chain VirtualService edge/l4 tls[0]:"),
        "filter chain VirtualService edge/l4 tls[0]: skipped: its sniHosts take \"a.example.com\" but not its port/destinationSubnets (connection to 127.0.0.1:8443)"
    );
    assert_eq!(
        line(&e, "filter chain:"),
        "filter chain: VirtualService edge/l4 tls[1]: server name \"*.example.com\" (wildcard: no exact name takes \"a.example.com\", it ends with \".example.com\"); PASSTHROUGH: the bytes go upstream undecrypted"
    );
    assert_eq!(
        line(&e, "result:"),
        "result: proxied to outbound|5432||db.edge.svc.cluster.local"
    );

    let e = run(&s, tls(Some("example.org")));
    assert_eq!(e.outcome, Outcome::Refused);
    assert_eq!(
        line(&e, "filter chain:"),
        "filter chain: none for SNI \"example.org\" (server names: \"a.example.com\", \"*.example.com\"), and no terminating server on the port"
    );
    assert_eq!(line(&e, "result:"), "result: connection closed");
    let e = run(&s, tls(None));
    assert_eq!(e.outcome, Outcome::Refused);
    assert_eq!(
        line(&e, "tls:"),
        "tls: the ClientHello has no SNI (give one with --sni)"
    );
}
