//! Istio's own routing tests, run against the real binary: every case of the three files
//! in `../shared/istio-corpus/istio-tests/` (pilot's gateway simulation tests and the
//! gateway and VirtualService cases of its routing integration tests). Each case's YAML is
//! read from the file and served by `meshgate run`; each call Istio's test makes is made
//! with a real client (HTTP/1.1, h2c, HTTPS with curl, gRPC over h2c, raw TCP) and checked
//! as Istio's test checks it.
//!
//! Adapting a case to one VM leaves its routing rules untouched and is printed:
//! - every destination host gets a ServiceEntry pointing at a local upstream that answers
//!   with its cluster name (`outbound|PORT||HOST`), so "which cluster answered" is seen;
//! - each case listens on its own loopback address (MeshConfig `defaultBindAddress`) on
//!   the case's real ports (80, 443, 85, 7070), so redirect ports are Istio's;
//! - the mesh-only VirtualServices of the integration tests are bound to a test Gateway
//!   (`gateways:` added) with the echo service's ports: `http` 80, `http2` 85, `grpc` 7070;
//! - Gateway TLS credentials (`credentialName`) are made with openssl at test time.
//!
//! Calls where meshgate deliberately differs assert meshgate's documented behaviour (the
//! README's "Istio's routing tests" section); a call that waits on a later issue is an
//! expected failure, and the test fails if it starts to pass so the mark is removed.

mod common;
use common::net::{Gateway, Reply, Upstream};
use common::peers::{curl, TlsUpstream};
use common::{corpus, pki, scratch, write};
use serde::Deserialize;
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

/// How a call reaches the gateway.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Proto {
    /// HTTP/1.1 over TCP.
    Http,
    /// HTTP/2 with prior knowledge (curl --http2-prior-knowledge).
    H2c,
    /// HTTPS with SNI = the Host (curl, verifying against the test CA).
    Https,
    /// A unary gRPC call over h2c (the h2 crate, to see the framing).
    Grpc,
    /// A TCP connection carrying one HTTP/1.1 request.
    Tcp,
}

