//! The downstream side's settings from MeshConfig, typed once when the config is
//! compiled: timeouts against slow or idle clients, connection and header limits, path
//! normalization and what the gateway trusts of forwarded headers. Defaults are Envoy's
//! for an edge proxy as Istio's gateway runs it.

use crate::config::duration;
use crate::config::model::{
    ForwardClientCertDetails, HeadersWithUnderscoresAction, MeshConfigSpec, PathNormalizationMode,
};
use std::time::Duration;

/// Envoy's default for request headers to arrive (`request_headers_timeout` as Envoy's
/// edge-proxy guidance sets it).
pub const REQUEST_HEADERS_TIMEOUT: Duration = Duration::from_secs(10);
/// Envoy's default downstream idle timeout.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Envoy's default `stream_idle_timeout`.
pub const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Istio's default `drainDuration`.
pub const DRAIN_DURATION: Duration = Duration::from_secs(5);
/// Istio's default `terminationDrainDuration`.
pub const TERMINATION_DRAIN_DURATION: Duration = Duration::from_secs(30);
/// Envoy's `max_request_headers_kb` default.
pub const MAX_REQUEST_HEADERS_KB: u32 = 60;
/// Envoy's `max_headers_count` default.
pub const MAX_REQUEST_HEADERS: u32 = 100;

#[derive(Debug, Clone, PartialEq)]
pub struct DownstreamSettings {
    pub request_headers_timeout: Duration,
    pub idle_timeout: Duration,
    pub stream_idle_timeout: Duration,
    /// After SIGTERM: `/ready` 503 while still accepting, then stop accepting.
    pub drain_duration: Duration,
    /// After SIGTERM: the longest wait for open connections before exiting.
    pub termination_drain_duration: Duration,
    /// `None`: derived from the file-descriptor limit when the server starts.
    pub max_connections: Option<u32>,
    pub max_connections_per_listener: Option<u32>,
    pub max_request_headers_bytes: usize,
    pub max_request_headers: usize,
    pub path_normalization: PathNormalizationMode,
    pub num_trusted_proxies: u32,
    pub forward_client_cert: ForwardClientCertDetails,
    pub headers_with_underscores: HeadersWithUnderscoresAction,
}

impl Default for DownstreamSettings {
    fn default() -> DownstreamSettings {
        DownstreamSettings {
            request_headers_timeout: REQUEST_HEADERS_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            stream_idle_timeout: STREAM_IDLE_TIMEOUT,
            drain_duration: DRAIN_DURATION,
            termination_drain_duration: TERMINATION_DRAIN_DURATION,
            max_connections: None,
            max_connections_per_listener: None,
            max_request_headers_bytes: MAX_REQUEST_HEADERS_KB as usize * 1024,
            max_request_headers: MAX_REQUEST_HEADERS as usize,
            path_normalization: PathNormalizationMode::Base,
            num_trusted_proxies: 0,
            forward_client_cert: ForwardClientCertDetails::SanitizeSet,
            headers_with_underscores: HeadersWithUnderscoresAction::Allow,
        }
    }
}

impl DownstreamSettings {
    /// The settings a MeshConfig asks for, defaults for what it leaves out.
    pub fn from_mesh(mc: Option<&MeshConfigSpec>) -> DownstreamSettings {
        let mut s = DownstreamSettings::default();
        let Some(mc) = mc else { return s };
        let d = |v: &Option<String>, default: Duration| {
            v.as_deref()
                .and_then(|v| duration::parse(v).ok())
                .filter(|d| !d.is_zero())
                .unwrap_or(default)
        };
        s.request_headers_timeout = d(&mc.request_headers_timeout, REQUEST_HEADERS_TIMEOUT);
        s.idle_timeout = d(&mc.idle_timeout, IDLE_TIMEOUT);
        s.stream_idle_timeout = d(&mc.stream_idle_timeout, STREAM_IDLE_TIMEOUT);
        s.drain_duration = d(&mc.drain_duration, DRAIN_DURATION);
        s.termination_drain_duration =
            d(&mc.termination_drain_duration, TERMINATION_DRAIN_DURATION);
        s.max_connections = mc.max_connections.filter(|n| *n > 0);
        s.max_connections_per_listener = mc.max_connections_per_listener.filter(|n| *n > 0);
        if let Some(kb) = mc.max_request_headers_kb.filter(|k| *k > 0) {
            s.max_request_headers_bytes = kb as usize * 1024;
        }
        if let Some(n) = mc.max_request_headers.filter(|n| *n > 0) {
            s.max_request_headers = n as usize;
        }
        match mc.path_normalization.as_ref().and_then(|p| p.normalization) {
            None | Some(PathNormalizationMode::Default) => {}
            Some(m) => s.path_normalization = m,
        }
        if let Some(t) = &mc.gateway_topology {
            s.num_trusted_proxies = t.num_trusted_proxies.unwrap_or(0);
            match t.forward_client_cert_details {
                None | Some(ForwardClientCertDetails::Undefined) => {}
                Some(f) => s.forward_client_cert = f,
            }
        }
        if let Some(a) = mc.headers_with_underscores_action {
            s.headers_with_underscores = a;
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(
            DownstreamSettings::from_mesh(None),
            DownstreamSettings::default()
        );
        let mc: MeshConfigSpec = serde_yaml::from_str(
            "{requestHeadersTimeout: 2s, idleTimeout: 30s, streamIdleTimeout: 1m, maxConnections: 100, maxRequestHeadersKb: 8, pathNormalization: {normalization: MERGE_SLASHES}, gatewayTopology: {numTrustedProxies: 2, forwardClientCertDetails: APPEND_FORWARD}, headersWithUnderscoresAction: REJECT_REQUEST}",
        )
        .unwrap();
        let s = DownstreamSettings::from_mesh(Some(&mc));
        assert_eq!(s.request_headers_timeout, Duration::from_secs(2));
        assert_eq!(s.idle_timeout, Duration::from_secs(30));
        assert_eq!(s.stream_idle_timeout, Duration::from_secs(60));
        assert_eq!(s.max_connections, Some(100));
        assert_eq!(s.max_request_headers_bytes, 8192);
        assert_eq!(s.max_request_headers, 100);
        assert_eq!(s.path_normalization, PathNormalizationMode::MergeSlashes);
        assert_eq!(s.num_trusted_proxies, 2);
        assert_eq!(
            s.forward_client_cert,
            ForwardClientCertDetails::AppendForward
        );
        assert_eq!(
            s.headers_with_underscores,
            HeadersWithUnderscoresAction::RejectRequest
        );
    }
}
