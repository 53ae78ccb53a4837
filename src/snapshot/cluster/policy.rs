//! A cluster's effective DestinationRule `trafficPolicy`, compiled once: Istio's merge
//! (`MergeTrafficPolicy`) picks, for each of `loadBalancer`, `connectionPool`,
//! `outlierDetection` and `tls`, the subset's over the rule's top level; a
//! `portLevelSettings` entry for the cluster's port replaces all four of the policy it
//! sits in (port-level policies do not inherit). Durations are typed here, never re-parsed
//! per request.

use crate::config::duration;
use crate::config::model::*;
use serde::{Serialize, Serializer};
use std::time::Duration;

/// Istio's default upstream connect timeout (`connectionPool.tcp.connectTimeout`,
/// MeshConfig `connectTimeout`).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Istio's default `connectionPool.tcp.idleTimeout`.
pub const DEFAULT_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// Istio's default `connectionPool.http.idleTimeout` (upstream connections idle in the pool).
pub const DEFAULT_HTTP_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// Istio leaves every circuit-breaker threshold at 2^32-1 unless set: no limit.
pub const UNLIMITED: u32 = u32::MAX;

/// The four merged parts of a `trafficPolicy` that apply to one cluster.
#[derive(Debug, Default, Clone, Copy)]
pub struct Effective<'a> {
    pub load_balancer: Option<&'a LoadBalancerSettings>,
    pub connection_pool: Option<&'a ConnectionPoolSettings>,
    pub outlier_detection: Option<&'a OutlierDetection>,
    pub tls: Option<&'a ClientTlsSettings>,
}

impl<'a> Effective<'a> {
    /// Istio's merge for `port` and `subset` (empty: none) of rule `dr`.
    pub fn of(dr: Option<&'a DestinationRuleSpec>, subset: &str, port: u32) -> Effective<'a> {
        let Some(dr) = dr else {
            return Effective::default();
        };
        let mut e = Effective::default();
        if let Some(tp) = &dr.traffic_policy {
            e.apply(tp, port);
        }
        let subset_policy = dr
            .subsets
            .iter()
            .find(|s| !subset.is_empty() && s.name == subset)
            .and_then(|s| s.traffic_policy.as_ref());
        if let Some(tp) = subset_policy {
            e.apply(tp, port);
        }
        e
    }

    /// `tp`'s fields over `self`; then its port-level entry for `port`, whole.
    fn apply(&mut self, tp: &'a TrafficPolicy, port: u32) {
        if tp.load_balancer.is_some() {
            self.load_balancer = tp.load_balancer.as_ref();
        }
        if tp.connection_pool.is_some() {
            self.connection_pool = tp.connection_pool.as_ref();
        }
        if tp.outlier_detection.is_some() {
            self.outlier_detection = tp.outlier_detection.as_ref();
        }
        if tp.tls.is_some() {
            self.tls = tp.tls.as_ref();
        }
        let port_level = tp
            .port_level_settings
            .iter()
            .flatten()
            .find(|p| p.port.as_ref().is_some_and(|s| s.number == port));
        if let Some(p) = port_level {
            self.load_balancer = p.load_balancer.as_ref();
            self.connection_pool = p.connection_pool.as_ref();
            self.outlier_detection = p.outlier_detection.as_ref();
            self.tls = p.tls.as_ref();
        }
    }

    fn tcp(&self) -> Option<&'a TcpSettings> {
        self.connection_pool.and_then(|p| p.tcp.as_ref())
    }

    fn http(&self) -> Option<&'a HttpSettings> {
        self.connection_pool.and_then(|p| p.http.as_ref())
    }
}

fn parse(d: Option<&String>) -> Option<Duration> {
    d.and_then(|d| duration::parse(d).ok())
}

/// A positive count, else `default` (Istio treats 0 and unset alike for these limits).
fn count(v: Option<i32>, default: u32) -> u32 {
    match v {
        Some(n) if n > 0 => n as u32,
        _ => default,
    }
}

pub(crate) fn ser_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{}s", d.as_secs_f64()))
}

pub(crate) fn ser_opt_duration<S: Serializer>(
    d: &Option<Duration>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser_duration(d, s),
        None => s.serialize_none(),
    }
}

