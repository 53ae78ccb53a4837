//! Fields of Istio's API that meshgate parses but does not act on. Using one is a
//! warning naming the field, never silence: the user must know it has no effect.

use super::model::Kind;
use serde_yaml::Value;

/// (path pattern, why). `[]` stands for any list index.
type Rule = (&'static str, &'static str);

const GATEWAY: &[Rule] = &[
    ("spec.servers[].defaultEndpoint", "sidecar-only field"),
    (
        "spec.servers[].port.targetPort",
        "has no effect on Gateways (as in Istio)",
    ),
    (
        "spec.servers[].tls.caCrl",
        "certificate revocation lists are not checked",
    ),
    (
        "spec.servers[].tls.verifyCertificateSpki",
        "client certificate pinning is not implemented",
    ),
    (
        "spec.servers[].tls.verifyCertificateHash",
        "client certificate pinning is not implemented",
    ),
    (
        "spec.servers[].tls.tlsCertificates",
        "use one certificate per server (credentialName or serverCertificate)",
    ),
    (
        "spec.servers[].tls.credentialNames",
        "use a single credentialName per server",
    ),
    (
        "spec.servers[].tls.caCertCredentialName",
        "give the CA through credentialName's ca.crt or caCertificates",
    ),
];

const VIRTUAL_SERVICE: &[Rule] = &[
    ("spec.exportTo", "a gateway has no workload namespace to scope VirtualServices to; every VirtualService is visible to it"),
    ("spec.http[].match[].sourceLabels", "source workloads are a sidecar notion; a gateway ignores them"),
    ("spec.http[].match[].sourceNamespace", "source workloads are a sidecar notion; a gateway ignores them"),
    ("spec.http[].match[].statPrefix", "per-match statistics are not exported"),
    ("spec.http[].fault.delay.exponentialDelay", "only fixedDelay is implemented (as in Istio)"),
    ("spec.http[].fault.abort.http2Error", "only httpStatus and grpcStatus aborts are implemented (as in Istio)"),
    ("spec.tcp[].match[].sourceLabels", "source workloads are a sidecar notion; a gateway ignores them"),
    ("spec.tcp[].match[].sourceNamespace", "source workloads are a sidecar notion; a gateway ignores them"),
    ("spec.tcp[].match[].sourceSubnet", "source subnet matching is not implemented"),
    ("spec.tls[].match[].sourceLabels", "source workloads are a sidecar notion; a gateway ignores them"),
    ("spec.tls[].match[].sourceNamespace", "source workloads are a sidecar notion; a gateway ignores them"),
];

const DESTINATION_RULE: &[Rule] = &[(
    "spec.workloadSelector",
    "a gateway applies DestinationRules by host only",
)];

/// Traffic-policy fields not acted on; checked under every place a TrafficPolicy occurs.
const TRAFFIC_POLICY: &[Rule] = &[
    (
        "loadBalancer.zoneAwareLbSetting",
        "zone-aware balancing needs a multi-zone mesh",
    ),
    (
        "tunnel",
        "HTTP CONNECT tunnelling to upstreams is not implemented",
    ),
    (
        "proxyProtocol",
        "PROXY protocol to upstreams is not implemented",
    ),
    ("retryBudget", "retry budgets are not implemented"),
    (
        "loadBalancer.localityLbSetting",
        "meshgate has one locality: every endpoint is balanced as one",
    ),
    (
        "connectionPool.http.http2KeepAlive",
        "HTTP/2 PING keepalive to upstreams is not sent (tcpKeepalive is)",
    ),
    (
        "outlierDetection.outlierDetectionHttpErrorCodes",
        "only 5xx, gateway errors and local-origin failures are counted",
    ),
    ("tls.caCrl", "certificate revocation lists are not checked"),
];

const SERVICE_ENTRY: &[Rule] = &[
    (
        "spec.endpoints[].network",
        "multi-network meshes are not implemented",
    ),
    (
        "spec.endpoints[].locality",
        "locality-aware balancing is not implemented",
    ),
    (
        "spec.endpoints[].serviceAccount",
        "workload identities are not used",
    ),
];

const WORKLOAD_ENTRY: &[Rule] = &[
    ("spec.network", "multi-network meshes are not implemented"),
    (
        "spec.locality",
        "locality-aware balancing is not implemented",
    ),
    ("spec.serviceAccount", "workload identities are not used"),
];

const MESH_CONFIG: &[Rule] = &[];

/// Every unsupported field the document uses, as (concrete path, reason).
pub fn find(kind: Kind, doc: &Value) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    let mut check = |pattern: &str, why: &'static str| {
        let segs: Vec<&str> = pattern.split('.').collect();
        walk(doc, &segs, String::new(), why, &mut out);
    };
    match kind {
        Kind::Gateway => GATEWAY.iter().for_each(|(p, w)| check(p, w)),
        Kind::VirtualService => VIRTUAL_SERVICE.iter().for_each(|(p, w)| check(p, w)),
        Kind::DestinationRule => {
            DESTINATION_RULE.iter().for_each(|(p, w)| check(p, w));
            for base in [
                "spec.trafficPolicy",
                "spec.trafficPolicy.portLevelSettings[]",
                "spec.subsets[].trafficPolicy",
                "spec.subsets[].trafficPolicy.portLevelSettings[]",
            ] {
                for (p, w) in TRAFFIC_POLICY {
                    check(&format!("{base}.{p}"), w);
                }
            }
        }
        Kind::ServiceEntry => SERVICE_ENTRY.iter().for_each(|(p, w)| check(p, w)),
        Kind::WorkloadEntry => WORKLOAD_ENTRY.iter().for_each(|(p, w)| check(p, w)),
        Kind::MeshConfig => MESH_CONFIG.iter().for_each(|(p, w)| check(p, w)),
    }
    out
}

fn walk(
    v: &Value,
    segs: &[&str],
    path: String,
    why: &'static str,
    out: &mut Vec<(String, &'static str)>,
) {
    let Some((seg, rest)) = segs.split_first() else {
        if !v.is_null() {
            out.push((path, why));
        }
        return;
    };
    let (key, each) = match seg.strip_suffix("[]") {
        Some(k) => (k, true),
        None => (*seg, false),
    };
    let Some(child) = v.get(key) else { return };
    let child_path = if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    };
    if each {
        if let Some(items) = child.as_sequence() {
            for (i, item) in items.iter().enumerate() {
                walk(item, rest, format!("{child_path}[{i}]"), why, out);
            }
        }
    } else {
        walk(child, rest, child_path, why, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_fields_with_indices() {
        let doc: Value = serde_yaml::from_str(
            "spec:\n  http:\n  - route: []\n  - match:\n    - sourceLabels: {app: a}\n    - uri: {prefix: /}\n",
        )
        .unwrap();
        let found = find(Kind::VirtualService, &doc);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "spec.http[1].match[0].sourceLabels");
    }

    #[test]
    fn traffic_policy_fields_found_in_subsets_and_ports() {
        let doc: Value = serde_yaml::from_str(
            "spec:\n  subsets:\n  - name: a\n    trafficPolicy:\n      portLevelSettings:\n      - port: {number: 1}\n        tls: {caCrl: x}\n",
        )
        .unwrap();
        let found = find(Kind::DestinationRule, &doc);
        assert_eq!(
            found.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(),
            vec!["spec.subsets[0].trafficPolicy.portLevelSettings[0].tls.caCrl"]
        );
    }
}
