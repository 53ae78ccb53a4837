//! One good and one bad input for each validation rule, through the loader, so each case
//! also proves the field path a user sees.

use crate::config::{check, loader, Diagnostic, Severity};
use std::path::Path;

fn run(yaml: &str) -> Vec<Diagnostic> {
    let mut loaded = loader::Loaded::default();
    loader::load_text(Path::new("t.yaml"), yaml, &mut loaded);
    check(loaded, &[]).diagnostics
}

fn doc(kind: &str, spec: &str) -> String {
    let spec = spec.trim_matches('\n');
    let indented: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    format!(
        "apiVersion: networking.istio.io/v1\nkind: {kind}\nmetadata:\n  name: x\nspec:\n{indented}"
    )
}

fn errors(yaml: &str) -> Vec<String> {
    run(yaml)
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| format!("{}: {}", d.field.unwrap_or_default(), d.message))
        .collect()
}

fn warnings(yaml: &str) -> Vec<String> {
    run(yaml)
        .into_iter()
        .filter(|d| d.severity == Severity::Warning)
        .map(|d| format!("{}: {}", d.field.unwrap_or_default(), d.message))
        .collect()
}

#[track_caller]
fn assert_ok(kind: &str, spec: &str) {
    let e = errors(&doc(kind, spec));
    assert!(e.is_empty(), "expected no errors for:\n{spec}\ngot: {e:#?}");
}

#[track_caller]
fn assert_err(kind: &str, spec: &str, field: &str, msg: &str) {
    let e = errors(&doc(kind, spec));
    assert!(
        e.iter()
            .any(|l| l.starts_with(&format!("{field}: ")) && l.contains(msg)),
        "expected `{field}: ...{msg}...` for:\n{spec}\ngot: {e:#?}"
    );
}

const ROUTE: &str = "route:\n  - destination:\n      host: a.example.com";

fn vs_http(rule: &str) -> String {
    format!(
        "hosts: [a.example.com]\ngateways: [gw]\nhttp:\n- {}",
        rule.trim().replace('\n', "\n  ")
    )
}

#[test]
fn gateway_servers() {
    let good = "selector: {istio: ingressgateway}\nservers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: [\"*\", \"ns1/a.example.com\", \"./b.example.com\", \"*/c.example.com\"]";
    assert_ok("Gateway", good);
    assert_err(
        "Gateway",
        "servers: []",
        "spec.servers",
        "at least one server",
    );
    assert_err(
        "Gateway",
        "servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: [\"*bar.com\"]",
        "spec.servers[0].hosts[0]",
        "partial wildcard",
    );
    assert_err(
        "Gateway",
        "servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: [\"bad ns/a.com\"]",
        "spec.servers[0].hosts[0]",
        "invalid namespace",
    );
    assert_err(
        "Gateway",
        "servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: [a.com]\n- port: {number: 81, name: http, protocol: HTTP}\n  hosts: [a.com]",
        "spec.servers[1].port.name",
        "must be unique",
    );
    assert_err(
        "Gateway",
        "servers:\n- port: {number: 80, name: http, protocol: HTTPX}\n  hosts: [a.com]",
        "spec.servers[0].port.protocol",
        "invalid protocol",
    );
    assert_err(
        "Gateway",
        "servers:\n- port: {number: 70000, name: http, protocol: HTTP}\n  hosts: [a.com]",
        "spec.servers[0].port.number",
        "1..65535",
    );
    assert_err(
        "Gateway",
        "servers:\n- hosts: [a.com]",
        "spec.servers[0].port",
        "Required",
    );
    assert_err(
        "Gateway",
        "servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: [a.com]\n  bind: not-an-ip",
        "spec.servers[0].bind",
        "not a valid IP",
    );
}

