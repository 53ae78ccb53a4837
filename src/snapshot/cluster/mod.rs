//! Cluster specs: a service host, port and subset (Istio's `outbound|PORT|SUBSET|HOST`),
//! the endpoints that serve it and the DestinationRule policy it runs with, compiled from
//! ServiceEntries, WorkloadEntries and DestinationRules.

use crate::config::model::*;
use crate::config::resource::Resource;
use crate::config::Config;
use serde::Serialize;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

pub mod policy;

pub use policy::{
    HashKey, HashTable, HttpPool, Keepalive, LbPolicy, Limits, Outlier, Warmup, CONNECT_TIMEOUT,
    DEFAULT_TCP_IDLE_TIMEOUT,
};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Endpoint {
    pub address: SocketAddr,
    /// WorkloadEntry / ServiceEntry endpoint `weight` (unset or 0: 1); every balancer
    /// honours it.
    pub weight: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<(String, String)>,
}

impl Endpoint {
    /// An endpoint of weight 1 without labels.
    pub fn at(address: SocketAddr) -> Endpoint {
        Endpoint {
            address,
            weight: 1,
            labels: Vec::new(),
        }
    }
}

/// Istio's MeshConfig `dnsRefreshRate` default.
pub const DNS_REFRESH_RATE: Duration = Duration::from_secs(60);

/// A name a `resolution: DNS` cluster resolves again while it serves (Istio MeshConfig
/// `dnsRefreshRate`), with what each of its addresses becomes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct DnsTarget {
    pub name: String,
    pub port: u16,
    pub weight: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<(String, String)>,
}

/// How a cluster's endpoints come about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Discovery {
    /// IP addresses from the configuration.
    Static,
    /// `resolution: DNS`: every address of every name (Envoy's STRICT_DNS).
    StrictDns,
    /// `resolution: DNS_ROUND_ROBIN`: the first address of each name (Envoy's LOGICAL_DNS).
    LogicalDns,
    /// `DYNAMIC_DNS`, or NONE for a wildcard host without endpoints (and the egress
    /// PassthroughCluster): the name a connection asks for is resolved when it connects
    /// (Envoy's dynamic forward proxy).
    Dynamic,
}

/// A cluster's place in its snapshot: routes name clusters by id, so the request path
/// finds a cluster's runtime state (in `upstream`) by indexing, without a look-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct ClusterId(pub u32);

/// The effective DestinationRule policy of a cluster (see [`policy`]), typed once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ClusterPolicy {
    /// Requests go upstream over HTTP/2 (h2c): the port speaks GRPC/HTTP2, or
    /// `connectionPool.http.h2UpgradePolicy: UPGRADE`.
    pub http2: bool,
    /// `connectionPool.tcp.connectTimeout` (else MeshConfig `connectTimeout`, 10 s).
    #[serde(serialize_with = "policy::ser_duration")]
    pub connect_timeout: Duration,
    /// `connectionPool.tcp.idleTimeout`: a proxied TCP connection with no bytes either
    /// way for this long is closed.
    #[serde(serialize_with = "policy::ser_duration")]
    pub tcp_idle_timeout: Duration,
    /// `connectionPool.tcp.maxConnectionDuration`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(serialize_with = "policy::ser_opt_duration")]
    pub max_connection_duration: Option<Duration>,
    /// `connectionPool.tcp.tcpKeepalive`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_keepalive: Option<Keepalive>,
    /// `connectionPool.http` connection shaping.
    pub http_pool: HttpPool,
    /// `connectionPool` circuit breakers.
    pub limits: Limits,
    /// `loadBalancer`.
    pub load_balancer: LbPolicy,
    /// `loadBalancer.warmup`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup: Option<Warmup>,
    /// `outlierDetection`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<Outlier>,
    /// DestinationRule `trafficPolicy.tls` (SIMPLE or MUTUAL): TLS to the upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<UpstreamTls>,
}

impl Default for ClusterPolicy {
    fn default() -> ClusterPolicy {
        ClusterPolicy {
            http2: false,
            connect_timeout: CONNECT_TIMEOUT,
            tcp_idle_timeout: DEFAULT_TCP_IDLE_TIMEOUT,
            max_connection_duration: None,
            tcp_keepalive: None,
            http_pool: policy::http_pool(&policy::Effective::default()),
            limits: Limits::NONE,
            load_balancer: LbPolicy::LeastRequest,
            warmup: None,
            outlier_detection: None,
            tls: None,
        }
    }
}

impl ClusterPolicy {
    /// Whether a request goes upstream over HTTP/2: the cluster speaks it, or with
    /// `useClientProtocol`, the client does.
    pub fn upstream_h2(&self, client_h2: bool) -> bool {
        match self.http_pool.use_client_protocol {
            true => client_h2,
            false => self.http2,
        }
    }

