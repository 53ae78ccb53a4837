//! Routes for connections rather than requests: VirtualService `tcp` routes, and the `tls`
//! routes of PASSTHROUGH servers once the SNI has picked them. Pure logic.

use super::route_table::WeightedClusters;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// An address block of `destinationSubnets` (`10.0.0.0/8`, `::1`, `192.168.1.1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    addr: IpAddr,
    prefix: u8,
}

impl Subnet {
    pub fn parse(s: &str) -> Option<Subnet> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(Subnet { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            _ => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// One `match` entry: every condition set must hold.
#[derive(Debug, Default, Clone)]
pub struct L4Match {
    /// `port`: the gateway port the connection arrived on.
    pub port: Option<u16>,
    /// `destinationSubnets`: the local address the client connected to.
    pub destination_subnets: Vec<Subnet>,
}

impl L4Match {
    pub fn matches(&self, local: SocketAddr) -> bool {
        self.port.is_none_or(|p| p == local.port())
            && (self.destination_subnets.is_empty()
                || self
                    .destination_subnets
                    .iter()
                    .any(|s| s.contains(local.ip())))
    }
}

#[derive(Debug)]
pub struct L4Route {
    /// `VirtualService ns/name tcp[i]` (or `tls[i]`), for the config dump and logs.
    pub name: Arc<str>,
    /// ORed; empty matches every connection.
    pub matches: Vec<L4Match>,
    pub clusters: WeightedClusters,
}

impl L4Route {
    pub fn matches(&self, local: SocketAddr) -> bool {
        self.matches.is_empty() || self.matches.iter().any(|m| m.matches(local))
    }
}

/// The first route (in VirtualService file order, then rule order) that takes a
/// connection to `local`.
pub fn select(routes: &[Arc<L4Route>], local: SocketAddr) -> Option<&Arc<L4Route>> {
    routes.iter().find(|r| r.matches(local))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets() {
        let s = Subnet::parse("10.1.0.0/16").unwrap();
        assert!(s.contains("10.1.200.3".parse().unwrap()));
        assert!(!s.contains("10.2.0.1".parse().unwrap()));
        assert!(
            s.contains("::ffff:10.1.0.9".parse().unwrap()),
            "v4-mapped v6"
        );
        assert!(Subnet::parse("127.0.0.1")
            .unwrap()
            .contains("127.0.0.1".parse().unwrap()));
        assert!(Subnet::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Subnet::parse("::/0")
            .unwrap()
            .contains("::1".parse().unwrap()));
        assert!(!Subnet::parse("fd00::/8")
            .unwrap()
            .contains("::1".parse().unwrap()));
        assert_eq!(Subnet::parse("10.0.0.0/33"), None);
        assert_eq!(Subnet::parse("nope"), None);
    }

    #[test]
    fn first_matching_route() {
        let route = |name: &str, port: Option<u16>, nets: &[&str]| {
            Arc::new(L4Route {
                name: name.into(),
                matches: vec![L4Match {
                    port,
                    destination_subnets: nets.iter().map(|n| Subnet::parse(n).unwrap()).collect(),
                }],
                clusters: WeightedClusters::new(vec![]),
            })
        };
        let routes = vec![
            route("p9000", Some(9000), &[]),
            route("lo2", None, &["127.0.0.2/32"]),
            route("any", None, &[]),
        ];
        let pick = |a: &str| select(&routes, a.parse().unwrap()).map(|r| &*r.name);
        assert_eq!(pick("127.0.0.1:9000"), Some("p9000"));
        assert_eq!(pick("127.0.0.2:31400"), Some("lo2"));
        assert_eq!(pick("127.0.0.1:31400"), Some("any"));
    }
}