#[test]
fn gateway_tls() {
    let https = |tls: &str| {
        format!("servers:\n- port: {{number: 443, name: https, protocol: HTTPS}}\n  hosts: [a.com]\n  tls: {tls}")
    };
    assert_ok("Gateway", &https("{mode: SIMPLE, credentialName: a-cert}"));
    assert_ok(
        "Gateway",
        &https("{mode: SIMPLE, serverCertificate: /c.pem, privateKey: /k.pem}"),
    );
    assert_ok(
        "Gateway",
        &https("{mode: MUTUAL, serverCertificate: /c, privateKey: /k, caCertificates: /ca}"),
    );
    assert_ok("Gateway", &https("{mode: MUTUAL, credentialName: a-cert}"));
    // Credentials are checked against the disk: a missing file is a warning naming it.
    let w = warnings(&doc(
        "Gateway",
        &https("{mode: SIMPLE, serverCertificate: /nonexistent/c.pem, privateKey: /k.pem}"),
    ));
    assert!(
        w.iter()
            .any(|l| l.starts_with("spec.servers[0].tls.serverCertificate: ")
                && l.contains("/nonexistent/c.pem")),
        "{w:#?}"
    );
    let w = warnings(&doc(
        "Gateway",
        &https("{mode: SIMPLE, credentialName: a, cipherSuites: [ECDHE-RSA-AES128-GCM-SHA256, DES-CBC3-SHA]}"),
    ));
    assert!(
        w.iter()
            .any(|l| l.starts_with("spec.servers[0].tls.cipherSuites[1]: ")
                && l.contains("DES-CBC3-SHA")),
        "{w:#?}"
    );
    assert!(!w.iter().any(|l| l.contains("cipherSuites[0]")), "{w:#?}");
    assert_err(
        "Gateway",
        "servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: [a.com]",
        "spec.servers[0].tls",
        "must have TLS settings",
    );
    assert_err(
        "Gateway",
        &https("{mode: SIMPLE}"),
        "spec.servers[0].tls.serverCertificate",
        "requires a server certificate",
    );
    assert_err(
        "Gateway",
        &https("{mode: SIMPLE, serverCertificate: /c}"),
        "spec.servers[0].tls.privateKey",
        "private key",
    );
    assert_err(
        "Gateway",
        &https("{mode: MUTUAL, serverCertificate: /c, privateKey: /k}"),
        "spec.servers[0].tls.caCertificates",
        "client CA bundle",
    );
    assert_err(
        "Gateway",
        &https("{mode: SIMPLE, credentialName: a, serverCertificate: /c, privateKey: /k}"),
        "spec.servers[0].tls",
        "only one of",
    );
    // Plain HTTP takes only httpsRedirect.
    assert_ok(
        "Gateway",
        "servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: [a.com]\n  tls: {httpsRedirect: true}",
    );
    assert_err(
        "Gateway",
        "servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: [a.com]\n  tls: {mode: SIMPLE, credentialName: x}",
        "spec.servers[0].tls",
        "plain text HTTP",
    );
    assert_err(
        "Gateway",
        "servers:\n- port: {number: 80, name: tcp, protocol: TCP}\n  hosts: [a.com]\n  tls: {httpsRedirect: true}",
        "spec.servers[0].tls",
        "non HTTPS/TLS",
    );
    let w = warnings(&doc(
        "Gateway",
        "servers:\n- port: {number: 443, name: tls, protocol: TLS}\n  hosts: [a.com]\n  tls: {mode: PASSTHROUGH, httpsRedirect: true}",
    ));
    assert!(
        w.iter()
            .any(|l| l.contains("httpsRedirect should only be used with http")),
        "{w:?}"
    );
}