    /// The policy of a cluster on service port `port`, subset `subset` (empty: none), of
    /// DestinationRule `dr`; `mesh_connect_timeout` is MeshConfig `connectTimeout`.
    pub fn of(
        dr: Option<&DestinationRuleSpec>,
        subset: &str,
        port: &ServicePort,
        mesh_connect_timeout: Duration,
    ) -> ClusterPolicy {
        let e = policy::Effective::of(dr, subset, port.number);
        ClusterPolicy {
            http2: policy::speaks_http2(&e, port),
            connect_timeout: policy::connect_timeout(&e, mesh_connect_timeout),
            tcp_idle_timeout: policy::tcp_idle_timeout(&e),
            max_connection_duration: policy::max_connection_duration(&e),
            tcp_keepalive: policy::keepalive(&e),
            http_pool: policy::http_pool(&e),
            limits: policy::limits(&e),
            load_balancer: policy::lb_policy(e.load_balancer),
            warmup: policy::warmup(e.load_balancer),
            outlier_detection: e.outlier_detection.map(policy::outlier),
            tls: None,
        }
    }
}

pub use crate::config::client_tls::UpstreamTls;

/// `trafficPolicy.tls` for `port` and `subset` (Istio's merge, the whole object), resolved
/// to files; `None` for no TLS.
pub fn upstream_tls(
    c: &Config,
    dr: Option<(&Resource, &DestinationRuleSpec)>,
    subset: &str,
    port: u32,
    host: &str,
) -> Option<UpstreamTls> {
    let (res, dr) = dr?;
    let tls = policy::Effective::of(Some(dr), subset, port).tls?;
    crate::config::client_tls::resolve(c, res, tls, host)
}

/// A compiled cluster: a service host, port and subset (Istio's
/// `outbound|PORT|SUBSET|HOST`), its endpoints and policy. Immutable; what changes while
/// serving (balancer position, connections, counters) lives in `upstream`.
#[derive(Debug, Serialize)]
pub struct ClusterSpec {
    pub name: String,
    /// The endpoints when the snapshot was built (DNS names resolved then; the runtime
    /// resolves them again, see `dns`).
    pub endpoints: Vec<Endpoint>,
    pub discovery: Discovery,
    /// The names a DNS cluster resolves again while it serves.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<DnsTarget>,
    /// The port a `Dynamic` cluster's resolved names are connected on: the ServiceEntry
    /// port's `targetPort`, else its number; 0 (the PassthroughCluster): the port the
    /// client asked for.
    pub target_port: u16,
    /// How often `dns` is resolved again (MeshConfig `dnsRefreshRate`, default 60 s).
    #[serde(serialize_with = "policy::ser_duration")]
    pub dns_refresh_rate: Duration,
    #[serde(flatten)]
    pub policy: ClusterPolicy,
    /// The service this cluster serves, as Istio's `destination_*` metric labels name it.
    pub service: ServiceRef,
}

/// The registered service behind a cluster: what telemetry labels its traffic with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct ServiceRef {
    /// The ServiceEntry host (`destination_service`).
    pub host: String,
    /// The ServiceEntry's namespace (`destination_service_namespace`).
    pub namespace: String,
    pub port: u32,
    /// The DestinationRule subset, empty for none.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subset: String,
    /// The subset's `version` label, else the subset's name (`destination_version`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The subset's `app` label (`destination_app`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
}

/// What makes two clusters the same across config generations: a cluster whose name,
/// endpoints and policy are unchanged keeps its runtime state over a reload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClusterIdentity {
    name: String,
    /// Static endpoints; a DNS cluster is the same cluster whatever its names resolved to.
    endpoints: Vec<Endpoint>,
    dns: Vec<DnsTarget>,
    dns_refresh_rate: Duration,
    policy: ClusterPolicy,
    service: ServiceRef,
}

/// Istio's cluster name.
pub fn cluster_name(port: u32, subset: &str, host: &str) -> String {
    format!("outbound|{port}|{subset}|{host}")
}

impl ClusterSpec {
    pub fn new(name: String, endpoints: Vec<Endpoint>) -> ClusterSpec {
        ClusterSpec {
            name,
            endpoints,
            discovery: Discovery::Static,
            dns: Vec::new(),
            target_port: 0,
            dns_refresh_rate: DNS_REFRESH_RATE,
            policy: ClusterPolicy::default(),
            service: ServiceRef::default(),
        }
    }

    pub fn identity(&self) -> ClusterIdentity {
        ClusterIdentity {
            name: self.name.clone(),
            endpoints: match self.discovery {
                Discovery::Static => self.endpoints.clone(),
                _ => Vec::new(),
            },
            dns: self.dns.clone(),
            dns_refresh_rate: self.dns_refresh_rate,
            policy: self.policy.clone(),
            service: self.service.clone(),
        }
    }
}

