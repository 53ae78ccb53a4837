//! `headers` operations (request and response `set`, `add`, `remove`), with a `set` of
//! `host` / `:authority` turned into a host rewrite.

use crate::config::model::*;
use std::sync::{Arc, OnceLock};

/// Istio `HeaderOperations`, names lower-cased.
#[derive(Debug, Default, Clone)]
pub struct HeaderOps {
    pub set: Vec<(String, String)>,
    pub add: Vec<(String, String)>,
    pub remove: Vec<String>,
}

impl HeaderOps {
    fn compile(o: Option<&HeaderOperations>) -> HeaderOps {
        let Some(o) = o else {
            return HeaderOps::default();
        };
        let lower = |m: &OrderedMap<String>| {
            m.iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect()
        };
        HeaderOps {
            set: lower(&o.set),
            add: lower(&o.add),
            remove: o.remove.iter().map(|k| k.to_ascii_lowercase()).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// Istio `Headers` at one level (route or destination).
#[derive(Debug, Default, Clone)]
pub struct HeaderPolicy {
    /// Request operations other than the host.
    pub request: HeaderOps,
    pub response: HeaderOps,
    /// `set` of `host` / `:authority`: Istio turns it into a host rewrite.
    pub host_rewrite: Option<String>,
}

impl HeaderPolicy {
    /// As [`HeaderPolicy::compile`], shared: every route without header operations
    /// holds the same empty policy.
    pub fn shared(h: Option<&Headers>) -> Arc<HeaderPolicy> {
        static EMPTY: OnceLock<Arc<HeaderPolicy>> = OnceLock::new();
        let p = HeaderPolicy::compile(h);
        if p.is_empty() {
            EMPTY.get_or_init(Arc::default).clone()
        } else {
            Arc::new(p)
        }
    }

    /// No operation at all.
    pub fn is_empty(&self) -> bool {
        self.request.is_empty() && self.response.is_empty() && self.host_rewrite.is_none()
    }

    pub fn compile(h: Option<&Headers>) -> HeaderPolicy {
        let mut request = HeaderOps::compile(h.and_then(|h| h.request.as_ref()));
        let mut host_rewrite = None;
        request.set.retain(|(k, v)| {
            if k == "host" || k == ":authority" {
                host_rewrite = Some(v.clone());
                false
            } else {
                true
            }
        });
        HeaderPolicy {
            request,
            response: HeaderOps::compile(h.and_then(|h| h.response.as_ref())),
            host_rewrite,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_policy_turns_host_into_a_rewrite() {
        let h: Headers = serde_yaml::from_str("{request: {set: {Host: new.com, X-A: \"1\"}, add: {x-b: \"2\"}, remove: [X-C]}, response: {remove: [server]}}").unwrap();
        let p = HeaderPolicy::compile(Some(&h));
        assert_eq!(p.host_rewrite.as_deref(), Some("new.com"));
        assert_eq!(p.request.set, vec![("x-a".to_string(), "1".to_string())]);
        assert_eq!(p.request.remove, vec!["x-c".to_string()]);
        assert_eq!(p.response.remove, vec!["server".to_string()]);
        assert!(!p.is_empty());
        let (a, b) = (HeaderPolicy::shared(None), HeaderPolicy::shared(None));
        assert!(
            a.is_empty() && Arc::ptr_eq(&a, &b),
            "one empty policy, shared"
        );
    }
}