#[test]
fn virtual_service_hosts_and_gateways() {
    assert_ok("VirtualService", &vs_http(ROUTE));
    assert_err(
        "VirtualService",
        "hosts: [a.com]\ngateways: [gw]",
        "spec",
        "http, tcp or tls must be provided",
    );
    assert_err(
        "VirtualService",
        &format!("hosts: [\"*bar.com\"]\ngateways: [gw]\nhttp:\n- {ROUTE}"),
        "spec.hosts[0]",
        "partial wildcard",
    );
    assert_err(
        "VirtualService",
        &format!("hosts: [\"*\"]\nhttp:\n- {ROUTE}"),
        "spec.hosts[0]",
        "not allowed for virtual services bound to the mesh",
    );
    assert_err(
        "VirtualService",
        &format!("hosts: [a.example.com, \"*.example.com\"]\ngateways: [gw]\nhttp:\n- {ROUTE}"),
        "spec.hosts[1]",
        "duplicate hosts",
    );
    assert_err(
        "VirtualService",
        &format!("hosts: [a.com]\ngateways: [Bad/Name]\nhttp:\n- {ROUTE}"),
        "spec.gateways[0]",
        "invalid value for namespace",
    );
    assert_ok(
        "VirtualService",
        &format!("hosts: [a.com]\ngateways: [istio-system/gw, mesh]\nhttp:\n- {ROUTE}"),
    );
}

#[test]
fn http_route_actions_are_exclusive() {
    assert_err(
        "VirtualService",
        &vs_http("redirect: {uri: /x}\nroute:\n- destination: {host: a.com}"),
        "spec.http[0].redirect",
        "both route and redirect",
    );
    assert_err(
        "VirtualService",
        &vs_http("directResponse: {status: 200}\nroute:\n- destination: {host: a.com}"),
        "spec.http[0].directResponse",
        "both route and direct_response",
    );
    assert_err(
        "VirtualService",
        &vs_http("timeout: 1s"),
        "spec.http[0]",
        "route, redirect or direct_response is required",
    );
    assert_ok(
        "VirtualService",
        &vs_http("directResponse: {status: 503, body: {string: unavailable}}"),
    );
    assert_err(
        "VirtualService",
        &vs_http("directResponse: {status: 700}"),
        "spec.http[0].directResponse.status",
        "not in range 200-599",
    );
    assert_err(
        "VirtualService",
        &vs_http("mirror: {host: b.com}\nmirrors: [{destination: {host: c.com}}]\nroute:\n- destination: {host: a.com}"),
        "spec.http[0].mirrors",
        "both mirror and mirrors",
    );
}

#[test]
fn redirects() {
    assert_ok(
        "VirtualService",
        &vs_http("redirect: {uri: /new, redirectCode: 302}"),
    );
    assert_ok(
        "VirtualService",
        &vs_http("redirect: {derivePort: FROM_REQUEST_PORT, scheme: https}"),
    );
    assert_err(
        "VirtualService",
        &vs_http("redirect: {uri: /new, redirectCode: 200}"),
        "spec.http[0].redirect.redirectCode",
        "must be 3xx",
    );
    assert_err(
        "VirtualService",
        &vs_http("redirect: {redirectCode: 301}"),
        "spec.http[0].redirect",
        "must specify URI",
    );
    assert_err(
        "VirtualService",
        &vs_http("redirect: {scheme: ftp}"),
        "spec.http[0].redirect.scheme",
        "invalid redirect scheme",
    );
    assert_err(
        "VirtualService",
        &vs_http("match: [{uri: {exact: /a}}]\nredirect: {prefixRewrite: /b}"),
        "spec.http[0].redirect.prefixRewrite",
        "prefix match",
    );
}

#[test]
fn weights() {
    assert_ok(
        "VirtualService",
        &vs_http("route:\n- destination: {host: a.com}\n  weight: 80\n- destination: {host: b.com}\n  weight: 20"),
    );
    assert_ok("VirtualService", &vs_http("route:\n- destination: {host: a.com}\n  weight: 0\n- destination: {host: b.com}\n  weight: 100"));
    assert_err(
        "VirtualService",
        &vs_http("route:\n- destination: {host: a.com}\n  weight: -1\n- destination: {host: b.com}\n  weight: 2"),
        "spec.http[0].route[0].weight",
        "< 0",
    );
    assert_err(
        "VirtualService",
        &vs_http("route:\n- destination: {host: a.com}\n  weight: 0\n- destination: {host: b.com}\n  weight: 0"),
        "spec.http[0].route",
        "total destination weight = 0",
    );
}

