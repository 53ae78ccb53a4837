//! Compiled request matching (Istio `HTTPMatchRequest`): regexes are compiled once, when the
//! snapshot is built, never per request. Pure logic over a [`RequestView`].

use crate::config::model::{HttpMatchRequest, OrderedMap, StringMatch};
use crate::config::regex_cache;
use regex::Regex;
use std::sync::Arc;

/// A regex of the config that does not compile. Validation compiles the same regexes,
/// so a config `validate` accepts never produces one; the snapshot leaves out the rule
/// that holds it rather than serve the rule without its condition.
#[derive(Debug)]
pub struct InvalidRegex {
    pub regex: String,
    pub source: regex::Error,
}

impl std::fmt::Display for InvalidRegex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid regex {:?}: {}", self.regex, self.source)
    }
}

impl std::error::Error for InvalidRegex {}

/// Compiles `re` (Istio's RE2 syntax). While a snapshot is compiled, each distinct
/// pattern is compiled once and shared ([`regex_cache`]).
pub fn regex(re: &str) -> Result<Arc<Regex>, InvalidRegex> {
    regex_cache::compile(re).map_err(|source| InvalidRegex {
        regex: re.to_string(),
        source,
    })
}

/// A compiled Istio `StringMatch`.
#[derive(Debug)]
pub enum StrMatch {
    Exact(String),
    Prefix(String),
    /// RE2 semantics; anchored so the whole value must match, as Envoy's `safe_regex`.
    /// Shared by every condition of the config with the same pattern.
    Regex(Arc<Regex>),
}

impl StrMatch {
    /// A header condition: as [`StrMatch::compile`], and Istio's `regex: "*"` is a presence
    /// match too (Istio `isCatchAllStringMatch`), never an RE2 regex.
    pub fn compile_header(m: &StringMatch) -> Result<Option<StrMatch>, InvalidRegex> {
        if m.regex.as_deref() == Some("*") {
            return Ok(None);
        }
        StrMatch::compile(m, false)
    }

    /// `None` for an empty match (`{}`), which means "present" for headers and query params.
    pub fn compile(m: &StringMatch, ignore_case: bool) -> Result<Option<StrMatch>, InvalidRegex> {
        let lower = |s: &str| {
            if ignore_case {
                s.to_ascii_lowercase()
            } else {
                s.to_string()
            }
        };
        Ok(if let Some(e) = &m.exact {
            Some(StrMatch::Exact(lower(e)))
        } else if let Some(p) = &m.prefix {
            Some(StrMatch::Prefix(lower(p)))
        } else if let Some(r) = &m.regex {
            Some(StrMatch::Regex(
                regex_cache::compile(&format!("^(?:{r})$")).map_err(|source| InvalidRegex {
                    regex: r.clone(),
                    source,
                })?,
            ))
        } else {
            None
        })
    }

    pub fn matches(&self, v: &str) -> bool {
        match self {
            StrMatch::Exact(e) => v == e,
            StrMatch::Prefix(p) => v.starts_with(p.as_str()),
            StrMatch::Regex(r) => r.is_match(v),
        }
    }

    fn describe(&self) -> String {
        match self {
            StrMatch::Exact(e) => format!("exact:{e}"),
            StrMatch::Prefix(p) => format!("prefix:{p}"),
            StrMatch::Regex(r) => format!("regex:{}", r.as_str()),
        }
    }
}

/// What a request offers to matching, borrowed from the session.
pub struct RequestView<'a> {
    /// The path without the query string.
    pub path: &'a str,
    /// The path with its query string, as Envoy's `:path` pseudo-header.
    pub path_and_query: &'a str,
    pub query: Option<&'a str>,
    pub method: &'a str,
    pub scheme: &'a str,
    /// The Host / :authority as sent (port included when the client sent one).
    pub authority: &'a str,
    /// The listener port the request arrived on.
    pub port: u16,
    /// Header lookup by lower-case name.
    pub header: &'a dyn Fn(&str) -> Option<&'a str>,
}

