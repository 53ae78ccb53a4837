//! Stage 4: clusters. Every destination resolved through ServiceEntries, WorkloadEntries
//! and DestinationRules into a [`ClusterSpec`] with an id routes refer to.

use crate::config::model::*;
use crate::config::registry::{find_destination_rule, find_service_entry};
use crate::config::resource::Resource;
use crate::config::Config;
use crate::snapshot::cluster::{
    cluster_name, ClusterId, ClusterPolicy, ClusterSpec, CONNECT_TIMEOUT,
};
use crate::snapshot::{cluster, Snapshot};
use std::sync::Arc;
use std::time::Duration;

/// A MeshConfig duration (`connectTimeout`, `dnsRefreshRate`), if set and not zero.
fn mesh_duration(c: &Config, field: impl Fn(&MeshConfigSpec) -> Option<&str>) -> Option<Duration> {
    c.mesh_config()
        .and_then(field)
        .and_then(|d| crate::config::duration::parse(d).ok())
        .filter(|d| !d.is_zero())
}

/// AUTO_PASSTHROUGH may name any registered service: build a cluster for every
/// ServiceEntry host and port, with and without each DestinationRule subset.
pub(super) fn ensure_all_clusters(c: &Config, snap: &mut Snapshot) {
    for ser in c.of_kind(Kind::ServiceEntry) {
        let Spec::ServiceEntry(se) = &ser.spec else {
            continue;
        };
        for h in &se.hosts {
            let subsets: Vec<String> = std::iter::once(String::new())
                .chain(
                    find_destination_rule(c, h, &ser.namespace)
                        .into_iter()
                        .flat_map(|(_, dr)| dr.subsets.iter().map(|s| s.name.clone())),
                )
                .collect();
            for p in &se.ports {
                for subset in &subsets {
                    let d = Destination {
                        host: h.clone(),
                        subset: (!subset.is_empty()).then(|| subset.clone()),
                        port: Some(PortSelector { number: p.number }),
                    };
                    ensure_cluster(c, ser, &d, snap);
                }
            }
        }
    }
}

/// The cluster name for a destination, building the cluster on first use. A destination
/// that resolves to nothing gets a name no cluster has (Envoy's 503 NC at request time).
pub(super) fn ensure_cluster(
    c: &Config,
    vr: &Resource,
    d: &Destination,
    snap: &mut Snapshot,
) -> String {
    let subset = d.subset.clone().unwrap_or_default();
    let Some((ser, se)) = find_service_entry(c, &d.host, &vr.namespace) else {
        let port = d.port.as_ref().map_or(0, |p| p.number);
        return cluster_name(port, &subset, &d.host);
    };
    // The registered host name: the one of the entry's hosts this destination names.
    let fqdn = se
        .hosts
        .iter()
        .find(|h| {
            crate::config::registry::host_forms(&d.host, &vr.namespace)
                .contains(&h.to_ascii_lowercase())
        })
        .cloned()
        .unwrap_or_else(|| d.host.clone());
    let port = match &d.port {
        Some(p) => se.ports.iter().find(|sp| sp.number == p.number),
        None => se.ports.first(),
    };
    let Some(port) = port else {
        let n = d.port.as_ref().map_or(0, |p| p.number);
        return cluster_name(n, &subset, &fqdn);
    };
    let name = cluster_name(port.number, &subset, &fqdn);
    if snap.cluster_ids.contains_key(&name) {
        return name;
    }
    let found_dr = find_destination_rule(c, &d.host, &vr.namespace);
    let dr = found_dr.map(|(_, dr)| dr);
    let subset_labels = if subset.is_empty() {
        Some(OrderedMap::default())
    } else {
        dr.and_then(|dr| dr.subsets.iter().find(|s| s.name == subset))
            .map(|s| s.labels.clone())
    };
    let Some(subset_labels) = subset_labels else {
        return name; // subset not defined: no cluster (503 NC)
    };
    let (endpoints, discovery, dns) = cluster::endpoints(c, ser, se, &fqdn, port, &subset_labels);
    let mut cluster = ClusterSpec::new(name.clone(), endpoints);
    cluster.discovery = discovery;
    cluster.target_port = port.target_port.unwrap_or(port.number) as u16;
    cluster.dns = dns;
    cluster.dns_refresh_rate =
        mesh_duration(c, |m| m.dns_refresh_rate.as_deref()).unwrap_or(cluster::DNS_REFRESH_RATE);
    let connect_timeout = mesh_duration(c, |m| m.connect_timeout.as_deref());
    cluster.policy = ClusterPolicy::of(
        dr,
        &subset,
        port,
        connect_timeout.unwrap_or(CONNECT_TIMEOUT),
    );
    cluster.policy.tls = cluster::upstream_tls(c, found_dr, &subset, port.number, &fqdn);
    cluster.service = cluster::ServiceRef {
        host: fqdn.clone(),
        namespace: ser.namespace.clone(),
        port: port.number,
        version: subset_labels
            .get("version")
            .cloned()
            .or_else(|| (!subset.is_empty()).then(|| subset.clone())),
        app: subset_labels.get("app").cloned(),
        subset,
    };
    let id = ClusterId(snap.clusters.len() as u32);
    snap.clusters.push(Arc::new(cluster));
    snap.cluster_ids.insert(name.clone(), id);
    name
}