#[test]
fn durations() {
    assert_ok(
        "VirtualService",
        &vs_http(&format!("timeout: 0.5s\n{ROUTE}")),
    );
    assert_ok(
        "VirtualService",
        &vs_http(&format!("timeout: 1m30s\n{ROUTE}")),
    );
    assert_err(
        "VirtualService",
        &vs_http(&format!("timeout: 0.1ms\n{ROUTE}")),
        "spec.http[0].timeout",
        "greater than 1ms",
    );
    assert_err(
        "VirtualService",
        &vs_http(&format!("timeout: 1.0001s\n{ROUTE}")),
        "spec.http[0].timeout",
        "ms precision",
    );
    assert_err(
        "VirtualService",
        &vs_http(&format!("timeout: soon\n{ROUTE}")),
        "spec.http[0].timeout",
        "invalid duration",
    );
}

#[test]
fn regexes_compile_at_validation() {
    assert_ok(
        "VirtualService",
        &vs_http(&format!(
            "match: [{{uri: {{regex: \"/api/v[0-9]+/.*\"}}}}]\n{ROUTE}"
        )),
    );
    assert_err(
        "VirtualService",
        &vs_http(&format!("match: [{{uri: {{regex: \"/api/(\"}}}}]\n{ROUTE}")),
        "spec.http[0].match[0].uri.regex",
        "invalid regex",
    );
    // Back-references are not RE2.
    assert_err(
        "VirtualService",
        &vs_http(&format!(
            "match: [{{headers: {{x: {{regex: \"(a)\\\\1\"}}}}}}]\n{ROUTE}"
        )),
        "spec.http[0].match[0].headers.x.regex",
        "RE2",
    );
    assert_err(
        "VirtualService",
        &vs_http("rewrite: {uriRegexRewrite: {match: \"[\", rewrite: /x}}\nroute:\n- destination: {host: a.com}"),
        "spec.http[0].rewrite.uriRegexRewrite.match",
        "invalid regex",
    );
    assert_err(
        "VirtualService",
        &vs_http(&format!(
            "match: [{{uri: {{exact: /a, prefix: /b}}}}]\n{ROUTE}"
        )),
        "spec.http[0].match[0].uri",
        "only one of exact, prefix or regex",
    );
    assert_err(
        "VirtualService",
        &vs_http(&format!("match: [{{method: {{prefix: \"\"}}}}]\n{ROUTE}")),
        "spec.http[0].match[0].method.prefix",
        "should not be empty",
    );
}

#[test]
fn faults() {
    let w = warnings(&doc(
        "VirtualService",
        &vs_http(&format!(
            "fault: {{abort: {{grpcStatus: UNAVAILABLE}}}}\n{ROUTE}"
        )),
    ));
    assert!(
        w.iter()
            .any(|l| l.starts_with("spec.http[0].fault.abort.percentage: ")
                && l.contains("abort no request")),
        "{w:#?}"
    );
    assert_ok(
        "VirtualService",
        &vs_http(&format!("fault:\n  delay: {{fixedDelay: 7s, percentage: {{value: 100}}}}\n  abort: {{httpStatus: 500, percentage: {{value: 50}}}}\n{ROUTE}")),
    );
    assert_ok(
        "VirtualService",
        &vs_http(&format!(
            "fault: {{abort: {{grpcStatus: UNAVAILABLE}}}}\n{ROUTE}"
        )),
    );
    assert_err(
        "VirtualService",
        &vs_http(&format!("fault: {{abort: {{httpStatus: 600}}}}\n{ROUTE}")),
        "spec.http[0].fault.abort.httpStatus",
        "200-599",
    );
    assert_err(
        "VirtualService",
        &vs_http(&format!(
            "fault: {{abort: {{httpStatus: 500, percentage: {{value: 101}}}}}}\n{ROUTE}"
        )),
        "spec.http[0].fault.abort.percentage.value",
        "range",
    );
    assert_err(
        "VirtualService",
        &vs_http(&format!("fault: {{abort: {{grpcStatus: NOPE}}}}\n{ROUTE}")),
        "spec.http[0].fault.abort.grpcStatus",
        "not supported",
    );
    assert_err(
        "VirtualService",
        &vs_http(&format!("fault: {{}}\n{ROUTE}")),
        "spec.http[0].fault",
        "abort and/or a delay",
    );
}

