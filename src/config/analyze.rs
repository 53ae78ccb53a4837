//! Cross-resource analysis: the `istioctl analyze` warnings a gateway user needs most
//! (istio/istio `pkg/config/analysis/analyzers`). Each warning carries Istio's message
//! type as its code where the meaning is the same; analysis never refuses a config.

use super::diagnostic::{Diagnostic, Severity};
use super::host;
use super::model::*;
use super::registry::{
    find_destination_rule, find_service_entry, gateway_ref, host_forms, selector_matches,
};
use super::resource::Resource;
use super::Config;

pub const REFERENCED_RESOURCE_NOT_FOUND: &str = "ReferencedResourceNotFound";
pub const HOST_NOT_FOUND_IN_GATEWAY: &str = "VirtualServiceHostNotFoundInGateway";
pub const PORT_SELECTOR_REQUIRED: &str = "VirtualServiceDestinationPortSelectorRequired";
pub const CONFLICTING_GATEWAYS: &str = "ConflictingGateways";
pub const DUPLICATE_CERTIFICATE: &str = "GatewayDuplicateCertificate";
pub const INGRESS_ROUTE_RULES_NOT_AFFECTED: &str = "IngressRouteRulesNotAffected";
/// Istio's IST0161: a Gateway server's credential is missing or unusable.
pub const INVALID_GATEWAY_CREDENTIAL: &str = "InvalidGatewayCredential";
/// meshgate's own: a VirtualService bound only to `mesh`, which a gateway never serves.
pub const NOT_BOUND_TO_GATEWAY: &str = "VirtualServiceNotBoundToGateway";

/// Runs every analyzer. `labels` are this instance's labels.
pub fn analyze(c: &Config, labels: &[(String, String)]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    // Subjects of analysis include refused resources: their references still deserve
    // explaining. Registry look-ups (ServiceEntry, DestinationRule) use valid ones only.
    let gateways: Vec<(&Resource, &GatewaySpec)> = c
        .resources
        .iter()
        .chain(c.invalid.iter())
        .filter_map(|r| match &r.spec {
            Spec::Gateway(g) => Some((r, g)),
            _ => None,
        })
        .collect();
    let vss: Vec<(&Resource, &VirtualServiceSpec)> = c
        .resources
        .iter()
        .chain(c.invalid.iter())
        .filter_map(|r| match &r.spec {
            Spec::VirtualService(v) => Some((r, v)),
            _ => None,
        })
        .collect();
    gateway_selectors(&gateways, labels, &mut out);
    conflicting_gateways(&gateways, labels, &mut out);
    duplicate_certificates(&gateways, &mut out);
    gateway_credentials(c, &gateways, &mut out);
    for (r, vs) in &vss {
        gateway_references(r, vs, &gateways, &mut out);
        destinations(c, r, vs, &mut out);
    }
    ingress_rules_not_affected(&vss, &mut out);
    out
}

fn warn(r: &Resource, field: &str, msg: String, code: &'static str) -> Diagnostic {
    r.diagnostic(Severity::Warning, field, msg, Some(code))
}

/// Loads every terminating server's certificate, key and client CA as `run` would: a
/// server whose files are unusable is taken out at run time while the rest serve, so this
/// is a warning (`validate --strict` fails on it).
fn gateway_credentials(c: &Config, gws: &[(&Resource, &GatewaySpec)], out: &mut Vec<Diagnostic>) {
    use crate::tls::credentials::{credential_files, load, terminates};
    use crate::tls::settings::ServerTlsSpec;
    let dir = c.credentials_dir();
    for (r, g) in gws {
        let base = r.source.file.parent().unwrap_or(std::path::Path::new("."));
        for (i, s) in g.servers.iter().enumerate() {
            let Some(tls) = &s.tls else { continue };
            let tls = ServerTlsSpec::from(tls);
            let proto = s.port.as_ref().map(|p| p.protocol.to_ascii_uppercase());
            if !matches!(proto.as_deref(), Some("HTTPS" | "TLS")) || !terminates(tls.mode) {
                continue;
            }
            if let Err(e) =
                credential_files(&tls, base, dir.as_deref()).and_then(|f| load(&f).map(drop))
            {
                out.push(warn(
                    r,
                    &format!("spec.servers[{i}].tls.{}", e.field),
                    format!("{}; this server will not be served", e.message),
                    INVALID_GATEWAY_CREDENTIAL,
                ));
            }
        }
    }
}