/// `loadBalancer`: how an endpoint is chosen for each request or connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LbPolicy {
    /// Istio's default: the less loaded of two random endpoints (power of two choices).
    LeastRequest,
    RoundRobin,
    Random,
    /// To the address the client asked for: only meaningful for egress; meshgate
    /// balances as round robin over the registered endpoints meanwhile.
    Passthrough,
    /// `consistentHash`: a key from the request picks a point on a ring or table.
    ConsistentHash {
        key: HashKey,
        table: HashTable,
    },
}

/// What a `consistentHash` balancer hashes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HashKey {
    /// `httpHeaderName` (stored lower-case).
    Header(String),
    /// `httpCookie`: with a `ttl`, a request without the cookie gets one set on its
    /// response (Envoy generates the cookie from the chosen endpoint).
    Cookie {
        name: String,
        path: Option<String>,
        #[serde(serialize_with = "ser_opt_duration")]
        ttl: Option<Duration>,
        /// `attributes` added to a cookie the gateway sets (`SameSite=Strict`, `Secure`).
        attributes: Vec<(String, Option<String>)>,
    },
    /// `useSourceIp`: the client's address (after trusted-proxy processing, as Envoy).
    SourceIp,
    /// `httpQueryParameterName`.
    QueryParameter(String),
}

/// The hash table of a `consistentHash` balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HashTable {
    /// `ringHash.minimumRingSize` (Envoy's default 1024).
    RingHash { minimum_ring_size: u64 },
    /// `maglev.tableSize` (Envoy's default 65537).
    Maglev { table_size: u64 },
}

/// `loadBalancer.warmup` (or `warmupDurationSecs`): an endpoint added while the cluster
/// serves takes a growing share of traffic over `duration` (Envoy's slow start), for
/// ROUND_ROBIN and LEAST_REQUEST.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Warmup {
    #[serde(serialize_with = "ser_duration")]
    pub duration: Duration,
    /// `minimumPercent` (default 10) in thousandths of a percent.
    pub minimum_percent_milli: u32,
    /// `aggression` (default 1.0) in thousandths.
    pub aggression_milli: u32,
}

/// `connectionPool` limits: Envoy's circuit breakers of the cluster (per subset), shared
/// by all threads. `UNLIMITED` where not set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Limits {
    /// `tcp.maxConnections`: connections (HTTP/1: requests in flight, each holding one).
    pub max_connections: u32,
    /// `http.http1MaxPendingRequests`: requests waiting for a connection.
    pub max_pending_requests: u32,
    /// `http.http2MaxRequests`: requests in flight to the cluster.
    pub max_requests: u32,
    /// `http.maxRetries`: retries in flight to the cluster.
    pub max_retries: u32,
}

impl Limits {
    pub const NONE: Limits = Limits {
        max_connections: UNLIMITED,
        max_pending_requests: UNLIMITED,
        max_requests: UNLIMITED,
        max_retries: UNLIMITED,
    };

    pub fn is_unlimited(&self) -> bool {
        *self == Limits::NONE
    }
}

/// `tcp.tcpKeepalive`: TCP keepalive on upstream connections (unset parts: the kernel's).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Keepalive {
    #[serde(serialize_with = "ser_opt_duration")]
    pub time: Option<Duration>,
    #[serde(serialize_with = "ser_opt_duration")]
    pub interval: Option<Duration>,
    pub probes: Option<u32>,
}

/// `outlierDetection`: passive ejection of endpoints that keep failing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Outlier {
    /// `consecutive5xxErrors` (default 5; 0 turns it off).
    pub consecutive_5xx: u32,
    /// `consecutiveGatewayErrors` (502, 503, 504 and, unless split, connect failures;
    /// default 0: off).
    pub consecutive_gateway: u32,
    /// `consecutiveLocalOriginFailures` (default 5), counted only with
    /// `splitExternalLocalOriginErrors`.
    pub consecutive_local_origin: u32,
    pub split_external_local_origin_errors: bool,
    /// `interval` (default 10 s): how fast an endpoint's ejection multiplier decays.
    #[serde(serialize_with = "ser_duration")]
    pub interval: Duration,
    /// `baseEjectionTime` (default 30 s), times the endpoint's ejection count, at most
    /// Envoy's `max_ejection_time` (300 s, or the base time if longer).
    #[serde(serialize_with = "ser_duration")]
    pub base_ejection_time: Duration,
    /// `maxEjectionPercent` (default 10; one endpoint may always be ejected).
    pub max_ejection_percent: u32,
    /// `minHealthPercent` (default 0): below it, ejections are ignored (Envoy's panic).
    pub min_health_percent: u32,
}