#[test]
fn mirrors_and_retries() {
    assert_ok(
        "VirtualService",
        &vs_http(&format!(
            "mirror: {{host: b.com}}\nmirrorPercentage: {{value: 50}}\n{ROUTE}"
        )),
    );
    assert_err(
        "VirtualService",
        &vs_http(&format!(
            "mirror: {{host: b.com}}\nmirrorPercentage: {{value: 150}}\n{ROUTE}"
        )),
        "spec.http[0].mirrorPercentage.value",
        "max value of 100",
    );
    assert_err(
        "VirtualService",
        &vs_http(&format!(
            "mirrors: [{{destination: {{host: b.com}}, percentage: {{value: -1}}}}]\n{ROUTE}"
        )),
        "spec.http[0].mirrors[0].percentage.value",
        "0..100",
    );
    assert_ok(
        "VirtualService",
        &vs_http(&format!("retries: {{attempts: 3, perTryTimeout: 2s, retryOn: \"gateway-error,connect-failure,503\"}}\n{ROUTE}")),
    );
    assert_err(
        "VirtualService",
        &vs_http(&format!(
            "retries: {{attempts: 3, retryOn: \"5xx,sometimes\"}}\n{ROUTE}"
        )),
        "spec.http[0].retries.retryOn",
        "\"sometimes\" is not a valid retryOn policy",
    );
    assert_err(
        "VirtualService",
        &vs_http(&format!(
            "retries: {{attempts: 0, perTryTimeout: 1s}}\n{ROUTE}"
        )),
        "spec.http[0].retries",
        "attempts are set to 0",
    );
}

#[test]
fn headers_and_cors() {
    assert_ok(
        "VirtualService",
        &vs_http(&format!("headers:\n  request: {{set: {{x-a: b, Host: new.example.com}}, remove: [x-b]}}\n  response: {{add: {{x-c: d}}}}\n{ROUTE}")),
    );
    assert_err(
        "VirtualService",
        &vs_http(&format!(
            "headers: {{response: {{set: {{Host: x}}}}}}\n{ROUTE}"
        )),
        "spec.http[0].headers.response.set.Host",
        "cannot set Host",
    );
    assert_err(
        "VirtualService",
        &vs_http("rewrite: {authority: a.com}\nheaders: {request: {set: {\":authority\": b.com}}}\nroute:\n- destination: {host: a.com}"),
        "spec.http[0].headers.request.set.:authority",
        "cannot be set multiple times",
    );
    assert_ok(
        "VirtualService",
        &vs_http(&format!("corsPolicy: {{allowOrigins: [{{exact: \"https://a.com\"}}], allowMethods: [GET, POST], maxAge: 24h}}\n{ROUTE}")),
    );
    assert_err(
        "VirtualService",
        &vs_http(&format!("corsPolicy: {{allowMethods: [FETCH]}}\n{ROUTE}")),
        "spec.http[0].corsPolicy.allowMethods[0]",
        "not a supported HTTP method",
    );
    assert_err(
        "VirtualService",
        &vs_http(&format!("corsPolicy: {{maxAge: 1.5s}}\n{ROUTE}")),
        "spec.http[0].corsPolicy.maxAge",
        "seconds precision",
    );
}

