//! Upstream clusters: a service host, port and subset (Istio's
//! `outbound|PORT|SUBSET|HOST`) with the endpoints that serve it.

use crate::config::model::*;
use crate::config::resource::Resource;
use crate::config::Config;
use serde::Serialize;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[derive(Debug, Serialize)]
pub struct Endpoint {
    pub address: SocketAddr,
    #[serde(skip_serializing_if = "OrderedMap::is_empty")]
    pub labels: OrderedMap<String>,
}

/// Istio's default upstream connect timeout (`connectionPool.tcp.connectTimeout`).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Istio's default `connectionPool.tcp.idleTimeout`.
pub const DEFAULT_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

#[derive(Debug, Serialize)]
pub struct Cluster {
    pub name: String,
    pub endpoints: Vec<Endpoint>,
    /// DestinationRule `connectionPool.tcp.idleTimeout`: a proxied TCP connection with no
    /// bytes either way for this long is closed.
    #[serde(skip)]
    pub tcp_idle_timeout: Duration,
    /// Requests go upstream over HTTP/2 (h2c).
    pub http2: bool,
    #[serde(skip)]
    next: AtomicUsize,
}

/// Istio's cluster name.
pub fn cluster_name(port: u32, subset: &str, host: &str) -> String {
    format!("outbound|{port}|{subset}|{host}")
}

impl Cluster {
    pub fn new(name: String, endpoints: Vec<Endpoint>) -> Cluster {
        Cluster {
            name,
            endpoints,
            tcp_idle_timeout: DEFAULT_TCP_IDLE_TIMEOUT,
            http2: false,
            next: AtomicUsize::new(0),
        }
    }

    /// Round robin over the endpoints, skipping those already tried by this request when
    /// another one is left (Istio's retries go to other hosts).
    pub fn pick(&self, tried: &[SocketAddr]) -> Option<&Endpoint> {
        let n = self.endpoints.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| &self.endpoints[(start + i) % n])
            .find(|e| !tried.contains(&e.address))
            .or_else(|| Some(&self.endpoints[start % n]))
    }
}

/// A `connectionPool` setting for `port` and `subset` of a DestinationRule: the subset's
/// policy over the top-level one, port-level settings over either.
fn pool_setting<T>(
    dr: Option<&DestinationRuleSpec>,
    subset: &str,
    port: u32,
    get: impl Fn(&ConnectionPoolSettings) -> Option<T>,
) -> Option<T> {
    let dr = dr?;
    let subset_policy = dr
        .subsets
        .iter()
        .find(|s| s.name == subset)
        .and_then(|s| s.traffic_policy.as_ref());
    let from_policy = |tp: Option<&TrafficPolicy>| {
        let tp = tp?;
        let port_level = tp
            .port_level_settings
            .iter()
            .flatten()
            .find(|p| p.port.as_ref().is_some_and(|s| s.number == port))
            .and_then(|p| p.connection_pool.as_ref())
            .and_then(&get);
        port_level.or_else(|| tp.connection_pool.as_ref().and_then(&get))
    };
    from_policy(subset_policy).or_else(|| from_policy(dr.traffic_policy.as_ref()))
}

/// `connectionPool.tcp.idleTimeout` (default 1 h).
pub fn tcp_idle_timeout(dr: Option<&DestinationRuleSpec>, subset: &str, port: u32) -> Duration {
    pool_setting(dr, subset, port, |p| {
        p.tcp
            .as_ref()
            .and_then(|t| t.idle_timeout.as_deref())
            .and_then(|d| crate::config::duration::parse(d).ok())
    })
    .unwrap_or(DEFAULT_TCP_IDLE_TIMEOUT)
}

/// Whether requests go upstream as HTTP/2 (cleartext, prior knowledge): the service port
/// speaks GRPC/HTTP2, or `connectionPool.http.h2UpgradePolicy: UPGRADE`.
pub fn speaks_http2(dr: Option<&DestinationRuleSpec>, subset: &str, port: &ServicePort) -> bool {
    let by_protocol = port.protocol.as_deref().is_some_and(|p| {
        matches!(
            p.to_ascii_uppercase().as_str(),
            "GRPC" | "HTTP2" | "GRPC-WEB"
        )
    });
    let policy = pool_setting(dr, subset, port.number, |p| {
        p.http.as_ref().and_then(|h| h.h2_upgrade_policy)
    });
    match policy {
        Some(H2UpgradePolicy::Upgrade) => true,
        Some(H2UpgradePolicy::DoNotUpgrade) => false,
        _ => by_protocol,
    }
}

