//! Config snippets for gateway tests: a MeshConfig binding to 127.0.0.1, Gateways,
//! ServiceEntries over test upstreams, VirtualServices, and a started gateway.
#![allow(dead_code)]

use super::net::{free_port, Gateway, Upstream};
use super::{scratch, write};
use std::net::SocketAddr;

pub const MESH: &str = "apiVersion: meshgate.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: m}\nspec: {defaultBindAddress: 127.0.0.1}\n";

/// Writes the config (with `{PORT}` replaced by a free port) and starts the gateway.
pub fn start(name: &str, yaml: &str) -> (Gateway, SocketAddr) {
    let dir = scratch(name);
    let port = free_port();
    write(&dir, "conf/mesh.yaml", MESH);
    write(
        &dir,
        "conf/all.yaml",
        &yaml.replace("{PORT}", &port.to_string()),
    );
    let gw = Gateway::start(&dir);
    (gw, format!("127.0.0.1:{port}").parse().unwrap())
}

pub fn gateway(name: &str, hosts: &str) -> String {
    format!("---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: {name}}}\nspec:\n  selector: {{istio: ingressgateway}}\n  servers:\n  - port: {{number: {{PORT}}, name: http, protocol: HTTP}}\n    hosts: {hosts}\n")
}

/// A STATIC ServiceEntry `host` with one endpoint per (upstream, labels).
pub fn service(host: &str, endpoints: &[(&Upstream, &str)]) -> String {
    let eps: String = endpoints
        .iter()
        .map(|(u, labels)| {
            format!(
                "  - {{address: 127.0.0.1, ports: {{http: {}}}, labels: {{{labels}}}}}\n",
                u.port()
            )
        })
        .collect();
    format!("---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {host}}}\nspec:\n  hosts: [{host}]\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints:\n{eps}")
}

pub fn vs(name: &str, hosts: &str, gateways: &str, http: &str) -> String {
    format!("---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}}}\nspec:\n  hosts: {hosts}\n  gateways: {gateways}\n  http:\n{http}")
}

pub fn to(host: &str) -> String {
    format!("    route: [{{destination: {{host: {host}}}}}]\n")
}
