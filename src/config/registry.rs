//! The service registry as Istio resolves it: which ServiceEntry registers a host, which
//! DestinationRule applies, which Gateway a VirtualService names, which Gateways this
//! instance serves. Pure look-ups shared by analysis and the runtime snapshot.

use super::model::*;
use super::resource::Resource;
use super::Config;
use std::collections::HashMap;

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

/// Host look-up tables for one kind (ServiceEntry hosts, DestinationRule hosts): which
/// resources register a host, built once per config so a look-up costs a few hash probes
/// instead of a scan of every resource.
#[derive(Debug, Default)]
pub struct HostTable {
    /// Every form of every registered host (lower case; a short name also as
    /// `name.<namespace>.svc.cluster.local`) → resource positions, ascending.
    exact: HashMap<String, Vec<usize>>,
    /// Wildcard hosts by what follows the `*` (`.example.com`; empty for `*`).
    wildcard: HashMap<String, Vec<usize>>,
    /// The lengths of the wildcard suffixes, longest first.
    wildcard_lengths: Vec<usize>,
}

fn push_once(v: &mut Vec<usize>, i: usize) {
    if v.last() != Some(&i) {
        v.push(i);
    }
}

impl HostTable {
    /// Registers `host`, written in namespace `ns`, for resource `i` (in ascending `i`).
    fn insert(&mut self, i: usize, host: &str, ns: &str) {
        for form in host_forms(host, ns) {
            push_once(self.exact.entry(form).or_default(), i);
        }
        if let Some(suffix) = host.strip_prefix('*') {
            let suffix = suffix.to_ascii_lowercase();
            if !self.wildcard_lengths.contains(&suffix.len()) {
                self.wildcard_lengths.push(suffix.len());
                self.wildcard_lengths.sort_unstable_by(|a, b| b.cmp(a));
            }
            push_once(self.wildcard.entry(suffix).or_default(), i);
        }
    }

    /// Istio's choice for host `h` looked up from namespace `ns`: among the resources
    /// `visible` accepts, the first with an exact match (short names expanded), else the
    /// first with the longest matching wildcard.
    fn best(&self, h: &str, ns: &str, visible: impl Fn(usize) -> bool) -> Option<usize> {
        let forms = host_forms(h, ns);
        let mut best: Option<usize> = None;
        // The first visible resource of `list`, when it comes before `best`.
        let consider = |list: &[usize], best: &mut Option<usize>| {
            for &i in list {
                if best.is_some_and(|b| b <= i) {
                    return;
                }
                if visible(i) {
                    *best = Some(i);
                    return;
                }
            }
        };
        for f in &forms {
            if let Some(list) = self.exact.get(f) {
                consider(list, &mut best);
            }
        }
        if best.is_some() {
            return best;
        }
        for &len in &self.wildcard_lengths {
            for f in &forms {
                let Some(cut) = f.len().checked_sub(len) else {
                    continue;
                };
                if !f.is_char_boundary(cut) {
                    continue;
                }
                if let Some(list) = self.wildcard.get(&f[cut..]) {
                    consider(list, &mut best);
                }
            }
            if best.is_some() {
                return best;
            }
        }
        None
    }
}

/// Look-up tables over a [`Config`]'s valid resources (positions in `resources`), built
/// once, on first use: by kind, by name, ServiceEntry and DestinationRule hosts, and the
/// VirtualServices naming each Gateway.
#[derive(Debug, Default)]
pub struct Index {
    by_kind: HashMap<Kind, Vec<usize>>,
    /// `Kind/namespace/name` → the first resource of that identity.
    by_name: HashMap<String, usize>,
    service_entries: HostTable,
    destination_rules: HostTable,
    /// `namespace/name` of a Gateway → VirtualServices listing it, in file order.
    by_gateway: HashMap<String, Vec<usize>>,
}

fn name_key(kind: Kind, ns: &str, name: &str) -> String {
    format!("{kind}/{ns}/{name}")
}

impl Index {
    pub fn build(resources: &[Resource]) -> Index {
        let mut ix = Index::default();
        for (i, r) in resources.iter().enumerate() {
            ix.by_kind.entry(r.kind).or_default().push(i);
            ix.by_name
                .entry(name_key(r.kind, &r.namespace, &r.name))
                .or_insert(i);
            match &r.spec {
                Spec::ServiceEntry(se) => {
                    for h in &se.hosts {
                        ix.service_entries.insert(i, h, &r.namespace);
                    }
                }
                Spec::DestinationRule(dr) => ix.destination_rules.insert(i, &dr.host, &r.namespace),
                Spec::VirtualService(vs) => {
                    for g in &vs.gateways {
                        let (ns, name) = gateway_ref(&r.namespace, g);
                        push_once(ix.by_gateway.entry(format!("{ns}/{name}")).or_default(), i);
                    }
                }
                _ => {}
            }
        }
        ix
    }

    /// Positions of the resources of `kind`, in file order.
    pub fn of_kind(&self, kind: Kind) -> &[usize] {
        self.by_kind.get(&kind).map_or(&[], Vec::as_slice)
    }

