//! Compiling Istio configs into listeners, virtual hosts and clusters.

use super::route_table::{RouteAction, RouteTable};
use super::*;
use crate::config::model::{DestinationRuleSpec, ServicePort};
use crate::config::{check, loader};
use std::path::Path;

fn snapshot(yaml: &str) -> Snapshot {
    let mut loaded = loader::Loaded::default();
    loader::load_text(Path::new("s.yaml"), yaml, &mut loaded);
    let checked = check(loaded, &[]);
    assert!(!checked.has_errors(), "{:#?}", checked.diagnostics);
    let labels = checked.config.instance_labels(&[]);
    compile(&checked.config, &labels)
}

const GW: &str = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: edge}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: 8080, name: http, protocol: HTTP}\n    hosts: [\"*/*.example.com\", \"edge/local.internal\"]\n";

fn vs(ns: &str, name: &str, hosts: &str, gateways: &str, http: &str) -> String {
    format!("---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  hosts: {hosts}\n  gateways: {gateways}\n  http:\n{http}")
}

const SE: &str = "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews, namespace: edge}\nspec:\n  hosts: [reviews.edge.svc.cluster.local]\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  resolution: STATIC\n  endpoints:\n  - {address: 127.0.0.1, ports: {http: 9081}, labels: {version: v1}}\n  - {address: 127.0.0.2, labels: {version: v2}}\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: edge}\nspec:\n  host: reviews\n  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]\n";

const ROUTE: &str = "  - route: [{destination: {host: reviews}}]\n";

fn http_of(l: &Listener) -> &RouteTable {
    l.http_routes(None).expect("a plain-text HTTP listener")
}

fn domains(s: &Snapshot) -> Vec<&str> {
    let mut d: Vec<&str> = http_of(&s.listeners[0])
        .vhosts
        .iter()
        .map(|v| v.domain.as_str())
        .collect();
    d.sort();
    d
}

#[test]
fn one_listener_per_address_with_intersected_hosts() {
    let s = snapshot(&format!(
        "{GW}{SE}{}{}",
        vs("edge", "a", "[a.example.com]", "[gw]", ROUTE),
        vs("edge", "all", "[\"*\"]", "[edge/gw]", ROUTE)
    ));
    assert_eq!(s.listeners.len(), 1);
    assert_eq!(s.listeners[0].address, "0.0.0.0:8080".parse().unwrap());
    // `*` intersected with the server's hosts gives the server's (more specific) names.
    assert_eq!(
        domains(&s),
        vec!["*.example.com", "a.example.com", "local.internal"]
    );
}

#[test]
fn binding_needs_the_gateway_listed_and_a_visible_host() {
    // Not listed (mesh only), wrong gateway name, and a namespace the server does not
    // admit for local.internal: none bind.
    let s = snapshot(&format!(
        "{GW}{SE}{}{}{}",
        vs("edge", "mesh", "[b.example.com]", "[mesh]", ROUTE),
        vs("edge", "other", "[c.example.com]", "[othergw]", ROUTE),
        vs("team", "team", "[local.internal]", "[edge/gw]", ROUTE)
    ));
    assert!(domains(&s).is_empty(), "{:?}", domains(&s));
    // A VirtualService in another namespace names the gateway as ns/name.
    let s = snapshot(&format!(
        "{GW}{SE}{}",
        vs("team", "t", "[t.example.com]", "[edge/gw]", ROUTE)
    ));
    assert_eq!(domains(&s), vec!["t.example.com"]);
    // A short name is resolved in the VirtualService's own namespace.
    let s = snapshot(&format!(
        "{GW}{SE}{}",
        vs("team", "t", "[t.example.com]", "[gw]", ROUTE)
    ));
    assert!(domains(&s).is_empty());
}

#[test]
fn merged_virtual_services_keep_file_order_with_catch_alls_last() {
    let s = snapshot(&format!(
        "{GW}{SE}{}{}",
        vs("edge", "first", "[a.example.com]", "[gw]", "  - route: [{destination: {host: reviews, subset: v1}}]\n"),
        vs("edge", "second", "[a.example.com]", "[gw]", "  - match: [{uri: {prefix: /x}}]\n    route: [{destination: {host: reviews, subset: v2}}]\n")
    ));
    let routes: Vec<&str> = http_of(&s.listeners[0]).vhosts[0]
        .routes
        .iter()
        .map(|r| &*r.name)
        .collect();
    assert_eq!(
        routes,
        vec![
            "VirtualService edge/second http[0]",
            "VirtualService edge/first http[0]"
        ]
    );
}

#[test]
fn per_match_gateways_narrow_a_rule() {
    let http = "  - match: [{uri: {prefix: /only-mesh}, gateways: [mesh]}]\n    route: [{destination: {host: reviews}}]\n  - match: [{uri: {prefix: /both}, gateways: [mesh, gw]}, {uri: {prefix: /mesh2}, gateways: [mesh]}]\n    route: [{destination: {host: reviews}}]\n";
    let s = snapshot(&format!(
        "{GW}{SE}{}",
        vs("edge", "v", "[a.example.com]", "[gw, mesh]", http)
    ));
    let routes = &http_of(&s.listeners[0]).vhosts[0].routes;
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].matches.len(), 1);
    assert_eq!(&*routes[0].name, "VirtualService edge/v http[1]");
}

