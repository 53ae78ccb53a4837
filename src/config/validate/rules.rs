//! Small rules shared by several kinds (Istio's helpers of the same names).

use crate::config::duration;
use crate::config::host;
use crate::config::model::{Destination, OrderedMap, Percent, StringMatch};
use crate::config::resource::Findings;

pub const HTTP_STATUS_RANGE: std::ops::RangeInclusive<i64> = 200..=599;

/// Istio `validateStringRegexp`: at most 1024 characters, RE2 syntax.
pub fn validate_regex(re: &str) -> Result<(), String> {
    if re.len() > 1024 {
        return Err("regex is too large, max length allowed is 1024".into());
    }
    crate::config::regex_cache::check(re).map_err(|e| {
        let first = e.to_string();
        let msg = first
            .lines()
            .last()
            .unwrap_or("invalid regex")
            .trim()
            .to_string();
        format!("invalid regex {re:?}: {msg}; Istio uses RE2 syntax")
    })
}

/// `StringMatch`: at most one of exact/prefix/regex; a prefix or regex must not be empty
/// unless `empty_ok` (Envoy allows an empty URI prefix); regexes must compile.
pub fn string_match(path: &str, m: &StringMatch, empty_prefix_ok: bool, f: &mut Findings) {
    if m.set_count() > 1 {
        f.error(path, "only one of exact, prefix or regex may be set");
    }
    if let Some(p) = &m.prefix {
        if p.is_empty() && !empty_prefix_ok {
            f.error(
                format!("{path}.prefix"),
                "prefix string match should not be empty",
            );
        }
    }
    if let Some(re) = &m.regex {
        if re.is_empty() {
            f.error(
                format!("{path}.regex"),
                "regex string match should not be empty",
            );
        } else {
            f.check(format!("{path}.regex"), validate_regex(re));
        }
    }
}

/// Istio `ValidateDuration` on an optional duration field.
pub fn duration_field(path: &str, d: &Option<String>, f: &mut Findings) {
    if let Some(d) = d {
        f.check(
            path,
            duration::validate(d).map(|_| ()).map_err(String::from),
        );
    }
}

/// Istio `ValidatePort`.
pub fn port(path: &str, p: u32, f: &mut Findings) {
    if !(1..=65535).contains(&p) {
        f.error(
            path,
            format!("port number {p} must be in the range 1..65535"),
        );
    }
}

/// Istio `validatePercentage`: 0, or 0.0001..=100.
pub fn percentage(path: &str, p: &Option<Percent>, f: &mut Findings) {
    if let Some(p) = p {
        let v = p.value;
        if !(0.0..=100.0).contains(&v) || (v > 0.0 && v < 0.0001) || v.is_nan() {
            f.error(
                format!("{path}.value"),
                format!("percentage {v} is neither 0.0, nor in range [0.0001, 100.0]"),
            );
        }
    }
}

/// Istio `validateDestination` (host not `*`, a valid wildcard domain; subset a DNS label).
pub fn destination(path: &str, d: &Destination, f: &mut Findings) {
    if d.host.is_empty() {
        f.error(format!("{path}.host"), "Required value: destination host");
    } else if d.host == "*" {
        f.error(
            format!("{path}.host"),
            format!("invalid destination host {}", d.host),
        );
    } else {
        f.check(
            format!("{path}.host"),
            host::validate_wildcard_domain(&d.host),
        );
    }
    if let Some(s) = &d.subset {
        subset_name(&format!("{path}.subset"), s, f);
    }
    if let Some(p) = &d.port {
        port(&format!("{path}.port.number"), p.number, f);
    }
}

pub fn subset_name(path: &str, name: &str, f: &mut Findings) {
    if name.is_empty() {
        f.error(path, "subset name cannot be empty");
    } else if !host::is_dns1123_label(name) {
        f.error(path, format!("subset name is invalid: {name}"));
    }
}

/// Kubernetes label map syntax.
pub fn labels(path: &str, labels: &OrderedMap<String>, f: &mut Findings) {
    for (k, v) in labels.iter() {
        f.check(format!("{path}.{k}"), host::validate_label_key(k));
        f.check(format!("{path}.{k}"), host::validate_label_value(v));
    }
}

/// Istio `validateExportTo`: no duplicates, `*` and `~` alone, namespaces DNS labels.
pub fn export_to(
    path: &str,
    namespace: &str,
    export_to: &[String],
    service_entry: bool,
    f: &mut Findings,
) {
    let mut seen: Vec<&str> = Vec::new();
    for (i, e) in export_to.iter().enumerate() {
        let key = if e == "." { namespace } else { e.as_str() };
        if seen.contains(&key) {
            if key != e {
                f.error(
                    format!("{path}[{i}]"),
                    format!("duplicate entries in exportTo: . and current namespace {namespace}"),
                );
            } else {
                f.error(
                    format!("{path}[{i}]"),
                    format!("duplicate entries in exportTo for entry {e}"),
                );
            }
            continue;
        }
        let ok = key == "*" || (key == "~" && service_entry) || host::is_dns1123_label(key);
        if !ok {
            f.error(
                format!("{path}[{i}]"),
                format!("invalid exportTo value {e:?}"),
            );
        }
        seen.push(key);
    }
    if seen.contains(&"*") && export_to.len() > 1 {
        f.error(
            path,
            "cannot have both public (*) and non-public exportTo values for a resource",
        );
    }
    if seen.contains(&"~") && export_to.len() > 1 {
        f.error(
            path,
            "cannot export service entry to no one (~) and someone",
        );
    }
}

/// Istio `ValidatePortName`: a DNS-1123 label.
pub fn port_name(path: &str, name: &str, f: &mut Findings) {
    if !host::is_dns1123_label(name) {
        f.error(path, format!("invalid port name: {name:?}"));
    }
}

/// Protocols Istio's `protocol.Parse` knows (case-insensitive).
pub fn is_known_protocol(p: &str) -> bool {
    matches!(
        p.to_ascii_uppercase().as_str(),
        "TCP"
            | "UDP"
            | "GRPC"
            | "GRPC-WEB"
            | "HTTP"
            | "HTTP_PROXY"
            | "HTTP2"
            | "HTTPS"
            | "TLS"
            | "MONGO"
            | "REDIS"
            | "MYSQL"
    )
}
