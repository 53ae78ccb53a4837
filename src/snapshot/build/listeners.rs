//! Stage 1: listeners. One per (bind address, port) of the servers this instance
//! serves; a port speaks one protocol (TLS > HTTP > TCP) and gets its route table, filter
//! chains or TCP routes from the later stages.

use super::*;
use crate::config::host;
use crate::config::model::*;
use crate::config::registry::selector_matches;
use crate::config::resource::Resource;
use crate::config::Config;
use crate::snapshot::route_table::RouteTable;
use crate::snapshot::sni_router::{ChainAction, FilterChain, SniRouter, Terminated};
use crate::snapshot::{Listener, Protocol, Snapshot};
use crate::tls::credentials::{credential_files, terminates};
use crate::tls::server_tls::{ServerTls, ALPN_HTTP};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// A Gateway as (namespace, name).
pub(super) type GatewayKey<'a> = (&'a str, &'a str);

/// A Gateway server this instance serves: (Gateway, index in `servers`, server).
pub(super) type GatewayServer<'a> = (&'a Resource, usize, &'a Server);

/// How a Gateway server handles its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ServerKind {
    Http,
    /// SIMPLE / MUTUAL / OPTIONAL_MUTUAL; `http` for HTTPS, else TLS (then TCP routes).
    Terminate {
        http: bool,
    },
    Passthrough,
    AutoPassthrough,
    Tcp,
}

impl ServerKind {
    fn is_tls(self) -> bool {
        matches!(
            self,
            ServerKind::Terminate { .. } | ServerKind::Passthrough | ServerKind::AutoPassthrough
        )
    }
}

/// Why a Gateway server is not served.
#[derive(Debug)]
pub(super) enum Unserved {
    /// ISTIO_MUTUAL (or another mode) needs the mesh's certificates.
    TlsMode(ServerTlsMode),
    /// A protocol meshgate does not listen for.
    Protocol(String),
}

impl std::fmt::Display for Unserved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unserved::TlsMode(m) => write!(
                f,
                "TLS mode {} needs Istio's mesh certificates and is not served",
                m.as_str()
            ),
            Unserved::Protocol(p) => write!(f, "protocol {p} is not served"),
        }
    }
}

pub(super) fn classify(s: &Server, protocol: &str) -> Result<ServerKind, Unserved> {
    match protocol.to_ascii_uppercase().as_str() {
        "HTTP" | "HTTP2" | "GRPC" | "GRPC-WEB" => Ok(ServerKind::Http),
        "TCP" | "MONGO" => Ok(ServerKind::Tcp),
        p @ ("HTTPS" | "TLS") => {
            let mode = s.tls.as_ref().map_or(
                ServerTlsMode::Passthrough,
                ServerTlsSettings::effective_mode,
            );
            match mode {
                m if terminates(m.into()) => Ok(ServerKind::Terminate { http: p == "HTTPS" }),
                ServerTlsMode::Passthrough => Ok(ServerKind::Passthrough),
                ServerTlsMode::AutoPassthrough => Ok(ServerKind::AutoPassthrough),
                m => Err(Unserved::TlsMode(m)),
            }
        }
        other => Err(Unserved::Protocol(other.to_string())),
    }
}

pub(super) fn server_label(g: &Resource, i: usize) -> String {
    format!("Gateway {}/{} servers[{i}]", g.namespace, g.name)
}

/// Builds the snapshot for an instance with `labels` from a validated config.
pub fn compile(c: &Config, labels: &[(String, String)]) -> Snapshot {
    // Each distinct regex of the config is compiled once, whatever the number of routes
    // holding it.
    crate::config::regex_cache::scope(|| compile_listeners(c, labels))
}