/// Istio's defaults for what an `outlierDetection` block leaves out.
pub fn outlier(o: &OutlierDetection) -> Outlier {
    // The deprecated `consecutiveErrors` means gateway errors only (istio/api#617).
    let (five_xx, gateway) = match o.consecutive_errors {
        Some(n) if n > 0 && o.consecutive_5xx_errors.is_none() => {
            (0, o.consecutive_gateway_errors.unwrap_or(n as u32))
        }
        _ => (
            o.consecutive_5xx_errors.unwrap_or(5),
            o.consecutive_gateway_errors.unwrap_or(0),
        ),
    };
    Outlier {
        consecutive_5xx: five_xx,
        consecutive_gateway: gateway,
        consecutive_local_origin: o.consecutive_local_origin_failures.unwrap_or(5),
        split_external_local_origin_errors: o.split_external_local_origin_errors.unwrap_or(false),
        interval: parse(o.interval.as_ref())
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(10)),
        base_ejection_time: parse(o.base_ejection_time.as_ref())
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(30)),
        max_ejection_percent: o
            .max_ejection_percent
            .map_or(10, |p| p.clamp(0, 100) as u32),
        min_health_percent: o.min_health_percent.map_or(0, |p| p.clamp(0, 100) as u32),
    }
}

/// The balancer of `loadBalancer` (LEAST_REQUEST when unset or UNSPECIFIED; LEAST_CONN is
/// Istio's deprecated name for it).
pub fn lb_policy(lb: Option<&LoadBalancerSettings>) -> LbPolicy {
    let Some(lb) = lb else {
        return LbPolicy::LeastRequest;
    };
    if let Some(ch) = &lb.consistent_hash {
        let key = if let Some(h) = &ch.http_header_name {
            Some(HashKey::Header(h.to_ascii_lowercase()))
        } else if let Some(c) = &ch.http_cookie {
            Some(HashKey::Cookie {
                name: c.name.clone(),
                path: c.path.clone(),
                ttl: parse(c.ttl.as_ref()),
                attributes: c
                    .attributes
                    .iter()
                    .map(|a| (a.name.clone(), a.value.clone()))
                    .collect(),
            })
        } else if ch.use_source_ip == Some(true) {
            Some(HashKey::SourceIp)
        } else {
            ch.http_query_parameter_name
                .as_ref()
                .map(|q| HashKey::QueryParameter(q.clone()))
        };
        let table = match (&ch.maglev, &ch.ring_hash) {
            (Some(m), _) => HashTable::Maglev {
                table_size: if m.table_size == 0 {
                    65537
                } else {
                    m.table_size
                },
            },
            (None, r) => HashTable::RingHash {
                minimum_ring_size: r
                    .as_ref()
                    .map(|r| r.minimum_ring_size)
                    .or(ch.minimum_ring_size)
                    .filter(|n| *n > 0)
                    .unwrap_or(1024),
            },
        };
        if let Some(key) = key {
            return LbPolicy::ConsistentHash { key, table };
        }
    }
    match lb.simple {
        Some(SimpleLb::RoundRobin) => LbPolicy::RoundRobin,
        Some(SimpleLb::Random) => LbPolicy::Random,
        Some(SimpleLb::Passthrough) => LbPolicy::Passthrough,
        _ => LbPolicy::LeastRequest,
    }
}

