//! ServiceEntry and WorkloadEntry rules (Istio `ValidateServiceEntry`,
//! `validateWorkloadEntry`, and the CRD's CEL rules with their messages).

use super::rules;
use crate::config::host;
use crate::config::model::*;
use crate::config::resource::Findings;

pub fn validate(namespace: &str, se: &ServiceEntrySpec, f: &mut Findings) {
    let resolution = se.effective_resolution();
    if let Some(ws) = &se.workload_selector {
        for (k, v) in ws.labels.iter() {
            let p = format!("spec.workloadSelector.labels.{k}");
            if k.contains('*') || v.contains('*') {
                f.error(&p, "wildcard is not supported in selector");
            } else {
                f.check(&p, host::validate_label_key(k));
                f.check(&p, host::validate_label_value(v));
            }
        }
        if ws.labels.is_empty() {
            f.warn("spec.workloadSelector", "service entry: workloadSelector has no labels, will be applied to all workloads in namespace");
        }
        if se.endpoints.is_some() {
            f.error(
                "spec",
                "only one of WorkloadSelector or Endpoints can be set",
            );
        }
    }
    if se.hosts.is_empty() {
        f.error(
            "spec.hosts",
            "Required value: service entry must have at least one host",
        );
    }
    for (i, h) in se.hosts.iter().enumerate() {
        let p = format!("spec.hosts[{i}]");
        if h == "*" {
            f.error(&p, "hostname cannot be wildcard");
            continue;
        }
        f.check(&p, host::validate_wildcard_domain(h));
        if resolution != Resolution::DynamicDns {
            if let Err(e) = host::validate_no_partial_wildcard(h) {
                f.warn(
                    &p,
                    format!("{e} (as Istio warns); meshgate will never match it"),
                );
            }
        }
    }
    let mut cidr = false;
    for (i, a) in se.addresses.iter().enumerate() {
        cidr |= a.contains('/');
        f.check(format!("spec.addresses[{i}]"), host::validate_ip_subnet(a));
    }
    if cidr && !matches!(resolution, Resolution::None | Resolution::Static) {
        f.error(
            "spec.addresses",
            "CIDR addresses are allowed only for NONE/STATIC resolution types",
        );
    }
    let mut names: Vec<&str> = Vec::new();
    let mut numbers: Vec<u32> = Vec::new();
    for (i, port) in se.ports.iter().enumerate() {
        let pp = format!("spec.ports[{i}]");
        if names.contains(&port.name.as_str()) {
            f.error(
                format!("{pp}.name"),
                format!(
                    "Duplicate value: service entry port name {:?} already defined",
                    port.name
                ),
            );
        }
        names.push(&port.name);
        if numbers.contains(&port.number) {
            f.error(
                format!("{pp}.number"),
                format!("port number cannot be duplicated: {}", port.number),
            );
        }
        numbers.push(port.number);
        if !(1..=65535).contains(&port.number) {
            f.error(
                format!("{pp}.number"),
                format!("port must be between 1-65535 (got {})", port.number),
            );
        }
        if let Some(tp) = port.target_port {
            if !(1..=65535).contains(&tp) {
                f.error(
                    format!("{pp}.targetPort"),
                    format!("port must be between 1-65535 (got {tp})"),
                );
            }
        }
        rules::port_name(&format!("{pp}.name"), &port.name, f);
        if let Some(proto) = &port.protocol {
            if !rules::is_known_protocol(proto) {
                f.error(
                    format!("{pp}.protocol"),
                    format!("unrecognized protocol {proto:?}"),
                );
            }
        }
    }
    let endpoints = se.endpoints.as_deref().unwrap_or(&[]);
    match resolution {
        Resolution::None => {
            if se.endpoints.is_some() {
                f.error("spec.endpoints", "NONE mode cannot set endpoints");
            }
            if se.workload_selector.is_some() {
                f.warn(
                    "spec.workloadSelector",
                    "workloadSelector should not be set when resolution mode is NONE",
                );
            }
        }
        Resolution::Static => {
            for (i, ep) in endpoints.iter().enumerate() {
                validate_workload(&format!("spec.endpoints[{i}]"), ep, Some(&names), false, f);
            }
        }
        Resolution::Dns | Resolution::DnsRoundRobin => {
            if endpoints.is_empty() {
                if let Some((i, e)) = se
                    .hosts
                    .iter()
                    .enumerate()
                    .find_map(|(i, h)| host::validate_fqdn(h).err().map(|e| (i, e)))
                {
                    f.error(
                        format!("spec.hosts[{i}]"),
                        format!("hosts must be FQDN if no endpoints are provided for resolution mode DNS: {e}"),
                    );
                }
            }
            if resolution == Resolution::DnsRoundRobin && endpoints.len() > 1 {
                f.error(
                    "spec.endpoints",
                    "DNS_ROUND_ROBIN mode cannot have multiple endpoints",
                );
            }
            for (i, ep) in endpoints.iter().enumerate() {
                validate_workload(&format!("spec.endpoints[{i}]"), ep, Some(&names), true, f);
            }
        }
        Resolution::DynamicDns => {
            for (i, h) in se.hosts.iter().enumerate() {
                if !h.starts_with('*') {
                    f.error(
                        format!("spec.hosts[{i}]"),
                        "host must be wildcarded for resolution mode DYNAMIC_DNS",
                    );
                }
            }
            if !se.addresses.is_empty() {
                f.error(
                    "spec.addresses",
                    "addresses cannot be set for resolution type DYNAMIC_DNS",
                );
            }
            if se.endpoints.is_some() {
                f.error(
                    "spec.endpoints",
                    "endpoints cannot be set for resolution type DYNAMIC_DNS",
                );
            }
        }
    }
    if resolution != Resolution::None && se.hosts.len() > 1 {
        let l4 = se.ports.iter().any(|p| {
            let proto = p.protocol.as_deref().unwrap_or("TCP").to_ascii_uppercase();
            !matches!(
                proto.as_str(),
                "HTTP" | "HTTP2" | "GRPC" | "GRPC-WEB" | "HTTP_PROXY" | "HTTPS" | "TLS"
            )
        });
        if l4 {
            f.error(
                "spec.ports",
                "multiple hosts provided with non-HTTP, non-TLS ports",
            );
        }
    }
    rules::export_to("spec.exportTo", namespace, &se.export_to, true, f);
}