#[test]
fn tls_and_tcp_routes() {
    let ok = "hosts: [\"*.example.com\"]\ngateways: [gw]\ntls:\n- match:\n  - sniHosts: [a.example.com]\n  route:\n  - destination: {host: a.example.com}";
    assert_ok("VirtualService", ok);
    assert_err(
        "VirtualService",
        "hosts: [\"*.example.com\"]\ngateways: [gw]\ntls:\n- match:\n  - sniHosts: [a.other.com]\n  route:\n  - destination: {host: a.example.com}",
        "spec.tls[0].match[0].sniHosts[0]",
        "not a compatible subset",
    );
    assert_err(
        "VirtualService",
        "hosts: [a.com]\ngateways: [gw]\ntls:\n- route:\n  - destination: {host: a.com}",
        "spec.tls[0].match",
        "at least one match",
    );
    assert_ok("VirtualService", "hosts: [\"*\"]\ngateways: [gw]\ntcp:\n- match: [{port: 31400}]\n  route:\n  - destination: {host: tcp-echo}");
    assert_err(
        "VirtualService",
        "hosts: [\"*\"]\ngateways: [gw]\ntcp:\n- match: [{destinationSubnets: [10.0.0.0/99]}]\n  route:\n  - destination: {host: a}",
        "spec.tcp[0].match[0].destinationSubnets[0]",
        "not a valid CIDR",
    );
    assert_err(
        "VirtualService",
        "hosts: [\"*\"]\ngateways: [gw]\ntcp:\n- match: [{port: 1}]",
        "spec.tcp[0].route",
        "TCP route is required",
    );
}

#[test]
fn destination_rules() {
    assert_ok(
        "DestinationRule",
        "host: reviews\ntrafficPolicy:\n  loadBalancer: {simple: LEAST_REQUEST}\n  connectionPool: {tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 1}}\n  outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 3m, maxEjectionPercent: 100}\nsubsets:\n- name: v1\n  labels: {version: v1}",
    );
    assert_err(
        "DestinationRule",
        "host: reviews\nsubsets:\n- name: v1\n- name: v1",
        "spec.subsets[1].name",
        "duplicate subset names",
    );
    assert_err(
        "DestinationRule",
        "host: reviews\nsubsets:\n- name: V_1",
        "spec.subsets[0].name",
        "subset name is invalid",
    );
    assert_err(
        "DestinationRule",
        "host: reviews\ntrafficPolicy: {}",
        "spec.trafficPolicy",
        "at least one field",
    );
    assert_err(
        "DestinationRule",
        "host: reviews\ntrafficPolicy:\n  connectionPool: {tcp: {maxConnections: -1}}",
        "spec.trafficPolicy.connectionPool.tcp.maxConnections",
        "non-negative",
    );
    assert_err(
        "DestinationRule",
        "host: reviews\ntrafficPolicy:\n  outlierDetection: {maxEjectionPercent: 101}",
        "spec.trafficPolicy.outlierDetection.maxEjectionPercent",
        "0..100",
    );
    assert_err(
        "DestinationRule",
        "host: reviews\ntrafficPolicy:\n  tls: {mode: MUTUAL}",
        "spec.trafficPolicy.tls.clientCertificate",
        "required for mutual tls",
    );
    assert_err(
        "DestinationRule",
        "host: reviews\ntrafficPolicy:\n  portLevelSettings:\n  - loadBalancer: {simple: RANDOM}",
        "spec.trafficPolicy.portLevelSettings[0].port",
        "valid port",
    );
    assert_err(
        "DestinationRule",
        "host: reviews\ntrafficPolicy:\n  loadBalancer: {consistentHash: {maglev: {tableSize: 100}}}",
        "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize",
        "prime",
    );
    assert_err("DestinationRule", "host: \"*bad*\"", "spec.host", "invalid");
}

