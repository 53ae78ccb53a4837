//! Virtual-host selection and weighted destinations: Envoy's domain matching as Istio
//! configures it, and Istio's weight semantics. Pure logic.

use super::cluster::ClusterId;
use super::host_index::{normalize, HostIndex};
use super::matcher::{RequestMatch, RequestView, StrMatch};
use super::route_policy::{HeaderPolicy, Redirect, RoutePolicy};
use serde::Serialize;
use std::sync::Arc;

/// What a matched route does.
#[derive(Debug)]
pub enum RouteAction {
    /// Forward to one of several clusters by weight.
    Forward(WeightedClusters),
    /// `directResponse`: answer at the gateway.
    DirectResponse { status: u16, body: Vec<u8> },
    /// `redirect`: a 3xx at the gateway.
    Redirect(Redirect),
    /// Egress, REGISTRY_ONLY: a Host no ServiceEntry registers (Envoy's BlackHoleCluster:
    /// 502, NR).
    BlackHole,
}

#[derive(Debug)]
pub struct Route {
    /// `VirtualService ns/name http[i]` (or the rule's name), for the config dump and logs.
    pub name: Arc<str>,
    /// The rule's own `name`: Envoy's route name (`%ROUTE_NAME%`), as Istio sets it.
    pub route_name: Option<Arc<str>>,
    /// ORed; empty matches every request.
    pub matches: Vec<RequestMatch>,
    pub action: RouteAction,
    pub policy: RoutePolicy,
}

impl Route {
    /// `None` when the route does not take the request; else the `uri` condition of the
    /// match entry that took it (if it had one).
    pub fn matching(&self, r: &RequestView) -> Option<Option<&StrMatch>> {
        if self.matches.is_empty() {
            return Some(None);
        }
        self.matches
            .iter()
            .find(|m| m.matches(r))
            .map(RequestMatch::uri)
    }
}

/// Istio weights: a destination gets weight/sum of the traffic, weight 0 nothing; a lone
/// destination without weight gets everything.
#[derive(Debug, Serialize)]
pub struct WeightedClusters {
    pub clusters: Vec<(String, u32)>,
    /// The sum of the weights: at most 2^31 × the number of destinations, so u64.
    pub total: u64,
    /// The clusters themselves, parallel to `clusters`; `None` where the name resolves to
    /// no cluster (503 NC). Filled when the route is compiled, so a request does no look-up.
    #[serde(skip)]
    pub resolved: Vec<Option<ClusterId>>,
    /// Destination-level `headers`, parallel to `clusters`.
    #[serde(skip)]
    pub headers: Vec<HeaderPolicy>,
}

