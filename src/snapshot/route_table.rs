//! Virtual-host selection and weighted destinations: Envoy's domain matching as Istio
//! configures it, and Istio's weight semantics. Pure logic.

use super::cluster::Cluster;
use super::matcher::{RequestMatch, RequestView};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

/// What a matched route does.
#[derive(Debug)]
pub enum RouteAction {
    /// Forward to one of several clusters by weight.
    Forward(WeightedClusters),
    /// `directResponse`: answer at the gateway.
    DirectResponse { status: u16, body: Vec<u8> },
}

#[derive(Debug)]
pub struct Route {
    /// `VirtualService ns/name http[i]` (or the rule's name), for the config dump and logs.
    pub name: Arc<str>,
    /// ORed; empty matches every request.
    pub matches: Vec<RequestMatch>,
    pub action: RouteAction,
}

impl Route {
    pub fn matches(&self, r: &RequestView) -> bool {
        self.matches.is_empty() || self.matches.iter().any(|m| m.matches(r))
    }
}

/// Istio weights: a destination gets weight/sum of the traffic, weight 0 nothing; a lone
/// destination without weight gets everything.
#[derive(Debug, Serialize)]
pub struct WeightedClusters {
    pub clusters: Vec<(String, u32)>,
    pub total: u32,
    /// The clusters themselves, parallel to `clusters`; `None` where the name resolves to
    /// no cluster (503 NC). Filled when the route is compiled, so a request does no look-up.
    #[serde(skip)]
    pub resolved: Vec<Option<Arc<Cluster>>>,
}

impl WeightedClusters {
    pub fn new(clusters: Vec<(String, u32)>) -> WeightedClusters {
        let clusters = if clusters.len() == 1 {
            vec![(clusters[0].0.clone(), 100)]
        } else {
            clusters
        };
        let total = clusters.iter().map(|(_, w)| *w).sum();
        WeightedClusters {
            clusters,
            total,
            resolved: Vec::new(),
        }
    }

    /// The index of the destination for a random number `r` (any u64; reduced modulo
    /// the total weight).
    pub fn pick_index(&self, r: u64) -> Option<usize> {
        if self.total == 0 {
            return None;
        }
        let mut x = (r % u64::from(self.total)) as u32;
        for (i, (_, w)) in self.clusters.iter().enumerate() {
            if x < *w {
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

    /// The resolved cluster for a random number `r` (`None`: no such cluster).
    pub fn pick_cluster(&self, r: u64) -> Option<&Arc<Cluster>> {
        self.pick_index(r)
            .and_then(|i| self.resolved.get(i))
            .and_then(Option::as_ref)
    }
}

#[derive(Debug)]
pub struct VirtualHost {
    /// The domain this virtual host answers (`reviews.example.com`, `*.example.com`, `*`).
    pub domain: String,
    /// Shared with other virtual hosts built from the same VirtualService.
    pub routes: Vec<Arc<Route>>,
}

/// A listener's virtual hosts: exact domains, then the longest `*.suffix`, then `*`.
#[derive(Debug, Default)]
pub struct RouteTable {
    pub vhosts: Vec<VirtualHost>,
    exact: HashMap<String, usize>,
    /// (suffix including the leading dot, vhost index), longest suffix first.
    wildcards: Vec<(String, usize)>,
    catch_all: Option<usize>,
}

impl RouteTable {
    pub fn new(vhosts: Vec<VirtualHost>) -> RouteTable {
        let mut t = RouteTable::default();
        for (i, v) in vhosts.iter().enumerate() {
            let d = v.domain.to_ascii_lowercase();
            if d == "*" {
                t.catch_all = Some(i);
            } else if let Some(suffix) = d.strip_prefix('*') {
                t.wildcards.push((suffix.to_string(), i));
            } else {
                t.exact.insert(d, i);
            }
        }
        t.wildcards.sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        t.vhosts = vhosts;
        t
    }

    /// The one virtual host for a Host header (port stripped, case-insensitive). There is
    /// no fallback to a less specific host when its routes do not match.
    pub fn select(&self, authority: &str) -> Option<&VirtualHost> {
        let host = strip_port(authority).to_ascii_lowercase();
        let host = host.trim_end_matches('.');
        let i = self
            .exact
            .get(host)
            .copied()
            .or_else(|| {
                self.wildcards
                    .iter()
                    .find(|(suffix, _)| {
                        host.len() > suffix.len() && host.ends_with(suffix.as_str())
                    })
                    .map(|(_, i)| *i)
            })
            .or(self.catch_all)?;
        self.vhosts.get(i)
    }
}

/// `host:port` → `host`; `[v6]:port` → `[v6]`.
pub fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(i) => &authority[..=i],
            None => authority,
        };
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|c| c.is_ascii_digit()) => h,
        _ => authority,
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
                    routes: vec![],
                })
                .collect(),
        )
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
    fn ports_and_ipv6_are_stripped() {
        assert_eq!(strip_port("a.com:80"), "a.com");
        assert_eq!(strip_port("a.com"), "a.com");
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
    }

    #[test]
    fn weights_follow_istio() {
        let w = WeightedClusters::new(vec![("a".into(), 80), ("b".into(), 20), ("c".into(), 0)]);
        let picks: Vec<&str> = (0..100).map(|r| w.pick(r).unwrap()).collect();
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