/// Istio `validateWorkloadEntry` on a WorkloadEntry spec or a ServiceEntry endpoint.
/// `service_ports`: the ServiceEntry's port names an endpoint may map.
pub fn validate_workload(
    p: &str,
    we: &WorkloadEntrySpec,
    service_ports: Option<&[&str]>,
    fqdn_ok: bool,
    f: &mut Findings,
) {
    let addr = we.address.as_deref().unwrap_or("");
    if addr.is_empty() {
        if we.network.as_deref().unwrap_or("").is_empty() {
            f.error(format!("{p}.address"), "Address is required");
        } else {
            f.warn(format!("{p}.address"), "address is unset with network");
        }
    } else if let Some(path) = addr.strip_prefix("unix://") {
        if !path.starts_with('/') && !path.starts_with('@') {
            f.error(
                format!("{p}.address"),
                "UDS must be an absolute path or abstract socket",
            );
        } else if path.ends_with('/') {
            f.error(format!("{p}.address"), "UDS may not be a dir");
        }
        if !we.ports.is_empty() {
            f.error(format!("{p}.ports"), "UDS may not include ports");
        }
        f.warn(
            format!("{p}.address"),
            "not supported by meshgate: unix domain socket endpoints",
        );
    } else if !host::is_ip(addr) {
        if !fqdn_ok {
            f.error(
                format!("{p}.address"),
                format!("endpoint address {addr:?} is not a valid IP address"),
            );
        } else if host::validate_fqdn(addr).is_err() {
            f.error(
                format!("{p}.address"),
                format!("endpoint address {addr:?} is not a valid FQDN or an IP address"),
            );
        }
    }
    for (name, port) in we.ports.iter() {
        let pp = format!("{p}.ports.{name}");
        if let Some(sp) = service_ports {
            if !sp.contains(&name.as_str()) {
                f.error(
                    &pp,
                    format!("endpoint port {port} is not defined by the service entry"),
                );
            }
        }
        if name.len() >= 63 || !is_port_name(name) {
            f.error(&pp, "port name must be valid");
        }
        if !(1..=65535).contains(port) {
            f.error(&pp, format!("port must be between 1-65535 (got {port})"));
        }
    }
    rules::labels(&format!("{p}.labels"), &we.labels, f);
}

fn is_port_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}