/// The condition of a match entry a request does not meet ([`RequestMatch::first_unmatched`]).
/// Header and query conditions carry their name, and `None` for a presence match.
#[derive(Debug, Clone, Copy)]
pub enum Unmatched<'a> {
    Port(u16),
    /// The `uri` condition, and whether `ignoreUriCase` is set.
    Uri(&'a StrMatch, bool),
    Scheme(&'a StrMatch),
    Method(&'a StrMatch),
    Authority(&'a StrMatch),
    Header(&'a str, Option<&'a StrMatch>),
    WithoutHeader(&'a str, Option<&'a StrMatch>),
    QueryParam(&'a str, Option<&'a StrMatch>),
}

/// One compiled `match` entry; its fields are ANDed.
#[derive(Debug, Default)]
pub struct RequestMatch {
    uri: Option<StrMatch>,
    ignore_uri_case: bool,
    headers: Vec<(String, Option<StrMatch>)>,
    port: Option<u16>,
    /// The conditions most matches do without, boxed when there are any (a snapshot may
    /// hold a hundred thousand matches).
    more: Option<Box<MoreConditions>>,
}

#[derive(Debug, Default)]
struct MoreConditions {
    scheme: Option<StrMatch>,
    method: Option<StrMatch>,
    authority: Option<StrMatch>,
    without_headers: Vec<(String, Option<StrMatch>)>,
    query_params: Vec<(String, Option<StrMatch>)>,
}

impl MoreConditions {
    fn is_empty(&self) -> bool {
        self.scheme.is_none()
            && self.method.is_none()
            && self.authority.is_none()
            && self.without_headers.is_empty()
            && self.query_params.is_empty()
    }
}

static NO_MORE_CONDITIONS: MoreConditions = MoreConditions {
    scheme: None,
    method: None,
    authority: None,
    without_headers: Vec::new(),
    query_params: Vec::new(),
};

/// Header conditions, names lower-cased (HTTP header names are case-insensitive).
fn compile_headers(
    m: &OrderedMap<StringMatch>,
) -> Result<Vec<(String, Option<StrMatch>)>, InvalidRegex> {
    m.iter()
        .map(|(k, v)| Ok((k.to_ascii_lowercase(), StrMatch::compile_header(v)?)))
        .collect()
}

/// Query parameter conditions (names are case-sensitive).
fn compile_query(
    m: &OrderedMap<StringMatch>,
) -> Result<Vec<(String, Option<StrMatch>)>, InvalidRegex> {
    m.iter()
        .map(|(k, v)| Ok((k.clone(), StrMatch::compile(v, false)?)))
        .collect()
}

/// A header's value for matching: Envoy matches the pseudo-headers `:method`,
/// `:authority`, `:scheme` and `:path` against the request line, not the header map.
fn header_value<'a>(r: &RequestView<'a>, name: &str) -> Option<&'a str> {
    match name {
        ":method" => Some(r.method),
        ":authority" => Some(r.authority),
        ":scheme" => Some(r.scheme),
        ":path" => Some(r.path_and_query),
        _ => (r.header)(name),
    }
}

impl RequestMatch {
    pub fn compile(m: &HttpMatchRequest) -> Result<RequestMatch, InvalidRegex> {
        let ignore = m.ignore_uri_case.unwrap_or(false);
        let opt = |s: &Option<Box<StringMatch>>| {
            s.as_ref()
                .map(|s| StrMatch::compile(s, false))
                .transpose()
                .map(Option::flatten)
        };
        let more = MoreConditions {
            scheme: opt(&m.scheme)?,
            method: opt(&m.method)?,
            authority: opt(&m.authority)?,
            without_headers: compile_headers(&m.without_headers)?,
            query_params: compile_query(&m.query_params)?,
        };
        Ok(RequestMatch {
            uri: m
                .uri
                .as_ref()
                .map(|u| StrMatch::compile(u, ignore))
                .transpose()?
                .flatten(),
            ignore_uri_case: ignore,
            headers: compile_headers(&m.headers)?,
            port: m.port.filter(|p| *p != 0).map(|p| p as u16),
            more: (!more.is_empty()).then(|| Box::new(more)),
        })
    }

    fn more(&self) -> &MoreConditions {
        self.more.as_deref().unwrap_or(&NO_MORE_CONDITIONS)
    }

    /// The `uri` condition (what a prefix rewrite replaces).
    pub fn uri(&self) -> Option<&StrMatch> {
        self.uri.as_ref()
    }

    pub fn matches(&self, r: &RequestView) -> bool {
        self.first_unmatched(r).is_none()
    }

    /// The first condition (in the order they are checked) that `r` does not meet, or
    /// `None` when the entry takes the request: what `meshgate explain` reports.
    pub fn first_unmatched(&self, r: &RequestView) -> Option<Unmatched<'_>> {
        if let Some(p) = self.port {
            if p != r.port {
                return Some(Unmatched::Port(p));
            }
        }
        if let Some(u) = &self.uri {
            let ok = if self.ignore_uri_case && !matches!(u, StrMatch::Regex(_)) {
                u.matches(&r.path.to_ascii_lowercase())
            } else {
                u.matches(r.path)
            };
            if !ok {
                return Some(Unmatched::Uri(u, self.ignore_uri_case));
            }
        }
        let more = self.more();
        if let Some(m) = more.scheme.as_ref().filter(|m| !m.matches(r.scheme)) {
            return Some(Unmatched::Scheme(m));
        }
        if let Some(m) = more.method.as_ref().filter(|m| !m.matches(r.method)) {
            return Some(Unmatched::Method(m));
        }
        if let Some(m) = more.authority.as_ref().filter(|m| !m.matches(r.authority)) {
            return Some(Unmatched::Authority(m));
        }
        for (name, m) in &self.headers {
            match (header_value(r, name), m) {
                (None, _) => return Some(Unmatched::Header(name, m.as_ref())),
                (Some(v), Some(m)) if !m.matches(v) => {
                    return Some(Unmatched::Header(name, Some(m)))
                }
                _ => {}
            }
        }
        // withoutHeaders: the request matches when the header match does not. Istio sets
        // Envoy's `treat_missing_header_as_empty` on these, so a missing header is matched
        // as the empty string (`regex: .*` excludes it); a presence match stays one.
        for (name, m) in &more.without_headers {
            let hit = match (header_value(r, name), m) {
                (None, None) => false,
                (Some(_), None) => true,
                (v, Some(m)) => m.matches(v.unwrap_or("")),
            };
            if hit {
                return Some(Unmatched::WithoutHeader(name, m.as_ref()));
            }
        }
        for (name, m) in &more.query_params {
            let value = query_value(r.query, name);
            match (value, m) {
                (None, _) => return Some(Unmatched::QueryParam(name, m.as_ref())),
                (Some(v), Some(m)) if !m.matches(v) => {
                    return Some(Unmatched::QueryParam(name, Some(m)))
                }
                _ => {}
            }
        }
        None
    }

    /// Istio `IsCatchAllRoute` for one match: no condition but a `/` prefix or `.*` regex.
    pub fn is_catch_all(&self) -> bool {
        let uri_all = match &self.uri {
            None => true,
            Some(StrMatch::Prefix(p)) => p == "/",
            Some(StrMatch::Regex(r)) => r.as_str() == "^(?:.*)$",
            Some(StrMatch::Exact(_)) => false,
        };
        uri_all && self.headers.is_empty() && self.more().is_empty() && self.port.is_none()
    }

    /// A short description for the config dump.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(u) = &self.uri {
            parts.push(format!(
                "uri {}{}",
                u.describe(),
                if self.ignore_uri_case {
                    " (ignore case)"
                } else {
                    ""
                }
            ));
        }
        let more = self.more();
        for (n, m) in [
            ("scheme", &more.scheme),
            ("method", &more.method),
            ("authority", &more.authority),
        ] {
            if let Some(m) = m {
                parts.push(format!("{n} {}", m.describe()));
            }
        }
        for (k, m) in &self.headers {
            parts.push(format!(
                "header {k} {}",
                m.as_ref().map_or("present".into(), StrMatch::describe)
            ));
        }
        for (k, m) in &more.without_headers {
            parts.push(format!(
                "without header {k} {}",
                m.as_ref().map_or("present".into(), StrMatch::describe)
            ));
        }
        for (k, m) in &more.query_params {
            parts.push(format!(
                "query {k} {}",
                m.as_ref().map_or("present".into(), StrMatch::describe)
            ));
        }
        if let Some(p) = self.port {
            parts.push(format!("port {p}"));
        }
        parts.join(", ")
    }
}

