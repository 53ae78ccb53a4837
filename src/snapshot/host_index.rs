//! Envoy's host-name matching, shared by virtual hosts (the `Host` header) and filter
//! chains (the TLS SNI): an exact name first, then the longest `*.suffix` (any depth),
//! then `*`. Pure logic.

use std::collections::HashMap;

/// Host patterns → the entries (indices) registered for them, in registration order.
#[derive(Debug, Default)]
pub struct HostIndex {
    exact: HashMap<String, Vec<usize>>,
    /// (suffix including the leading dot, entries), longest suffix first.
    wildcards: Vec<(String, Vec<usize>)>,
    catch_all: Vec<usize>,
}

impl HostIndex {
    /// Registers `pattern` (case-insensitive) for entry `i`.
    pub fn insert(&mut self, pattern: &str, i: usize) {
        let d = pattern.to_ascii_lowercase();
        if d == "*" {
            self.catch_all.push(i);
        } else if let Some(suffix) = d.strip_prefix('*') {
            match self.wildcards.iter_mut().find(|(s, _)| s == suffix) {
                Some((_, v)) => v.push(i),
                None => {
                    self.wildcards.push((suffix.to_string(), vec![i]));
                    self.wildcards.sort_by_key(|w| std::cmp::Reverse(w.0.len()));
                }
            }
        } else {
            self.exact.entry(d).or_default().push(i);
        }
    }

    /// The entries for `host` (already lower-case, no port, no trailing dot), most specific
    /// pattern first; within one pattern, in registration order.
    pub fn candidates<'a>(&'a self, host: &'a str) -> impl Iterator<Item = usize> + 'a {
        let exact = self.exact.get(host).into_iter().flatten();
        let wild = self
            .wildcards
            .iter()
            .filter(move |(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix.as_str()))
            .flat_map(|(_, v)| v);
        exact.chain(wild).chain(&self.catch_all).copied()
    }

    /// The first entry of the most specific pattern matching `host`.
    pub fn find(&self, host: &str) -> Option<usize> {
        self.candidates(host).next()
    }

    /// Entries registered under `*`.
    pub fn catch_all(&self) -> &[usize] {
        &self.catch_all
    }
}

/// A Host header or SNI in the form the index takes: port stripped, lower-case, no
/// trailing dot. Borrows when it already is.
pub fn normalize(authority: &str) -> std::borrow::Cow<'_, str> {
    let host = strip_port(authority).trim_end_matches('.');
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(host.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(host)
    }
}

/// `host[:port]` → (host, port); `[v6]:port` → (`[v6]`, port). A trailing `:` with no
/// digits is not a port.
pub fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    if authority.starts_with('[') {
        return match authority.find("]:") {
            Some(i) => (&authority[..=i], Some(&authority[i + 2..])),
            None => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()) => (h, Some(p)),
        _ => (authority, None),
    }
}

/// `host:port` → `host`; `[v6]:port` → `[v6]`.
pub fn strip_port(authority: &str) -> &str {
    split_host_port(authority).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specificity_order() {
        let mut ix = HostIndex::default();
        for (i, p) in [
            "*",
            "*.example.com",
            "*.api.example.com",
            "www.example.com",
            "WWW.example.com",
        ]
        .iter()
        .enumerate()
        {
            ix.insert(p, i);
        }
        let all = |h: &str| ix.candidates(h).collect::<Vec<_>>();
        assert_eq!(all("www.example.com"), vec![3, 4, 1, 0]);
        assert_eq!(all("a.api.example.com"), vec![2, 1, 0]);
        assert_eq!(all("example.com"), vec![0]);
        assert_eq!(ix.find("x.y.example.com"), Some(1));
        assert_eq!(HostIndex::default().find("a"), None);
    }

    #[test]
    fn normalizing() {
        assert_eq!(normalize("A.com:80"), "a.com");
        assert_eq!(normalize("a.com."), "a.com");
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(split_host_port("a.com:80"), ("a.com", Some("80")));
        assert_eq!(split_host_port("a.com:x"), ("a.com:x", None));
        assert_eq!(split_host_port("[::1]:8080"), ("[::1]", Some("8080")));
    }
}