/// `loadBalancer.warmup`, or the deprecated `warmupDurationSecs`.
pub fn warmup(lb: Option<&LoadBalancerSettings>) -> Option<Warmup> {
    let lb = lb?;
    let (duration, min, aggression) = match (&lb.warmup, &lb.warmup_duration_secs) {
        (Some(w), _) => (
            parse(w.duration.as_ref())?,
            w.minimum_percent.unwrap_or(10.0),
            w.aggression.unwrap_or(1.0),
        ),
        (None, Some(d)) => (parse(Some(d))?, 10.0, 1.0),
        (None, None) => return None,
    };
    (!duration.is_zero()).then(|| Warmup {
        duration,
        minimum_percent_milli: (min.clamp(0.0, 100.0) * 1000.0) as u32,
        aggression_milli: (aggression.max(0.001) * 1000.0) as u32,
    })
}

/// `connectionPool` limits.
pub fn limits(e: &Effective) -> Limits {
    let (tcp, http) = (e.tcp(), e.http());
    Limits {
        max_connections: count(tcp.and_then(|t| t.max_connections), UNLIMITED),
        max_pending_requests: count(http.and_then(|h| h.http1_max_pending_requests), UNLIMITED),
        max_requests: count(http.and_then(|h| h.http2_max_requests), UNLIMITED),
        max_retries: count(http.and_then(|h| h.max_retries), UNLIMITED),
    }
}

/// `connectionPool.tcp.connectTimeout`, else MeshConfig `connectTimeout`.
pub fn connect_timeout(e: &Effective, mesh_default: Duration) -> Duration {
    parse(e.tcp().and_then(|t| t.connect_timeout.as_ref()))
        .filter(|d| !d.is_zero())
        .unwrap_or(mesh_default)
}

/// `connectionPool.tcp.idleTimeout` (default 1 h).
pub fn tcp_idle_timeout(e: &Effective) -> Duration {
    parse(e.tcp().and_then(|t| t.idle_timeout.as_ref())).unwrap_or(DEFAULT_TCP_IDLE_TIMEOUT)
}

/// `connectionPool.tcp.maxConnectionDuration` (unset or 0: none).
pub fn max_connection_duration(e: &Effective) -> Option<Duration> {
    parse(e.tcp().and_then(|t| t.max_connection_duration.as_ref())).filter(|d| !d.is_zero())
}

/// `connectionPool.tcp.tcpKeepalive`.
pub fn keepalive(e: &Effective) -> Option<Keepalive> {
    let k = e.tcp()?.tcp_keepalive.as_ref()?;
    Some(Keepalive {
        time: parse(k.time.as_ref()),
        interval: parse(k.interval.as_ref()),
        probes: k.probes,
    })
}

/// The HTTP side of `connectionPool.http` that shapes upstream connections.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct HttpPool {
    /// `idleTimeout`: a pooled upstream connection idle this long is closed (default 1 h).
    #[serde(serialize_with = "ser_duration")]
    pub idle_timeout: Duration,
    /// `maxRequestsPerConnection` (unset or 0: no limit).
    pub max_requests_per_connection: Option<u32>,
    /// `maxConcurrentStreams` on an upstream HTTP/2 connection (default: meshgate's 128).
    pub max_concurrent_streams: Option<u32>,
    /// `useClientProtocol`: HTTP/2 upstream for HTTP/2 clients, HTTP/1.1 for HTTP/1.
    pub use_client_protocol: bool,
}

pub fn http_pool(e: &Effective) -> HttpPool {
    let h = e.http();
    HttpPool {
        idle_timeout: parse(h.and_then(|h| h.idle_timeout.as_ref()))
            .filter(|d| !d.is_zero())
            .unwrap_or(DEFAULT_HTTP_IDLE_TIMEOUT),
        max_requests_per_connection: h
            .and_then(|h| h.max_requests_per_connection)
            .filter(|n| *n > 0)
            .map(|n| n as u32),
        max_concurrent_streams: h
            .and_then(|h| h.max_concurrent_streams)
            .filter(|n| *n > 0)
            .map(|n| n as u32),
        use_client_protocol: h.and_then(|h| h.use_client_protocol).unwrap_or(false),
    }
}

