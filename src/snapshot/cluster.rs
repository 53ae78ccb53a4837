//! Cluster specs: a service host, port and subset (Istio's `outbound|PORT|SUBSET|HOST`),
//! the endpoints that serve it and the DestinationRule policy it runs with, compiled from
//! ServiceEntries, WorkloadEntries and DestinationRules.

use crate::config::model::*;
use crate::config::resource::Resource;
use crate::config::Config;
use serde::Serialize;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Endpoint {
    pub address: SocketAddr,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<(String, String)>,
}

/// Istio's default upstream connect timeout (`connectionPool.tcp.connectTimeout`).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Istio's default `connectionPool.tcp.idleTimeout`.
pub const DEFAULT_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// A cluster's place in its snapshot: routes name clusters by id, so the request path
/// finds a cluster's runtime state (in `upstream`) by indexing, without a look-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct ClusterId(pub u32);

/// The effective DestinationRule policy of a cluster, as far as meshgate acts on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ClusterPolicy {
    /// Requests go upstream over HTTP/2 (h2c): the port speaks GRPC/HTTP2, or
    /// `connectionPool.http.h2UpgradePolicy: UPGRADE`.
    pub http2: bool,
    /// `connectionPool.tcp.connectTimeout` (Istio's default 10 s).
    #[serde(skip)]
    pub connect_timeout: Duration,
    /// `connectionPool.tcp.idleTimeout`: a proxied TCP connection with no bytes either
    /// way for this long is closed.
    #[serde(skip)]
    pub tcp_idle_timeout: Duration,
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
            tls: None,
        }
    }
}

/// TLS origination (DestinationRule `tls`, mode SIMPLE or MUTUAL), with file paths
/// resolved: `caCertificates`, `clientCertificate`/`privateKey`, or a `credentialName`
/// under MeshConfig `credentialsDir` (`tls.crt`, `tls.key`, `ca.crt`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct UpstreamTls {
    /// The SNI sent and (unless `subject_alt_names` say otherwise) the name verified:
    /// `sni`, else the service host.
    pub sni: String,
    /// CA bundle to verify the upstream with; `None`: the system's roots.
    pub ca: Option<PathBuf>,
    /// MUTUAL: the client certificate chain and key.
    pub client: Option<(PathBuf, PathBuf)>,
    /// `subjectAltNames`: the upstream certificate must carry the first of these
    /// (meshgate checks one name, and sends it as the SNI: Pingora verifies the SNI).
    pub subject_alt_names: Vec<String>,
    /// `insecureSkipVerify`.
    pub insecure_skip_verify: bool,
}

/// `trafficPolicy.tls` for `port` and `subset`: the subset's over port-level over the
/// rule's top level (the whole object, as Istio takes it), resolved to files; `None` for
/// no TLS (absent, DISABLE; ISTIO_MUTUAL needs a mesh identity meshgate does not have).
pub fn upstream_tls(
    c: &Config,
    dr: Option<(&Resource, &DestinationRuleSpec)>,
    subset: &str,
    port: u32,
    host: &str,
) -> Option<UpstreamTls> {
    let (res, dr) = dr?;
    fn of_policy(tp: Option<&TrafficPolicy>, port: u32) -> Option<&ClientTlsSettings> {
        let tp = tp?;
        tp.port_level_settings
            .iter()
            .flatten()
            .find(|p| p.port.as_ref().is_some_and(|s| s.number == port))
            .and_then(|p| p.tls.as_ref())
            .or(tp.tls.as_ref())
    }
    let subset_policy = dr
        .subsets
        .iter()
        .find(|s| s.name == subset)
        .and_then(|s| s.traffic_policy.as_ref());
    let tls =
        of_policy(subset_policy, port).or_else(|| of_policy(dr.traffic_policy.as_ref(), port))?;
    let mutual = match tls.mode {
        Some(ClientTlsMode::Simple) => false,
        Some(ClientTlsMode::Mutual) => true,
        _ => return None,
    };
    let base = res
        .source
        .file
        .parent()
        .unwrap_or(std::path::Path::new("."));
    let path = |p: &str| {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            p
        } else {
            base.join(p)
        }
    };
    let credential = tls
        .credential_name
        .as_deref()
        .and_then(|n| c.credentials_dir().map(|d| d.join(n)));
    let ca = tls.ca_certificates.as_deref().map(path).or_else(|| {
        credential
            .as_ref()
            .map(|d| d.join("ca.crt"))
            .filter(|p| p.exists())
    });
    let client = if mutual {
        match (&tls.client_certificate, &tls.private_key, &credential) {
            (Some(cert), Some(key), _) => Some((path(cert), path(key))),
            (_, _, Some(d)) => Some((d.join("tls.crt"), d.join("tls.key"))),
            _ => None,
        }
    } else {
        None
    };
    Some(UpstreamTls {
        sni: tls.sni.clone().unwrap_or_else(|| host.to_string()),
        ca,
        client,
        subject_alt_names: tls.subject_alt_names.clone(),
        insecure_skip_verify: tls.insecure_skip_verify.unwrap_or(false),
    })
}

/// A compiled cluster: a service host, port and subset (Istio's
/// `outbound|PORT|SUBSET|HOST`), its endpoints and policy. Immutable; what changes while
/// serving (balancer position, connections, counters) lives in `upstream`.
#[derive(Debug, Serialize)]
pub struct ClusterSpec {
    pub name: String,
    pub endpoints: Vec<Endpoint>,
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
    endpoints: Vec<Endpoint>,
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
            policy: ClusterPolicy::default(),
            service: ServiceRef::default(),
        }
    }

    pub fn identity(&self) -> ClusterIdentity {
        ClusterIdentity {
            name: self.name.clone(),
            endpoints: self.endpoints.clone(),
            policy: self.policy.clone(),
            service: self.service.clone(),
        }
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

/// `connectionPool.tcp.connectTimeout` (Istio's default 10 s).
pub fn connect_timeout(dr: Option<&DestinationRuleSpec>, subset: &str, port: u32) -> Duration {
    pool_setting(dr, subset, port, |p| {
        p.tcp
            .as_ref()
            .and_then(|t| t.connect_timeout.as_deref())
            .and_then(|d| crate::config::duration::parse(d).ok())
            .filter(|d| !d.is_zero())
    })
    .unwrap_or(CONNECT_TIMEOUT)
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
            log::warn!("cannot resolve endpoint {address}: {e}; it is left out");
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
                        labels: Vec::new(),
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
                        labels: we
                            .labels
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
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
}