impl WeightedClusters {
    pub fn new(clusters: Vec<(String, u32)>) -> WeightedClusters {
        let clusters = if clusters.len() == 1 {
            vec![(clusters[0].0.clone(), 100)]
        } else {
            clusters
        };
        let total = clusters.iter().map(|(_, w)| u64::from(*w)).sum();
        WeightedClusters {
            clusters,
            total,
            resolved: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// The index of the destination for a uniform number `r`, read as the fraction
    /// `r / 2^64` of the total weight (multiply-shift: the high bits decide).
    pub fn pick_index(&self, r: u64) -> Option<usize> {
        if self.total == 0 {
            return None;
        }
        let mut x = ((u128::from(r) * u128::from(self.total)) >> 64) as u64;
        for (i, (_, w)) in self.clusters.iter().enumerate() {
            let w = u64::from(*w);
            if x < w {
                return Some(i);
            }
            x -= w;
        }
        None
    }

    /// The cluster name for a random number `r`.
    pub fn pick(&self, r: u64) -> Option<&str> {
        self.pick_index(r).map(|i| self.clusters[i].0.as_str())
    }

    /// The resolved cluster of destination `i` (`None`: no such cluster, 503 NC).
    pub fn cluster_at(&self, i: usize) -> Option<ClusterId> {
        self.resolved.get(i).copied().flatten()
    }

    /// The resolved cluster for a random number `r` (`None`: no such cluster).
    pub fn pick_cluster(&self, r: u64) -> Option<ClusterId> {
        self.pick_index(r).and_then(|i| self.cluster_at(i))
    }
}

#[derive(Debug)]
pub struct VirtualHost {
    /// The domain this virtual host answers (`reviews.example.com`, `*.example.com`, `*`).
    pub domain: String,
    /// Gateway `tls.httpsRedirect`: every request is answered with a 301 to https.
    pub https_redirect: bool,
    /// Shared with other virtual hosts built from the same VirtualService.
    pub routes: Vec<Arc<Route>>,
}

/// A listener's virtual hosts: exact domains, then the longest `*.suffix`, then `*`.
#[derive(Debug, Default)]
pub struct RouteTable {
    pub vhosts: Vec<VirtualHost>,
    index: HostIndex,
}

impl RouteTable {
    pub fn new(vhosts: Vec<VirtualHost>) -> RouteTable {
        let mut index = HostIndex::default();
        for (i, v) in vhosts.iter().enumerate() {
            index.insert(&v.domain, i);
        }
        RouteTable { vhosts, index }
    }

    /// The one virtual host for a Host header (port stripped, case-insensitive). There is
    /// no fallback to a less specific host when its routes do not match.
    pub fn select(&self, authority: &str) -> Option<&VirtualHost> {
        let i = self.index.find(&normalize(authority))?;
        self.vhosts.get(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(domains: &[&str]) -> RouteTable {
        RouteTable::new(
            domains
                .iter()
                .map(|d| VirtualHost {
                    domain: d.to_string(),
                    https_redirect: false,
                    routes: vec![],
                })
                .collect(),
        )
    }

    #[test]
    fn the_largest_weights_do_not_overflow() {
        let w = WeightedClusters::new(vec![
            ("a".into(), i32::MAX as u32),
            ("b".into(), i32::MAX as u32),
            ("c".into(), i32::MAX as u32),
        ]);
        assert_eq!(w.total, 3 * i32::MAX as u64);
        assert_eq!(w.pick(0), Some("a"));
        assert_eq!(w.pick(u64::MAX), Some("c"));
        assert_eq!(w.pick(u64::MAX / 2), Some("b"));
    }

    #[test]
    fn exact_then_longest_wildcard_then_catch_all() {
        let t = table(&["*", "*.example.com", "*.api.example.com", "www.example.com"]);
        let sel = |h: &str| t.select(h).map(|v| v.domain.as_str());
        assert_eq!(sel("www.example.com"), Some("www.example.com"));
        assert_eq!(sel("WWW.Example.COM:8080"), Some("www.example.com"));
        assert_eq!(sel("a.api.example.com"), Some("*.api.example.com"));
        assert_eq!(
            sel("x.y.example.com"),
            Some("*.example.com"),
            "a wildcard matches any depth"
        );
        assert_eq!(
            sel("example.com"),
            Some("*"),
            "*.example.com does not match the bare domain"
        );
        assert_eq!(sel("other.org"), Some("*"));
        assert_eq!(
            table(&["a.com"]).select("b.com").map(|v| v.domain.clone()),
            None
        );
    }

    #[test]
    fn weights_follow_istio() {
        let w = WeightedClusters::new(vec![("a".into(), 80), ("b".into(), 20), ("c".into(), 0)]);
        let step = u64::MAX / 100 + 1;
        let picks: Vec<&str> = (0..100).map(|i| w.pick(i * step).unwrap()).collect();
        assert_eq!(picks.iter().filter(|p| **p == "a").count(), 80);
        assert_eq!(picks.iter().filter(|p| **p == "b").count(), 20);
        assert!(!picks.contains(&"c"), "weight 0 is never chosen");
        let lone = WeightedClusters::new(vec![("only".into(), 0)]);
        assert_eq!(
            lone.pick(12345),
            Some("only"),
            "a lone destination gets everything"
        );
    }
}
