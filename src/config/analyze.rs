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
use std::collections::{BTreeMap, HashMap};

pub const REFERENCED_RESOURCE_NOT_FOUND: &str = "ReferencedResourceNotFound";
pub const HOST_NOT_FOUND_IN_GATEWAY: &str = "VirtualServiceHostNotFoundInGateway";
pub const PORT_SELECTOR_REQUIRED: &str = "VirtualServiceDestinationPortSelectorRequired";
pub const CONFLICTING_GATEWAYS: &str = "ConflictingGateways";
pub const DUPLICATE_CERTIFICATE: &str = "GatewayDuplicateCertificate";
pub const INGRESS_ROUTE_RULES_NOT_AFFECTED: &str = "IngressRouteRulesNotAffected";
/// Istio's IST0161: a Gateway server's credential is missing or unusable.
pub const INVALID_GATEWAY_CREDENTIAL: &str = "InvalidGatewayCredential";
/// meshgate's own: a Gateway server's private key file is readable by group or others.
pub const PRIVATE_KEY_READABLE: &str = "PrivateKeyReadable";
/// meshgate's own: a DestinationRule's TLS origination files are missing or unusable.
pub const INVALID_ORIGINATION_CREDENTIAL: &str = "InvalidDestinationRuleCredential";
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
    origination_credentials(c, &mut out);
    // Look-ups by name and by host, built once: analysis stays linear in the resources.
    let mut gateways_by_name: HashMap<(&str, &str), (&Resource, &GatewaySpec)> = HashMap::new();
    for &(r, g) in &gateways {
        gateways_by_name
            .entry((r.namespace.as_str(), r.name.as_str()))
            .or_insert((r, g));
    }
    let services = skipped_services(c);
    for (r, vs) in &vss {
        gateway_references(r, vs, &gateways_by_name, &mut out);
        destinations(c, &services, r, vs, &mut out);
    }
    ingress_rules_not_affected(&vss, &mut out);
    out
}

/// Skipped Kubernetes Services by their `name.namespace.svc.cluster.local` → position in
/// `skipped` (the first of a name).
fn skipped_services(c: &Config) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for (i, s) in c.skipped.iter().enumerate() {
        if s.kind == "Service" {
            m.entry(format!("{}.{}.svc.cluster.local", s.name, s.namespace))
                .or_insert(i);
        }
    }
    m
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
            let files = credential_files(&tls, base, dir.as_deref());
            if let Err(e) = files.as_ref().map_err(Clone::clone).and_then(load) {
                out.push(warn(
                    r,
                    &format!("spec.servers[{i}].tls.{}", e.field),
                    format!("{}; this server will not be served", e.message),
                    INVALID_GATEWAY_CREDENTIAL,
                ));
            }
            if let Ok(files) = &files {
                key_permissions(r, i, files, out);
            }
        }
    }
}

/// Loads every DestinationRule `tls` block's files (SIMPLE, MUTUAL) as `run` would: a
/// cluster whose files are unusable answers 503 (UF) while the rest serve, so this is a
/// warning naming the field and the file.
fn origination_credentials(c: &Config, out: &mut Vec<Diagnostic>) {
    use crate::tls::credentials::{load, load_ca, CredentialFiles};
    for r in c.of_kind(Kind::DestinationRule) {
        let Spec::DestinationRule(dr) = &r.spec else {
            continue;
        };
        fn of_policy<'a>(
            p: String,
            tp: &'a Option<TrafficPolicy>,
            blocks: &mut Vec<(String, &'a ClientTlsSettings)>,
        ) {
            let Some(tp) = tp else { return };
            if let Some(t) = &tp.tls {
                blocks.push((format!("{p}.tls"), t));
            }
            for (i, pl) in tp.port_level_settings.iter().flatten().enumerate() {
                if let Some(t) = &pl.tls {
                    blocks.push((format!("{p}.portLevelSettings[{i}].tls"), t));
                }
            }
        }
        let mut blocks = Vec::new();
        of_policy("spec.trafficPolicy".into(), &dr.traffic_policy, &mut blocks);
        for (i, s) in dr.subsets.iter().enumerate() {
            let p = format!("spec.subsets[{i}].trafficPolicy");
            of_policy(p, &s.traffic_policy, &mut blocks);
        }
        for (field, t) in blocks {
            let Some(files) = super::client_tls::resolve(c, r, t, &dr.host) else {
                continue;
            };
            let ca_field = if t.credential_name.is_some() {
                "credentialName"
            } else {
                "caCertificates"
            };
            let result = match (&files.client, &files.ca) {
                (Some((cert, key)), ca) => load(&CredentialFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                    ca: ca.clone(),
                    field: if t.credential_name.is_some() {
                        "credentialName"
                    } else {
                        "clientCertificate"
                    },
                    ca_field,
                })
                .map(|_| ()),
                (None, Some(ca)) => load_ca(ca, ca_field).map(|_| ()),
                (None, None) => Ok(()),
            };
            if let Err(e) = result {
                out.push(warn(
                    r,
                    &format!("{field}.{}", e.field),
                    format!(
                        "{}; requests to this destination will get 503 (UF)",
                        e.message
                    ),
                    INVALID_ORIGINATION_CREDENTIAL,
                ));
            }
        }
    }
}

