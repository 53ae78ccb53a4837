//! `meshgate.io/v1alpha1` `MeshConfig`: the appliance's own settings. Field names follow
//! Istio's MeshConfig where Istio has one; the rest are meshgate's.

use super::common::OrderedMap;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshConfigSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
    /// Istio `accessLogFile`: a path, `/dev/stdout`, or empty for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log_encoding: Option<AccessLogEncoding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log_format: Option<String>,
    /// Where `credentialName: X` is found: `X/tls.crt`, `X/tls.key`, `X/ca.crt`
    /// (or `X-cacert/ca.crt`). A relative path is relative to the file declaring it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_dir: Option<String>,
    /// Istio MeshConfig `connectTimeout`: the upstream connect timeout of clusters whose
    /// DestinationRule sets no `connectionPool.tcp.connectTimeout`; default 10 s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<String>,
    /// Istio MeshConfig `dnsRefreshRate`: how often the names of `resolution: DNS`
    /// ServiceEntries are resolved again, in the background; default 60 s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_refresh_rate: Option<String>,
    /// Names meshgate resolves itself before asking the system resolver, in Kubernetes'
    /// `hostAliases` shape: pins an upstream's address, and lets tests play external
    /// hosts on loopback.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_aliases: Vec<HostAlias>,
    /// This instance's labels, matched against `Gateway.spec.selector`.
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub labels: OrderedMap<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_address: Option<String>,
    /// Address Gateway servers without `bind` listen on (default 0.0.0.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_bind_address: Option<String>,
    /// Request headers must arrive within this long of their first byte (and of connect,
    /// for a connection's first request). Envoy's `request_headers_timeout`; default 10 s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_headers_timeout: Option<String>,
    /// A downstream connection with no request in flight for this long is closed (HTTP/2
    /// with GOAWAY). Envoy's `common_http_protocol_options.idle_timeout`; default 1 h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<String>,
    /// A request with no bytes either way for this long ends: 408 while the request is
    /// being read, 504 while the upstream is awaited. Envoy's `stream_idle_timeout`;
    /// default 5 min.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_idle_timeout: Option<String>,
    /// Istio ProxyConfig's `drainDuration`: after SIGTERM, `/ready` answers 503 and the
    /// listeners keep accepting this long (load balancers see the 503 first); default 5 s.
    pub drain_duration: Option<String>,
    /// Istio ProxyConfig's `terminationDrainDuration`: the longest a stop waits for
    /// in-flight requests and open connections, from SIGTERM; default 30 s.
    pub termination_drain_duration: Option<String>,
    /// Downstream connections over all listeners; more are closed on accept. Default:
    /// what the process's file-descriptor limit leaves room for (half of it, less a
    /// reserve, as each proxied connection may hold an upstream one too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Downstream connections per listener (Envoy's listener connection limit); default
    /// none beyond `maxConnections`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections_per_listener: Option<u32>,
    /// Envoy's `max_request_headers_kb` (default 60): larger request headers get 431.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_headers_kb: Option<u32>,
    /// Envoy's `max_headers_count` (default 100): more request headers get 431.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_headers: Option<u32>,
    /// Istio MeshConfig `pathNormalization`; default BASE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_normalization: Option<PathNormalization>,
    /// Istio ProxyConfig `gatewayTopology`: trusted proxies in front of the gateway and
    /// what happens to `x-forwarded-client-cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_topology: Option<GatewayTopology>,
    /// Envoy's `headers_with_underscores_action` (Istio gateways: ALLOW).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers_with_underscores_action: Option<HeadersWithUnderscoresAction>,
}

/// One `hostAliases` entry: `hostnames` resolve to `ip`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct HostAlias {
    #[serde(default)]
    pub ip: String,
    #[serde(default)]
    pub hostnames: Vec<String>,
}

/// Istio `MeshConfig.ProxyPathNormalization`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct PathNormalization {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalization: Option<PathNormalizationMode>,
}

/// Istio's path normalization levels: NONE; BASE (RFC 3986 dot segments, `\\` → `/`, as
/// Envoy's `normalize_path`); MERGE_SLASHES (and `//` → `/`); DECODE_AND_MERGE_SLASHES
/// (and `%2F`, `%5C` decoded first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PathNormalizationMode {
    Default,
    None,
    Base,
    MergeSlashes,
    DecodeAndMergeSlashes,
}

/// Istio `ProxyConfig.GatewayTopology`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayTopology {
    /// Proxies in front of the gateway whose `x-forwarded-for` entries are trusted: the
    /// client address is the entry this many hops from the right (default 0: the peer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_trusted_proxies: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_client_cert_details: Option<ForwardClientCertDetails>,
}

/// Envoy's `forward_client_cert_details` as Istio names it (gateway default SANITIZE_SET).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ForwardClientCertDetails {
    Undefined,
    Sanitize,
    ForwardOnly,
    AppendForward,
    SanitizeSet,
    AlwaysForwardOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HeadersWithUnderscoresAction {
    Allow,
    RejectRequest,
    DropHeader,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct OutboundTrafficPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<OutboundMode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutboundMode {
    AllowAny,
    RegistryOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccessLogEncoding {
    Text,
    Json,
}