#[test]
fn clusters_resolve_hosts_subsets_and_target_ports() {
    let http = "  - route:\n    - {destination: {host: reviews, subset: v1}, weight: 80}\n    - {destination: {host: reviews.edge.svc.cluster.local, subset: v2}, weight: 20}\n  - route: [{destination: {host: reviews, subset: v9}}]\n  - route: [{destination: {host: nowhere}}]\n";
    let s = snapshot(&format!(
        "{GW}{SE}{}",
        vs("edge", "v", "[a.example.com]", "[gw]", http)
    ));
    let named = |n: &str| s.cluster(s.cluster_id(n).expect(n)).unwrap().clone();
    let v1 = named("outbound|9080|v1|reviews.edge.svc.cluster.local");
    assert_eq!(v1.endpoints.len(), 1);
    assert_eq!(
        v1.endpoints[0].address,
        "127.0.0.1:9081".parse().unwrap(),
        "port from the endpoint's ports map"
    );
    let v2 = named("outbound|9080|v2|reviews.edge.svc.cluster.local");
    assert_eq!(
        v2.endpoints[0].address,
        "127.0.0.2:9080".parse().unwrap(),
        "else the service port"
    );
    assert!(
        s.cluster_id("outbound|9080|v9|reviews.edge.svc.cluster.local")
            .is_none(),
        "undefined subset: NC"
    );
    assert_eq!(s.clusters.len(), 2);
    let RouteAction::Forward(w) = &http_of(&s.listeners[0]).vhosts[0].routes[0].action else {
        panic!()
    };
    assert_eq!(w.total, 100);
}

#[test]
fn workload_entries_selected_by_labels() {
    let text = format!(
        "{GW}---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: vm, namespace: edge}}\nspec:\n  hosts: [vm.internal]\n  ports: [{{number: 80, name: http, protocol: HTTP, targetPort: 8000}}]\n  resolution: STATIC\n  workloadSelector: {{labels: {{app: vm}}}}\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: vm1, namespace: edge}}\nspec: {{address: 127.0.0.5, labels: {{app: vm}}}}\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: other, namespace: edge}}\nspec: {{address: 127.0.0.6, labels: {{app: other}}}}\n{}",
        vs("edge", "v", "[a.example.com]", "[gw]", "  - route: [{destination: {host: vm.internal}}]\n")
    );
    let s = snapshot(&text);
    let c = s
        .cluster(s.cluster_id("outbound|80||vm.internal").unwrap())
        .unwrap();
    let addrs: Vec<String> = c.endpoints.iter().map(|e| e.address.to_string()).collect();
    assert_eq!(addrs, vec!["127.0.0.5:8000"]);
}