/// A private key file others than its owner may read (mode & 0o044): served all the
/// same, but anyone on the machine in its group (or anyone at all) can impersonate the
/// server.
fn key_permissions(
    r: &Resource,
    i: usize,
    files: &crate::tls::credentials::CredentialFiles,
    out: &mut Vec<Diagnostic>,
) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(&files.key) else {
            return; // missing or unreadable: InvalidGatewayCredential says so
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o044 == 0 {
            return;
        }
        let field = if files.field == "credentialName" {
            "credentialName"
        } else {
            "privateKey"
        };
        let who = match (mode & 0o040 != 0, mode & 0o004 != 0) {
            (true, true) => "its group and all users",
            (true, false) => "its group",
            _ => "all users",
        };
        out.push(warn(
            r,
            &format!("spec.servers[{i}].tls.{field}"),
            format!(
                "private key {} (from tls.{field}) is readable by {who} (mode {mode:04o}); \
                 make it readable by its owner only (chmod 600)",
                files.key.display()
            ),
            PRIVATE_KEY_READABLE,
        ));
    }
    #[cfg(not(unix))]
    let _ = (r, i, files, out);
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

/// The hosts of the Gateway servers on one (port, bind), for overlap look-ups without
/// comparing every pair of Gateways.
#[derive(Default)]
struct PortHosts {
    /// Exact hosts (lower case), reversed → Gateways (positions).
    exact: BTreeMap<String, Vec<usize>>,
    /// Wildcard hosts `*S`: S (lower case) reversed → Gateways.
    wildcard: BTreeMap<String, Vec<usize>>,
}

fn reversed(s: &str) -> String {
    s.chars().rev().collect()
}

impl PortHosts {
    fn insert(&mut self, host: &str, gateway: usize) {
        let host = host.to_ascii_lowercase();
        let (map, key) = match host.strip_prefix('*') {
            Some(suffix) => (&mut self.wildcard, reversed(suffix)),
            None => (&mut self.exact, reversed(&host)),
        };
        let list = map.entry(key).or_default();
        if list.last() != Some(&gateway) {
            list.push(gateway);
        }
    }

    /// Adds to `out` the Gateways with a host overlapping `host` (Istio
    /// `host.Name.Matches`, as [`host::hosts_overlap`]).
    fn overlapping(&self, host: &str, out: &mut Vec<usize>) {
        let host = host.to_ascii_lowercase();
        // Hosts ending with `s`: keys starting with `s` reversed.
        let ending_with = |map: &BTreeMap<String, Vec<usize>>, s: &str, out: &mut Vec<usize>| {
            let prefix = reversed(s);
            for (_, list) in map
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
            {
                out.extend(list);
            }
        };
        // Wildcards whose suffix ends `s`: one look-up per suffix of `s`.
        let suffixes_of = |s: &str, out: &mut Vec<usize>| {
            for i in s.char_indices().map(|(i, _)| i).chain([s.len()]) {
                if let Some(list) = self.wildcard.get(&reversed(&s[i..])) {
                    out.extend(list);
                }
            }
        };
        match host.strip_prefix('*') {
            Some(suffix) => {
                ending_with(&self.exact, suffix, out);
                ending_with(&self.wildcard, suffix, out);
                suffixes_of(suffix, out);
            }
            None => {
                if let Some(list) = self.exact.get(&reversed(&host)) {
                    out.extend(list);
                }
                suffixes_of(&host, out);
            }
        }
    }
}

