//! DestinationRule rules (Istio `ValidateDestinationRule`, `validateTrafficPolicy`, and the
//! CRD's CEL rules on warmup).

use super::rules;
use crate::config::host;
use crate::config::model::*;
use crate::config::resource::Findings;

pub fn validate(namespace: &str, dr: &DestinationRuleSpec, f: &mut Findings) {
    if dr.host.is_empty() {
        f.error("spec.host", "Required value");
    } else {
        f.check("spec.host", host::validate_wildcard_domain(&dr.host));
    }
    if let Some(tp) = &dr.traffic_policy {
        traffic_policy("spec.trafficPolicy", tp, f);
    }
    let mut names: Vec<&str> = Vec::new();
    for (i, s) in dr.subsets.iter().enumerate() {
        let sp = format!("spec.subsets[{i}]");
        if names.contains(&s.name.as_str()) {
            f.error(
                format!("{sp}.name"),
                format!("duplicate subset names: {}", s.name),
            );
        }
        names.push(&s.name);
        rules::subset_name(&format!("{sp}.name"), &s.name, f);
        rules::labels(&format!("{sp}.labels"), &s.labels, f);
        if let Some(tp) = &s.traffic_policy {
            traffic_policy(&format!("{sp}.trafficPolicy"), tp, f);
        }
    }
    rules::export_to("spec.exportTo", namespace, &dr.export_to, false, f);
    if let Some(ws) = &dr.workload_selector {
        let own = dr.export_to.iter().all(|e| e == "." || e == namespace);
        if !own {
            f.error("spec.exportTo", "destination rule with workload selector cannot have exportTo beyond current namespace");
        }
        for (k, v) in ws.match_labels.iter() {
            let p = format!("spec.workloadSelector.matchLabels.{k}");
            if k.is_empty() {
                f.error(&p, "key must not be empty");
            }
            if k.contains('*') {
                f.error(&p, "wildcard not allowed in label key match");
            }
            if v.contains('*') {
                f.error(&p, "wildcard not allowed in label value match");
            }
        }
    }
}

fn traffic_policy(p: &str, tp: &TrafficPolicy, f: &mut Findings) {
    if tp.is_empty() {
        f.error(p, "traffic policy must have at least one field");
        return;
    }
    if tp.tunnel.is_some() && tp.proxy_protocol.is_some() {
        f.error(p, "tunnel and proxyProtocol must not be set together");
    }
    policy_parts(
        p,
        &tp.outlier_detection,
        &tp.connection_pool,
        &tp.load_balancer,
        &tp.tls,
        f,
    );
    for (i, pl) in tp.port_level_settings.iter().flatten().enumerate() {
        let pp = format!("{p}.portLevelSettings[{i}]");
        match &pl.port {
            None => f.error(
                format!("{pp}.port"),
                "portTrafficPolicy must have valid port",
            ),
            Some(port) => rules::port(&format!("{pp}.port.number"), port.number, f),
        }
        if pl.outlier_detection.is_none()
            && pl.connection_pool.is_none()
            && pl.load_balancer.is_none()
            && pl.tls.is_none()
        {
            f.error(&pp, "port traffic policy must have at least one field");
        } else {
            policy_parts(
                &pp,
                &pl.outlier_detection,
                &pl.connection_pool,
                &pl.load_balancer,
                &pl.tls,
                f,
            );
        }
    }
    if let Some(t) = &tp.tunnel {
        let tpth = format!("{p}.tunnel");
        if let Some(proto) = &t.protocol {
            if !proto.is_empty() && proto != "CONNECT" && proto != "POST" {
                f.error(
                    format!("{tpth}.protocol"),
                    "tunnel protocol must be \"CONNECT\" or \"POST\"",
                );
            }
        }
        if host::validate_fqdn(&t.target_host).is_err() && !host::is_ip(&t.target_host) {
            f.error(
                format!("{tpth}.targetHost"),
                "tunnel target host must be valid FQDN or IP address",
            );
        }
        rules::port(&format!("{tpth}.targetPort"), t.target_port, f);
    }
    if let Some(rb) = &tp.retry_budget {
        if let Some(pct) = rb.percent {
            if !(0.0..=100.0).contains(&pct) {
                f.error(
                    format!("{p}.retryBudget.percent"),
                    "percent must be in 0..100",
                );
            }
        }
        rules::duration_field(
            &format!("{p}.retryBudget.budgetInterval"),
            &rb.budget_interval,
            f,
        );
    }
}

