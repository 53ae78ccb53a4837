//! The filter chains of a TLS port and the choice among them by SNI: terminate with a
//! server's certificate (then HTTP or TCP routes), pass through to a `tls` route's
//! destination, or AUTO_PASSTHROUGH by Istio's `outbound_.PORT_.SUBSET_.HOST` names.
//! Pure logic; the I/O is in `crate::listener`.

use super::host_index::HostIndex;
use super::l4_route::L4Route;
use super::route_table::RouteTable;
use crate::tls::server_tls::ServerTls;
use std::net::SocketAddr;
use std::sync::Arc;

/// What the gateway does with the decrypted bytes of a terminated connection.
#[derive(Debug)]
pub enum Terminated {
    /// HTTPS (and HTTP2/GRPC over TLS): the HTTP pipeline with this server's hosts.
    Http(RouteTable),
    /// TLS SIMPLE/MUTUAL: VirtualService `tcp` routes.
    Tcp(Vec<Arc<L4Route>>),
}

#[derive(Debug)]
pub enum ChainAction {
    Terminate {
        tls: Arc<ServerTls>,
        inner: Terminated,
    },
    /// PASSTHROUGH: one `tls` route match, spliced to its destination undecrypted.
    Passthrough(Arc<L4Route>),
    /// AUTO_PASSTHROUGH: the SNI names the cluster.
    AutoPassthrough,
    /// Egress PASSTHROUGH server: an SNI within its hosts that no `tls` route takes goes
    /// by the ServiceEntry registry and the outbound mode.
    Egress,
}

#[derive(Debug)]
pub struct FilterChain {
    /// `Gateway ns/name servers[i]`, or the `tls` route a passthrough chain carries.
    pub name: Arc<str>,
    /// SNI patterns this chain answers (`*` for any).
    pub server_names: Vec<String>,
    pub action: ChainAction,
}