/// The first value of query parameter `name` (no percent-decoding, as Envoy matches raw).
fn query_value<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(yaml: &str) -> RequestMatch {
        RequestMatch::compile(&serde_yaml::from_str(yaml).unwrap()).unwrap()
    }

    fn req<'a>(
        path: &'a str,
        headers: &'a [(&'a str, &'a str)],
    ) -> (String, Vec<(String, String)>) {
        (
            path.to_string(),
            headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn check(rm: &RequestMatch, path_q: &str, method: &str, headers: &[(&str, &str)]) -> bool {
        let (path, query) = match path_q.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_q, None),
        };
        let (_, hs) = req(path, headers);
        let lookup = |n: &str| hs.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        let view = RequestView {
            path,
            path_and_query: path_q,
            query,
            method,
            scheme: "http",
            authority: "bookinfo.example.com:8080",
            port: 8080,
            header: &lookup,
        };
        rm.matches(&view)
    }

    #[test]
    fn uri_forms() {
        assert!(check(
            &m("uri: {exact: /productpage}"),
            "/productpage?u=1",
            "GET",
            &[]
        ));
        assert!(!check(
            &m("uri: {exact: /productpage}"),
            "/productpage/x",
            "GET",
            &[]
        ));
        assert!(check(
            &m("uri: {prefix: /static}"),
            "/static/css/a.css",
            "GET",
            &[]
        ));
        assert!(!check(&m("uri: {prefix: /static}"), "/stat", "GET", &[]));
        assert!(check(
            &m("uri: {regex: \"/api/v[0-9]+/.*\"}"),
            "/api/v1/products",
            "GET",
            &[]
        ));
        assert!(
            !check(&m("uri: {regex: \"/api\"}"), "/api/v1", "GET", &[]),
            "regex is a full match"
        );
        assert!(check(
            &m("{uri: {prefix: /Static}, ignoreUriCase: true}"),
            "/STATIC/x",
            "GET",
            &[]
        ));
        assert!(!check(
            &m("uri: {prefix: /Static}"),
            "/static/x",
            "GET",
            &[]
        ));
    }

    #[test]
    fn headers_presence_and_absence() {
        let jason = m("headers: {end-user: {exact: jason}}");
        assert!(check(&jason, "/", "GET", &[("end-user", "jason")]));
        assert!(!check(&jason, "/", "GET", &[("end-user", "json")]));
        assert!(!check(&jason, "/", "GET", &[]));
        assert!(check(
            &m("headers: {X-Canary: {}}"),
            "/",
            "GET",
            &[("x-canary", "")]
        ));
        assert!(check(
            &m("headers: {x-v: {prefix: v1}}"),
            "/",
            "GET",
            &[("x-v", "v1.2")]
        ));
        assert!(check(
            &m("headers: {x-v: {regex: \"v[12]\"}}"),
            "/",
            "GET",
            &[("x-v", "v2")]
        ));
        let without = m("withoutHeaders: {end-user: {exact: jason}}");
        assert!(check(&without, "/", "GET", &[]));
        assert!(check(&without, "/", "GET", &[("end-user", "other")]));
        assert!(!check(&without, "/", "GET", &[("end-user", "jason")]));
        let without_any = m("withoutHeaders: {x-debug: {}}");
        assert!(!check(&without_any, "/", "GET", &[("x-debug", "1")]));
        assert!(check(&without_any, "/", "GET", &[]));
    }

    #[test]
    fn pseudo_headers_match_the_request_line() {
        // Istio's routing test "pseudo header matches": `:method` is the request's method.
        let get = m("headers: {\":method\": {exact: GET}}");
        assert!(check(&get, "/", "GET", &[]));
        assert!(!check(&get, "/", "POST", &[]));
        assert!(check(
            &m("headers: {\":authority\": {prefix: bookinfo}}"),
            "/",
            "GET",
            &[]
        ));
        assert!(check(
            &m("headers: {\":scheme\": {exact: http}}"),
            "/",
            "GET",
            &[]
        ));
        assert!(check(
            &m("headers: {\":path\": {exact: \"/p?x=1\"}}"),
            "/p?x=1",
            "GET",
            &[]
        ));
        assert!(!check(
            &m("withoutHeaders: {\":method\": {exact: GET}}"),
            "/",
            "GET",
            &[]
        ));
    }

    #[test]
    fn without_headers_regex_forms() {
        // `regex: "*"` is a presence match (Istio's routing test "without headers regex
        // convert to present_match"): the rule applies only without the header.
        let star = m("withoutHeaders: {end-user: {regex: \"*\"}}");
        assert!(!check(&star, "/", "GET", &[("end-user", "jason")]));
        assert!(!check(&star, "/", "GET", &[("end-user", "")]));
        assert!(check(&star, "/", "GET", &[]));
        // `regex: .*` with the header missing: matched as empty, so excluded too ("without
        // headers regex match any string").
        let any = m("withoutHeaders: {end-user: {regex: \".*\"}}");
        assert!(!check(&any, "/", "GET", &[("end-user", "jason")]));
        assert!(!check(&any, "/", "GET", &[("end-user", "")]));
        assert!(!check(&any, "/", "GET", &[]));
        // And in `headers`, `regex: "*"` is presence as well.
        let present = m("headers: {end-user: {regex: \"*\"}}");
        assert!(check(&present, "/", "GET", &[("end-user", "")]));
        assert!(!check(&present, "/", "GET", &[]));
    }

    #[test]
    fn method_authority_scheme_port_query() {
        assert!(check(&m("method: {exact: POST}"), "/", "POST", &[]));
        assert!(!check(&m("method: {exact: POST}"), "/", "GET", &[]));
        assert!(check(&m("authority: {prefix: bookinfo}"), "/", "GET", &[]));
        assert!(check(&m("scheme: {exact: http}"), "/", "GET", &[]));
        assert!(!check(&m("scheme: {exact: https}"), "/", "GET", &[]));
        assert!(check(&m("port: 8080"), "/", "GET", &[]));
        assert!(!check(&m("port: 9090"), "/", "GET", &[]));
        assert!(check(
            &m("queryParams: {v: {exact: \"2\"}}"),
            "/p?a=1&v=2",
            "GET",
            &[]
        ));
        assert!(!check(
            &m("queryParams: {v: {exact: \"2\"}}"),
            "/p?v=3",
            "GET",
            &[]
        ));
        assert!(check(
            &m("queryParams: {debug: {}}"),
            "/p?debug",
            "GET",
            &[]
        ));
        assert!(!check(&m("queryParams: {debug: {}}"), "/p", "GET", &[]));
    }

    #[test]
    fn fields_are_anded() {
        let both = m("{uri: {prefix: /reviews}, headers: {end-user: {exact: jason}}}");
        assert!(check(&both, "/reviews/1", "GET", &[("end-user", "jason")]));
        assert!(!check(&both, "/reviews/1", "GET", &[]));
        assert!(!check(&both, "/ratings", "GET", &[("end-user", "jason")]));
        assert!(
            check(&m("{}"), "/anything", "GET", &[]),
            "an empty match matches everything"
        );
    }
}