#[test]
fn service_entries() {
    assert_ok(
        "ServiceEntry",
        "hosts: [api.example.com]\nports: [{number: 443, name: https, protocol: TLS}]\nresolution: DNS\nlocation: MESH_EXTERNAL",
    );
    assert_ok(
        "ServiceEntry",
        "hosts: [r.internal]\nports: [{number: 80, name: http, protocol: HTTP}]\nresolution: STATIC\nendpoints:\n- address: 127.0.0.1\n  ports: {http: 8080}\n  labels: {version: v1}",
    );
    assert_err(
        "ServiceEntry",
        "hosts: [r.internal]\nports: [{number: 80, name: http}]\nresolution: STATIC\nendpoints:\n- address: not-an-ip",
        "spec.endpoints[0].address",
        "not a valid IP",
    );
    assert_err(
        "ServiceEntry",
        "hosts: [r.internal]\nports: [{number: 80, name: http}]\nresolution: STATIC\nendpoints:\n- address: 127.0.0.1\n  ports: {grpc: 9000}",
        "spec.endpoints[0].ports.grpc",
        "not defined by the service entry",
    );
    assert_err(
        "ServiceEntry",
        "hosts: [\"*.example.com\"]\nports: [{number: 80, name: http, protocol: HTTP}]\nresolution: DNS",
        "spec.hosts[0]",
        "must be FQDN",
    );
    assert_err(
        "ServiceEntry",
        "hosts: [a.com, b.com]\nports: [{number: 3306, name: tcp, protocol: TCP}]\nresolution: DNS",
        "spec.ports",
        "multiple hosts provided with non-HTTP",
    );
    assert_err(
        "ServiceEntry",
        "hosts: [a.com]\nports: [{number: 80, name: Bad_Name}]",
        "spec.ports[0].name",
        "invalid port name",
    );
    let w = warnings(&doc("ServiceEntry", "hosts: [\"*x.com\"]"));
    assert!(w.iter().any(|l| l.contains("partial wildcard")), "{w:?}");
}

#[test]
fn workload_entries() {
    assert_ok(
        "WorkloadEntry",
        "address: 10.1.2.3\nlabels: {app: reviews, version: v1}\nports: {http: 9080}",
    );
    assert_ok("WorkloadEntry", "address: vm1.example.com");
    assert_err(
        "WorkloadEntry",
        "labels: {app: a}",
        "spec.address",
        "Address is required",
    );
    assert_err(
        "WorkloadEntry",
        "address: 10.1.2.3\nports: {http: 70000}",
        "spec.ports.http",
        "1-65535",
    );
    assert_err(
        "WorkloadEntry",
        "address: \"bad address!\"",
        "spec.address",
        "not a valid FQDN",
    );
}

#[test]
fn mesh_config() {
    let mc = |spec: &str| {
        format!("apiVersion: meshgate.io/v1alpha1\nkind: MeshConfig\nmetadata: {{name: m}}\nspec:\n{spec}\n")
    };
    let e = errors(&mc("  adminAddress: 127.0.0.1:15000\n  defaultBindAddress: \"::\"\n  outboundTrafficPolicy: {mode: REGISTRY_ONLY}"));
    assert!(e.is_empty(), "{e:?}");
    let w = warnings(&mc(
        "  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n  accessLogFile: /dev/stdout",
    ));
    assert!(
        !w.iter()
            .any(|l| l.contains("accessLog") || l.contains("outboundTrafficPolicy")),
        "the access log is written and the outbound policy served: {w:?}"
    );
    let e = errors(&mc(
        "  hostAliases: [{ip: 10.0.0.300, hostnames: [a.example]}, {ip: 127.0.0.1, hostnames: []}]",
    ));
    assert!(
        e.iter().any(|l| l.starts_with("spec.hostAliases[0].ip")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|l| l.starts_with("spec.hostAliases[1].hostnames")),
        "{e:?}"
    );
    let w = warnings(&mc("  adminAddress: 0.0.0.0:15000"));
    assert!(
        w.iter()
            .any(|l| l.starts_with("spec.adminAddress: 0.0.0.0:15000 is not a loopback address")),
        "{w:?}"
    );
    assert!(warnings(&mc("  adminAddress: \"[::1]:15000\"")).is_empty());
    let e = errors(&mc("  adminAddress: localhost"));
    assert!(
        e.iter().any(|l| l.starts_with("spec.adminAddress: ")),
        "{e:?}"
    );
    let e = errors(&mc("  outboundTrafficPolicy: {mode: SOMETIMES}"));
    assert!(
        e.iter().any(|l| l.contains("unknown variant `SOMETIMES`")),
        "{e:?}"
    );
    let two = format!(
        "{}---\n{}",
        mc("  labels: {a: b}"),
        mc("  labels: {c: d}").replace("name: m", "name: n")
    );
    let e = errors(&two);
    assert!(e.iter().any(|l| l.contains("only one MeshConfig")), "{e:?}");
}