/// Where a connection goes, decided from its ClientHello.
#[derive(Debug)]
pub enum SniTarget<'a> {
    Terminate(&'a FilterChain),
    Passthrough(&'a Arc<L4Route>),
    /// AUTO_PASSTHROUGH to this cluster name.
    Auto(String),
    /// The egress registry decides (the SNI is within an egress server's hosts).
    Egress,
}

#[derive(Debug, Default)]
pub struct SniRouter {
    pub chains: Vec<FilterChain>,
    index: HostIndex,
    /// The port's first terminating server: the certificate for clients without SNI or
    /// with one no server names.
    default_chain: Option<usize>,
}

/// `outbound_.PORT_.SUBSET_.HOST` → (port, subset, host).
pub fn parse_auto_sni(sni: &str) -> Option<(u32, &str, &str)> {
    let rest = sni.strip_prefix("outbound_.")?;
    let (port, rest) = rest.split_once("_.")?;
    let (subset, host) = rest.split_once("_.")?;
    let port = port.parse().ok()?;
    (!host.is_empty()).then_some((port, subset, host))
}

impl SniRouter {
    pub fn new(chains: Vec<FilterChain>) -> SniRouter {
        let mut index = HostIndex::default();
        for (i, c) in chains.iter().enumerate() {
            for n in &c.server_names {
                index.insert(n, i);
            }
        }
        let default_chain = chains
            .iter()
            .position(|c| matches!(c.action, ChainAction::Terminate { .. }));
        SniRouter {
            chains,
            index,
            default_chain,
        }
    }

    /// The target for a ClientHello with `sni` (lower-case) arriving at `local`: the most
    /// specific chain whose names match (exact, longest wildcard, `*`); a passthrough
    /// chain only when its route's `port`/`destinationSubnets` also match. Without a
    /// match, the port's first terminating server; `None` closes the connection.
    pub fn route(&self, sni: Option<&str>, local: SocketAddr) -> Option<SniTarget<'_>> {
        if let Some(sni) = sni {
            if let Some((port, subset, host)) = parse_auto_sni(sni) {
                let auto = self
                    .index
                    .candidates(host)
                    .any(|i| matches!(self.chains[i].action, ChainAction::AutoPassthrough));
                if auto {
                    return Some(SniTarget::Auto(super::cluster::cluster_name(
                        port, subset, host,
                    )));
                }
            }
            for i in self.index.candidates(sni) {
                let chain = &self.chains[i];
                match &chain.action {
                    ChainAction::Terminate { .. } => return Some(SniTarget::Terminate(chain)),
                    ChainAction::Passthrough(r) if r.matches(local) => {
                        return Some(SniTarget::Passthrough(r))
                    }
                    _ => {}
                }
            }
            let egress = self
                .index
                .candidates(sni)
                .any(|i| matches!(self.chains[i].action, ChainAction::Egress));
            if egress {
                return Some(SniTarget::Egress);
            }
        }
        self.default_chain
            .map(|i| SniTarget::Terminate(&self.chains[i]))
    }

    /// A terminating chain by name (the HTTP pipeline finds its routes this way, so a
    /// reload's new routes apply to open connections).
    pub fn chain(&self, name: &str) -> Option<&FilterChain> {
        self.chains.iter().find(|c| &*c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::l4_route::{L4Match, Subnet};
    use crate::snapshot::route_table::WeightedClusters;

    fn passthrough(name: &str, names: &[&str], subnet: Option<&str>) -> FilterChain {
        FilterChain {
            name: name.into(),
            server_names: names.iter().map(|s| s.to_string()).collect(),
            action: ChainAction::Passthrough(Arc::new(L4Route {
                name: name.into(),
                matches: vec![L4Match {
                    port: None,
                    destination_subnets: subnet.iter().filter_map(|s| Subnet::parse(s)).collect(),
                }],
                clusters: WeightedClusters::new(vec![]),
            })),
        }
    }

    fn auto(names: &[&str]) -> FilterChain {
        FilterChain {
            name: "auto".into(),
            server_names: names.iter().map(|s| s.to_string()).collect(),
            action: ChainAction::AutoPassthrough,
        }
    }

    fn name(t: Option<SniTarget>) -> String {
        match t {
            None => "-".into(),
            Some(SniTarget::Terminate(c)) => c.name.to_string(),
            Some(SniTarget::Passthrough(r)) => r.name.to_string(),
            Some(SniTarget::Auto(c)) => c,
            Some(SniTarget::Egress) => "egress".into(),
        }
    }

    #[test]
    fn passthrough_by_sni_specificity_and_subnet() {
        let r = SniRouter::new(vec![
            passthrough("wild", &["*.example.com"], None),
            passthrough("lo2", &["a.example.com"], Some("127.0.0.2")),
            passthrough("exact", &["a.example.com"], None),
        ]);
        let at = |sni: Option<&str>, local: &str| name(r.route(sni, local.parse().unwrap()));
        assert_eq!(at(Some("a.example.com"), "127.0.0.1:443"), "exact");
        assert_eq!(at(Some("a.example.com"), "127.0.0.2:443"), "lo2");
        assert_eq!(at(Some("b.example.com"), "127.0.0.1:443"), "wild");
        assert_eq!(
            at(Some("example.org"), "127.0.0.1:443"),
            "-",
            "unknown SNI closes"
        );
        assert_eq!(at(None, "127.0.0.1:443"), "-", "no SNI closes");
    }

    #[test]
    fn auto_passthrough_names() {
        assert_eq!(
            parse_auto_sni("outbound_.9080_.v1_.reviews.default.svc.cluster.local"),
            Some((9080, "v1", "reviews.default.svc.cluster.local"))
        );
        assert_eq!(
            parse_auto_sni("outbound_.80_._.a.com"),
            Some((80, "", "a.com"))
        );
        assert_eq!(parse_auto_sni("outbound_.x_._.a.com"), None);
        assert_eq!(parse_auto_sni("a.com"), None);
        let r = SniRouter::new(vec![auto(&["*.local"])]);
        let at = |sni: &str| name(r.route(Some(sni), "127.0.0.1:15443".parse().unwrap()));
        assert_eq!(
            at("outbound_.9080_.v1_.reviews.default.svc.cluster.local"),
            "outbound|9080|v1|reviews.default.svc.cluster.local"
        );
        assert_eq!(at("outbound_.9080_.v1_.reviews.example.com"), "-");
        assert_eq!(at("reviews.default.svc.cluster.local"), "-");
    }
}