    /// Position of the (first) resource `kind namespace/name`.
    pub fn named(&self, kind: Kind, ns: &str, name: &str) -> Option<usize> {
        self.by_name.get(&name_key(kind, ns, name)).copied()
    }

    /// Positions of the VirtualServices that list Gateway `ns/name`, in file order.
    pub fn bound_to_gateway(&self, ns: &str, name: &str) -> &[usize] {
        self.by_gateway
            .get(&format!("{ns}/{name}"))
            .map_or(&[], Vec::as_slice)
    }
}

/// The ServiceEntry registering `h` (exact first, then the longest wildcard).
pub fn find_service_entry<'a>(
    c: &'a Config,
    h: &str,
    ns: &str,
) -> Option<(&'a Resource, &'a ServiceEntrySpec)> {
    let entry = |i: usize| match &c.resources[i].spec {
        Spec::ServiceEntry(se) => Some((&c.resources[i], se)),
        _ => None,
    };
    let i = c.index().service_entries.best(h, ns, |i| {
        entry(i).is_some_and(|(r, se)| visible_from(&r.namespace, &se.export_to, ns))
    })?;
    entry(i)
}

/// The DestinationRule for `h` (same host forms, exact before wildcard).
pub fn find_destination_rule<'a>(
    c: &'a Config,
    h: &str,
    ns: &str,
) -> Option<(&'a Resource, &'a DestinationRuleSpec)> {
    let rule = |i: usize| match &c.resources[i].spec {
        Spec::DestinationRule(dr) => Some((&c.resources[i], &**dr)),
        _ => None,
    };
    let i = c.index().destination_rules.best(h, ns, |i| {
        rule(i).is_some_and(|(r, dr)| visible_from(&r.namespace, &dr.export_to, ns))
    })?;
    rule(i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{check, loader};
    use std::path::Path;

    /// The scan the index replaces: every visible resource scored, exact (short names
    /// expanded) over the longest wildcard, the first of equal scores.
    fn scan<'a>(c: &'a Config, h: &str, ns: &str) -> Option<&'a str> {
        let forms = host_forms(h, ns);
        let mut best: Option<(&Resource, usize)> = None;
        for r in &c.resources {
            let Spec::ServiceEntry(se) = &r.spec else {
                continue;
            };
            if !visible_from(&r.namespace, &se.export_to, ns) {
                continue;
            }
            let score = se
                .hosts
                .iter()
                .filter_map(|reg| {
                    let reg = reg.to_ascii_lowercase();
                    if host_forms(&reg, &r.namespace)
                        .iter()
                        .any(|f| forms.contains(f))
                    {
                        Some(usize::MAX)
                    } else if reg.starts_with('*')
                        && forms
                            .iter()
                            .any(|f| super::super::host::host_subset_of(f, &reg))
                    {
                        Some(reg.len())
                    } else {
                        None
                    }
                })
                .max();
            if let Some(score) = score {
                if best.is_none_or(|(_, s)| score > s) {
                    best = Some((r, score));
                }
            }
        }
        best.map(|(r, _)| r.name.as_str())
    }

    #[test]
    fn indexed_look_ups_choose_as_the_scan_did() {
        let entries = [
            ("a", "x", "[reviews]", "[]"),
            ("b", "x", "[\"*.example.com\"]", "[]"),
            (
                "c",
                "y",
                "[\"*.api.example.com\", reviews.x.svc.cluster.local]",
                "[]",
            ),
            ("d", "y", "[\"*.svc.cluster.local\"]", "[\".\"]"),
            ("e", "z", "[\"*.example.com\", www.example.com]", "[x]"),
            ("f", "z", "[\"*.org\", \"*.com\"]", "[]"),
            ("g", "x", "[\"*.api.example.com\"]", "[\"~\"]"),
        ];
        let mut yaml = String::new();
        for (name, ns, hosts, export) in entries {
            yaml.push_str(&format!(
                "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  hosts: {hosts}\n  exportTo: {export}\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  resolution: NONE\n"
            ));
        }
        let mut loaded = loader::Loaded::default();
        loader::load_text(Path::new("r.yaml"), &yaml, &mut loaded);
        let checked = check(loaded, &[]);
        let c = checked.config;
        assert_eq!(
            c.resources.len(),
            entries.len(),
            "{:#?}",
            checked.diagnostics
        );
        let hosts = [
            "reviews",
            "REVIEWS",
            "reviews.x.svc.cluster.local",
            "db.y.svc.cluster.local",
            "www.example.com",
            "a.api.example.com",
            "example.com",
            "other.org",
            "x.com",
            "*.example.com",
            "*",
        ];
        let mut chosen = Vec::new();
        for h in hosts {
            for ns in ["x", "y", "z", "w"] {
                let got = find_service_entry(&c, h, ns).map(|(r, _)| r.name.as_str());
                assert_eq!(got, scan(&c, h, ns), "{h} from {ns}");
                chosen.push(got);
            }
        }
        // The cases reach every kind of answer.
        for name in ["a", "b", "c", "d", "e", "f"] {
            assert!(chosen.contains(&Some(name)), "{name} never chosen");
        }
        assert!(chosen.contains(&None));
    }
}