#[test]
fn gateways_of_other_instances_get_no_listener() {
    let text = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: eg}\nspec:\n  selector: {istio: egressgateway}\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [\"*\"]\n---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: tcp}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: 31400, name: tcp, protocol: TCP}\n    hosts: [\"*\"]\n";
    let s = snapshot(text);
    assert_eq!(s.listeners.len(), 1);
    assert_eq!(s.listeners[0].address.port(), 31400);
    assert!(matches!(s.listeners[0].protocol, Protocol::Tcp(_)));
}

const TLS_GW: &str = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: edge}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: 8443, name: tls, protocol: TLS}\n    hosts: [\"*.pass.example.com\"]\n    tls: {mode: PASSTHROUGH}\n  - port: {number: 8443, name: https, protocol: HTTPS}\n    hosts: [secure.example.com]\n    tls: {mode: SIMPLE, serverCertificate: /nonexistent/cert.pem, privateKey: /nonexistent/key.pem}\n  - port: {number: 8443, name: http, protocol: HTTP}\n    hosts: [\"*\"]\n";

#[test]
fn tls_ports_take_passthrough_routes_and_refuse_other_protocols() {
    let tls_vs = "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: p, namespace: edge}\nspec:\n  hosts: [\"*.pass.example.com\", other.org]\n  gateways: [gw]\n  tls:\n  - match: [{sniHosts: [a.pass.example.com, other.org]}]\n    route: [{destination: {host: reviews}}]\n  - match: [{port: 9999, sniHosts: [\"*.pass.example.com\"]}]\n    route: [{destination: {host: reviews, subset: v2}}]\n";
    let s = snapshot(&format!("{TLS_GW}{SE}{tls_vs}"));
    assert_eq!(s.listeners.len(), 1);
    let Protocol::Tls(router) = &s.listeners[0].protocol else {
        panic!("{:?}", s.listeners[0].protocol)
    };
    let names: Vec<(&str, Vec<String>)> = router
        .chains
        .iter()
        .map(|c| (&*c.name, c.server_names.clone()))
        .collect();
    assert_eq!(
        names,
        vec![
            (
                "VirtualService edge/p tls[0]",
                vec!["a.pass.example.com".to_string()]
            ),
            (
                "VirtualService edge/p tls[1]",
                vec!["*.pass.example.com".to_string()]
            ),
        ],
        "sniHosts outside the server's hosts are dropped; the bad credential's server is out"
    );
    let local = "127.0.0.1:8443".parse().unwrap();
    match router.route(Some("b.pass.example.com"), local) {
        None => {}
        other => panic!("port 9999 only: {other:?}"),
    }
    assert!(
        s.notes.iter().any(|n| n.contains("servers[1]")
            && n.contains("/nonexistent/cert.pem")
            && n.contains("this server is out")),
        "{:?}",
        s.notes
    );
    assert!(
        s.notes
            .iter()
            .any(|n| n.contains("servers[2]") && n.contains("another protocol")),
        "{:?}",
        s.notes
    );
}

#[test]
fn tcp_idle_timeout_from_destination_rule() {
    let spec: DestinationRuleSpec = serde_yaml::from_str("host: reviews\ntrafficPolicy:\n  connectionPool: {tcp: {idleTimeout: 30s}}\n  portLevelSettings:\n  - port: {number: 9080}\n    connectionPool: {tcp: {idleTimeout: 5s}}\nsubsets:\n- name: v1\n  labels: {version: v1}\n  trafficPolicy: {connectionPool: {tcp: {idleTimeout: 2m}}}\n").unwrap();
    use std::time::Duration;
    let policy = |dr: Option<&DestinationRuleSpec>, subset: &str, port: u32| {
        let p = ServicePort {
            number: port,
            protocol: None,
            name: "p".into(),
            target_port: None,
        };
        cluster::ClusterPolicy::of(dr, subset, &p, cluster::CONNECT_TIMEOUT)
    };
    assert_eq!(
        policy(Some(&spec), "", 9080).tcp_idle_timeout,
        Duration::from_secs(5)
    );
    assert_eq!(
        policy(Some(&spec), "", 80).tcp_idle_timeout,
        Duration::from_secs(30)
    );
    assert_eq!(
        policy(Some(&spec), "v1", 9080).tcp_idle_timeout,
        Duration::from_secs(120)
    );
    assert_eq!(
        policy(None, "", 1).tcp_idle_timeout,
        Duration::from_secs(3600)
    );
    let spec: DestinationRuleSpec = serde_yaml::from_str(
        "host: reviews\ntrafficPolicy:\n  connectionPool: {tcp: {connectTimeout: 250ms}}\n",
    )
    .unwrap();
    assert_eq!(
        policy(Some(&spec), "", 9080).connect_timeout,
        Duration::from_millis(250)
    );
    assert_eq!(
        policy(None, "", 9080).connect_timeout,
        Duration::from_secs(10),
        "Istio's default"
    );
}

#[test]
fn a_virtual_service_with_several_hosts_is_compiled_once() {
    let s = snapshot(&format!(
        "{GW}{SE}{}",
        vs(
            "edge",
            "v",
            "[a.example.com, b.example.com]",
            "[gw]",
            "  - match: [{uri: {regex: \"/r/.*\"}}]\n    route: [{destination: {host: reviews}}]\n"
        )
    ));
    let vh = &http_of(&s.listeners[0]).vhosts;
    assert_eq!(vh.len(), 2);
    assert!(Arc::ptr_eq(&vh[0].routes[0], &vh[1].routes[0]));
    let RouteAction::Forward(w) = &vh[0].routes[0].action else {
        panic!()
    };
    assert!(
        w.resolved[0].is_some(),
        "clusters are resolved when the route is compiled"
    );
}

#[test]
fn http2_upstreams_by_port_protocol_or_upgrade_policy() {
    let port = |proto: &str| ServicePort {
        number: 80,
        protocol: Some(proto.into()),
        name: "p".into(),
        target_port: None,
    };
    let dr: DestinationRuleSpec = serde_yaml::from_str("host: a\nsubsets:\n- name: h1\n  labels: {v: \"1\"}\n  trafficPolicy: {connectionPool: {http: {h2UpgradePolicy: DO_NOT_UPGRADE}}}\ntrafficPolicy: {connectionPool: {http: {h2UpgradePolicy: UPGRADE}}}\n").unwrap();
    let speaks_http2 = |dr, subset: &str, p: &ServicePort| {
        cluster::ClusterPolicy::of(dr, subset, p, cluster::CONNECT_TIMEOUT).http2
    };
    assert!(speaks_http2(None, "", &port("GRPC")));
    assert!(!speaks_http2(None, "", &port("HTTP")));
    assert!(speaks_http2(Some(&dr), "", &port("HTTP")), "UPGRADE");
    assert!(
        !speaks_http2(Some(&dr), "h1", &port("GRPC")),
        "DO_NOT_UPGRADE in the subset wins"
    );
}

#[test]
fn header_presence_forms_compile_and_no_condition_is_dropped() {
    // `regex: "*"` (Istio's presence form) validates and compiles, in `headers` and in
    // `withoutHeaders`; nothing is skipped, so the rule keeps its condition.
    let s = snapshot(&format!(
        "{GW}{SE}{}",
        vs(
            "edge",
            "a",
            "[a.example.com]",
            "[gw]",
            "  - match: [{withoutHeaders: {end-user: {regex: \"*\"}}}, {headers: {x-canary: {regex: \"*\"}}}]\n    route: [{destination: {host: reviews}}]\n"
        )
    ));
    assert!(
        s.notes.iter().all(|n| !n.contains("skipped")),
        "{:?}",
        s.notes
    );
    let routes = &http_of(&s.listeners[0]).vhosts[0].routes;
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].matches.len(), 2, "both conditions kept");
}