fn compile_listeners(c: &Config, labels: &[(String, String)]) -> Snapshot {
    let mut snap = Snapshot {
        downstream: crate::snapshot::settings::DownstreamSettings::from_mesh(c.mesh_config()),
        host_aliases: Arc::new(crate::snapshot::cluster::host_aliases(c)),
        ..Snapshot::default()
    };
    let default_bind: IpAddr = c
        .mesh_config()
        .and_then(|m| m.default_bind_address.as_deref())
        .and_then(|a| a.parse().ok())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));

    // Servers of the Gateways this instance serves, grouped by listening address.
    let mut by_addr: BTreeMap<SocketAddr, Vec<(GatewayServer, ServerKind)>> = BTreeMap::new();
    for g in c.of_kind(Kind::Gateway) {
        let Spec::Gateway(gs) = &g.spec else { continue };
        if !selector_matches(&gs.selector, labels) {
            continue;
        }
        for (i, s) in gs.servers.iter().enumerate() {
            let Some(port) = &s.port else { continue };
            let kind = match classify(s, &port.protocol) {
                Ok(k) => k,
                Err(why) => {
                    snap.notes.push(format!("{}: {why}", server_label(g, i)));
                    continue;
                }
            };
            let ip = s
                .bind
                .as_deref()
                .and_then(|b| b.parse().ok())
                .unwrap_or(default_bind);
            by_addr
                .entry(SocketAddr::new(ip, port.number as u16))
                .or_default()
                .push(((g, i, s), kind));
        }
    }

    for (address, servers) in by_addr {
        // One protocol per port: TLS servers take it, else HTTP, else TCP.
        let tls = servers.iter().any(|(_, k)| k.is_tls());
        let http = servers.iter().any(|(_, k)| *k == ServerKind::Http);
        let mut kept: Vec<(GatewayServer, ServerKind)> = Vec::new();
        for (gs, k) in servers {
            let fits = if tls {
                k.is_tls()
            } else if http {
                k == ServerKind::Http
            } else {
                true
            };
            if fits {
                kept.push((gs, k));
            } else {
                snap.notes.push(format!(
                    "{}: port {} is taken by servers of another protocol; this server is out",
                    server_label(gs.0, gs.1),
                    address.port()
                ));
            }
        }
        let egress_role = kept.iter().any(|((g, _, _), _)| egress::is_egress(g));
        let connect_proxy = http
            && !tls
            && kept
                .iter()
                .any(|((g, _, _), _)| egress::is_connect_proxy(g));
        if (egress_role || connect_proxy)
            && snap.egress.entries.is_empty()
            && snap.passthrough.is_none()
        {
            egress::registry(c, &mut snap);
        }
        let protocol = if tls {
            let mut chains: Vec<FilterChain> = kept
                .iter()
                .flat_map(|(gs, k)| filter_chains(c, *gs, *k, &mut snap))
                .collect();
            for (gs, k) in &kept {
                if *k == ServerKind::Passthrough && egress::is_egress(gs.0) {
                    chains.push(egress::chain(*gs));
                }
            }
            Protocol::Tls(SniRouter::new(chains))
        } else if http {
            let servers: Vec<GatewayServer> = kept.iter().map(|(gs, _)| *gs).collect();
            let mut vhosts = virtual_hosts(c, &servers, &mut snap);
            let extra = egress::virtual_hosts(&servers, &vhosts, &snap);
            vhosts.extend(extra);
            Protocol::Http(RouteTable::new(vhosts))
        } else {
            let servers: Vec<GatewayServer> = kept.iter().map(|(gs, _)| *gs).collect();
            Protocol::Tcp(tcp_routes(c, &servers, &mut snap))
        };
        snap.listeners.push(Listener {
            address,
            servers: kept
                .iter()
                .map(|((g, i, _), _)| server_label(g, *i))
                .collect(),
            protocol,
            egress: egress_role,
            connect_proxy,
        });
    }
    snap
}

/// The filter chains one TLS server contributes to its port.
pub(super) fn filter_chains(
    c: &Config,
    (g, i, s): GatewayServer,
    kind: ServerKind,
    snap: &mut Snapshot,
) -> Vec<FilterChain> {
    let label = server_label(g, i);
    let server_names: Vec<String> = s
        .hosts
        .iter()
        .map(|h| host::split_namespace_host(h).1.to_ascii_lowercase())
        .collect();
    match kind {
        ServerKind::Terminate { http } => {
            let Some(tls) = &s.tls else { return vec![] };
            let base = g.source.file.parent().unwrap_or(std::path::Path::new("."));
            let alpn: &'static [&'static [u8]] = if http { ALPN_HTTP } else { &[] };
            let spec = tls.into();
            let server_tls = credential_files(&spec, base, c.credentials_dir().as_deref())
                .and_then(|files| ServerTls::new(files, &spec, alpn));
            let server_tls = match server_tls {
                Ok(t) => Arc::new(t),
                Err(e) => {
                    snap.notes.push(format!("{label}: {e}; this server is out"));
                    return vec![];
                }
            };
            let inner = if http {
                Terminated::Http(RouteTable::new(virtual_hosts(c, &[(g, i, s)], snap)))
            } else {
                Terminated::Tcp(tcp_routes(c, &[(g, i, s)], snap))
            };
            vec![FilterChain {
                name: label.into(),
                server_names,
                action: ChainAction::Terminate {
                    tls: server_tls,
                    inner,
                },
            }]
        }
        ServerKind::AutoPassthrough => {
            ensure_all_clusters(c, snap);
            vec![FilterChain {
                name: label.into(),
                server_names,
                action: ChainAction::AutoPassthrough,
            }]
        }
        ServerKind::Passthrough => passthrough_chains(c, (g, i, s), snap),
        ServerKind::Http | ServerKind::Tcp => vec![],
    }
}