#[test]
fn metadata_rules() {
    let e = errors("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: Bad_Name}\nspec: {host: a}\n");
    assert!(e.iter().any(|l| l.starts_with("metadata.name: ")), "{e:?}");
    let e = errors("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {namespace: x}\nspec: {host: a}\n");
    assert!(
        e.iter().any(|l| l.starts_with("metadata.name: Required")),
        "{e:?}"
    );
    let dup = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a}\nspec: {host: a}\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a, namespace: default}\nspec: {host: b}\n";
    let e = errors(dup);
    assert!(
        e.iter()
            .any(|l| l.contains("duplicate DestinationRule default/a")),
        "{e:?}"
    );
    // Same name in another namespace is fine.
    let e = errors(&dup.replace("namespace: default", "namespace: other"));
    assert!(e.is_empty(), "{e:?}");
}

#[test]
fn credentials_dir_is_relative_to_its_file() {
    let mut loaded = loader::Loaded::default();
    let mc = "apiVersion: meshgate.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: m}\nspec: {credentialsDir: ../certs}\n";
    loader::load_text(Path::new("/etc/meshgate/conf.d/mesh.yaml"), mc, &mut loaded);
    let checked = check(loaded, &[]);
    assert_eq!(
        checked.config.credentials_dir(),
        Some(std::path::PathBuf::from("/etc/meshgate/conf.d/../certs"))
    );
    let mut loaded = loader::Loaded::default();
    loader::load_text(
        Path::new("/x/m.yaml"),
        &mc.replace("../certs", "/var/lib/creds"),
        &mut loaded,
    );
    assert_eq!(
        check(loaded, &[]).config.credentials_dir(),
        Some(std::path::PathBuf::from("/var/lib/creds"))
    );
}

#[test]
fn destination_rule_policies_are_acted_on_or_warned_never_dropped_silently() {
    let dr = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\nspec:\n  host: a.internal\n  trafficPolicy:\n    loadBalancer: {simple: LEAST_REQUEST, localityLbSetting: {enabled: true}}\n    connectionPool:\n      tcp: {maxConnections: 1, connectTimeout: 1s, tcpKeepalive: {time: 10s}}\n      http: {http1MaxPendingRequests: 1, h2UpgradePolicy: UPGRADE, http2KeepAlive: {interval: 1s, timeout: 1s}}\n    outlierDetection: {consecutive5xxErrors: 1, outlierDetectionHttpErrorCodes: [418]}\n    tls: {mode: SIMPLE, sni: a.example.com, caCrl: /x.crl}\n  subsets:\n  - name: p\n    labels: {v: p}\n    trafficPolicy: {loadBalancer: {simple: PASSTHROUGH}}\n";
    let w = warnings(dr);
    for field in [
        "spec.trafficPolicy.loadBalancer.localityLbSetting",
        "spec.trafficPolicy.connectionPool.http.http2KeepAlive",
        "spec.trafficPolicy.outlierDetection.outlierDetectionHttpErrorCodes",
        "spec.trafficPolicy.tls.caCrl",
        "spec.subsets[0].trafficPolicy.loadBalancer.simple",
    ] {
        assert!(
            w.iter()
                .any(|l| l.starts_with(&format!("{field}: not supported by meshgate"))),
            "{field} in {w:?}"
        );
    }
    // What is acted on is not warned about.
    for acted in [
        "loadBalancer.simple",
        "connectionPool.tcp.maxConnections",
        "connectionPool.tcp.connectTimeout",
        "connectionPool.tcp.tcpKeepalive",
        "connectionPool.http.http1MaxPendingRequests",
        "connectionPool.http.h2UpgradePolicy",
        "outlierDetection:",
        "outlierDetection.consecutive5xxErrors",
        "tls.sni",
        "tls:",
    ] {
        let field = format!("spec.trafficPolicy.{acted}");
        assert!(!w.iter().any(|l| l.starts_with(&field)), "{field} in {w:?}");
    }
    assert!(errors(dr).is_empty());
}
