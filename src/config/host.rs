//! Host names as Istio treats them: DNS-1123 syntax with a leading wildcard label, the
//! `namespace/host` form of Gateway servers, and wildcard-aware comparison. Pure logic,
//! shared by validation, analysis and (later) virtual-host selection.

use std::net::IpAddr;

/// Istio's DNS-1123 label: lower-case alphanumerics and `-`, at most 63 characters.
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Kubernetes object name: DNS-1123 subdomain (labels joined by dots, at most 253).
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// Istio's wildcard label: `*`, or `*`/`*-` followed by a DNS-1123 label (`*x`, `*-x`).
fn is_wildcard_dns1123_label(s: &str) -> bool {
    if s == "*" {
        return true;
    }
    let rest = s
        .strip_prefix("*-")
        .or_else(|| s.strip_prefix('*'))
        .unwrap_or(s);
    s.len() <= 63 && is_dns1123_label(rest) && !rest.starts_with('-')
}

fn check_preconditions(name: &str) -> Result<(), String> {
    if name.len() > 255 {
        return Err(format!("domain name {name:?} too long (max 255)"));
    }
    if name.is_empty() {
        return Err("empty domain name not allowed".into());
    }
    Ok(())
}

/// Istio's `ValidateDNS1123Labels`: every label valid, a trailing dot allowed, and a
/// top-level domain that is not all digits.
pub fn validate_dns1123_labels(domain: &str) -> Result<(), String> {
    let parts: Vec<&str> = domain.split('.').collect();
    let tld = parts[parts.len() - 1];
    if !tld.is_empty() && tld.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "domain name {domain:?} invalid (top level domain {tld:?} cannot be all-numeric)"
        ));
    }
    for (i, label) in parts.iter().enumerate() {
        if i == parts.len() - 1 && label.is_empty() {
            return Ok(());
        }
        if !is_dns1123_label(label) {
            return Err(format!(
                "domain name {domain:?} invalid (label {label:?} invalid)"
            ));
        }
    }
    Ok(())
}

/// Istio's `ValidateFQDN`.
pub fn validate_fqdn(name: &str) -> Result<(), String> {
    check_preconditions(name)?;
    validate_dns1123_labels(name)
}

/// Istio's `ValidateWildcardDomain`: a wildcard only in the first label.
pub fn validate_wildcard_domain(domain: &str) -> Result<(), String> {
    check_preconditions(domain)?;
    let (first, rest) = match domain.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (domain, None),
    };
    if !is_wildcard_dns1123_label(first) {
        return Err(format!(
            "domain name {domain:?} invalid (label {first:?} invalid)"
        ));
    }
    match rest {
        Some(r) => validate_dns1123_labels(r),
        None => Ok(()),
    }
}

/// Istio's `ValidatePartialWildCard`: `*` alone or a `*.` prefix, nothing like `*bar.com`.
pub fn validate_no_partial_wildcard(host: &str) -> Result<(), String> {
    if host.contains('*') && host.len() != 1 && !host.starts_with("*.") {
        return Err(format!("partial wildcard {host:?} not allowed"));
    }
    Ok(())
}

pub fn is_ip(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
}

/// Istio's `ValidateIPSubnet`: an address or a CIDR block.
pub fn validate_ip_subnet(s: &str) -> Result<(), String> {
    if s.matches('/').count() == 1 {
        let (addr, bits) = s.split_once('/').unwrap_or((s, ""));
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s} is not a valid CIDR block"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        match bits.parse::<u8>() {
            Ok(b) if b <= max => Ok(()),
            _ => Err(format!("{s} is not a valid CIDR block")),
        }
    } else if is_ip(s) {
        Ok(())
    } else {
        Err(format!("{s} is not a valid IP"))
    }
}

/// A Gateway server host: `host`, `ns/host`, `./host` or `*/host`. Istio's
/// `ValidateNamespaceSlashWildcardHostname` for gateways, stricter in one respect:
/// a partial wildcard is refused outright (Envoy cannot serve `*bar.com` as Istio documents).
pub fn validate_gateway_server_host(h: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let dns = match h.split_once('/') {
        Some((ns, dns)) => {
            if ns.is_empty() || dns.is_empty() {
                errs.push("config namespace and dnsName in host entry cannot be empty".into());
            }
            if ns != "*" && ns != "." && !is_dns1123_label(ns) {
                errs.push(format!("invalid namespace value {ns:?} in gateway"));
            }
            dns
        }
        None => h,
    };
    if dns.is_empty() {
        return errs;
    }
    if dns != "*" && !dns.contains('.') {
        errs.push(format!("short names (non FQDN) are not allowed: {dns:?}"));
    }
    if let Err(e) = validate_wildcard_domain(dns) {
        if !is_ip(dns) {
            errs.push(e);
        }
    }
    if let Err(e) = validate_no_partial_wildcard(dns) {
        errs.push(e);
    }
    errs
}

/// Splits a Gateway server host into its namespace part (`*` when absent) and DNS part.
pub fn split_namespace_host(h: &str) -> (&str, &str) {
    match h.split_once('/') {
        Some((ns, dns)) => (ns, dns),
        None => ("*", h),
    }
}

/// Istio `host.Name.Matches`: true when either host (wildcards included) covers the other.
pub fn hosts_overlap(a: &str, b: &str) -> bool {
    let a = a.to_ascii_lowercase();
    let b = b.to_ascii_lowercase();
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (Some(sa), Some(sb)) => sa.ends_with(sb) || sb.ends_with(sa),
        (Some(sa), None) => b.ends_with(sa),
        (None, Some(sb)) => a.ends_with(sb),
        (None, None) => a == b,
    }
}