/// Two Gateways on the same instance and port claiming the same host (Istio
/// `ConflictingGatewayAnalyzer`): only one of them can win. Servers are indexed by port,
/// bind and host, so only the Gateways that clash are compared.
fn conflicting_gateways(
    gws: &[(&Resource, &GatewaySpec)],
    labels: &[(String, String)],
    out: &mut Vec<Diagnostic>,
) {
    let mut ports: HashMap<(u32, Option<&str>), PortHosts> = HashMap::new();
    for (j, (_, g2)) in gws.iter().enumerate() {
        for s2 in &g2.servers {
            let Some(p2) = &s2.port else { continue };
            let hosts = ports.entry((p2.number, s2.bind.as_deref())).or_default();
            for h2 in &s2.hosts {
                hosts.insert(host::split_namespace_host(h2).1, j);
            }
        }
    }
    for (i, (r, g)) in gws.iter().enumerate() {
        for (si, s) in g.servers.iter().enumerate() {
            let Some(port) = &s.port else { continue };
            let Some(hosts) = ports.get(&(port.number, s.bind.as_deref())) else {
                continue;
            };
            let mut clashing = Vec::new();
            for h in &s.hosts {
                hosts.overlapping(host::split_namespace_host(h).1, &mut clashing);
            }
            clashing.sort_unstable();
            clashing.dedup();
            let mut others: Vec<String> = clashing
                .into_iter()
                .filter(|&j| j != i)
                .filter(|&j| {
                    let g2 = gws[j].1;
                    g.selector == g2.selector
                        || (selector_matches(&g.selector, labels)
                            && selector_matches(&g2.selector, labels))
                })
                .map(|j| format!("{}/{}", gws[j].0.namespace, gws[j].0.name))
                .collect();
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

/// What makes two servers' certificates the same ([`same_certificate`]): the
/// `credentialName` (`true`), else the certificate and key files.
fn certificate_key(t: &ServerTlsSettings) -> Option<(bool, &str, &str)> {
    fn nonempty(o: &Option<String>) -> Option<&str> {
        o.as_deref().filter(|s| !s.is_empty())
    }
    match nonempty(&t.credential_name) {
        Some(name) => Some((true, name, "")),
        None => Some((
            false,
            nonempty(&t.server_certificate)?,
            nonempty(&t.private_key)?,
        )),
    }
}

/// The certificate keys of a Gateway's servers.
fn certificate_keys(g: &GatewaySpec) -> Vec<(bool, &str, &str)> {
    g.servers
        .iter()
        .filter_map(|s| s.tls.as_ref())
        .filter_map(certificate_key)
        .collect()
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
/// `CertificateAnalyzer`): a client may be routed by the wrong Gateway's hosts. Servers
/// are grouped by certificate, so only Gateways sharing one are compared.
fn duplicate_certificates(gws: &[(&Resource, &GatewaySpec)], out: &mut Vec<Diagnostic>) {
    // (is a credentialName, name or certificate, key) → Gateways (positions).
    let mut by_certificate: HashMap<(bool, &str, &str), Vec<usize>> = HashMap::new();
    for (j, (_, g2)) in gws.iter().enumerate() {
        for key in certificate_keys(g2) {
            let list = by_certificate.entry(key).or_default();
            if list.last() != Some(&j) {
                list.push(j);
            }
        }
    }
    for (i, (r, g)) in gws.iter().enumerate() {
        let mut sharing: Vec<usize> = certificate_keys(g)
            .into_iter()
            .flat_map(|k| by_certificate.get(&k).into_iter().flatten().copied())
            .filter(|&j| j != i && selector_subset(&g.selector, &gws[j].1.selector))
            .collect();
        sharing.sort_unstable();
        sharing.dedup();
        for j in sharing {
            let r2 = gws[j].0;
            debug_assert!(gws[j].1.servers.iter().any(|s2| g.servers.iter().any(
                |s| matches!((&s.tls, &s2.tls), (Some(a), Some(b)) if same_certificate(a, b))
            )));
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

/// Istio `selectorSubset`: every key of `x` present in `y` has the same value, and all are present.
fn selector_subset(x: &OrderedMap<String>, y: &OrderedMap<String>) -> bool {
    x.iter().all(|(k, v)| y.get(k) == Some(v))
}

/// Istio `GatewayAnalyzer`: every referenced Gateway exists and exposes one of the hosts.
fn gateway_references(
    r: &Resource,
    vs: &VirtualServiceSpec,
    gws: &HashMap<(&str, &str), (&Resource, &GatewaySpec)>,
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
        let found = gws.get(&(ns, name));
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
fn destinations(
    c: &Config,
    services: &HashMap<String, usize>,
    r: &Resource,
    vs: &VirtualServiceSpec,
    out: &mut Vec<Diagnostic>,
) {
    for (path, d, mirror) in all_destinations(vs) {
        if d.host.is_empty() {
            continue;
        }
        let what = if mirror { "mirror host" } else { "host" };
        match find_service_entry(c, &d.host, &r.namespace) {
            None => {
                let k8s = host_forms(&d.host, &r.namespace)
                    .iter()
                    .filter_map(|f| services.get(f))
                    .min()
                    .map(|&i| &c.skipped[i]);
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
    // Host → the VirtualServices (positions in `vss`) that split it by subsets: one of
    // their own hosts routed to with a subset.
    let mut splitters: HashMap<&str, Vec<usize>> = HashMap::new();
    for (k, (_, vs2)) in vss.iter().enumerate() {
        for rd2 in vs2.http.iter().flat_map(|h2| h2.route.iter()) {
            let Some(d2) = &rd2.destination else { continue };
            if d2.subset.as_deref().is_some_and(|s| !s.is_empty()) && vs2.hosts.contains(&d2.host) {
                let list = splitters.entry(d2.host.as_str()).or_default();
                if list.last() != Some(&k) {
                    list.push(k);
                }
            }
        }
    }
    if splitters.is_empty() {
        return;
    }
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
                for &k in splitters.get(d.host.as_str()).into_iter().flatten() {
                    let r2 = vss[k].0;
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

#[cfg(test)]
mod tests {
    use crate::config::model::GatewaySpec;
    use crate::config::{check, loader, Resource, Severity};
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

    /// The pairwise comparisons the indexed analyzers replace.
    fn pairwise(gws: &[(&Resource, &GatewaySpec)], labels: &[(String, String)]) -> Vec<String> {
        use super::*;
        let mut out = Vec::new();
        for (i, (r, g)) in gws.iter().enumerate() {
            for (si, s) in g.servers.iter().enumerate() {
                let Some(port) = &s.port else { continue };
                let mut others = Vec::new();
                for (j, (r2, g2)) in gws.iter().enumerate() {
                    let same_instance = g.selector == g2.selector
                        || (selector_matches(&g.selector, labels)
                            && selector_matches(&g2.selector, labels));
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
                    if i != j && same_instance && clash {
                        others.push(format!("{}/{}", r2.namespace, r2.name));
                    }
                }
                if !others.is_empty() {
                    others.sort();
                    out.push(format!(
                        "{}/{} {si}: {}",
                        r.namespace,
                        r.name,
                        others.join(",")
                    ));
                }
            }
        }
        for (i, (r, g)) in gws.iter().enumerate() {
            for (j, (r2, g2)) in gws.iter().enumerate() {
                let dup = g.servers.iter().any(|s| {
                    g2.servers.iter().any(|s2| match (&s.tls, &s2.tls) {
                        (Some(a), Some(b)) => same_certificate(a, b),
                        _ => false,
                    })
                });
                if i != j && selector_subset(&g.selector, &g2.selector) && dup {
                    out.push(format!(
                        "{}/{} cert {}/{}",
                        r.namespace, r.name, r2.namespace, r2.name
                    ));
                }
            }
        }
        out
    }

    #[test]
    fn indexed_gateway_analyzers_find_what_pairwise_comparison_finds() {
        use super::*;
        let servers = [
            "[{port: {number: 80, name: h, protocol: HTTP}, hosts: [\"*\"]}]",
            "[{port: {number: 80, name: h, protocol: HTTP}, hosts: [\"a/*.example.com\", b.org]}]",
            "[{port: {number: 80, name: h, protocol: HTTP}, hosts: [www.example.com]}]",
            "[{port: {number: 80, name: h, protocol: HTTP}, hosts: [\"*.api.example.com\"]}]",
            "[{port: {number: 81, name: h, protocol: HTTP}, hosts: [WWW.example.com]}]",
            "[{port: {number: 80, name: h, protocol: HTTP}, bind: 127.0.0.1, hosts: [\"*\"]}]",
            "[{port: {number: 443, name: s, protocol: HTTPS}, hosts: [x.example.com], tls: {mode: SIMPLE, credentialName: c}}]",
            "[{port: {number: 443, name: s, protocol: HTTPS}, hosts: [\"*.org\"], tls: {mode: SIMPLE, credentialName: c}}]",
            "[{port: {number: 443, name: s, protocol: HTTPS}, hosts: [y.example.com], tls: {mode: SIMPLE, serverCertificate: /a, privateKey: /k}}]",
            "[{port: {number: 443, name: s, protocol: HTTPS}, hosts: [z.example.com], tls: {mode: SIMPLE, serverCertificate: /a, privateKey: /k}}, {port: {number: 80, name: h, protocol: HTTP}, hosts: [\"*.com\"]}]",
        ];
        let selectors = [
            "{istio: ingressgateway}",
            "{app: other}",
            "{istio: ingressgateway, x: y}",
        ];
        let mut yaml = String::new();
        for (i, srv) in servers.iter().enumerate() {
            for (k, sel) in selectors.iter().enumerate().take(1 + i % 3) {
                yaml.push_str(&format!(
                    "---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: g{i}-{k}, namespace: n{}}}\nspec:\n  selector: {sel}\n  servers: {srv}\n",
                    i % 2
                ));
            }
        }
        let mut loaded = loader::Loaded::default();
        loader::load_text(Path::new("g.yaml"), &yaml, &mut loaded);
        let config = check(loaded, &[]).config;
        let gws: Vec<(&Resource, &GatewaySpec)> = config
            .resources
            .iter()
            .chain(config.invalid.iter())
            .filter_map(|r| match &r.spec {
                Spec::Gateway(g) => Some((r, g)),
                _ => None,
            })
            .collect();
        assert!(gws.len() > 15);
        let labels = vec![("istio".to_string(), "ingressgateway".to_string())];
        let mut diags = Vec::new();
        conflicting_gateways(&gws, &labels, &mut diags);
        duplicate_certificates(&gws, &mut diags);
        let got: Vec<String> = diags
            .iter()
            .map(|d| {
                let (ns, name) = d
                    .resource
                    .as_deref()
                    .unwrap()
                    .split_once(' ')
                    .unwrap()
                    .1
                    .split_once('/')
                    .unwrap();
                if d.code == Some(CONFLICTING_GATEWAYS) {
                    let si = d
                        .field
                        .as_deref()
                        .unwrap()
                        .trim_start_matches("spec.servers[")
                        .trim_end_matches(']');
                    let others = d.message.split(' ').nth(3).unwrap();
                    format!("{ns}/{name} {si}: {others}")
                } else {
                    let pair = d.message.split(['(', ')']).nth(1).unwrap();
                    format!("{ns}/{name} cert {}", pair.split(", ").nth(1).unwrap())
                }
            })
            .collect();
        let want = pairwise(&gws, &labels);
        assert!(want.len() > 10, "{want:#?}");
        assert_eq!(got, want);
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