fn labels_match(selector: &OrderedMap<String>, labels: &OrderedMap<String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Resolves `address:port` (an IP, or a DNS name resolved now, at load time).
fn resolve(address: &str, port: u16) -> Vec<SocketAddr> {
    if let Ok(ip) = address.parse::<std::net::IpAddr>() {
        return vec![SocketAddr::new(ip, port)];
    }
    match (address, port).to_socket_addrs() {
        Ok(addrs) => addrs.collect(),
        Err(e) => {
            eprintln!("meshgate: cannot resolve endpoint {address}: {e}");
            Vec::new()
        }
    }
}

/// The endpoints of ServiceEntry `se` (of resource `r`) for service port `port`, keeping
/// those whose labels carry every label of `subset_labels`.
pub fn endpoints(
    c: &Config,
    r: &Resource,
    se: &ServiceEntrySpec,
    host: &str,
    port: &ServicePort,
    subset_labels: &OrderedMap<String>,
) -> Vec<Endpoint> {
    // The port an endpoint listens on: its own mapping by port name, else the
    // ServiceEntry's targetPort, else the service port.
    let target = |we: &WorkloadEntrySpec| -> u16 {
        we.ports
            .get(&port.name)
            .copied()
            .or(port.target_port)
            .unwrap_or(port.number) as u16
    };
    let mut workloads: Vec<&WorkloadEntrySpec> = Vec::new();
    if let Some(sel) = &se.workload_selector {
        for wr in c.of_kind(Kind::WorkloadEntry) {
            if let Spec::WorkloadEntry(we) = &wr.spec {
                if wr.namespace == r.namespace && labels_match(&sel.labels, &we.labels) {
                    workloads.push(we);
                }
            }
        }
    } else {
        workloads.extend(se.endpoints.iter().flatten());
    }
    let mut out = Vec::new();
    match se.effective_resolution() {
        Resolution::Static | Resolution::Dns | Resolution::DnsRoundRobin => {
            if workloads.is_empty() && se.effective_resolution() != Resolution::Static {
                // DNS without endpoints: the host itself.
                for a in resolve(host, port.number as u16) {
                    out.push(Endpoint {
                        address: a,
                        labels: OrderedMap::default(),
                    });
                }
            }
            for we in workloads {
                if !labels_match(subset_labels, &we.labels) {
                    continue;
                }
                let Some(addr) = we.address.as_deref() else {
                    continue;
                };
                for a in resolve(addr, target(we)) {
                    out.push(Endpoint {
                        address: a,
                        labels: we.labels.clone(),
                    });
                }
            }
        }
        // NONE / DYNAMIC_DNS: no endpoints a gateway can reach by itself.
        Resolution::None | Resolution::DynamicDns => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_are_resolved_at_load() {
        let addrs = resolve("localhost", 8080);
        assert!(
            addrs
                .iter()
                .any(|a| a.ip().is_loopback() && a.port() == 8080),
            "{addrs:?}"
        );
        assert_eq!(
            resolve("10.1.2.3", 80),
            vec![SocketAddr::from(([10, 1, 2, 3], 80))]
        );
        assert!(resolve("no-such-host.invalid", 80).is_empty());
    }

    #[test]
    fn round_robin_skips_tried_endpoints() {
        let ep = |p: u16| Endpoint {
            address: SocketAddr::from(([127, 0, 0, 1], p)),
            labels: OrderedMap::default(),
        };
        let c = Cluster::new("c".into(), vec![ep(1), ep(2), ep(3)]);
        let seq: Vec<u16> = (0..6)
            .map(|_| c.pick(&[]).unwrap().address.port())
            .collect();
        assert_eq!(seq, vec![1, 2, 3, 1, 2, 3]);
        let tried = [
            SocketAddr::from(([127, 0, 0, 1], 1)),
            SocketAddr::from(([127, 0, 0, 1], 2)),
        ];
        for _ in 0..5 {
            assert_eq!(c.pick(&tried).unwrap().address.port(), 3);
        }
        let all: Vec<SocketAddr> = (1..=3)
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
            .collect();
        assert!(
            c.pick(&all).is_some(),
            "with every endpoint tried, one is reused"
        );
        assert!(Cluster::new("e".into(), vec![]).pick(&[]).is_none());
    }
}
