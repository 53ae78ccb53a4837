//! Gateway rules (Istio `ValidateGateway`, `validateServer`, `validateTLSOptions`).

use super::rules;
use crate::config::host;
use crate::config::model::{GatewaySpec, ServerTlsMode, ServerTlsSettings, TlsProtocol};
use crate::config::resource::Findings;

pub fn validate(name: &str, g: &GatewaySpec, f: &mut Findings) {
    if !host::is_dns1123_label(name) {
        f.error(
            "metadata.name",
            format!("invalid gateway name: {name:?} (a DNS label, no dots)"),
        );
    }
    if g.servers.is_empty() {
        f.error("spec.servers", "gateway must have at least one server");
    }
    let mut port_names: Vec<&str> = Vec::new();
    for (i, s) in g.servers.iter().enumerate() {
        let sp = format!("spec.servers[{i}]");
        if s.hosts.is_empty() {
            f.error(
                format!("{sp}.hosts"),
                "server config must contain at least one host",
            );
        }
        for (j, h) in s.hosts.iter().enumerate() {
            for e in host::validate_gateway_server_host(h) {
                f.error(format!("{sp}.hosts[{j}]"), e);
            }
        }
        let bind = s.bind.as_deref().unwrap_or("");
        let Some(port) = &s.port else {
            f.error(format!("{sp}.port"), "Required value: port is required");
            continue;
        };
        let proto_ok = rules::is_known_protocol(&port.protocol);
        if !proto_ok {
            f.error(
                format!("{sp}.port.protocol"),
                format!(
                    "invalid protocol {:?}, supported protocols are HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, MONGO, REDIS, MYSQL, TCP, TLS",
                    port.protocol
                ),
            );
        }
        if !(port.number == 0 && bind.starts_with("unix://")) {
            rules::port(&format!("{sp}.port.number"), port.number, f);
        }
        if port.name.is_empty() {
            f.error(format!("{sp}.port.name"), "port name must be set");
        } else if port_names.contains(&port.name.as_str()) {
            f.error(
                format!("{sp}.port.name"),
                format!(
                    "port names in servers must be unique: duplicate name {}",
                    port.name
                ),
            );
        } else {
            port_names.push(&port.name);
        }
        if let Some(addr) = bind.strip_prefix("unix://") {
            if !addr.starts_with('/') || addr.ends_with('/') {
                f.error(
                    format!("{sp}.bind"),
                    format!("{addr} is not an absolute path to a file"),
                );
            }
        } else if !bind.is_empty() && !host::is_ip(bind) {
            f.error(
                format!("{sp}.bind"),
                format!("bind {bind:?} is not a valid IP address"),
            );
        }
        let proto = port.protocol.to_ascii_uppercase();
        let is_tls_proto = proto == "HTTPS" || proto == "TLS";
        let is_http = matches!(proto.as_str(), "HTTP" | "HTTP2" | "GRPC" | "GRPC-WEB");
        if let Some(tls) = &s.tls {
            tls_options(&format!("{sp}.tls"), tls, f);
            if tls.https_redirect && !is_http && proto_ok {
                f.warn(
                    format!("{sp}.tls.httpsRedirect"),
                    "tls.httpsRedirect should only be used with http servers",
                );
            }
        }
        if !proto_ok {
            continue;
        }
        match &s.tls {
            None if is_tls_proto => f.error(
                format!("{sp}.tls"),
                "server must have TLS settings for HTTPS/TLS protocols",
            ),
            Some(tls) if !is_tls_proto => {
                if is_http {
                    let passthrough = tls.effective_mode() == ServerTlsMode::Passthrough;
                    if !passthrough
                        || tls.ca_certificates.is_some()
                        || tls.private_key.is_some()
                        || tls.server_certificate.is_some()
                    {
                        f.error(
                            format!("{sp}.tls"),
                            "server cannot have TLS settings for plain text HTTP ports (only httpsRedirect)",
                        );
                    }
                } else {
                    f.error(
                        format!("{sp}.tls"),
                        "server cannot have TLS settings for non HTTPS/TLS ports",
                    );
                }
            }
            _ => {}
        }
    }
}

fn set(o: &Option<String>) -> bool {
    o.as_deref().is_some_and(|s| !s.is_empty())
}

