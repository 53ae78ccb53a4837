//! VirtualService delegation (Istio `HTTPRoute.delegate`): a root route's matches narrowed
//! by each delegate route's, as Istio merges them. Pure logic.

use crate::config::model::{HttpMatchRequest, OrderedMap, StringMatch};

/// Whether a delegate's `uri` lies within the root's: the delegate may only narrow it.
fn uri_within(root: &StringMatch, delegate: &StringMatch) -> bool {
    if root == delegate {
        return true;
    }
    match (&root.prefix, &delegate.prefix, &delegate.exact) {
        (Some(p), Some(q), _) => q.starts_with(p.as_str()),
        (Some(p), _, Some(e)) => e.starts_with(p.as_str()),
        _ => false,
    }
}

/// One field set by either side; both set and different is a conflict.
fn one<T: Clone + PartialEq>(root: &Option<T>, delegate: &Option<T>) -> Result<Option<T>, ()> {
    match (root, delegate) {
        (Some(a), Some(b)) if a != b => Err(()),
        (Some(a), _) => Ok(Some(a.clone())),
        (None, b) => Ok(b.clone()),
    }
}

fn union<T: Clone + PartialEq>(
    root: &OrderedMap<T>,
    delegate: &OrderedMap<T>,
) -> Result<OrderedMap<T>, ()> {
    let mut out = root.clone();
    for (k, v) in delegate.iter() {
        match root.get(k) {
            Some(rv) if rv != v => return Err(()),
            Some(_) => {}
            None => out.0.push((k.clone(), v.clone())),
        }
    }
    Ok(out)
}

/// The match a request must meet to reach a delegate route through a root match, or
/// `None` when the two conflict (that pairing is dropped, as Istio does).
pub fn merge(root: &HttpMatchRequest, delegate: &HttpMatchRequest) -> Option<HttpMatchRequest> {
    let uri = match (&root.uri, &delegate.uri) {
        (Some(r), Some(d)) if uri_within(r, d) => Some(d.clone()),
        (Some(_), Some(_)) => return None,
        (r, d) => r.clone().or_else(|| d.clone()),
    };
    Some(HttpMatchRequest {
        name: delegate.name.clone().or_else(|| root.name.clone()),
        uri,
        scheme: one(&root.scheme, &delegate.scheme).ok()?,
        method: one(&root.method, &delegate.method).ok()?,
        authority: one(&root.authority, &delegate.authority).ok()?,
        headers: union(&root.headers, &delegate.headers).ok()?,
        port: one(&root.port, &delegate.port).ok()?,
        source_labels: root.source_labels.clone(),
        gateways: root.gateways.clone(),
        query_params: union(&root.query_params, &delegate.query_params).ok()?,
        ignore_uri_case: match (root.ignore_uri_case, delegate.ignore_uri_case) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (a, b) => a.or(b),
        },
        without_headers: union(&root.without_headers, &delegate.without_headers).ok()?,
        source_namespace: root.source_namespace.clone(),
        stat_prefix: delegate
            .stat_prefix
            .clone()
            .or_else(|| root.stat_prefix.clone()),
    })
}

/// Every (root match × delegate match) pairing that does not conflict. A side without
/// matches matches everything.
pub fn merge_all(
    root: &[HttpMatchRequest],
    delegate: &[HttpMatchRequest],
) -> Vec<HttpMatchRequest> {
    match (root.is_empty(), delegate.is_empty()) {
        (true, _) => delegate.to_vec(),
        (false, true) => root.to_vec(),
        (false, false) => root
            .iter()
            .flat_map(|r| delegate.iter().filter_map(move |d| merge(r, d)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(y: &str) -> HttpMatchRequest {
        serde_yaml::from_str(y).unwrap()
    }

    #[test]
    fn delegates_narrow_the_root() {
        let root = m("{uri: {prefix: /productpage}, headers: {end-user: {exact: jason}}}");
        let merged = merge(&root, &m("{uri: {exact: /productpage/v1}}")).unwrap();
        assert_eq!(
            merged.uri,
            Some(m("{uri: {exact: /productpage/v1}}").uri.unwrap())
        );
        assert_eq!(merged.headers.len(), 1);
        assert!(
            merge(&root, &m("{uri: {prefix: /reviews}}")).is_none(),
            "outside the root"
        );
        assert!(merge(&root, &m("{headers: {end-user: {exact: bob}}}")).is_none());
        assert_eq!(merge_all(std::slice::from_ref(&root), &[]).len(), 1);
        assert_eq!(
            merge_all(&[], &[m("{uri: {prefix: /a}}"), m("{uri: {prefix: /b}}")]).len(),
            2
        );
        assert_eq!(
            merge_all(
                &[root],
                &[
                    m("{uri: {prefix: /productpage/x}}"),
                    m("{uri: {prefix: /b}}")
                ]
            )
            .len(),
            1
        );
    }
}
