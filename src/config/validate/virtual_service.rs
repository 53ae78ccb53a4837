//! VirtualService rules (Istio `ValidateVirtualService`, `validateHTTPRoute`, and the
//! unreachable-rule analysis that `istioctl analyze` reports).

use super::rules;
use crate::config::host;
use crate::config::model::*;
use crate::config::resource::Findings;

/// Envoy's `x-envoy-retry-on` and `x-envoy-retry-grpc-on` policy names.
pub const RETRY_ON_POLICIES: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// gRPC status names accepted by `fault.abort.grpcStatus`.
pub const GRPC_STATUSES: &[&str] = &[
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

const CORS_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*",
];

pub fn validate(namespace: &str, vs: &VirtualServiceSpec, f: &mut Findings) {
    let delegate = vs.hosts.is_empty();
    if delegate {
        if !vs.gateways.is_empty() {
            f.error(
                "spec.gateways",
                "delegate virtual service must have no gateways specified",
            );
        }
        if !vs.tls.is_empty() {
            f.error(
                "spec.tls",
                "delegate virtual service must have no tls route specified",
            );
        }
        if !vs.tcp.is_empty() {
            f.error(
                "spec.tcp",
                "delegate virtual service must have no tcp route specified",
            );
        }
    }
    let applies_to_gateway = !vs.gateways.is_empty() && !vs.gateways.iter().any(|g| g == "mesh");
    let applies_to_mesh = !applies_to_gateway;
    gateway_names("spec.gateways", &vs.gateways, f);

    let sni = vs
        .tls
        .iter()
        .any(|t| t.r#match.iter().any(|m| !m.sni_hosts.is_empty()));
    let mut all_valid = true;
    for (i, h) in vs.hosts.iter().enumerate() {
        let p = format!("spec.hosts[{i}]");
        let r = if applies_to_gateway {
            gateway_bound_domain(sni, h)
        } else {
            host::validate_wildcard_domain(h)
        };
        match r {
            Err(e) if !host::is_ip(h) => {
                f.error(&p, e);
                all_valid = false;
            }
            Ok(()) if applies_to_mesh && h == "*" => {
                f.error(
                    &p,
                    "wildcard host * is not allowed for virtual services bound to the mesh gateway",
                );
                all_valid = false;
            }
            _ => {
                if let Err(e) = host::validate_no_partial_wildcard(h) {
                    f.error(&p, format!("{e}: meshgate matches wildcards only as a whole first label (`*.example.com`)"));
                    all_valid = false;
                }
            }
        }
    }
    if all_valid {
        for i in 0..vs.hosts.len() {
            for j in i + 1..vs.hosts.len() {
                if host::hosts_overlap(&vs.hosts[i], &vs.hosts[j]) {
                    f.error(
                        format!("spec.hosts[{j}]"),
                        format!(
                            "duplicate hosts in virtual service: {} & {}",
                            vs.hosts[i], vs.hosts[j]
                        ),
                    );
                }
            }
        }
    }
    if vs.http.is_empty() && vs.tcp.is_empty() && vs.tls.is_empty() {
        f.error(
            "spec",
            "http, tcp or tls must be provided in virtual service",
        );
    }
    for (i, r) in vs.http.iter().enumerate() {
        http_route(&format!("spec.http[{i}]"), r, delegate, f);
    }
    for (i, r) in vs.tls.iter().enumerate() {
        let p = format!("spec.tls[{i}]");
        if r.r#match.is_empty() {
            f.error(
                format!("{p}.match"),
                "TLS route must have at least one match condition",
            );
        }
        for (j, m) in r.r#match.iter().enumerate() {
            let mp = format!("{p}.match[{j}]");
            if m.sni_hosts.is_empty() {
                f.error(
                    format!("{mp}.sniHosts"),
                    "TLS match must have at least one SNI host",
                );
            }
            for (k, s) in m.sni_hosts.iter().enumerate() {
                sni_host(&format!("{mp}.sniHosts[{k}]"), s, vs, applies_to_gateway, f);
            }
            l4_common(
                &mp,
                &m.destination_subnets,
                m.port,
                &m.source_labels,
                &m.gateways,
                f,
            );
        }
        route_destinations(&p, "TLS", &r.route, f);
    }
    for (i, r) in vs.tcp.iter().enumerate() {
        let p = format!("spec.tcp[{i}]");
        for (j, m) in r.r#match.iter().enumerate() {
            let mp = format!("{p}.match[{j}]");
            l4_common(
                &mp,
                &m.destination_subnets,
                m.port,
                &m.source_labels,
                &m.gateways,
                f,
            );
        }
        route_destinations(&p, "TCP", &r.route, f);
    }
    rules::export_to("spec.exportTo", namespace, &vs.export_to, false, f);
    unreachable_http(&vs.http, f);
    unreachable_rules(
        "spec.tcp",
        &l4_rules(vs.tcp.iter().map(|r| r.r#match.as_slice())),
        f,
    );
    unreachable_rules(
        "spec.tls",
        &l4_rules(vs.tls.iter().map(|r| r.r#match.as_slice())),
        f,
    );
}

/// Istio `ValidateWildcardDomainForVirtualServiceBoundToGateway`: also accepts the
/// AUTO_PASSTHROUGH SNI form `outbound_.PORT_.SUBSET_.HOST` in TLS routes.
fn gateway_bound_domain(sni: bool, d: &str) -> Result<(), String> {
    if sni && d.starts_with("outbound_") {
        let parts: Vec<&str> = d.splitn(4, '_').collect();
        let ok = parts.len() == 4
            && parts[0] == "outbound"
            && parts[1]
                .trim_start_matches('.')
                .starts_with(|c: char| c.is_ascii_digit())
            && parts[3]
                .trim_start_matches('.')
                .starts_with(|c: char| c.is_ascii_alphabetic());
        return if ok {
            Ok(())
        } else {
            Err(format!("domain name {d:?} invalid; should follow outbound_.<port>_.<subset>_.<hostname> format"))
        };
    }
    host::validate_wildcard_domain(d)
}

/// Istio `validateGatewayNames`: `ns/name` (DNS labels), `name`, or legacy `name.ns`.
pub fn gateway_names(p: &str, names: &[String], f: &mut Findings) {
    for (i, g) in names.iter().enumerate() {
        let gp = format!("{p}[{i}]");
        match g.split_once('/') {
            Some((ns, name)) => {
                if ns.is_empty() || name.is_empty() {
                    f.error(&gp, "config namespace and gateway name cannot be empty");
                }
                if !host::is_dns1123_label(ns) {
                    f.error(&gp, format!("invalid value for namespace: {ns:?}"));
                }
                if !host::is_dns1123_label(name) {
                    f.error(&gp, format!("invalid value for gateway name: {name:?}"));
                }
            }
            None => {
                if let Some((name, ns)) = g.split_once('.') {
                    let ns = ns.split('.').next().unwrap_or(ns);
                    f.warn(
                        &gp,
                        format!("using legacy gatewayName format {g:?}; prefer the <namespace>/<name> format: \"{ns}/{name}\""),
                    );
                }
                f.check(&gp, host::validate_fqdn(g));
            }
        }
    }
}

fn sni_host(p: &str, s: &str, vs: &VirtualServiceSpec, gw: bool, f: &mut Findings) {
    let r = if gw {
        gateway_bound_domain(true, s)
    } else {
        host::validate_wildcard_domain(s)
    };
    if let Err(e) = r {
        if host::is_ip(s) {
            f.warn(p, format!("using an IP address ({s:?}) goes against SNI spec and most clients do not support this"));
        } else {
            f.error(p, e);
        }
        return;
    }
    if s.starts_with("outbound_") {
        return;
    }
    if !vs.hosts.iter().any(|h| host::host_subset_of(s, h)) {
        f.error(
            p,
            format!("SNI host {s:?} is not a compatible subset of any of the virtual service hosts: [{}]", vs.hosts.join(", ")),
        );
    }
}

fn l4_common(
    p: &str,
    subnets: &[String],
    port: Option<u32>,
    source_labels: &OrderedMap<String>,
    gateways: &[String],
    f: &mut Findings,
) {
    for (i, s) in subnets.iter().enumerate() {
        f.check(
            format!("{p}.destinationSubnets[{i}]"),
            host::validate_ip_subnet(s),
        );
    }
    if let Some(n) = port {
        if n != 0 {
            rules::port(&format!("{p}.port"), n, f);
        }
    }
    rules::labels(&format!("{p}.sourceLabels"), source_labels, f);
    gateway_names(&format!("{p}.gateways"), gateways, f);
}

/// A TLS or TCP rule's `route`: required, destinations valid, weights not all zero.
fn route_destinations(p: &str, kind: &str, route: &[RouteDestination], f: &mut Findings) {
    if route.is_empty() {
        f.error(format!("{p}.route"), format!("{kind} route is required"));
    }
    let mut total: i64 = 0;
    for (i, d) in route.iter().enumerate() {
        let dp = format!("{p}.route[{i}]");
        match &d.destination {
            Some(dest) => rules::destination(&format!("{dp}.destination"), dest, f),
            None => f.error(
                format!("{dp}.destination"),
                "Required value: destination is required",
            ),
        }
        let w = d.weight.unwrap_or(0);
        if w < 0 {
            f.error(format!("{dp}.weight"), format!("weight {w} < 0"));
        }
        total += i64::from(w);
    }
    if route.len() > 1 && total == 0 {
        f.error(format!("{p}.route"), "total destination weight = 0");
    }
}

fn is_internal_header(k: &str) -> bool {
    k.starts_with(':') || k.eq_ignore_ascii_case("host")
}

fn is_authority_header(k: &str) -> bool {
    k.eq_ignore_ascii_case(":authority") || k.eq_ignore_ascii_case("host")
}

/// A header name usable in a match: an RFC 7230 token or a known pseudo-header.
fn valid_match_header_name(k: &str) -> bool {
    if matches!(
        k,
        ":method" | ":scheme" | ":authority" | ":path" | ":status"
    ) {
        return true;
    }
    if k.starts_with("@request.auth.claims") {
        return true;
    }
    !k.is_empty() && k.bytes().all(is_token_char)
}

fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

fn header_value_ok(v: &str) -> Result<(), String> {
    if v.bytes().any(|c| (c < 0x20 && c != b'\t') || c == 0x7f) {
        return Err(format!("header value configuration {v:?} is invalid"));
    }
    Ok(())
}

/// Header operations of a route or destination. `request_authority_ok`: the request
/// side may set `:authority`/`Host` (a host rewrite).
fn header_ops(p: &str, h: Option<&Headers>, f: &mut Findings) {
    let Some(h) = h else { return };
    for (side, ops) in [("request", &h.request), ("response", &h.response)] {
        let Some(ops) = ops else { continue };
        let sp = format!("{p}.headers.{side}");
        for (op, map) in [("set", &ops.set), ("add", &ops.add)] {
            for (k, v) in map.iter() {
                let fp = format!("{sp}.{op}.{k}");
                if k.is_empty() {
                    f.error(&fp, "header name cannot be empty");
                } else if side == "request" {
                    if is_internal_header(k) && !is_authority_header(k) {
                        f.error(
                            &fp,
                            format!("invalid header {k:?}: header cannot have \":\" prefix"),
                        );
                    }
                } else if k.eq_ignore_ascii_case("host") {
                    f.error(&fp, format!("invalid header {k:?}: cannot set Host header"));
                } else if is_internal_header(k) {
                    f.error(
                        &fp,
                        format!("invalid header {k:?}: header cannot have \":\" prefix"),
                    );
                }
                f.check(&fp, header_value_ok(v));
            }
        }
        for (i, k) in ops.remove.iter().enumerate() {
            let fp = format!("{sp}.remove[{i}]");
            if k.is_empty() {
                f.error(&fp, "header name cannot be empty");
            } else if k.eq_ignore_ascii_case("host") {
                f.error(&fp, format!("invalid header {k:?}: cannot set Host header"));
            } else if is_internal_header(k) {
                f.error(
                    &fp,
                    format!("invalid header {k:?}: header cannot have \":\" prefix"),
                );
            }
        }
    }
}

fn http_route(p: &str, r: &HttpRoute, delegate: bool, f: &mut Findings) {
    // Which actions may be combined (Istio `validateHTTPRouteConflict`).
    if r.delegate.is_some() {
        if delegate {
            f.error(
                format!("{p}.delegate"),
                "delegate HTTP route cannot contain delegate",
            );
        }
        if r.redirect.is_some() {
            f.error(
                format!("{p}.redirect"),
                "root HTTP route must not specify redirect",
            );
        }
        if !r.route.is_empty() {
            f.error(
                format!("{p}.route"),
                "root HTTP route must not specify route",
            );
        }
    } else if r.redirect.is_some() || r.direct_response.is_some() {
        // A redirect or direct response answers at the gateway: nothing else may apply.
        let (action, field) = if r.redirect.is_some() {
            ("redirect", "redirect")
        } else {
            ("direct_response", "directResponse")
        };
        let others = [
            ("route", !r.route.is_empty()),
            ("fault", r.fault.is_some()),
            ("rewrite", r.rewrite.is_some()),
            (
                "direct_response",
                r.redirect.is_some() && r.direct_response.is_some(),
            ),
        ];
        for (other, present) in others {
            if present {
                f.error(
                    format!("{p}.{field}"),
                    format!("HTTP route cannot contain both {other} and {action}"),
                );
            }
        }
    } else if r.route.is_empty() {
        f.error(p, "HTTP route, redirect or direct_response is required");
    }
    if r.mirror.is_some() && r.mirrors.as_ref().is_some_and(|m| !m.is_empty()) {
        f.error(
            format!("{p}.mirrors"),
            "HTTP route cannot contain both mirror and mirrors",
        );
    }

    for (i, m) in r.r#match.iter().enumerate() {
        http_match(&format!("{p}.match[{i}]"), m, f);
    }
    header_ops(p, r.headers.as_deref(), f);

    if let Some(c) = &r.cors_policy {
        let cp = format!("{p}.corsPolicy");
        for (i, o) in c.allow_origins.iter().enumerate() {
            let op = format!("{cp}.allowOrigins[{i}]");
            let v = o
                .exact
                .as_deref()
                .or(o.prefix.as_deref())
                .or(o.regex.as_deref())
                .unwrap_or("");
            if v.is_empty() {
                f.error(&op, "'' is not a valid match type for CORS allow origins");
            } else {
                rules::string_match(&op, o, false, f);
            }
        }
        for (i, m) in c.allow_methods.iter().enumerate() {
            if !CORS_METHODS.contains(&m.as_str()) {
                f.error(
                    format!("{cp}.allowMethods[{i}]"),
                    format!("{m:?} is not a supported HTTP method"),
                );
            }
        }
        for (field, list) in [
            ("allowHeaders", &c.allow_headers),
            ("exposeHeaders", &c.expose_headers),
        ] {
            for (i, h) in list.iter().enumerate() {
                if h.is_empty() {
                    f.error(format!("{cp}.{field}[{i}]"), "header name cannot be empty");
                } else if h != "*" && !h.bytes().all(is_token_char) {
                    f.error(
                        format!("{cp}.{field}[{i}]"),
                        format!("header name {h} is not a valid header name"),
                    );
                }
            }
        }
        if let Some(age) = &c.max_age {
            match crate::config::duration::validate(age) {
                Err(e) => f.error(format!("{cp}.maxAge"), e),
                Ok(d) if d.subsec_nanos() != 0 => f.error(
                    format!("{cp}.maxAge"),
                    "max_age duration is accurate only to seconds precision",
                ),
                Ok(_) => {}
            }
        }
    }

    if let Some(fault) = &r.fault {
        let fp = format!("{p}.fault");
        if fault.abort.is_none() && fault.delay.is_none() {
            f.error(
                &fp,
                "HTTP fault injection must have an abort and/or a delay",
            );
        }
        if let Some(a) = &fault.abort {
            let ap = format!("{fp}.abort");
            rules::percentage(&format!("{ap}.percentage"), &a.percentage, f);
            if a.percentage.is_none() {
                f.warn(
                    format!("{ap}.percentage"),
                    "percentage is not set: Envoy (and meshgate) abort no request; set percentage.value: 100 to abort every one",
                );
            }
            let kinds = [
                a.http_status.is_some(),
                a.grpc_status.is_some(),
                a.http2_error.is_some(),
            ];
            if kinds.iter().filter(|b| **b).count() > 1 {
                f.error(
                    &ap,
                    "only one of httpStatus, grpcStatus or http2Error may be set",
                );
            }
            if let Some(s) = a.http_status {
                if !rules::HTTP_STATUS_RANGE.contains(&i64::from(s)) {
                    f.error(
                        format!("{ap}.httpStatus"),
                        format!("HTTP status {s} is not in range 200-599"),
                    );
                }
            } else if let Some(g) = &a.grpc_status {
                if !GRPC_STATUSES.contains(&g.as_str()) {
                    f.error(
                        format!("{ap}.grpcStatus"),
                        format!("gRPC status {g:?} is not supported; use a name such as NOT_FOUND or UNAVAILABLE"),
                    );
                }
            } else if a.http2_error.is_some() {
                f.error(
                    format!("{ap}.http2Error"),
                    "HTTP/2 abort fault injection not supported yet",
                );
            } else {
                f.warn(&ap, "abort configured, but error type not set");
            }
        }
        if let Some(d) = &fault.delay {
            let dp = format!("{fp}.delay");
            rules::percentage(&format!("{dp}.percentage"), &d.percentage, f);
            if d.percentage.is_none() && d.percent.is_none() {
                f.warn(
                    format!("{dp}.percentage"),
                    "percentage is not set: Envoy (and meshgate) delay no request; set percentage.value: 100 to delay every one",
                );
            }
            if let Some(pct) = d.percent {
                if !(0..=100).contains(&pct) {
                    f.error(
                        format!("{dp}.percent"),
                        format!("percentage {pct} is not in range 0..100"),
                    );
                }
            }
            if d.fixed_delay.is_some() && d.exponential_delay.is_some() {
                f.error(&dp, "only one of fixedDelay or exponentialDelay may be set");
            }
            rules::duration_field(&format!("{dp}.fixedDelay"), &d.fixed_delay, f);
            rules::duration_field(&format!("{dp}.exponentialDelay"), &d.exponential_delay, f);
            if d.exponential_delay.is_some() {
                f.error(
                    format!("{dp}.exponentialDelay"),
                    "exponentialDelay not supported yet",
                );
            }
            if d.fixed_delay.is_none() && d.exponential_delay.is_none() {
                f.error(&dp, "delay must set fixedDelay");
            }
        }
    }

    for (field, v) in [
        ("mirrorPercent", r.mirror_percent),
        ("mirror_percent", r.mirror_percent_snake),
    ] {
        if let Some(v) = v {
            if v > 100 {
                f.error(
                    format!("{p}.{field}"),
                    format!("mirror_percent must have a max value of 100 (it has {v})"),
                );
            }
            f.warn(
                format!("{p}.{field}"),
                "using deprecated setting \"mirrorPercent\", use \"mirrorPercentage\" instead",
            );
        }
    }
    if let Some(mp) = &r.mirror_percentage {
        if mp.value > 100.0 {
            f.error(
                format!("{p}.mirrorPercentage.value"),
                format!(
                    "mirror_percentage must have a max value of 100 (it has {})",
                    mp.value
                ),
            );
        }
        if mp.value < 0.0 {
            f.error(
                format!("{p}.mirrorPercentage.value"),
                format!(
                    "mirror_percentage must have a min value of 0 (it has {})",
                    mp.value
                ),
            );
        }
    }
    if let Some(m) = &r.mirror {
        rules::destination(&format!("{p}.mirror"), m, f);
    }
    for (i, m) in r.mirrors.iter().flatten().enumerate() {
        let mp = format!("{p}.mirrors[{i}]");
        match &m.destination {
            None => f.error(
                format!("{mp}.destination"),
                "destination is required for mirrors",
            ),
            Some(d) => rules::destination(&format!("{mp}.destination"), d, f),
        }
        if let Some(pct) = &m.percentage {
            if pct.value > 100.0 || pct.value < 0.0 {
                f.error(
                    format!("{mp}.percentage.value"),
                    format!(
                        "mirror percentage must be within 0..100 (it has {})",
                        pct.value
                    ),
                );
            }
        }
    }

    if let Some(rd) = &r.redirect {
        redirect(&format!("{p}.redirect"), rd, &r.r#match, f);
    }
    if let Some(dr) = &r.direct_response {
        let dp = format!("{p}.directResponse");
        if !rules::HTTP_STATUS_RANGE.contains(&i64::from(dr.status)) {
            f.error(
                format!("{dp}.status"),
                format!("HTTP status {} is not in range 200-599", dr.status),
            );
        }
        if let Some(b) = &dr.body {
            if b.string.is_some() && b.bytes.is_some() {
                f.error(
                    format!("{dp}.body"),
                    "only one of string or bytes may be set",
                );
            }
            let size = b
                .string
                .as_ref()
                .map(|s| s.len())
                .or(b.bytes.as_ref().map(|s| s.len() * 3 / 4))
                .unwrap_or(0);
            if size > 1024 * 1024 {
                f.error(format!("{dp}.body"), "large direct_responses may impact control plane performance, must be less than 1MB");
            } else if size > 100 * 1024 {
                f.warn(
                    format!("{dp}.body"),
                    "large direct_responses may impact control plane performance",
                );
            }
            if let Some(bytes) = &b.bytes {
                if !is_base64(bytes) {
                    f.error(format!("{dp}.body.bytes"), "bytes must be base64-encoded");
                }
            }
        }
    }

    if let Some(rt) = &r.retries {
        let rp = format!("{p}.retries");
        if rt.attempts < 0 {
            f.error(format!("{rp}.attempts"), "attempts cannot be negative");
        }
        if rt.attempts == 0
            && (rt.per_try_timeout.is_some()
                || rt.retry_on.as_deref().is_some_and(|s| !s.is_empty())
                || rt.retry_remote_localities.is_some())
        {
            f.error(
                &rp,
                "http retry policy configured when attempts are set to 0 (disabled)",
            );
        }
        rules::duration_field(&format!("{rp}.perTryTimeout"), &rt.per_try_timeout, f);
        rules::duration_field(&format!("{rp}.backoff"), &rt.backoff, f);
        if let Some(on) = rt.retry_on.as_deref().filter(|s| !s.is_empty()) {
            for policy in on.split(',') {
                let is_status = policy
                    .parse::<u16>()
                    .is_ok_and(|c| (100..=599).contains(&c));
                if !is_status && !RETRY_ON_POLICIES.contains(&policy) {
                    f.error(
                        format!("{rp}.retryOn"),
                        format!("{policy:?} is not a valid retryOn policy"),
                    );
                }
            }
        }
    }

    if let Some(rw) = &r.rewrite {
        let wp = format!("{p}.rewrite");
        if rw.uri.is_some() && rw.uri_regex_rewrite.is_some() {
            f.error(
                &wp,
                "rewrite may only contain one of URI or UriRegexRewrite",
            );
        }
        if rw.uri.is_none() && rw.uri_regex_rewrite.is_none() && rw.authority.is_none() {
            f.error(
                &wp,
                "rewrite must specify at least one of URI, UriRegexRewrite, or authority",
            );
        }
        if let Some(rr) = &rw.uri_regex_rewrite {
            if rr.r#match.is_empty() || rr.rewrite.is_empty() {
                f.error(
                    format!("{wp}.uriRegexRewrite"),
                    "UriRegexRewrite requires both Rewrite and Match fields to be specified",
                );
            } else {
                f.check(
                    format!("{wp}.uriRegexRewrite.match"),
                    rules::validate_regex(&rr.r#match),
                );
            }
        }
    }
    // The authority may be rewritten in one place only.
    let mut authority = r.rewrite.as_ref().and_then(|rw| rw.authority.clone());
    if let Some(req) = r.headers.as_ref().and_then(|h| h.request.as_ref()) {
        for (op, map) in [("set", &req.set), ("add", &req.add)] {
            for (k, v) in map.iter().filter(|(k, _)| is_authority_header(k)) {
                if let Some(cur) = &authority {
                    f.error(
                        format!("{p}.headers.request.{op}.{k}"),
                        format!("authority header cannot be set multiple times: have {cur:?}, attempting to set {v:?}"),
                    );
                }
                authority = Some(v.clone());
            }
        }
    }

    let mut total: i64 = 0;
    for (i, d) in r.route.iter().enumerate() {
        let dp = format!("{p}.route[{i}]");
        match &d.destination {
            Some(dest) => rules::destination(&format!("{dp}.destination"), dest, f),
            None => f.error(
                format!("{dp}.destination"),
                "Required value: destination is required",
            ),
        }
        header_ops(&dp, d.headers.as_deref(), f);
        let w = d.weight.unwrap_or(0);
        if w < 0 {
            f.error(format!("{dp}.weight"), format!("weight {w} < 0"));
        }
        total += i64::from(w);
    }
    if r.route.len() > 1 && total == 0 {
        f.error(format!("{p}.route"), "total destination weight = 0");
    }
    rules::duration_field(&format!("{p}.timeout"), &r.timeout, f);
}

fn is_base64(s: &str) -> bool {
    let t = s.trim_end_matches('=');
    s.len() - t.len() <= 2
        && t.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
}

/// A header condition: `regex: "*"` is Istio's presence form (`isCatchAllStringMatch`),
/// not an RE2 regex; anything else is a string match whose regex must compile.
fn header_match(p: &str, v: &StringMatch, f: &mut Findings) {
    if v.regex.as_deref() != Some("*") {
        rules::string_match(p, v, false, f);
    }
}

fn http_match(p: &str, m: &HttpMatchRequest, f: &mut Findings) {
    for (k, v) in m.headers.iter() {
        let hp = format!("{p}.headers.{k}");
        if !valid_match_header_name(k) {
            f.error(&hp, format!("header name {k} is not a valid header name"));
        }
        header_match(&hp, v, f);
    }
    for (k, v) in m.without_headers.iter() {
        let hp = format!("{p}.withoutHeaders.{k}");
        if !valid_match_header_name(k) {
            f.error(&hp, format!("header name {k} is not a valid header name"));
        }
        header_match(&hp, v, f);
    }
    if let Some(u) = &m.uri {
        rules::string_match(&format!("{p}.uri"), u, true, f);
    }
    for (field, v) in [
        ("scheme", &m.scheme),
        ("method", &m.method),
        ("authority", &m.authority),
    ] {
        if let Some(v) = v {
            rules::string_match(&format!("{p}.{field}"), v, false, f);
        }
    }
    for (k, v) in m.query_params.iter() {
        rules::string_match(&format!("{p}.queryParams.{k}"), v, false, f);
    }
    if let Some(n) = m.port {
        if n != 0 {
            rules::port(&format!("{p}.port"), n, f);
        }
    }
    rules::labels(&format!("{p}.sourceLabels"), &m.source_labels, f);
    gateway_names(&format!("{p}.gateways"), &m.gateways, f);
    if let Some(ns) = &m.source_namespace {
        if !ns.is_empty() && !host::is_dns1123_label(ns) {
            f.error(
                format!("{p}.sourceNamespace"),
                format!("sourceNamespace match {ns} is invalid"),
            );
        }
    }
}

fn redirect(p: &str, r: &HttpRedirect, matches: &[HttpMatchRequest], f: &mut Findings) {
    let set = |o: &Option<String>| o.as_deref().is_some_and(|s| !s.is_empty());
    if set(&r.uri) && set(&r.prefix_rewrite) {
        f.error(p, "redirect may only specify one of uri or prefixRewrite");
    }
    if set(&r.prefix_rewrite)
        && matches
            .iter()
            .any(|m| m.uri.as_ref().is_some_and(|u| u.prefix.is_none()))
    {
        f.error(
            format!("{p}.prefixRewrite"),
            "redirect prefixRewrite requires all URI matches to use prefix match type",
        );
    }
    if r.port.is_some() && r.derive_port.is_some() {
        f.error(p, "only one of port or derivePort may be set");
    }
    if !set(&r.uri)
        && !set(&r.prefix_rewrite)
        && !set(&r.authority)
        && r.port.is_none()
        && r.derive_port.is_none()
        && !set(&r.scheme)
    {
        f.error(p, "redirect must specify URI, authority, scheme, or port");
    }
    if let Some(code) = r.redirect_code {
        if code != 0 && !(300..=399).contains(&code) {
            f.error(
                format!("{p}.redirectCode"),
                format!("{code} is not a valid redirect code, must be 3xx"),
            );
        }
    }
    if let Some(s) = r.scheme.as_deref().filter(|s| !s.is_empty()) {
        if s != "http" && s != "https" {
            f.error(
                format!("{p}.scheme"),
                "invalid redirect scheme, must be \"http\" or \"https\"",
            );
        }
    }
    if let Some(n) = r.port {
        if n > 0 {
            rules::port(&format!("{p}.port"), n, f);
        }
    }
}

/// A canonical key for match comparison (the match with its name removed). JSON: the
/// same canonical form as YAML for this purpose, at a fraction of the cost.
fn as_key<T: serde::Serialize>(m: &T) -> String {
    serde_json::to_string(m).unwrap_or_default()
}

fn route_name(r: &HttpRoute, n: usize) -> String {
    match &r.name {
        Some(name) if !name.is_empty() => format!("{name:?}"),
        _ => format!("#{n}"),
    }
}

fn request_name(m: &HttpMatchRequest, n: usize) -> String {
    match &m.name {
        Some(name) if !name.is_empty() => format!("{name:?}"),
        _ => format!("#{n}"),
    }
}

const UNREACHABLE: &str = "VirtualServiceUnreachableRule";
const INEFFECTIVE: &str = "VirtualServiceIneffectiveMatch";

/// One rule as the unreachable-rule analysis sees it: its display name and, per match,
/// the match's display name and a canonical key (the match without its name).
struct RuleMatches {
    name: String,
    matches: Vec<(String, String)>,
}

/// Istio `analyzeUnreachableHTTPRules` / `TCPRules` / `TLSRules`: rules after a catch-all
/// and duplicate matches. Returns the (rule, match) indices that are first seen, which the
/// HTTP prefix-overlap analysis continues with.
fn unreachable_rules(base: &str, rules: &[RuleMatches], f: &mut Findings) -> Vec<(usize, usize)> {
    let mut seen: Vec<(&str, usize)> = Vec::new();
    let mut first_seen = Vec::new();
    let mut empty_at: Option<usize> = None;
    for (rn, rule) in rules.iter().enumerate() {
        let rp = format!("{base}[{rn}]");
        let unused = |why: &str| format!("virtualService rule {} not used ({why})", rule.name);
        if rule.matches.is_empty() {
            if empty_at.is_some() {
                f.warn_code(
                    &rp,
                    unused("only the last rule can have no matches"),
                    UNREACHABLE,
                );
            }
            empty_at = Some(rn);
            continue;
        }
        let mut dups = 0;
        for (mn, (match_name, key)) in rule.matches.iter().enumerate() {
            if empty_at.is_some() {
                f.warn_code(
                    &rp,
                    unused("route without matches defined before"),
                    UNREACHABLE,
                );
                continue;
            }
            if let Some((_, prev)) = seen.iter().find(|(k, _)| k == key) {
                f.warn_code(
                    format!("{rp}.match[{mn}]"),
                    format!(
                        "virtualService rule {} match {match_name} is not used (duplicate/overlapping match in rule {})",
                        rule.name, rules[*prev].name
                    ),
                    INEFFECTIVE,
                );
                dups += 1;
                continue;
            }
            seen.push((key, rn));
            first_seen.push((rn, mn));
        }
        if dups == rule.matches.len() {
            f.warn_code(&rp, unused("all matches used by prior rules"), UNREACHABLE);
        }
    }
    first_seen
}

/// The HTTP analysis adds Istio's prefix-overlap check: a prefix match covered by an
/// earlier, shorter prefix with the same other conditions.
fn unreachable_http(routes: &[HttpRoute], f: &mut Findings) {
    let rules: Vec<RuleMatches> = routes
        .iter()
        .enumerate()
        .map(|(rn, r)| RuleMatches {
            name: route_name(r, rn),
            matches: r
                .r#match
                .iter()
                .enumerate()
                .map(|(mn, m)| {
                    let key = as_key(&HttpMatchRequest {
                        name: None,
                        ..m.clone()
                    });
                    (request_name(m, mn), key)
                })
                .collect(),
        })
        .collect();
    let prefixes: Vec<PrefixMatch> = unreachable_rules("spec.http", &rules, f)
        .into_iter()
        .filter_map(|(rn, mn)| PrefixMatch::of(&routes[rn], rn, &routes[rn].r#match[mn], mn))
        .collect();
    for (i, a) in prefixes.iter().enumerate() {
        for b in &prefixes[i + 1..] {
            if a.prefix == b.prefix || !a.covers(b) {
                continue;
            }
            f.warn_code(
                format!("spec.http[{}].match[{}]", b.rule, b.index),
                format!(
                    "virtualService rule {} match {} of prefix {} is not used (duplicate/overlapping match in rule {} of prefix {} on {})",
                    b.route_name, b.match_name, b.prefix, a.match_name, a.prefix, a.route_name
                ),
                INEFFECTIVE,
            );
        }
    }
}

/// TCP and TLS rules have no names: they are `#N`, their matches `#M`.
fn l4_rules<'a, M: serde::Serialize + 'a>(
    matches_per_rule: impl Iterator<Item = &'a [M]>,
) -> Vec<RuleMatches> {
    matches_per_rule
        .enumerate()
        .map(|(rn, ms)| RuleMatches {
            name: format!("#{rn}"),
            matches: ms
                .iter()
                .enumerate()
                .map(|(mn, m)| (format!("#{mn}"), as_key(m)))
                .collect(),
        })
        .collect()
}

/// The parts of a prefix match that Istio compares for overlap.
struct PrefixMatch {
    rule: usize,
    index: usize,
    route_name: String,
    match_name: String,
    prefix: String,
    port: u32,
    method: String,
    authority: String,
    headers: Vec<(String, String)>,
    query: Vec<(String, String)>,
    without: Vec<(String, String)>,
}

fn exact_or_prefix(m: Option<&StringMatch>) -> String {
    match m {
        Some(StringMatch { exact: Some(e), .. }) if !e.is_empty() => format!("exact:{e}"),
        Some(StringMatch {
            prefix: Some(p), ..
        }) if !p.is_empty() => format!("prefix:{p}"),
        _ => String::new(),
    }
}

impl PrefixMatch {
    fn of(r: &HttpRoute, rn: usize, m: &HttpMatchRequest, mn: usize) -> Option<PrefixMatch> {
        let prefix = m.uri.as_ref()?.prefix.clone().filter(|p| !p.is_empty())?;
        let mut method = exact_or_prefix(m.method.as_deref());
        if method.is_empty() {
            method = "exact:GET".into();
        }
        let pairs = |map: &OrderedMap<StringMatch>| {
            map.iter()
                .map(|(k, v)| (k.clone(), exact_or_prefix(Some(v))))
                .collect()
        };
        Some(PrefixMatch {
            rule: rn,
            index: mn,
            route_name: route_name(r, rn),
            match_name: request_name(m, mn),
            prefix,
            port: m.port.unwrap_or(0),
            method,
            authority: exact_or_prefix(m.authority.as_deref()),
            headers: pairs(&m.headers),
            query: pairs(&m.query_params),
            without: pairs(&m.without_headers),
        })
    }

    /// Istio `coveredValidation`: does `self` (earlier) take every request `b` would?
    fn covers(&self, b: &PrefixMatch) -> bool {
        if !b.prefix.starts_with(&self.prefix) || b.port != self.port {
            return false;
        }
        let looser = |a: &str, b: &str| a == b || a.starts_with(b);
        if !looser(&self.method, &b.method) || !looser(&self.authority, &b.authority) {
            return false;
        }
        let maps = |a: &[(String, String)], b: &[(String, String)]| {
            a.len() == b.len()
                && a.iter().all(|(k, v)| {
                    b.iter()
                        .find(|(bk, _)| bk == k)
                        .is_some_and(|(_, bv)| looser(v, bv))
                })
        };
        maps(&self.headers, &b.headers)
            && maps(&self.query, &b.query)
            && maps(&self.without, &b.without)
    }
}