fn labels_match(selector: &OrderedMap<String>, labels: &OrderedMap<String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// MeshConfig `hostAliases`: a lower-case name → its addresses.
pub type HostAliases = std::collections::HashMap<String, Vec<std::net::IpAddr>>;

/// The config's `hostAliases`.
pub fn host_aliases(c: &Config) -> HostAliases {
    let mut out = HostAliases::new();
    for a in c.mesh_config().map(|m| &m.host_aliases[..]).unwrap_or(&[]) {
        let Ok(ip) = a.ip.parse() else { continue };
        for h in &a.hostnames {
            out.entry(h.to_ascii_lowercase()).or_default().push(ip);
        }
    }
    out
}

/// Resolves `name:port` now: an IP is itself, then `aliases`, then the system resolver
/// (getaddrinfo: /etc/hosts, then DNS).
pub fn resolve_with(
    aliases: &HostAliases,
    name: &str,
    port: u16,
) -> std::io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = name.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    if let Some(ips) = aliases.get(&name.to_ascii_lowercase()) {
        return Ok(ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect());
    }
    Ok((name, port).to_socket_addrs()?.collect())
}

/// [`resolve_with`] without aliases.
pub fn resolve(name: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    resolve_with(&HostAliases::new(), name, port)
}

impl DnsTarget {
    /// The endpoints `addrs` (this name's answer) make under `discovery`: all of them
    /// (STRICT_DNS), or the first (LOGICAL_DNS).
    pub fn endpoints(&self, addrs: &[SocketAddr], discovery: &Discovery) -> Vec<Endpoint> {
        let take = match discovery {
            Discovery::LogicalDns => 1,
            _ => addrs.len(),
        };
        addrs
            .iter()
            .take(take)
            .map(|a| Endpoint {
                address: *a,
                weight: self.weight,
                labels: self.labels.clone(),
            })
            .collect()
    }
}

/// The endpoints of ServiceEntry `se` (of resource `r`) for service port `port`, keeping
/// those whose labels carry every label of `subset_labels`; a DNS entry's names are
/// resolved now and returned to be resolved again while serving.
pub fn endpoints(
    c: &Config,
    r: &Resource,
    se: &ServiceEntrySpec,
    host: &str,
    port: &ServicePort,
    subset_labels: &OrderedMap<String>,
) -> (Vec<Endpoint>, Discovery, Vec<DnsTarget>) {
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
    let discovery = match se.effective_resolution() {
        Resolution::Static => Discovery::Static,
        Resolution::Dns => Discovery::StrictDns,
        Resolution::DnsRoundRobin => Discovery::LogicalDns,
        // DYNAMIC_DNS (wildcard hosts), and NONE for a wildcard host without endpoints (a
        // gateway has no original destination): the name asked for, resolved then.
        Resolution::DynamicDns => return (Vec::new(), Discovery::Dynamic, Vec::new()),
        Resolution::None if workloads.is_empty() && host.starts_with('*') => {
            return (Vec::new(), Discovery::Dynamic, Vec::new())
        }
        // NONE otherwise: no endpoints a gateway can reach by itself.
        Resolution::None => return (Vec::new(), Discovery::Static, Vec::new()),
    };
    let mut targets = Vec::new();
    if workloads.is_empty() && discovery != Discovery::Static {
        // DNS without endpoints: the host itself.
        targets.push(DnsTarget {
            name: host.to_string(),
            port: port.target_port.unwrap_or(port.number) as u16,
            weight: 1,
            labels: Vec::new(),
        });
    }
    for we in workloads {
        if !labels_match(subset_labels, &we.labels) {
            continue;
        }
        let Some(addr) = we.address.as_deref() else {
            continue;
        };
        targets.push(DnsTarget {
            name: addr.to_string(),
            port: target(we),
            weight: we.weight.filter(|w| *w > 0).unwrap_or(1),
            labels: we
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        });
    }
    let aliases = host_aliases(c);
    let mut out = Vec::new();
    for t in &targets {
        match resolve_with(&aliases, &t.name, t.port) {
            Ok(addrs) => out.extend(t.endpoints(&addrs, &discovery)),
            Err(e) => log::warn!("cannot resolve endpoint {}: {e}; it is left out", t.name),
        }
    }
    // Names are resolved again while serving (IP addresses among them resolve to
    // themselves); an entry of IP addresses only is static.
    if targets
        .iter()
        .all(|t| t.name.parse::<std::net::IpAddr>().is_ok())
    {
        return (out, Discovery::Static, Vec::new());
    }
    (out, discovery, targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_are_resolved_at_load() {
        let addrs = resolve("localhost", 8080).unwrap();
        assert!(
            addrs
                .iter()
                .any(|a| a.ip().is_loopback() && a.port() == 8080),
            "{addrs:?}"
        );
        assert_eq!(
            resolve("10.1.2.3", 80).unwrap(),
            vec![SocketAddr::from(([10, 1, 2, 3], 80))]
        );
        assert!(resolve("no-such-host.invalid", 80).is_err());
    }
}
