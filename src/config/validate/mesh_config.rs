//! MeshConfig (meshgate's own settings document) rules.

use super::rules;
use crate::config::model::MeshConfigSpec;
use crate::config::resource::Findings;

pub fn validate(mc: &MeshConfigSpec, f: &mut Findings) {
    if let Some(a) = &mc.admin_address {
        match a.parse::<std::net::SocketAddr>() {
            Err(_) => f.error(
                "spec.adminAddress",
                format!("{a:?} is not an address:port (e.g. 127.0.0.1:15000)"),
            ),
            // The admin listener answers /config_dump (routes, clusters, certificate
            // paths) to whoever reaches it.
            Ok(addr) if !addr.ip().is_loopback() => f.warn(
                "spec.adminAddress",
                format!(
                    "{a} is not a loopback address: anyone who reaches it can read /config_dump; keep it on 127.0.0.1 or ::1 and firewall it"
                ),
            ),
            Ok(_) => {}
        }
    }
    if let Some(a) = &mc.default_bind_address {
        if a.parse::<std::net::IpAddr>().is_err() {
            f.error(
                "spec.defaultBindAddress",
                format!("{a:?} is not an IP address (e.g. 0.0.0.0 or ::)"),
            );
        }
    }
    rules::labels("spec.labels", &mc.labels, f);
    for (i, a) in mc.host_aliases.iter().enumerate() {
        if a.ip.parse::<std::net::IpAddr>().is_err() {
            f.error(
                format!("spec.hostAliases[{i}].ip"),
                format!("{:?} is not an IP address", a.ip),
            );
        }
        if a.hostnames.is_empty() {
            f.error(format!("spec.hostAliases[{i}].hostnames"), "names no host");
        }
    }
    for (field, v) in [
        ("requestHeadersTimeout", &mc.request_headers_timeout),
        ("idleTimeout", &mc.idle_timeout),
        ("streamIdleTimeout", &mc.stream_idle_timeout),
        ("drainDuration", &mc.drain_duration),
        ("terminationDrainDuration", &mc.termination_drain_duration),
        ("connectTimeout", &mc.connect_timeout),
        ("dnsRefreshRate", &mc.dns_refresh_rate),
    ] {
        rules::duration_field(&format!("spec.{field}"), v, f);
    }
    for (field, v) in [
        ("maxConnections", mc.max_connections),
        ("maxConnectionsPerListener", mc.max_connections_per_listener),
        ("maxRequestHeadersKb", mc.max_request_headers_kb),
        ("maxRequestHeaders", mc.max_request_headers),
    ] {
        if v == Some(0) {
            f.error(format!("spec.{field}"), "must be at least 1");
        }
    }
    if mc.max_request_headers_kb.is_some_and(|k| k > 8192) {
        f.error(
            "spec.maxRequestHeadersKb",
            "must be at most 8192 (Envoy's limit)",
        );
    }
    if let Some(cd) = &mc.credentials_dir {
        if cd.is_empty() {
            f.error("spec.credentialsDir", "must not be empty");
        }
    }
}