/// Istio `host.Name.SubsetOf`: every name `a` covers is also covered by `b`.
pub fn host_subset_of(a: &str, b: &str) -> bool {
    let a = a.to_ascii_lowercase();
    let b = b.to_ascii_lowercase();
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (_, Some(sb)) => a.ends_with(sb),
        (Some(_), None) => false,
        (None, None) => a == b,
    }
}

/// The more specific of two overlapping hosts (the intersection Istio binds with),
/// or `None` when they do not overlap.
pub fn host_intersection<'a>(a: &'a str, b: &'a str) -> Option<&'a str> {
    if !hosts_overlap(a, b) {
        return None;
    }
    if host_subset_of(a, b) {
        Some(a)
    } else {
        Some(b)
    }
}

/// Kubernetes label key: optional DNS prefix `example.com/`, then a qualified name.
pub fn validate_label_key(k: &str) -> Result<(), String> {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(p) = prefix {
        if p.is_empty() || p.len() > 253 || validate_dns1123_labels(p).is_err() {
            return Err(format!("invalid label key prefix in {k:?}"));
        }
    }
    if !is_qualified_name(name) {
        return Err(format!("invalid label key {k:?}"));
    }
    Ok(())
}

/// Kubernetes label value: empty, or a qualified name of at most 63 characters.
pub fn validate_label_value(v: &str) -> Result<(), String> {
    if v.is_empty() || is_qualified_name(v) {
        Ok(())
    } else {
        Err(format!("invalid label value {v:?}"))
    }
}

fn is_qualified_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_domains() {
        assert!(validate_wildcard_domain("*.example.com").is_ok());
        assert!(validate_wildcard_domain("*").is_ok());
        assert!(validate_wildcard_domain("reviews").is_ok());
        assert!(validate_wildcard_domain("istio.io.").is_ok());
        assert!(validate_wildcard_domain("foo.*.com").is_err());
        assert!(validate_wildcard_domain("Foo.com").is_err());
        assert!(validate_wildcard_domain("a..b").is_err());
        assert!(validate_wildcard_domain("").is_err());
        assert!(validate_wildcard_domain("1.2.3.4").is_err());
        // Istio's regex accepts `*x` as a first label; partial wildcards are a separate rule.
        assert!(validate_wildcard_domain("*x").is_ok());
        assert!(validate_no_partial_wildcard("*bar.com").is_err());
        assert!(validate_no_partial_wildcard("*.bar.com").is_ok());
        assert!(validate_no_partial_wildcard("*").is_ok());
    }

    #[test]
    fn gateway_hosts() {
        assert!(validate_gateway_server_host("*").is_empty());
        assert!(validate_gateway_server_host("ns1/*.example.com").is_empty());
        assert!(validate_gateway_server_host("./foo.example.com").is_empty());
        assert!(validate_gateway_server_host("*/foo.example.com").is_empty());
        assert!(validate_gateway_server_host("10.0.0.1").is_empty()); // Gateways accept IPs
        assert!(!validate_gateway_server_host("*bar.com").is_empty());
        assert!(!validate_gateway_server_host("reviews").is_empty());
        assert!(!validate_gateway_server_host("NS/foo.com").is_empty());
        assert!(!validate_gateway_server_host("/foo.com").is_empty());
    }

    #[test]
    fn overlap_and_subset() {
        assert!(hosts_overlap("*.example.com", "a.example.com"));
        assert!(hosts_overlap("*", "a.example.com"));
        assert!(hosts_overlap("*.com", "*.example.com"));
        assert!(!hosts_overlap("a.example.com", "b.example.com"));
        assert!(hosts_overlap("A.example.com", "a.example.COM"));
        assert!(host_subset_of("a.example.com", "*.example.com"));
        assert!(host_subset_of("*.a.example.com", "*.example.com"));
        assert!(!host_subset_of("*.example.com", "a.example.com"));
        assert!(!host_subset_of("*.com", "*.example.com"));
        assert_eq!(host_intersection("*", "a.b.com"), Some("a.b.com"));
        assert_eq!(host_intersection("*.b.com", "a.b.com"), Some("a.b.com"));
        assert_eq!(host_intersection("x.com", "a.b.com"), None);
    }

    #[test]
    fn subnets_and_labels() {
        assert!(validate_ip_subnet("1.2.3.4/16").is_ok());
        assert!(validate_ip_subnet("2001:db8::/32").is_ok());
        assert!(validate_ip_subnet("1.2.3.4/99").is_err());
        assert!(validate_ip_subnet("example.com").is_err());
        assert!(validate_label_key("app.kubernetes.io/name").is_ok());
        assert!(validate_label_key("version").is_ok());
        assert!(validate_label_key("*").is_err());
        assert!(validate_label_value("v1").is_ok());
        assert!(validate_label_value("").is_ok());
        assert!(validate_label_value("*").is_err());
    }
}

/// The host name of an HTTP authority (`host[:port]`, `[v6]:port`): the port dropped.
pub fn authority_host(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split_once(']').map_or(authority, |(h, _)| h);
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
}

#[cfg(test)]
mod authority_tests {
    use super::authority_host;

    #[test]
    fn ports_are_dropped_from_authorities() {
        assert_eq!(authority_host("a.example.com:8443"), "a.example.com");
        assert_eq!(authority_host("a.example.com"), "a.example.com");
        assert_eq!(authority_host("[::1]:80"), "::1");
        assert_eq!(authority_host("::1"), "::1");
        assert_eq!(authority_host(""), "");
    }
}