fn policy_parts(
    p: &str,
    od: &Option<OutlierDetection>,
    cp: &Option<ConnectionPoolSettings>,
    lb: &Option<LoadBalancerSettings>,
    tls: &Option<ClientTlsSettings>,
    f: &mut Findings,
) {
    if let Some(o) = od {
        let op = format!("{p}.outlierDetection");
        rules::duration_field(&format!("{op}.baseEjectionTime"), &o.base_ejection_time, f);
        rules::duration_field(&format!("{op}.interval"), &o.interval, f);
        if o.consecutive_errors.is_some_and(|v| v != 0) {
            f.warn(
                format!("{op}.consecutiveErrors"),
                "outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors instead",
            );
        }
        if !o.split_external_local_origin_errors.unwrap_or(false)
            && o.consecutive_local_origin_failures.is_some_and(|v| v > 0)
        {
            f.error(
                format!("{op}.consecutiveLocalOriginFailures"),
                "outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false",
            );
        }
        for (field, v) in [
            ("maxEjectionPercent", o.max_ejection_percent),
            ("minHealthPercent", o.min_health_percent),
        ] {
            if let Some(v) = v {
                if !(0..=100).contains(&v) {
                    f.error(
                        format!("{op}.{field}"),
                        format!("percentage {v} is not in range 0..100"),
                    );
                }
            }
        }
        for (i, c) in o.outlier_detection_http_error_codes.iter().enumerate() {
            if !(100..=599).contains(c) {
                f.error(
                    format!("{op}.outlierDetectionHttpErrorCodes[{i}]"),
                    format!("{c} is not an HTTP status code"),
                );
            }
        }
    }
    if let Some(c) = cp {
        let cpp = format!("{p}.connectionPool");
        if c.http.is_none() && c.tcp.is_none() {
            f.error(&cpp, "connection pool must have at least one field");
        }
        if let Some(h) = &c.http {
            let hp = format!("{cpp}.http");
            for (field, v) in [
                ("http1MaxPendingRequests", h.http1_max_pending_requests),
                ("http2MaxRequests", h.http2_max_requests),
                ("maxRequestsPerConnection", h.max_requests_per_connection),
                ("maxRetries", h.max_retries),
                ("maxConcurrentStreams", h.max_concurrent_streams),
            ] {
                if v.is_some_and(|v| v < 0) {
                    f.error(format!("{hp}.{field}"), "must be non-negative");
                }
            }
            rules::duration_field(&format!("{hp}.idleTimeout"), &h.idle_timeout, f);
            if h.h2_upgrade_policy == Some(H2UpgradePolicy::Upgrade)
                && h.use_client_protocol == Some(true)
            {
                f.error(
                    &hp,
                    "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
                );
            }
            if let Some(ka) = &h.http2_keep_alive {
                let kp = format!("{hp}.http2KeepAlive");
                if ka.interval.is_none() {
                    f.error(
                        format!("{kp}.interval"),
                        "http2 keepalive interval is required",
                    );
                }
                if ka.timeout.is_none() {
                    f.error(
                        format!("{kp}.timeout"),
                        "http2 keepalive timeout is required",
                    );
                }
                rules::duration_field(&format!("{kp}.interval"), &ka.interval, f);
                rules::duration_field(&format!("{kp}.timeout"), &ka.timeout, f);
            }
        }
        if let Some(t) = &c.tcp {
            let tp = format!("{cpp}.tcp");
            if t.max_connections.is_some_and(|v| v < 0) {
                f.error(
                    format!("{tp}.maxConnections"),
                    "max connections must be non-negative",
                );
            }
            rules::duration_field(&format!("{tp}.connectTimeout"), &t.connect_timeout, f);
            rules::duration_field(
                &format!("{tp}.maxConnectionDuration"),
                &t.max_connection_duration,
                f,
            );
            if let Some(idle) = &t.idle_timeout {
                // `0s` disables the idle timeout.
                match crate::config::duration::parse(idle) {
                    Ok(d) if d.as_millis() == 0 => {}
                    _ => rules::duration_field(&format!("{tp}.idleTimeout"), &t.idle_timeout, f),
                }
            }
            if let Some(ka) = &t.tcp_keepalive {
                rules::duration_field(&format!("{tp}.tcpKeepalive.time"), &ka.time, f);
                rules::duration_field(&format!("{tp}.tcpKeepalive.interval"), &ka.interval, f);
            }
        }
    }
    if let Some(l) = lb {
        load_balancer(&format!("{p}.loadBalancer"), l, f);
    }
    if let Some(t) = tls {
        client_tls(&format!("{p}.tls"), t, f);
    }
}