fn labels_string(l: &[(String, String)]) -> String {
    l.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn gateway_selectors(
    gws: &[(&Resource, &GatewaySpec)],
    labels: &[(String, String)],
    out: &mut Vec<Diagnostic>,
) {
    for (r, g) in gws {
        if !selector_matches(&g.selector, labels) {
            out.push(warn(
                r,
                "spec.selector",
                format!(
                    "selector {} matches no gateway instance: this instance's labels are {}, so this Gateway is not served (set --label or MeshConfig labels)",
                    labels_string(&g.selector.0),
                    labels_string(labels)
                ),
                REFERENCED_RESOURCE_NOT_FOUND,
            ));
        }
    }
}

/// Two Gateways on the same instance and port claiming the same host (Istio
/// `ConflictingGatewayAnalyzer`): only one of them can win.
fn conflicting_gateways(
    gws: &[(&Resource, &GatewaySpec)],
    labels: &[(String, String)],
    out: &mut Vec<Diagnostic>,
) {
    for (i, (r, g)) in gws.iter().enumerate() {
        for (si, s) in g.servers.iter().enumerate() {
            let Some(port) = &s.port else { continue };
            let mut others: Vec<String> = Vec::new();
            for (j, (r2, g2)) in gws.iter().enumerate() {
                if i == j {
                    continue;
                }
                let same_instance = g.selector == g2.selector
                    || (selector_matches(&g.selector, labels)
                        && selector_matches(&g2.selector, labels));
                if !same_instance {
                    continue;
                }
                let clash = g2.servers.iter().any(|s2| {
                    s2.port.as_ref().is_some_and(|p2| p2.number == port.number)
                        && s2.bind == s.bind
                        && s.hosts.iter().any(|h| {
                            s2.hosts.iter().any(|h2| {
                                host::hosts_overlap(
                                    host::split_namespace_host(h).1,
                                    host::split_namespace_host(h2).1,
                                )
                            })
                        })
                });
                if clash {
                    others.push(format!("{}/{}", r2.namespace, r2.name));
                }
            }
            if !others.is_empty() {
                others.sort();
                out.push(warn(
                    r,
                    &format!("spec.servers[{si}]"),
                    format!(
                        "conflict with gateways {} (port {}, hosts {}): both serve the same host on the same port",
                        others.join(","),
                        port.number,
                        s.hosts.join(",")
                    ),
                    CONFLICTING_GATEWAYS,
                ));
            }
        }
    }
}

fn same_certificate(a: &ServerTlsSettings, b: &ServerTlsSettings) -> bool {
    let nonempty = |o: &Option<String>| o.clone().filter(|s| !s.is_empty());
    match (nonempty(&a.credential_name), nonempty(&b.credential_name)) {
        (Some(x), Some(y)) => x == y,
        (None, None) => match (
            nonempty(&a.server_certificate),
            nonempty(&b.server_certificate),
            nonempty(&a.private_key),
            nonempty(&b.private_key),
        ) {
            (Some(c1), Some(c2), Some(k1), Some(k2)) => c1 == c2 && k1 == k2,
            _ => false,
        },
        _ => false,
    }
}

/// The same certificate on servers of two Gateways of one workload (Istio
/// `CertificateAnalyzer`): a client may be routed by the wrong Gateway's hosts.
fn duplicate_certificates(gws: &[(&Resource, &GatewaySpec)], out: &mut Vec<Diagnostic>) {
    for (i, (r, g)) in gws.iter().enumerate() {
        for (j, (r2, g2)) in gws.iter().enumerate() {
            if i == j || !selector_subset(&g.selector, &g2.selector) {
                continue;
            }
            let dup = g.servers.iter().any(|s| {
                g2.servers.iter().any(|s2| match (&s.tls, &s2.tls) {
                    (Some(a), Some(b)) => same_certificate(a, b),
                    _ => false,
                })
            });
            if dup {
                out.push(warn(
                    r,
                    "metadata.name",
                    format!(
                        "multiple gateways on the same workload ({}/{}, {}/{}) use the same certificate; \
                         a connection may be served by either Gateway's routes (HTTP/2 connection reuse)",
                        r.namespace, r.name, r2.namespace, r2.name
                    ),
                    DUPLICATE_CERTIFICATE,
                ));
            }
        }
    }
}

/// Istio `selectorSubset`: every key of `x` present in `y` has the same value, and all are present.
fn selector_subset(x: &OrderedMap<String>, y: &OrderedMap<String>) -> bool {
    x.iter().all(|(k, v)| y.get(k) == Some(v))
}

/// Istio `GatewayAnalyzer`: every referenced Gateway exists and exposes one of the hosts.
fn gateway_references(
    r: &Resource,
    vs: &VirtualServiceSpec,
    gws: &[(&Resource, &GatewaySpec)],
    out: &mut Vec<Diagnostic>,
) {
    if vs.gateways.is_empty() || vs.gateways.iter().all(|g| g == "mesh") {
        if !vs.hosts.is_empty() {
            out.push(warn(
                r,
                "spec.gateways",
                "bound only to the mesh (no `gateways` other than mesh): a gateway does not serve it; list the Gateway in spec.gateways".into(),
                NOT_BOUND_TO_GATEWAY,
            ));
        }
        return;
    }
    for (i, g) in vs.gateways.iter().enumerate() {
        if g == "mesh" {
            continue;
        }
        let (ns, name) = gateway_ref(&r.namespace, g);
        let field = format!("spec.gateways[{i}]");
        let found = gws
            .iter()
            .find(|(gr, _)| gr.namespace == ns && gr.name == name);
        if found.is_none() {
            out.push(warn(
                r,
                &field,
                format!("Referenced gateway not found: {g:?}"),
                REFERENCED_RESOURCE_NOT_FOUND,
            ));
        }
        let exposed = found.is_some_and(|(gr, gspec)| {
            gspec.servers.iter().flat_map(|s| s.hosts.iter()).any(|h| {
                let (hns, dns) = host::split_namespace_host(h);
                let ns_ok = match hns {
                    "*" => true,
                    "." => gr.namespace == r.namespace,
                    other => other == r.namespace,
                };
                ns_ok && vs.hosts.iter().any(|vh| host::hosts_overlap(dns, vh))
            })
        });
        if !exposed {
            out.push(warn(
                r,
                &field,
                format!(
                    "none of the hosts [{}] is exposed by gateway {ns}/{name} (check its servers' hosts and their namespace/ prefixes)",
                    vs.hosts.join(", ")
                ),
                HOST_NOT_FOUND_IN_GATEWAY,
            ));
        }
    }
}

/// Every destination of a VirtualService with its field path and whether it is a mirror.
fn all_destinations(vs: &VirtualServiceSpec) -> Vec<(String, &Destination, bool)> {
    let mut v = Vec::new();
    for (i, h) in vs.http.iter().enumerate() {
        for (j, d) in h.route.iter().enumerate() {
            if let Some(d) = &d.destination {
                v.push((format!("spec.http[{i}].route[{j}].destination"), d, false));
            }
        }
        if let Some(m) = &h.mirror {
            v.push((format!("spec.http[{i}].mirror"), m, true));
        }
        for (j, m) in h.mirrors.iter().flatten().enumerate() {
            if let Some(d) = &m.destination {
                v.push((format!("spec.http[{i}].mirrors[{j}].destination"), d, true));
            }
        }
    }
    for (i, t) in vs.tcp.iter().enumerate() {
        for (j, d) in t.route.iter().enumerate() {
            if let Some(d) = &d.destination {
                v.push((format!("spec.tcp[{i}].route[{j}].destination"), d, false));
            }
        }
    }
    for (i, t) in vs.tls.iter().enumerate() {
        for (j, d) in t.route.iter().enumerate() {
            if let Some(d) = &d.destination {
                v.push((format!("spec.tls[{i}].route[{j}].destination"), d, false));
            }
        }
    }
    v
}

/// Istio `DestinationHostAnalyzer` and `DestinationRuleAnalyzer`: hosts nothing registers,
/// ports a ServiceEntry lacks, and subsets no DestinationRule defines (the classic 503).
fn destinations(c: &Config, r: &Resource, vs: &VirtualServiceSpec, out: &mut Vec<Diagnostic>) {
    for (path, d, mirror) in all_destinations(vs) {
        if d.host.is_empty() {
            continue;
        }
        let what = if mirror { "mirror host" } else { "host" };
        match find_service_entry(c, &d.host, &r.namespace) {
            None => {
                let k8s = c.skipped.iter().find(|s| {
                    s.kind == "Service"
                        && host_forms(&d.host, &r.namespace).contains(&format!("{}.{}.svc.cluster.local", s.name, s.namespace))
                });
                let hint = match k8s {
                    Some(s) => format!(
                        "; Kubernetes Service {}/{} is not read by meshgate, register it with a ServiceEntry",
                        s.namespace, s.name
                    ),
                    None => "; register it with a ServiceEntry".into(),
                };
                out.push(warn(
                    r,
                    &format!("{path}.host"),
                    format!("Referenced {what} not found: {:?}{hint} (requests routed there fail with 503)", d.host),
                    REFERENCED_RESOURCE_NOT_FOUND,
                ));
            }
            Some((_, se)) => match &d.port {
                None if se.ports.len() > 1 => out.push(warn(
                    r,
                    &path,
                    format!(
                        "this VirtualService routes to service {:?} that exposes multiple ports {:?}; specifying a port in the destination is required",
                        d.host,
                        se.ports.iter().map(|p| p.number).collect::<Vec<_>>()
                    ),
                    PORT_SELECTOR_REQUIRED,
                )),
                Some(p) if !se.ports.is_empty() && !se.ports.iter().any(|sp| sp.number == p.number) => out.push(warn(
                    r,
                    &format!("{path}.port.number"),
                    format!("Referenced host:port not found: \"{}:{}\"", d.host, p.number),
                    REFERENCED_RESOURCE_NOT_FOUND,
                )),
                _ => {}
            },
        }
        if let Some(subset) = d.subset.as_deref().filter(|s| !s.is_empty()) {
            let defined = find_destination_rule(c, &d.host, &r.namespace)
                .is_some_and(|(_, dr)| dr.subsets.iter().any(|s| s.name == subset));
            if !defined {
                out.push(warn(
                    r,
                    &format!("{path}.subset"),
                    format!(
                        "Referenced host+subset in destinationrule not found: \"{} + {subset}\" (requests routed there fail with 503 NC)",
                        d.host
                    ),
                    REFERENCED_RESOURCE_NOT_FOUND,
                ));
            }
        }
    }
}

/// Istio `IngressRouteRulesNotAffected`: a gateway route to host X without a subset while
/// another VirtualService splits X by subsets; those subset rules do not apply to traffic
/// the gateway sends straight to X.
fn ingress_rules_not_affected(vss: &[(&Resource, &VirtualServiceSpec)], out: &mut Vec<Diagnostic>) {
    for (r, vs) in vss {
        if vs.gateways.is_empty() {
            continue;
        }
        for (i, h) in vs.http.iter().enumerate() {
            for (j, rd) in h.route.iter().enumerate() {
                let Some(d) = &rd.destination else { continue };
                if d.subset.as_deref().is_some_and(|s| !s.is_empty()) {
                    continue;
                }
                for (r2, vs2) in vss {
                    let splits = vs2.http.iter().flat_map(|h2| h2.route.iter()).any(|rd2| {
                        rd2.destination.as_ref().is_some_and(|d2| {
                            d2.subset.as_deref().is_some_and(|s| !s.is_empty())
                                && d2.host == d.host
                                && vs2.hosts.contains(&d2.host)
                        })
                    });
                    if splits {
                        out.push(warn(
                            r,
                            &format!("spec.http[{i}].route[{j}].destination.host"),
                            format!(
                                "the subset routes of VirtualService {}/{} for {:?} do not apply to traffic this gateway route sends to it",
                                r2.namespace, r2.name, d.host
                            ),
                            INGRESS_ROUTE_RULES_NOT_AFFECTED,
                        ));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{check, loader, Severity};
    use std::path::Path;

    const SE: &str = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  hosts: [reviews.bookinfo.svc.cluster.local]\n  ports: [{number: 9080, name: http, protocol: HTTP}, {number: 9443, name: https, protocol: HTTPS}]\n  resolution: STATIC\n  endpoints: [{address: 127.0.0.1}]\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  host: reviews\n  subsets: [{name: v1, labels: {version: v1}}]\n---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: bookinfo}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [\"*\"]\n";

    /// Warnings (code, field) for the shared registry plus one VirtualService route.
    fn warnings(route: &str) -> Vec<(String, String)> {
        let vs = format!("---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: vs, namespace: bookinfo}}\nspec:\n  hosts: [\"*\"]\n  gateways: [gw]\n  http:\n  - route:\n    - destination: {route}\n");
        let mut loaded = loader::Loaded::default();
        loader::load_text(Path::new("a.yaml"), &format!("{SE}{vs}"), &mut loaded);
        let checked = check(loaded, &[]);
        assert!(!checked.has_errors(), "{:#?}", checked.diagnostics);
        checked
            .diagnostics
            .into_iter()
            .filter(|d| d.severity == Severity::Warning)
            .map(|d| {
                (
                    d.code.unwrap_or("").to_string(),
                    d.field.unwrap_or_default(),
                )
            })
            .collect()
    }

    #[test]
    fn short_and_long_host_forms_resolve_to_the_same_entry() {
        assert!(warnings("{host: reviews, subset: v1, port: {number: 9080}}").is_empty());
        assert!(warnings(
            "{host: reviews.bookinfo.svc.cluster.local, subset: v1, port: {number: 9080}}"
        )
        .is_empty());
    }

    #[test]
    fn missing_subset_port_and_host_are_reported_at_their_field() {
        let f = "spec.http[0].route[0].destination";
        assert_eq!(
            warnings("{host: reviews, subset: v2, port: {number: 9080}}"),
            vec![("ReferencedResourceNotFound".into(), format!("{f}.subset"))]
        );
        assert_eq!(
            warnings("{host: reviews}"),
            vec![(
                "VirtualServiceDestinationPortSelectorRequired".into(),
                f.to_string()
            )]
        );
        assert_eq!(
            warnings("{host: reviews, port: {number: 1}}"),
            vec![(
                "ReferencedResourceNotFound".into(),
                format!("{f}.port.number")
            )]
        );
        assert_eq!(
            warnings("{host: ratings, port: {number: 1}}"),
            vec![("ReferencedResourceNotFound".into(), format!("{f}.host"))]
        );
    }

    #[test]
    fn export_to_limits_visibility() {
        use crate::config::registry::visible_from;
        assert!(visible_from("a", &[], "b"));
        assert!(visible_from("a", &[".".into()], "a"));
        assert!(!visible_from("a", &[".".into()], "b"));
        assert!(visible_from("a", &["b".into()], "b"));
        assert!(visible_from("a", &["*".into()], "b"));
        assert!(!visible_from("a", &["~".into()], "a"));
    }

    #[test]
    fn gateway_reference_forms() {
        use crate::config::registry::gateway_ref;
        assert_eq!(gateway_ref("default", "gw"), ("default", "gw"));
        assert_eq!(
            gateway_ref("default", "istio-system/gw"),
            ("istio-system", "gw")
        );
        assert_eq!(
            gateway_ref("default", "gw.istio-system.svc.cluster.local"),
            ("istio-system", "gw")
        );
    }
}