/// Whether requests go upstream as HTTP/2 (cleartext, prior knowledge): the service port
/// speaks GRPC/HTTP2, or `connectionPool.http.h2UpgradePolicy: UPGRADE`.
pub fn speaks_http2(e: &Effective, port: &ServicePort) -> bool {
    let by_protocol = port.protocol.as_deref().is_some_and(|p| {
        matches!(
            p.to_ascii_uppercase().as_str(),
            "GRPC" | "HTTP2" | "GRPC-WEB"
        )
    });
    match e.http().and_then(|h| h.h2_upgrade_policy) {
        Some(H2UpgradePolicy::Upgrade) => true,
        Some(H2UpgradePolicy::DoNotUpgrade) => false,
        _ => by_protocol,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dr(yaml: &str) -> DestinationRuleSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn subset_over_top_level_and_port_level_replaces_all_four() {
        let d = dr(r#"
host: a
trafficPolicy:
  loadBalancer: {simple: RANDOM}
  connectionPool: {tcp: {maxConnections: 7}}
  portLevelSettings:
  - port: {number: 9080}
    loadBalancer: {simple: ROUND_ROBIN}
subsets:
- name: v1
  labels: {version: v1}
  trafficPolicy:
    connectionPool: {http: {http1MaxPendingRequests: 3}}
"#);
        let top = Effective::of(Some(&d), "", 80);
        assert_eq!(lb_policy(top.load_balancer), LbPolicy::Random);
        assert_eq!(limits(&top).max_connections, 7);
        // The port-level entry replaces the top level's four parts, even the unset ones.
        let port = Effective::of(Some(&d), "", 9080);
        assert_eq!(lb_policy(port.load_balancer), LbPolicy::RoundRobin);
        assert_eq!(limits(&port), Limits::NONE);
        // The subset's connectionPool replaces the top level's whole; its load balancer
        // is inherited.
        let v1 = Effective::of(Some(&d), "v1", 80);
        assert_eq!(lb_policy(v1.load_balancer), LbPolicy::Random);
        let l = limits(&v1);
        assert_eq!((l.max_connections, l.max_pending_requests), (UNLIMITED, 3));
        // An unknown subset name takes the top level.
        assert_eq!(
            limits(&Effective::of(Some(&d), "v9", 80)).max_connections,
            7
        );
    }

    #[test]
    fn balancer_defaults_and_consistent_hash_keys() {
        assert_eq!(lb_policy(None), LbPolicy::LeastRequest);
        let lb = |y: &str| -> LoadBalancerSettings { serde_yaml::from_str(y).unwrap() };
        assert_eq!(
            lb_policy(Some(&lb("simple: LEAST_CONN"))),
            LbPolicy::LeastRequest
        );
        assert_eq!(
            lb_policy(Some(&lb("consistentHash: {httpHeaderName: X-User}"))),
            LbPolicy::ConsistentHash {
                key: HashKey::Header("x-user".into()),
                table: HashTable::RingHash {
                    minimum_ring_size: 1024
                }
            }
        );
        assert_eq!(
            lb_policy(Some(&lb(
                "consistentHash: {httpCookie: {name: u, ttl: 10s}, maglev: {tableSize: 0}}"
            ))),
            LbPolicy::ConsistentHash {
                key: HashKey::Cookie {
                    name: "u".into(),
                    path: None,
                    ttl: Some(Duration::from_secs(10)),
                    attributes: Vec::new(),
                },
                table: HashTable::Maglev { table_size: 65537 }
            }
        );
        assert_eq!(
            lb_policy(Some(&lb("consistentHash: {useSourceIp: true}"))),
            LbPolicy::ConsistentHash {
                key: HashKey::SourceIp,
                table: HashTable::RingHash {
                    minimum_ring_size: 1024
                }
            }
        );
    }

    #[test]
    fn outlier_defaults_follow_istio() {
        let o = outlier(&OutlierDetection::default());
        assert_eq!(o.consecutive_5xx, 5);
        assert_eq!(o.consecutive_gateway, 0);
        assert_eq!(o.interval, Duration::from_secs(10));
        assert_eq!(o.base_ejection_time, Duration::from_secs(30));
        assert_eq!((o.max_ejection_percent, o.min_health_percent), (10, 0));
        let legacy = outlier(&OutlierDetection {
            consecutive_errors: Some(2),
            ..Default::default()
        });
        assert_eq!((legacy.consecutive_5xx, legacy.consecutive_gateway), (0, 2));
    }
}