#[test]
fn every_config_istio_calls_valid_compiles_without_skipping_a_rule() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/istio-corpus");
    let mut files = Vec::new();
    for dir in ["valid-config", "samples", "tasks", "istio-tests"] {
        let mut stack = vec![root.join(dir)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                    files.push(p);
                }
            }
        }
    }
    assert!(files.len() > 50, "the Istio corpus is beside the checkout");
    for f in files {
        let mut loaded = loader::Loaded::default();
        loader::load_text(&f, &std::fs::read_to_string(&f).unwrap(), &mut loaded);
        let checked = check(loaded, &[]);
        if checked.has_errors() {
            continue; // refused by validate: never compiled
        }
        // Compiled for every instance role the corpus uses.
        for labels in [
            vec![("istio".to_string(), "ingressgateway".to_string())],
            vec![("istio".to_string(), "egressgateway".to_string())],
        ] {
            let s = compile(&checked.config, &labels);
            for n in &s.notes {
                assert!(
                    !n.contains("rule skipped") && !n.contains("match skipped"),
                    "{}: {n}",
                    f.display()
                );
            }
        }
    }
}

#[test]
fn egress_servers_route_by_the_registry_and_the_outbound_mode() {
    let egress = |mode: &str| {
        snapshot(&format!(
            "apiVersion: meshgate.io/v1alpha1\nkind: MeshConfig\nmetadata: {{name: m}}\nspec:\n  labels: {{istio: egressgateway}}\n  outboundTrafficPolicy: {{mode: {mode}}}\n---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: eg}}\nspec:\n  selector: {{istio: egressgateway}}\n  servers:\n  - port: {{number: 80, name: http, protocol: HTTP}}\n    hosts: [\"*\"]\n---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: cnn}}\nspec:\n  hosts: [edition.cnn.com]\n  ports: [{{number: 80, name: http, protocol: HTTP}}, {{number: 443, name: https, protocol: HTTPS}}]\n  resolution: STATIC\n  endpoints: [{{address: 127.0.0.1}}]\n"
        ))
    };
    let s = egress("REGISTRY_ONLY");
    assert!(s.listeners[0].egress);
    let table = http_of(&s.listeners[0]);
    let route = |host: &str| {
        let v = table.vhosts.iter().find(|v| v.domain == host).unwrap();
        v.routes[0].clone()
    };
    let cnn = route("edition.cnn.com");
    assert_eq!(cnn.route_name.as_deref(), Some("egress_allowed"));
    let RouteAction::Forward(w) = &cnn.action else {
        panic!("{cnn:?}")
    };
    assert_eq!(w.clusters[0].0, "outbound|80||edition.cnn.com");
    let rest = route("*");
    assert!(matches!(rest.action, RouteAction::BlackHole));
    assert_eq!(
        rest.route_name.as_deref(),
        Some("egress_refused_unregistered")
    );
    assert!(s.passthrough.is_none());
    // ALLOW_ANY: the rest goes to the PassthroughCluster.
    let s = egress("ALLOW_ANY");
    let table = http_of(&s.listeners[0]);
    let rest = &table
        .vhosts
        .iter()
        .find(|v| v.domain == "*")
        .unwrap()
        .routes[0];
    let RouteAction::Forward(w) = &rest.action else {
        panic!("{rest:?}")
    };
    assert_eq!(w.clusters[0].0, "PassthroughCluster");
    assert_eq!(w.resolved[0], s.passthrough);
    assert_eq!(rest.route_name.as_deref(), Some("egress_passthrough"));
}