fn load_balancer(p: &str, l: &LoadBalancerSettings, f: &mut Findings) {
    if l.simple.is_some() && l.consistent_hash.is_some() {
        f.error(p, "only one of simple or consistentHash may be set");
    }
    if l.simple == Some(SimpleLb::Passthrough) {
        f.warn(
            format!("{p}.simple"),
            "not supported by meshgate: PASSTHROUGH forwards to the address the client asked for, which needs the egress role; ROUND_ROBIN over the registered endpoints is used",
        );
    }
    if let Some(ch) = &l.consistent_hash {
        let cp = format!("{p}.consistentHash");
        let keys = [
            ch.http_header_name.is_some(),
            ch.http_cookie.is_some(),
            ch.use_source_ip.is_some(),
            ch.http_query_parameter_name.is_some(),
        ];
        if keys.iter().filter(|b| **b).count() > 1 {
            f.error(&cp, "only one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName may be set");
        }
        if let Some(c) = &ch.http_cookie {
            if c.name.is_empty() {
                f.error(
                    format!("{cp}.httpCookie.name"),
                    "name required for HttpCookie",
                );
            }
            let mut seen: Vec<&str> = Vec::new();
            for (i, a) in c.attributes.iter().enumerate() {
                let ap = format!("{cp}.httpCookie.attributes[{i}].name");
                if a.name.is_empty() {
                    f.error(&ap, "cookie attribute name cannot be empty");
                } else if seen.contains(&a.name.as_str()) {
                    f.error(&ap, format!("duplicate cookie attribute name: {}", a.name));
                } else {
                    seen.push(&a.name);
                }
            }
            rules::duration_field(
                &format!("{cp}.httpCookie.ttl"),
                &c.ttl.clone().filter(|t| t != "0s" && t != "0"),
                f,
            );
        }
        if ch.ring_hash.is_some() && ch.maglev.is_some() {
            f.error(&cp, "only one of ringHash or maglev may be set");
        }
        if ch.minimum_ring_size.is_some_and(|v| v != 0) {
            f.warn(
                format!("{cp}.minimumRingSize"),
                "consistent hash MinimumRingSize is deprecated, use ConsistentHashLB's RingHash configuration instead",
            );
            if ch.ring_hash.is_some() || ch.maglev.is_some() {
                f.error(
                    &cp,
                    "only one of MinimumRingSize or Maglev/Ringhash can be specified",
                );
            }
        }
        if let Some(m) = &ch.maglev {
            let mp = format!("{cp}.maglev.tableSize");
            if m.table_size == 0 {
                f.error(&mp, "tableSize must be set for maglev");
            } else if m.table_size >= 5_000_011 {
                f.error(&mp, "tableSize must be less than 5000011 for maglev");
            } else if !is_prime(m.table_size) {
                f.error(&mp, "tableSize must be a prime number for maglev");
            }
        }
    }
    if l.locality_lb_setting.is_some() && l.zone_aware_lb_setting.is_some() {
        f.error(
            p,
            "only one of localityLbSetting and zoneAwareLbSetting can be set",
        );
    }
    if let Some(w) = &l.warmup {
        let wp = format!("{p}.warmup");
        match &w.duration {
            None => f.error(format!("{wp}.duration"), "Required value"),
            Some(_) => rules::duration_field(&format!("{wp}.duration"), &w.duration, f),
        }
        if let Some(mp) = w.minimum_percent {
            if !(0.0..=100.0).contains(&mp) {
                f.error(
                    format!("{wp}.minimumPercent"),
                    format!("Invalid value: {mp}: must be within 0..100"),
                );
            }
        }
        if let Some(a) = w.aggression {
            if a < 0.0 {
                f.error(
                    format!("{wp}.aggression"),
                    format!("Invalid value: {a}: must be >= 0"),
                );
            }
        }
    }
    rules::duration_field(
        &format!("{p}.warmupDurationSecs"),
        &l.warmup_duration_secs,
        f,
    );
}

fn is_prime(x: u64) -> bool {
    if x != 0 && x < 4 {
        return true;
    }
    if x & 1 == 0 {
        return false;
    }
    let mut d = 3;
    while d * d <= x {
        if x % d == 0 {
            return false;
        }
        d += 2;
    }
    true
}

/// Istio `ValidateTLS` (client side, for TLS origination).
fn client_tls(p: &str, t: &ClientTlsSettings, f: &mut Findings) {
    let set = |o: &Option<String>| o.as_deref().is_some_and(|s| !s.is_empty());
    let mode = t.mode.unwrap_or(ClientTlsMode::Disable);
    if t.insecure_skip_verify == Some(true) {
        if mode == ClientTlsMode::Simple
            && (set(&t.ca_certificates)
                || set(&t.credential_name)
                || !t.subject_alt_names.is_empty())
        {
            f.error(p, "cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true");
        }
        if mode == ClientTlsMode::Mutual
            && (set(&t.ca_certificates) || !t.subject_alt_names.is_empty())
        {
            f.error(p, "cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true");
        }
    }
    if matches!(mode, ClientTlsMode::Simple | ClientTlsMode::Mutual) && set(&t.credential_name) {
        if set(&t.client_certificate)
            || set(&t.ca_certificates)
            || set(&t.private_key)
            || set(&t.ca_crl)
        {
            f.error(p, "cannot specify client certificates or CA certificate or CA CRL If credentialName is set");
        }
        return;
    }
    if mode == ClientTlsMode::Mutual {
        if !set(&t.client_certificate) {
            f.error(
                format!("{p}.clientCertificate"),
                "client certificate required for mutual tls",
            );
        }
        if !set(&t.private_key) {
            f.error(
                format!("{p}.privateKey"),
                "private key required for mutual tls",
            );
        }
    }
    if mode == ClientTlsMode::IstioMutual {
        f.warn(
            format!("{p}.mode"),
            "not supported by meshgate: ISTIO_MUTUAL needs Istio's mesh certificates; use MUTUAL with your own certificates",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::is_prime;

    #[test]
    fn primes_as_envoy_counts_them() {
        assert!(is_prime(2) && is_prime(3) && is_prime(65537));
        assert!(!is_prime(4) && !is_prime(65536) && !is_prime(9));
    }
}
