//! The service registry as Istio resolves it: which ServiceEntry registers a host, which
//! DestinationRule applies, which Gateway a VirtualService names, which Gateways this
//! instance serves. Pure look-ups shared by analysis and the runtime snapshot.

use super::host;
use super::model::*;
use super::resource::Resource;
use super::Config;

/// Does a Gateway's `selector` pick an instance with these labels? (An empty selector
/// picks every instance, as in Istio.)
pub fn selector_matches(selector: &OrderedMap<String>, labels: &[(String, String)]) -> bool {
    selector
        .iter()
        .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
}

/// Resolves a VirtualService's gateway reference to (namespace, name).
pub fn gateway_ref<'a>(vs_ns: &'a str, g: &'a str) -> (&'a str, &'a str) {
    match g.split_once('/') {
        Some((ns, name)) => (ns, name),
        None => match g.split_once('.') {
            // Legacy `name.namespace[.svc.cluster.local]`.
            Some((name, rest)) => (rest.split('.').next().unwrap_or(rest), name),
            None => (vs_ns, g),
        },
    }
}

/// The host forms Istio accepts for a destination written in namespace `ns`: the name as
/// written and, for a short name, `name.ns.svc.cluster.local`.
pub fn host_forms(h: &str, ns: &str) -> Vec<String> {
    let mut v = vec![h.to_ascii_lowercase()];
    if !h.contains('.') {
        v.push(format!("{}.{ns}.svc.cluster.local", h.to_ascii_lowercase()));
    }
    v
}

/// Istio `exportTo` visibility: may a resource of namespace `res_ns` be used from `from_ns`?
/// Empty means visible everywhere; `.` its own namespace; `*` everywhere; `~` nowhere.
pub fn visible_from(res_ns: &str, export_to: &[String], from_ns: &str) -> bool {
    export_to.is_empty()
        || export_to
            .iter()
            .any(|e| e == "*" || e == from_ns || (e == "." && res_ns == from_ns))
}

/// How well a registered host (written in namespace `reg_ns`) matches the looked-up host
/// forms: an exact match (short names expanded) beats any wildcard, a longer wildcard a
/// shorter one; `None` when it does not match.
fn host_match_score(registered: &str, reg_ns: &str, forms: &[String]) -> Option<usize> {
    let reg = registered.to_ascii_lowercase();
    if host_forms(&reg, reg_ns).iter().any(|f| forms.contains(f)) {
        Some(usize::MAX)
    } else if reg.starts_with('*') && forms.iter().any(|f| host::host_subset_of(f, &reg)) {
        Some(reg.len())
    } else {
        None
    }
}

/// The visible resource whose host best matches `h` looked up from namespace `ns`;
/// `hosts_of` gives a resource's hosts and `exportTo`, or `None` for other kinds.
fn best_by_host<'a, T: 'a>(
    c: &'a Config,
    h: &str,
    ns: &str,
    hosts_of: impl Fn(&'a Spec) -> Option<(T, Vec<&'a str>, &'a [String])>,
) -> Option<(&'a Resource, T)> {
    let forms = host_forms(h, ns);
    let mut best: Option<(&Resource, T, usize)> = None;
    for r in &c.resources {
        let Some((item, hosts, export_to)) = hosts_of(&r.spec) else {
            continue;
        };
        if !visible_from(&r.namespace, export_to, ns) {
            continue;
        }
        let score = hosts
            .iter()
            .filter_map(|rh| host_match_score(rh, &r.namespace, &forms))
            .max();
        if let Some(score) = score {
            if best.as_ref().is_none_or(|(_, _, s)| score > *s) {
                best = Some((r, item, score));
            }
        }
    }
    best.map(|(r, item, _)| (r, item))
}

/// The ServiceEntry registering `h` (exact first, then the longest wildcard).
pub fn find_service_entry<'a>(
    c: &'a Config,
    h: &str,
    ns: &str,
) -> Option<(&'a Resource, &'a ServiceEntrySpec)> {
    best_by_host(c, h, ns, |spec| match spec {
        Spec::ServiceEntry(se) => Some((
            se,
            se.hosts.iter().map(String::as_str).collect(),
            &se.export_to[..],
        )),
        _ => None,
    })
}

/// The DestinationRule for `h` (same host forms, exact before wildcard).
pub fn find_destination_rule<'a>(
    c: &'a Config,
    h: &str,
    ns: &str,
) -> Option<(&'a Resource, &'a DestinationRuleSpec)> {
    best_by_host(c, h, ns, |spec| match spec {
        Spec::DestinationRule(dr) => Some((&**dr, vec![dr.host.as_str()], &dr.export_to[..])),
        _ => None,
    })
}