/// Istio `validateTLSOptions`.
fn tls_options(p: &str, tls: &ServerTlsSettings, f: &mut Findings) {
    let mode = tls.effective_mode();
    if matches!(
        tls.min_protocol_version,
        Some(TlsProtocol::V1_0 | TlsProtocol::V1_1)
    ) {
        f.warn(
            format!("{p}.minProtocolVersion"),
            "not supported by meshgate: TLS versions below 1.2 (rustls implements 1.2 and 1.3 only)",
        );
    }
    if matches!(
        tls.max_protocol_version,
        Some(TlsProtocol::V1_0 | TlsProtocol::V1_1)
    ) {
        f.error(
            format!("{p}.maxProtocolVersion"),
            "TLS versions below 1.2 cannot be served (rustls implements 1.2 and 1.3 only)",
        );
    }
    if let (Some(min), Some(max)) = (tls.min_protocol_version, tls.max_protocol_version) {
        if min != TlsProtocol::Auto && max != TlsProtocol::Auto && min > max {
            f.error(
                format!("{p}.minProtocolVersion"),
                "minProtocolVersion is greater than maxProtocolVersion",
            );
        }
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, c) in tls.cipher_suites.iter().enumerate() {
        if seen.contains(&c.as_str()) {
            f.warn(
                format!("{p}.cipherSuites[{i}]"),
                format!("ignoring duplicate cipher suite {c}"),
            );
        }
        seen.push(c);
        for unknown in crate::tls::server_tls::unknown_cipher_suites(std::slice::from_ref(c)) {
            f.warn(
                format!("{p}.cipherSuites[{i}]"),
                format!("not supported by meshgate: rustls has no TLS 1.2 cipher suite {unknown}; it is ignored (ECDHE with AES-GCM or CHACHA20-POLY1305 only)"),
            );
        }
    }
    if mode == ServerTlsMode::IstioMutual {
        for (field, present) in [
            ("serverCertificate", set(&tls.server_certificate)),
            ("privateKey", set(&tls.private_key)),
            ("caCertificates", set(&tls.ca_certificates)),
            ("credentialName", set(&tls.credential_name)),
            (
                "tlsCertificates",
                tls.tls_certificates.as_ref().is_some_and(|v| !v.is_empty()),
            ),
            (
                "credentialNames",
                tls.credential_names.as_ref().is_some_and(|v| !v.is_empty()),
            ),
        ] {
            if present {
                f.error(
                    format!("{p}.{field}"),
                    format!("ISTIO_MUTUAL TLS cannot have associated {field}"),
                );
            }
        }
        f.warn(
            format!("{p}.mode"),
            "not supported by meshgate: ISTIO_MUTUAL needs Istio's mesh certificates; use MUTUAL with your own CA",
        );
        return;
    }
    let certs_given = set(&tls.ca_crl)
        || set(&tls.server_certificate)
        || set(&tls.private_key)
        || set(&tls.ca_certificates)
        || tls.tls_certificates.as_ref().is_some_and(|v| !v.is_empty())
        || set(&tls.credential_name)
        || tls.credential_names.as_ref().is_some_and(|v| !v.is_empty());
    if matches!(
        mode,
        ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough
    ) && certs_given
    {
        f.warn(
            format!("{p}.mode"),
            format!(
                "{} mode does not use certificates, they will be ignored",
                mode.as_str()
            ),
        );
    }
    let sources = [
        set(&tls.server_certificate) && set(&tls.private_key),
        set(&tls.credential_name),
        tls.credential_names.as_ref().is_some_and(|v| !v.is_empty()),
        tls.tls_certificates.as_ref().is_some_and(|v| !v.is_empty()),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if sources > 1 {
        f.error(
            p,
            "only one of credentialName, credentialNames, serverCertificate/privateKey, tlsCertificates should be specified",
        );
    }
    let terminating = matches!(
        mode,
        ServerTlsMode::Simple | ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual
    );
    if terminating
        && (set(&tls.credential_name)
            || tls.credential_names.as_ref().is_some_and(|v| !v.is_empty()))
    {
        return; // the credential supplies certificate, key and CA
    }
    if terminating {
        let prefix = if mode == ServerTlsMode::Simple {
            "SIMPLE TLS"
        } else {
            "MUTUAL TLS"
        };
        if mode != ServerTlsMode::Simple && !set(&tls.ca_certificates) {
            f.error(
                format!("{p}.caCertificates"),
                format!("{prefix} requires a client CA bundle"),
            );
        }
        match &tls.tls_certificates {
            Some(list) if !list.is_empty() => {
                for (i, c) in list.iter().enumerate() {
                    if !set(&c.server_certificate) {
                        f.error(
                            format!("{p}.tlsCertificates[{i}].serverCertificate"),
                            format!("{prefix} requires a server certificate"),
                        );
                    }
                    if !set(&c.private_key) {
                        f.error(
                            format!("{p}.tlsCertificates[{i}].privateKey"),
                            format!("{prefix} requires a private key"),
                        );
                    }
                }
            }
            _ => {
                if !set(&tls.server_certificate) {
                    f.error(
                        format!("{p}.serverCertificate"),
                        format!("{prefix} requires a server certificate (or credentialName)"),
                    );
                }
                if !set(&tls.private_key) {
                    f.error(
                        format!("{p}.privateKey"),
                        format!("{prefix} requires a private key (or credentialName)"),
                    );
                }
            }
        }
    }
    if set(&tls.ca_crl) {
        if set(&tls.credential_name) {
            f.error(format!("{p}.caCrl"), "CRL is not supported with credentialName. CRL has to be specified in the credential");
        }
        if mode == ServerTlsMode::Simple {
            f.error(format!("{p}.caCrl"), "CRL is not supported with SIMPLE TLS");
        }
    }
}