/// What Istio's test checks.
#[derive(Debug, Clone, Copy)]
enum Check {
    /// The response status.
    Status(u16),
    /// 200, answered by this cluster (`outbound|PORT||HOST`, HOST as Istio's test writes
    /// it: `b.default` stands for `b.default.svc.cluster.local`).
    Cluster(&'static str),
    /// The upstream saw this request header.
    RequestHeader(&'static str, &'static str),
    /// The upstream saw this Host.
    Host(&'static str),
    /// The upstream saw this path (after following redirects).
    Url(&'static str),
    /// The response's `Location`.
    Location(&'static str),
    /// A response header; `""` means absent.
    ResponseHeader(&'static str, &'static str),
    /// A gRPC status in a trailers-only response (one HEADERS frame ending the stream).
    GrpcStatus(u32),
    /// The connection is refused (Istio's ErrNoListener).
    Refused,
    /// `Count` calls split over clusters, each share (percent) within ±10 points.
    Split(&'static [(&'static str, u32)]),
}

#[derive(Debug, Clone, Copy)]
struct Call {
    name: &'static str,
    port: u16,
    proto: Proto,
    method: &'static str,
    host: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    follow: bool,
    checks: &'static [Check],
    /// Where meshgate differs from Istio on purpose: the README's entry. The checks are
    /// meshgate's documented behaviour.
    differs: Option<&'static str>,
    /// A call expected to fail until the named issue lands.
    expected_failure: Option<&'static str>,
}

const CALL: Call = Call {
    name: "",
    port: 80,
    proto: Proto::Http,
    method: "GET",
    host: "b",
    path: "/",
    headers: &[],
    follow: false,
    checks: &[],
    differs: None,
    expected_failure: None,
};

/// One case: the CASE line it claims (a prefix), how its config is assembled, its calls.
struct Case {
    case: &'static str,
    /// CASE lines whose documents form the config (default: this case's own).
    docs_of: &'static [&'static str],
    /// Extra documents the case text describes but does not spell out (printed).
    extra: &'static str,
    /// VirtualServices without `gateways` are bound to the test Gateway.
    mesh_to_gateway: bool,
    /// The port of destinations written without one.
    default_port: u32,
    /// Destination ports served by a TLS upstream.
    tls_ports: &'static [u32],
    /// A templated case's other instance: the weights of its first rule's destinations.
    weights: &'static [u64],
    calls: &'static [Call],
}

const CASE: Case = Case {
    case: "",
    docs_of: &[],
    extra: "",
    mesh_to_gateway: false,
    default_port: 80,
    tls_ports: &[],
    weights: &[],
    calls: &[],
};

/// The Gateway the mesh-only VirtualServices are served through: Istio's echo ports.
const TEST_GATEWAY: &str = "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-routing-test, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [\"*\"]
  - port: {number: 85, name: http2, protocol: HTTP}
    hosts: [\"*\"]
  - port: {number: 7070, name: grpc, protocol: GRPC}
    hosts: [\"*\"]
";

// ---------------------------------------------------------------------------------------
// The cases. Calls and checks are Istio's, as each file's comments give them.
// ---------------------------------------------------------------------------------------

const SIMULATION: &[Case] = &[
    Case {
        case: "TestHTTPGateway / no virtual services",
        calls: &[
            Call {
                name: "defined port",
                host: "foo.bar",
                checks: &[Check::Status(404)],
                ..CALL
            },
            Call {
                name: "undefined port",
                port: 81,
                host: "foo.bar",
                checks: &[Check::Refused],
                ..CALL
            },
        ],
        ..CASE
    },
    Case {
        case: "TestHTTPGateway / simple http and virtual service",
        calls: &[
            Call {
                name: "uri mismatch",
                host: "foo.bar",
                checks: &[Check::Status(404)],
                ..CALL
            },
            Call {
                name: "host mismatch",
                host: "bad.bar",
                checks: &[Check::Status(404)],
                ..CALL
            },
            Call {
                name: "match",
                host: "foo.bar",
                path: "/productpage",
                checks: &[Check::Cluster("outbound|9080||productpage.default")],
                ..CALL
            },
        ],
        ..CASE
    },
    Case {
        case: "TestHTTPGateway / virtual service merging",
        calls: &[
            Call {
                name: "a",
                host: "a.example.com",
                checks: &[Check::Cluster("outbound|80||a.default")],
                ..CALL
            },
            Call {
                name: "b",
                host: "b.example.com",
                checks: &[Check::Cluster("outbound|80||b.default")],
                ..CALL
            },
            Call {
                name: "undefined hostname",
                host: "c.example.com",
                checks: &[Check::Status(404)],
                ..CALL
            },
        ],
        ..CASE
    },
    Case {
        case: "TestHTTPGateway / httpsRedirect without routes",
        calls: &[HTTPS_REDIRECT_EXAMPLE],
        ..CASE
    },
    Case {
        case: "TestHTTPGateway / httpsRedirect with routes",
        calls: &[HTTPS_REDIRECT_EXAMPLE],
        ..CASE
    },
    Case {
        case: "TestHTTPGateway / mixed httpsRedirect with routes",
        calls: &[HTTPS_REDIRECT_EXAMPLE],
        ..CASE
    },
    Case {
        case: "TestHTTPGateway / httpsRedirect on https",
        default_port: 443,
        calls: &[Call {
            name: "request",
            port: 443,
            proto: Proto::Https,
            host: "example.com",
            checks: &[Check::Cluster("outbound|443||b.default")],
            ..CALL
        }],
        ..CASE
    },
    Case {
        case: "TestGatewayConflicts / duplicate cross namespace gateway collision - selected first",
        calls: &[Call {
            name: "call",
            proto: Proto::Tcp,
            host: "foo.bar",
            checks: &[Check::Cluster("outbound|9080||productpage.default")],
            ..CALL
        }],
        ..CASE
    },
    Case {
        case: "TestGatewayConflicts / duplicate cross namespace gateway collision",
        calls: &[Call {
            name: "call",
            proto: Proto::Tcp,
            host: "foo.bar",
            // Istio: ErrNoListener, which its test marks as a bug (istio#21394) whose
            // intended result is the "selected first" case's.
            checks: &[Check::Cluster("outbound|9080||productpage.default")],
            differs: Some("duplicate Gateway names across namespaces are both served"),
            ..CALL
        }],
        ..CASE
    },
    Case {
        case: "TestGatewayConflicts / duplicate tls gateway",
        calls: &[Call {
            name: "call",
            port: 443,
            proto: Proto::Https,
            host: "foo.bar",
            // Istio: Envoy NACKs the listener (istio#24638, marked a bug in its test).
            checks: &[Check::Status(404)],
            differs: Some("two servers for the same TLS hosts on a port: the first serves"),
            ..CALL
        }],
        ..CASE
    },
    Case {
        case: "TestGatewayConflicts / duplicate tls virtual service",
        tls_ports: &[443],
        calls: &[Call {
            name: "call",
            port: 443,
            proto: Proto::Https,
            host: "mysite.example.com",
            checks: &[Check::Cluster(
                "outbound|443||mysite.default.svc.cluster.local",
            )],
            ..CALL
        }],
        ..CASE
    },
    Case {
        case: "TestGatewayConflicts / multiple protocols on a port - tcp first",
        calls: &[Call {
            name: "call tcp",
            proto: Proto::Tcp,
            host: "foo.bar",
            // Istio: the first server's protocol (TCP) takes the port and, with no tcp
            // route, no listener is made.
            checks: &[Check::Status(404)],
            differs: Some("a port's protocol is HTTP over TCP whatever the server order"),
            ..CALL
        }],
        ..CASE
    },
    Case {
        case: "TestGatewayConflicts / multiple protocols on a port - http first",
        calls: &[Call {
            name: "call http",
            host: "foo.bar",
            checks: &[Check::Status(404)],
            ..CALL
        }],
        ..CASE
    },
    Case {
        case: "TestGatewayConflicts / multiple wildcards with virtual service disambiguator",
        calls: &[
            Call {
                name: "ns-1",
                host: "ns-1.example.com",
                checks: &[Check::Cluster("outbound|80||echo.ns-1")],
                ..CALL
            },
            Call {
                name: "ns-2",
                host: "ns-2.example.com",
                checks: &[Check::Cluster("outbound|80||echo.ns-2")],
                ..CALL
            },
        ],
        ..CASE
    },
    Case {
        case: "TestGatewayConflicts / multiple virtual services that should become separate vhosts",
        calls: &[
            Call {
                name: "foobar",
                host: "foo.example.com",
                path: "/1",
                checks: &[Check::Cluster("outbound|80||echo-foobar.default")],
                ..CALL
            },
            Call {
                name: "foo",
                host: "foo.example.com",
                path: "/foo",
                checks: &[Check::Cluster("outbound|80||echo-foo.default")],
                ..CALL
            },
            Call {
                name: "bar",
                host: "bar.example.com",
                path: "/bar",
                checks: &[Check::Cluster("outbound|80||echo-bar.default")],
                ..CALL
            },
        ],
        ..CASE
    },
];

/// Istio's ErrTLSRedirect: a 301 to https, same host.
const HTTPS_REDIRECT_EXAMPLE: Call = Call {
    name: "request",
    host: "example.com",
    checks: &[Check::Status(301), Check::Location("https://example.com/")],
    ..CALL
};

const B_FQDN: &str = "b.echo.svc.cluster.local";

const GATEWAY_CASES: &[Case] = &[
    Case {
        case: "404",
        calls: &[Call {
            name: "404",
            host: "foo.bar",
            checks: &[Check::Status(404)],
            ..CALL
        }],
        ..CASE
    },
    Case {
        case: "https redirect",
        docs_of: &["http redirect when vs port specify https"],
        calls: &[Call {
            name: "https redirect",
            host: B_FQDN,
            checks: &[Check::Status(301)],
            ..CALL
        }],
        ..CASE
    },
    Case {
        case: "http redirect when vs port specify https",
        extra: "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: b.echo.svc.cluster.local}
spec:
  gateways: [gateway-httpsredirect]
  hosts: [b.echo.svc.cluster.local]
  http:
  - route:
    - destination: {host: b.echo.svc.cluster.local, port: {number: 443}}
",
        calls: &[Call {
            name: "http redirect when vs port specify https",
            host: B_FQDN,
            checks: &[Check::Status(301)],
            ..CALL
        }],
        ..CASE
    },
    Case {
        case: "wildcard hostname",
        calls: &[
            Call {
                name: "no port",
                host: "foo.example.com",
                checks: &[Check::Cluster("outbound|80||b.echo.svc.cluster.local")],
                ..CALL
            },
            Call {
                name: "default port",
                host: "foo.example.com:80",
                checks: &[Check::Cluster("outbound|80||b.echo.svc.cluster.local")],
                ..CALL
            },
            Call {
                name: "non-default port",
                host: "foo.example.com:12345",
                checks: &[Check::Cluster("outbound|80||b.echo.svc.cluster.local")],
                ..CALL
            },
        ],
        ..CASE
    },
    Case {
        case: "HTTP / HTTPS and \"<proto> scheme match\"",
        calls: &[
            Call {
                name: "http scheme match",
                host: B_FQDN,
                checks: &[
                    Check::Cluster("outbound|80||b.echo.svc.cluster.local"),
                    Check::RequestHeader("istio-custom-header", "user-defined-value"),
                ],
                ..CALL
            },
            Call {
                name: "client HTTP/2 (h2c), upstream HTTP/1.1",
                proto: Proto::H2c,
                host: B_FQDN,
                checks: &[Check::Cluster("outbound|80||b.echo.svc.cluster.local")],
                ..CALL
            },
        ],
        ..CASE
    },
    Case {
        // The same template instantiated for HTTPS: the VirtualService matches scheme
        // https (the case text's "resp. https").
        case: "HTTP / HTTPS and \"<proto> scheme match\" [https]",
        docs_of: &["HTTP / HTTPS and \"<proto> scheme match\""],
        calls: &[Call {
            name: "https scheme match",
            port: 443,
            proto: Proto::Https,
            host: B_FQDN,
            checks: &[
                Check::Cluster("outbound|80||b.echo.svc.cluster.local"),
                Check::RequestHeader("istio-custom-header", "user-defined-value"),
            ],
            ..CALL
        }],
        ..CASE
    },
    Case {
        case: "HTTPS re-encrypt",
        docs_of: &[
            "HTTP / HTTPS and \"<proto> scheme match\"",
            "HTTPS re-encrypt",
        ],
        tls_ports: &[443],
        extra: "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: b-443}
spec:
  gateways: [gateway-scheme]
  hosts: [b.echo.svc.cluster.local]
  http:
  - match: [{scheme: {exact: https}}]
    route:
    - destination: {host: b.echo.svc.cluster.local, port: {number: 443}}
",
        calls: &[Call {
            name: "https re-encrypt",
            port: 443,
            proto: Proto::Https,
            host: B_FQDN,
            checks: &[Check::Cluster("outbound|443||b.echo.svc.cluster.local")],
            ..CALL
        }],
        ..CASE
    },
];

const B: &str = "outbound|80||b.default";

const VS_CASES: &[Case] = &[
    vs_case(
        "added header",
        &[Call {
            name: "added header",
            checks: &[
                Check::Cluster(B),
                Check::RequestHeader("istio-custom-header", "user-defined-value"),
            ],
            ..CALL
        }],
    ),
    vs_case(
        "set header",
        &[Call {
            name: "set header",
            checks: &[
                Check::Cluster(B),
                Check::RequestHeader("x-custom", "some-value"),
            ],
            ..CALL
        }],
    ),
    vs_case("set authority header", HOST_MY_CUSTOM),
    vs_case("set host header in destination", HOST_MY_CUSTOM),
    vs_case("set authority header in destination", HOST_MY_CUSTOM),
    vs_case(
        "set host header in route and destination",
        &[Call {
            name: "route wins",
            checks: &[Check::Cluster(B), Check::Host("route-authority")],
            ..CALL
        }],
    ),
    vs_case(
        "set host header in route and multi destination",
        &[Call {
            name: "route wins",
            checks: &[Check::Cluster(B), Check::Host("route-authority")],
            ..CALL
        }],
    ),
    vs_case(
        "set host header multi destination",
        &[Call {
            name: "destination",
            checks: &[Check::Cluster(B), Check::Host("dest-authority")],
            ..CALL
        }],
    ),
    vs_case(
        "redirect",
        &[Call {
            name: "redirect",
            path: "/foo?key=value",
            follow: true,
            checks: &[Check::Cluster(B), Check::Url("/new/path?key=value")],
            ..CALL
        }],
    ),
    vs_case(
        "redirect port and scheme",
        &[Call {
            name: "redirect port and scheme",
            path: "/foo",
            checks: &[Check::Status(301), Check::Location("https://b:80/foo")],
            ..CALL
        }],
    ),
    vs_case(
        "redirect request port",
        &[
            Call {
                name: "to default",
                path: "/foo",
                checks: &[Check::Status(301), Check::Location("http://b/foo")],
                ..CALL
            },
            Call {
                name: "to default with host port",
                path: "/foo",
                host: "b:80",
                checks: &[Check::Status(301), Check::Location("http://b:80/foo")],
                ..CALL
            },
            Call {
                name: "non-default",
                port: 85,
                path: "/foo",
                checks: &[Check::Status(301), Check::Location("http://b:85/foo")],
                ..CALL
            },
            Call {
                name: "non-default with host port",
                port: 85,
                path: "/foo",
                host: "b:85",
                checks: &[Check::Status(301), Check::Location("http://b:85/foo")],
                ..CALL
            },
        ],
    ),
    vs_case(
        "redirect prefix_rewrite",
        &[Call {
            name: "redirect prefix_rewrite",
            path: "/foo/bar",
            follow: true,
            checks: &[Check::Cluster(B), Check::Url("/new/bar")],
            ..CALL
        }],
    ),
    vs_case(
        "weird header matches",
        &[
            Call {
                name: "no match",
                checks: &[Check::Status(404)],
                ..CALL
            },
            Call {
                name: "match",
                headers: &[("a!#$%&'*+-.^_`|~z", "why")],
                checks: &[Check::Cluster(B)],
                ..CALL
            },
        ],
    ),
    vs_case(
        "pseudo header matches",
        &[
            Call {
                name: "no match",
                method: "POST",
                checks: &[Check::Status(404)],
                ..CALL
            },
            Call {
                name: "match",
                checks: &[Check::Cluster(B)],
                ..CALL
            },
        ],
    ),
    vs_case(
        "rewrite uri",
        &[Call {
            name: "rewrite uri",
            // The client never sends the fragment.
            path: "/foo?key=value",
            checks: &[Check::Cluster(B), Check::Url("/new/path?key=value")],
            ..CALL
        }],
    ),
    vs_case(
        "rewrite authority",
        &[Call {
            name: "rewrite authority",
            path: "/foo",
            checks: &[Check::Cluster(B), Check::Host("new-authority")],
            ..CALL
        }],
    ),
    vs_case(
        "cors",
        &[
            Call {
                name: "preflight",
                method: "OPTIONS",
                headers: &[
                    ("origin", "cors.com"),
                    ("access-control-request-method", "DELETE"),
                ],
                checks: &[
                    Check::Status(200),
                    Check::ResponseHeader("access-control-allow-origin", "cors.com"),
                    Check::ResponseHeader("access-control-allow-methods", "POST,GET"),
                    Check::ResponseHeader("access-control-allow-headers", "X-Foo-Bar,X-Foo-Baz"),
                    Check::ResponseHeader("access-control-max-age", "86400"),
                ],
                ..CALL
            },
            Call {
                name: "get",
                headers: &[("origin", "cors.com")],
                checks: &[
                    Check::Cluster(B),
                    Check::ResponseHeader("access-control-allow-origin", "cors.com"),
                ],
                ..CALL
            },
            Call {
                name: "get no origin match",
                checks: &[
                    Check::Cluster(B),
                    Check::ResponseHeader("access-control-allow-origin", ""),
                ],
                ..CALL
            },
        ],
    ),
    vs_case(
        "retry conditions",
        &[Call {
            name: "retry conditions",
            checks: &[Check::Cluster(B)],
            ..CALL
        }],
    ),
    vs_case(
        "fault abort",
        &[Call {
            name: "fault abort",
            checks: &[Check::Status(418)],
            ..CALL
        }],
    ),
    vs_case(
        "fault abort gRPC",
        &[Call {
            name: "fault abort gRPC",
            port: 7070,
            proto: Proto::Grpc,
            checks: &[Check::GrpcStatus(14)],
            ..CALL
        }],
    ),
    vs_case(
        "catch all route short circuit the other routes",
        &[Call {
            name: "catch all",
            checks: &[Check::Status(418)],
            ..CALL
        }],
    ),
    vs_case(
        "shifting-%d",
        &[Call {
            name: "shifting 50/25/25 over 100 calls",
            checks: &[Check::Split(&[
                ("outbound|80||b.default", 50),
                ("outbound|80||c.default", 25),
                ("outbound|80||d.default", 25),
            ])],
            ..CALL
        }],
    ),
    Case {
        // The test's other instance of the template: 80/10/10.
        case: "shifting-%d [80]",
        weights: &[80, 10, 10],
        ..vs_case(
            "shifting-%d [80]",
            &[Call {
                name: "shifting 80/10/10 over 100 calls",
                checks: &[Check::Split(&[
                    ("outbound|80||b.default", 80),
                    ("outbound|80||c.default", 10),
                    ("outbound|80||d.default", 10),
                ])],
                ..CALL
            }],
        )
    },
    vs_case(
        "without headers",
        &[
            Call {
                name: "end-user is jason",
                path: "/foo",
                headers: &[("end-user", "jason")],
                checks: &[Check::Status(200)],
                ..CALL
            },
            Call {
                name: "end-user is not jason",
                path: "/foo",
                headers: &[("end-user", "not-jason")],
                checks: &[Check::Status(403)],
                ..CALL
            },
            Call {
                name: "do not have end-user header",
                path: "/foo",
                checks: &[Check::Status(403)],
                ..CALL
            },
        ],
    ),
    vs_case(
        "without headers regex convert to present_match",
        &[
            Call {
                name: "have end-user header and value",
                path: "/foo",
                headers: &[("end-user", "jason")],
                checks: &[Check::Status(200)],
                ..CALL
            },
            Call {
                name: "have end-user header but value is empty",
                path: "/foo",
                headers: &[("end-user", "")],
                checks: &[Check::Status(200)],
                ..CALL
            },
            Call {
                name: "do not have end-user header",
                path: "/foo",
                checks: &[Check::Status(403)],
                ..CALL
            },
        ],
    ),
    vs_case(
        "without headers regex match any string",
        &[
            Call {
                name: "have end-user header and value",
                path: "/foo",
                headers: &[("end-user", "jason")],
                checks: &[Check::Status(200)],
                ..CALL
            },
            Call {
                name: "have end-user header but value is empty",
                path: "/foo",
                headers: &[("end-user", "")],
                checks: &[Check::Status(200)],
                ..CALL
            },
            Call {
                name: "do not have end-user header",
                path: "/foo",
                checks: &[Check::Status(200)],
                ..CALL
            },
        ],
    ),
];

const HOST_MY_CUSTOM: &[Call] = &[Call {
    name: "host",
    checks: &[Check::Cluster(B), Check::Host("my-custom-authority")],
    ..CALL
}];

const fn vs_case(case: &'static str, calls: &'static [Call]) -> Case {
    Case {
        case,
        calls,
        mesh_to_gateway: true,
        ..CASE
    }
}

// ---------------------------------------------------------------------------------------
// Reading the case files.
// ---------------------------------------------------------------------------------------

/// The `# CASE:` lines of a file, each with the text up to the next one.
fn case_sections(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("# CASE: ") {
            out.push((name.trim().to_string(), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

/// The documents of a section (comment-only documents skipped).
fn documents(section: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(section)
        .filter_map(|d| {
            let v = Value::deserialize(d).expect("the case file is YAML");
            (!v.is_null()).then_some(v)
        })
        .collect()
}

/// Whether a CASE line is the case `name` (the line may go on with ` -- ` or ` (` and a
/// description).
fn is_line_of(line: &str, name: &str) -> bool {
    line == name
        || line
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with(" -- ") || rest.starts_with(" ("))
}

/// A case's own CASE name: a variant (`name [variant]`) runs the same case differently.
fn base_name(case: &Case) -> &'static str {
    case.case.split(" [").next().unwrap_or(case.case)
}

/// The section of the CASE line named `name`.
fn section<'a>(sections: &'a [(String, String)], name: &str) -> &'a (String, String) {
    sections
        .iter()
        .find(|(line, _)| is_line_of(line, name))
        .unwrap_or_else(|| panic!("no `# CASE: {name}` in the case file"))
}

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    get(v, path).and_then(Value::as_str)
}

/// A destination of a VirtualService: (FQDN, port, spoken over TLS by the route).
fn destinations(docs: &[Value], default_port: u32) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    for d in docs {
        if str_at(d, &["kind"]) != Some("VirtualService") {
            continue;
        }
        let ns = str_at(d, &["metadata", "namespace"]).unwrap_or("default");
        for kind in ["http", "tcp", "tls"] {
            for rule in get(d, &["spec", kind])
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
            {
                for r in rule
                    .get("route")
                    .and_then(Value::as_sequence)
                    .into_iter()
                    .flatten()
                {
                    let Some(host) = str_at(r, &["destination", "host"]) else {
                        continue;
                    };
                    let fqdn = if host.contains('.') {
                        host.to_string()
                    } else {
                        format!("{host}.{ns}.svc.cluster.local")
                    };
                    let port = get(r, &["destination", "port", "number"])
                        .and_then(Value::as_u64)
                        .map_or(default_port, |p| p as u32);
                    if !out.contains(&(fqdn.clone(), port)) {
                        out.push((fqdn, port));
                    }
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Running a case.
// ---------------------------------------------------------------------------------------

/// The local upstreams of a case, by cluster name.
enum Peer {
    Http(Upstream),
    Tls(#[allow(dead_code)] TlsUpstream),
}

struct Outcome {
    lines: Vec<String>,
    run: usize,
    passed: usize,
    differences: usize,
    expected_failures: usize,
    unexpected: Vec<String>,
}

struct Pki {
    ca: pki::Cert,
    leaf: pki::Cert,
}

fn make_pki(dir: &Path) -> Pki {
    let ca = pki::ca(dir, "istio-tests-ca");
    let leaf = pki::leaf(
        dir,
        &ca,
        "istio-tests",
        "/CN=istio-tests",
        &[
            "DNS:b.echo.svc.cluster.local",
            "DNS:example.com",
            "DNS:foo.bar",
            "DNS:*.example.com",
            "DNS:b",
        ],
    );
    Pki { ca, leaf }
}

/// Runs every case of one file; returns the printed report and the counts.
fn run_file(file: &str, cases: &[Case], net: u8) -> Outcome {
    let path = corpus().join("istio-tests").join(file);
    let text = std::fs::read_to_string(&path).expect("read the case file");
    let sections = case_sections(&text);
    let dir = scratch(&format!("istio-{net}"));
    let pki = make_pki(&dir.join("pki"));
    for cred in ["cred", "test", "sds-credential"] {
        pki::install_credential(&dir.join("creds"), cred, &pki.leaf, None);
    }

    // Every CASE line of the file is claimed by exactly one entry, and every entry by a
    // line: no case is dropped silently.
    for (line, _) in &sections {
        assert!(
            cases.iter().any(|c| is_line_of(line, base_name(c))),
            "{file}: `# CASE: {line}` has no calls in this test"
        );
    }
    for c in cases {
        assert!(
            sections.iter().any(|(l, _)| is_line_of(l, base_name(c))),
            "{file}: no `# CASE: {}`",
            c.case
        );
    }

    let mut out = Outcome {
        lines: vec![format!("== {file}")],
        run: 0,
        passed: 0,
        differences: 0,
        expected_failures: 0,
        unexpected: Vec::new(),
    };
    for (i, case) in cases.iter().enumerate() {
        run_case(
            file,
            case,
            &sections,
            &dir,
            &pki,
            net,
            i as u8 + 1,
            &mut out,
        );
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn run_case(
    file: &str,
    case: &Case,
    sections: &[(String, String)],
    root: &Path,
    pki: &Pki,
    net: u8,
    index: u8,
    out: &mut Outcome,
) {
    let ip: IpAddr = format!("127.77.{net}.{index}").parse().unwrap();
    let base = base_name(case);
    let mut docs = Vec::new();
    let sources: Vec<&str> = if case.docs_of.is_empty() {
        vec![base]
    } else {
        case.docs_of.to_vec()
    };
    for s in &sources {
        docs.extend(documents(&section(sections, s).1));
    }
    let mut adapted = Vec::new();
    if sources != [base] {
        adapted.push(format!("documents of {sources:?}"));
    }
    if case.case.ends_with("[https]") {
        for d in docs.iter_mut() {
            if let Some(Value::String(s)) = get_mut(d, &["spec", "http"]).and_then(|h| {
                h.get_mut(0)
                    .and_then(|r| r.get_mut("match"))
                    .and_then(|m| m.get_mut(0))
                    .and_then(|m| m.get_mut("scheme"))
                    .and_then(|s| s.get_mut("exact"))
            }) {
                *s = "https".into();
                adapted.push("the template's https instance: scheme exact https".into());
            }
        }
    }
    if !case.weights.is_empty() {
        for d in docs.iter_mut() {
            let routes = get_mut(d, &["spec", "http"])
                .and_then(|h| h.get_mut(0))
                .and_then(|r| r.get_mut("route"))
                .and_then(Value::as_sequence_mut);
            for (r, w) in routes.into_iter().flatten().zip(case.weights) {
                if let Some(Value::Mapping(m)) = Some(r) {
                    m.insert("weight".into(), (*w).into());
                }
            }
        }
        adapted.push(format!(
            "the template's instance with weights {:?}",
            case.weights
        ));
    }
    if !case.extra.is_empty() {
        docs.extend(documents(case.extra));
        adapted.push("documents the case describes (Istio's template), added".into());
    }
    if case.mesh_to_gateway {
        for d in docs.iter_mut() {
            if str_at(d, &["kind"]) == Some("VirtualService")
                && get(d, &["spec", "gateways"]).is_none()
            {
                if let Some(Value::Mapping(spec)) = d.get_mut("spec") {
                    spec.insert(
                        "gateways".into(),
                        Value::Sequence(vec!["istio-routing-test".into()]),
                    );
                }
                adapted.push("mesh-only VirtualService bound to the test Gateway".into());
            }
        }
        docs.extend(documents(TEST_GATEWAY));
    }

    // A local upstream per destination, registered by a ServiceEntry.
    let mut peers: BTreeMap<String, Peer> = BTreeMap::new();
    let mut by_host: BTreeMap<String, Vec<(u32, u16)>> = BTreeMap::new();
    for (fqdn, port) in destinations(&docs, case.default_port) {
        let name = format!("outbound|{port}||{fqdn}");
        let (peer, p) = if case.tls_ports.contains(&port) {
            let dir = root.join("pki");
            let leaf = pki::leaf(
                &dir,
                &pki.ca,
                &format!("up-{net}-{index}-{port}"),
                &format!("/CN={fqdn}"),
                &["DNS:mysite.example.com", "DNS:b.echo.svc.cluster.local"],
            );
            let u = TlsUpstream::start(&name, &leaf);
            let p = u.port();
            (Peer::Tls(u), p)
        } else {
            let u = Upstream::start(&name);
            let p = u.port();
            (Peer::Http(u), p)
        };
        peers.insert(name, peer);
        by_host.entry(fqdn).or_default().push((port, p));
    }
    for (fqdn, ports) in &by_host {
        let ns = fqdn
            .strip_suffix(".svc.cluster.local")
            .and_then(|h| h.split('.').nth(1))
            .unwrap_or("default");
        let port_list: Vec<String> = ports
            .iter()
            .map(|(p, _)| {
                let proto = if case.tls_ports.contains(p) {
                    "TLS"
                } else {
                    "HTTP"
                };
                format!("{{number: {p}, name: p{p}, protocol: {proto}}}")
            })
            .collect();
        let targets: Vec<String> = ports.iter().map(|(p, t)| format!("p{p}: {t}")).collect();
        docs.extend(documents(&format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: se-{}, namespace: {ns}}}\nspec:\n  hosts: [{fqdn}]\n  ports: [{}]\n  resolution: STATIC\n  endpoints: [{{address: 127.0.0.1, ports: {{{}}}}}]\n",
            fqdn.replace('.', "-"),
            port_list.join(", "),
            targets.join(", ")
        )));
    }
    if !by_host.is_empty() {
        adapted.push(format!(
            "ServiceEntries for {:?} to local upstreams",
            by_host.keys().collect::<Vec<_>>()
        ));
    }

    let dir = root.join(format!("case-{index}"));
    let yaml: Vec<String> = docs
        .iter()
        .map(|d| serde_yaml::to_string(d).unwrap())
        .collect();
    write(&dir, "conf/all.yaml", &yaml.join("---\n"));
    write(
        &dir,
        "conf/mesh.yaml",
        &format!(
            "apiVersion: meshgate.io/v1alpha1\nkind: MeshConfig\nmetadata: {{name: m}}\nspec: {{defaultBindAddress: {ip}, credentialsDir: {}}}\n",
            root.join("creds").display()
        ),
    );
    out.lines.push(format!("-- {file}: {}", case.case));
    for a in &adapted {
        out.lines.push(format!("   adapted: {a}"));
    }
    let gw = match Gateway::try_start(&dir) {
        Ok(gw) => gw,
        Err(e) => {
            for call in case.calls {
                out.run += 1;
                let id = format!("{file} / {} / {}", case.case, call.name);
                out.lines
                    .push(format!("   FAIL {}: meshgate did not start", call.name));
                out.unexpected
                    .push(format!("{id}: meshgate did not start: {e}"));
            }
            return;
        }
    };
    for call in case.calls {
        out.run += 1;
        let id = format!("{file} / {} / {}", case.case, call.name);
        let result = make_call(call, ip, &peers, pki);
        match (result, call.expected_failure, call.differs) {
            (Ok(()), None, None) => {
                out.passed += 1;
                out.lines.push(format!("   pass {}", call.name));
            }
            (Ok(()), None, Some(d)) => {
                out.differences += 1;
                out.lines.push(format!(
                    "   pass {} (documented difference: {d})",
                    call.name
                ));
            }
            (Ok(()), Some(why), _) => {
                out.lines.push(format!("   UNEXPECTED PASS {}", call.name));
                out.unexpected.push(format!(
                    "{id}: passes now; remove its expected-failure mark ({why})"
                ));
            }
            (Err(e), Some(why), _) => {
                out.expected_failures += 1;
                out.lines.push(format!(
                    "   expected failure {} (waits on {why}): {e}",
                    call.name
                ));
            }
            (Err(e), None, _) => {
                out.lines.push(format!("   FAIL {}: {e}", call.name));
                out.unexpected.push(format!("{id}: {e}"));
            }
        }
    }
    drop(gw);
}

fn get_mut<'a>(v: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |v, k| v.get_mut(*k))
}

/// What one call saw.
#[derive(Default, Debug)]
struct Seen {
    status: u16,
    headers: Vec<(String, String)>,
    /// The cluster that answered (the upstream's name).
    cluster: Option<String>,
    grpc: Option<(u32, bool)>,
    refused: bool,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn from_reply(r: Reply) -> Seen {
    let cluster = r
        .header("x-upstream")
        .map(str::to_string)
        .or_else(|| (r.status == 200).then(|| r.text().trim().to_string()));
    Seen {
        status: r.status,
        headers: r.headers,
        cluster,
        ..Seen::default()
    }
}

fn http1(addr: SocketAddr, call: &Call, host: &str, path: &str) -> Result<Seen, String> {
    let mut req = format!(
        "{} {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n",
        call.method
    );
    for (k, v) in call.headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(Seen {
            refused: true,
            ..Seen::default()
        }),
        Err(e) => Err(format!("connect {addr}: {e}")),
        Ok(mut s) => {
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let _ = s.write_all(req.as_bytes());
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf);
            common::net::parse_reply(&buf)
                .map(from_reply)
                .ok_or_else(|| "connection closed without a response".to_string())
        }
    }
}

fn make_call(
    call: &Call,
    ip: IpAddr,
    peers: &BTreeMap<String, Peer>,
    pki: &Pki,
) -> Result<(), String> {
    let addr = SocketAddr::new(ip, call.port);
    let count = if call.checks.iter().any(|c| matches!(c, Check::Split(_))) {
        100
    } else {
        1
    };
    let mut answers: BTreeMap<String, u32> = BTreeMap::new();
    let mut seen = Seen::default();
    let mut upstream_path = None;
    for _ in 0..count {
        seen = match call.proto {
            Proto::Http | Proto::Tcp => {
                let mut s = http1(addr, call, call.host, call.path)?;
                let mut hops = 0;
                while call.follow && (300..400).contains(&s.status) && hops < 3 {
                    let location = s.header("location").ok_or("a redirect without Location")?;
                    let rest = location
                        .split_once("://")
                        .map_or(location, |(_, r)| r)
                        .to_string();
                    let (host, path) = match rest.find('/') {
                        Some(i) => (rest[..i].to_string(), rest[i..].to_string()),
                        None => (rest.clone(), "/".to_string()),
                    };
                    s = http1(addr, call, &host, &path)?;
                    hops += 1;
                }
                s
            }
            Proto::H2c => h2c(addr, call)?,
            Proto::Https => https(addr, call, pki)?,
            Proto::Grpc => grpc(addr, call)?,
        };
        if let Some(c) = &seen.cluster {
            *answers.entry(c.clone()).or_default() += 1;
            if let Some(Peer::Http(u)) = peers.get(c) {
                upstream_path = Some(u.last());
            }
        }
    }
    let seen_by_upstream = upstream_path;
    for check in call.checks {
        let fail = |what: String| Err(format!("{check:?}: {what} (saw {seen:?})"));
        match *check {
            Check::Refused => {
                if !seen.refused {
                    return fail("the connection was accepted".into());
                }
            }
            _ if seen.refused => return fail("connection refused".into()),
            Check::Status(s) => {
                if seen.status != s {
                    return fail(format!("status {}", seen.status));
                }
            }
            Check::Cluster(c) => {
                let ok = seen.status == 200
                    && seen.cluster.as_deref().is_some_and(|got| {
                        got == c || got.strip_prefix(c) == Some(".svc.cluster.local")
                    });
                if !ok {
                    return fail(format!("cluster {:?}", seen.cluster));
                }
            }
            Check::RequestHeader(k, v) => {
                let got = seen_by_upstream.as_ref().and_then(|s| s.header(k));
                if got != Some(v) {
                    return fail(format!("the upstream saw {k}: {got:?}"));
                }
            }
            Check::Host(v) => {
                let got = seen_by_upstream.as_ref().and_then(|s| s.header("host"));
                if got != Some(v) {
                    return fail(format!("the upstream saw Host {got:?}"));
                }
            }
            Check::Url(p) => {
                let got = seen_by_upstream.as_ref().map(|s| s.path.as_str());
                if got != Some(p) {
                    return fail(format!("the upstream saw path {got:?}"));
                }
            }
            Check::Location(l) => {
                if seen.header("location") != Some(l) {
                    return fail(format!("Location {:?}", seen.header("location")));
                }
            }
            Check::ResponseHeader(k, v) => {
                let got = seen.header(k);
                let ok = if v.is_empty() {
                    got.is_none()
                } else {
                    got == Some(v)
                };
                if !ok {
                    return fail(format!("{k}: {got:?}"));
                }
            }
            Check::GrpcStatus(code) => match seen.grpc {
                Some((c, true)) if c == code => {}
                Some((c, trailers_only)) => {
                    return fail(format!(
                        "grpc-status {c}, trailers-only (HEADERS with END_STREAM): {trailers_only}"
                    ))
                }
                None => return fail("no grpc-status".into()),
            },
            Check::Split(shares) => {
                for (cluster, pct) in shares {
                    let got = answers
                        .iter()
                        .filter(|(k, _)| {
                            *k == cluster || k.strip_prefix(cluster) == Some(".svc.cluster.local")
                        })
                        .map(|(_, n)| *n)
                        .sum::<u32>();
                    if got.abs_diff(*pct) > 10 {
                        return fail(format!("{cluster}: {got} of 100, want {pct} ± 10"));
                    }
                }
            }
        }
    }
    Ok(())
}

/// HTTP/2 with prior knowledge through curl.
fn h2c(addr: SocketAddr, call: &Call) -> Result<Seen, String> {
    let url = format!("http://{}:{}{}", call.host, addr.port(), call.path);
    let resolve = format!("{}:{}:{}", call.host, addr.port(), addr.ip());
    let out = curl(&[
        "--http2-prior-knowledge",
        "--resolve",
        &resolve,
        "-D",
        "-",
        &url,
    ]);
    seen_from_curl(out)
}

/// HTTPS with SNI and Host = the call's host, verified against the test CA.
fn https(addr: SocketAddr, call: &Call, pki: &Pki) -> Result<Seen, String> {
    let url = format!("https://{}:{}{}", call.host, addr.port(), call.path);
    let resolve = format!("{}:{}:{}", call.host, addr.port(), addr.ip());
    let ca = pki.ca.crt.to_string_lossy().into_owned();
    let out = curl(&["--cacert", &ca, "--resolve", &resolve, "-D", "-", &url]);
    seen_from_curl(out)
}

fn seen_from_curl(out: common::peers::CurlOut) -> Result<Seen, String> {
    if out.exit == 7 {
        return Ok(Seen {
            refused: true,
            ..Seen::default()
        });
    }
    if out.status == 0 {
        return Err(format!(
            "curl exit {}: {}",
            out.exit,
            out.trace.lines().last().unwrap_or("")
        ));
    }
    // `-D -` puts the response head before the body.
    let (head, body) = out.body.split_once("\r\n\r\n").unwrap_or((&out.body, ""));
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect();
    let cluster = headers
        .iter()
        .find(|(k, _)| k == "x-upstream")
        .map(|(_, v)| v.clone())
        .or_else(|| (out.status == 200).then(|| body.trim().to_string()));
    Ok(Seen {
        status: out.status,
        headers,
        cluster,
        ..Seen::default()
    })
}

/// One unary gRPC call over h2c with the h2 crate: the response's grpc-status and whether
/// it came as a trailers-only response (the HEADERS frame ended the stream).
fn grpc(addr: SocketAddr, call: &Call) -> Result<Seen, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tcp =
            tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
                .await
                .map_err(|_| "connect timed out".to_string())?
                .map_err(|e| format!("connect: {e}"))?;
        let (mut client, conn) = h2::client::handshake(tcp)
            .await
            .map_err(|e| format!("h2 handshake: {e}"))?;
        tokio::spawn(conn);
        let req = http::Request::builder()
            .method("POST")
            .uri(format!(
                "http://{}/grpc.testing.EchoTestService/Echo",
                call.host
            ))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let (resp, mut body) = client
            .send_request(req, false)
            .map_err(|e| format!("send: {e}"))?;
        // An empty message: no compression flag, zero length.
        body.send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 0]), true)
            .map_err(|e| format!("send body: {e}"))?;
        let resp = tokio::time::timeout(Duration::from_secs(10), resp)
            .await
            .map_err(|_| "no response in 10 s".to_string())?
            .map_err(|e| format!("response: {e}"))?;
        let trailers_only = resp.body().is_end_stream();
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let mut status = resp
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok()?.parse().ok());
        if status.is_none() {
            let mut body = resp.into_body();
            while let Some(chunk) = body.data().await {
                let _ = chunk;
            }
            if let Ok(Some(t)) = body.trailers().await {
                status = t
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok()?.parse().ok());
            }
        }
        Ok(Seen {
            status: 200,
            headers,
            grpc: status.map(|s| (s, trailers_only)),
            ..Seen::default()
        })
    })
}

fn report(out: Outcome) {
    for l in &out.lines {
        println!("{l}");
    }
    println!(
        "istio routing cases: {} calls run, {} pass, {} pass as documented differences, {} expected failures, {} unexpected",
        out.run,
        out.passed,
        out.differences,
        out.expected_failures,
        out.unexpected.len()
    );
    assert!(
        out.unexpected.is_empty(),
        "calls that do not behave as Istio's tests expect:\n{}",
        out.unexpected.join("\n")
    );
}

#[test]
fn gateway_simulation_cases() {
    report(run_file("gateway-simulation-cases.yaml", SIMULATION, 1));
}

#[test]
fn routing_integration_gateway_cases() {
    report(run_file(
        "routing-integration-gateway-cases.yaml",
        GATEWAY_CASES,
        2,
    ));
}

#[test]
fn routing_integration_virtualservice_cases() {
    report(run_file(
        "routing-integration-virtualservice-cases.yaml",
        VS_CASES,
        3,
    ));
}
