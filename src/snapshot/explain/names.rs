//! How the trace writes things: conditions, durations, shares, host-name matches.

use crate::snapshot::host_index::HostIndex;
use crate::snapshot::matcher::StrMatch;
use std::time::Duration;

/// A string condition as the config wrote it: `exact "/a"`, `prefix "/a"`, `regex "…"`.
pub(super) fn str_match(m: &StrMatch) -> String {
    match m {
        StrMatch::Exact(e) => format!("exact {e:?}"),
        StrMatch::Prefix(p) => format!("prefix {p:?}"),
        StrMatch::Regex(r) => {
            // Compiled anchored (`^(?:…)$`); the config's pattern is the inside.
            let s = r.as_str();
            let inner = s
                .strip_prefix("^(?:")
                .and_then(|s| s.strip_suffix(")$"))
                .unwrap_or(s);
            format!("regex {inner:?}")
        }
    }
}

/// `exact "x"`, or `present` for a presence match.
pub(super) fn opt_match(m: Option<&StrMatch>) -> String {
    m.map_or_else(|| "present".to_string(), str_match)
}

/// A duration the way the config writes them: `10s`, `1h`, `250ms`, `1m30s`.
pub(super) fn duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    let ms = d.as_millis();
    if ms % 1000 != 0 {
        return if ms >= 1000 {
            format!("{:.3}s", d.as_secs_f64())
        } else if ms > 0 {
            format!("{ms}ms")
        } else {
            format!("{}us", d.as_micros())
        };
    }
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    let mut out = String::new();
    for (n, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
}

/// A fraction of requests as a percentage: `50%`, `12.5%`.
pub(super) fn percent(fraction: f64) -> String {
    let p = format!("{:.2}", fraction * 100.0);
    format!("{}%", p.trim_end_matches('0').trim_end_matches('.'))
}

/// Why a host (a Host header or an SNI, normalized) selects pattern `chosen` among
/// `patterns`: Envoy's order, exact, then the longest `*.suffix`, then `*`.
pub(super) fn host_choice(chosen: &str, host: &str, patterns: &[&str]) -> String {
    let others = |f: &dyn Fn(&str) -> bool| patterns.iter().any(|p| *p != chosen && f(p));
    if chosen == "*" {
        if host.is_empty() {
            return "catch-all: the request names no host".into();
        }
        let none = if others(&|p: &str| p.starts_with("*.")) {
            "no exact or wildcard name takes"
        } else {
            "no exact name takes"
        };
        format!("catch-all: {none} {host:?}")
    } else if let Some(suffix) = chosen.strip_prefix('*') {
        let longest = if others(&|p: &str| p.starts_with("*.")) {
            " (the longest wildcard that does)"
        } else {
            ""
        };
        format!("wildcard: no exact name takes {host:?}, it ends with {suffix:?}{longest}")
    } else {
        "exact name".into()
    }
}

/// The pattern of `patterns` (lower-case) that host-name matching picks for `host`.
pub(super) fn best_pattern<'a>(host: &str, patterns: &[&'a str]) -> Option<&'a str> {
    let mut ix = HostIndex::default();
    for (i, p) in patterns.iter().enumerate() {
        ix.insert(p, i);
    }
    ix.find(host).map(|i| patterns[i])
}

/// Up to `n` items joined, with a count of the rest.
pub(super) fn some_of(items: &[String], n: usize) -> String {
    if items.len() <= n {
        items.join(", ")
    } else {
        format!("{}, … ({} more)", items[..n].join(", "), items.len() - n)
    }
}

/// A body as an operator reads it: the text (cut) when it is UTF-8, else its size.
pub(super) fn body(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok("") => "no body".into(),
        Ok(s) => {
            let one_line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
            let cut: String = one_line.chars().take(60).collect();
            let more = if cut.len() < one_line.len() {
                "…"
            } else {
                ""
            };
            format!("body {} bytes {:?}", b.len(), format!("{cut}{more}"))
        }
        Err(_) => format!("body {} bytes (binary)", b.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_shares() {
        assert_eq!(duration(Duration::from_secs(10)), "10s");
        assert_eq!(duration(Duration::from_secs(3600)), "1h");
        assert_eq!(duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(duration(Duration::from_millis(250)), "250ms");
        assert_eq!(duration(Duration::from_millis(1500)), "1.500s");
        assert_eq!(percent(0.8), "80%");
        assert_eq!(percent(1.0), "100%");
        assert_eq!(percent(0.125), "12.5%");
        assert_eq!(percent(1.0 / 3.0), "33.33%");
    }

    #[test]
    fn host_choices() {
        let p = ["*", "*.example.com", "*.a.example.com", "www.example.com"];
        assert_eq!(best_pattern("www.example.com", &p), Some("www.example.com"));
        assert_eq!(best_pattern("x.a.example.com", &p), Some("*.a.example.com"));
        assert_eq!(best_pattern("example.org", &p), Some("*"));
        assert_eq!(best_pattern("example.org", &["a.com"]), None);
        assert_eq!(
            host_choice("*.a.example.com", "x.a.example.com", &p),
            "wildcard: no exact name takes \"x.a.example.com\", it ends with \".a.example.com\" (the longest wildcard that does)"
        );
        assert_eq!(
            host_choice("*", "example.org", &p),
            "catch-all: no exact or wildcard name takes \"example.org\""
        );
        assert_eq!(host_choice("a.com", "a.com", &p), "exact name");
    }

    #[test]
    fn conditions_read_as_written() {
        let re = StrMatch::Regex(regex::Regex::new("^(?:/api/v[0-9]+)$").unwrap().into());
        assert_eq!(str_match(&re), "regex \"/api/v[0-9]+\"");
        assert_eq!(str_match(&StrMatch::Prefix("/a".into())), "prefix \"/a\"");
        assert_eq!(opt_match(None), "present");
        assert_eq!(body(b"hello\n  world"), "body 13 bytes \"hello world\"");
        assert_eq!(body(&[0xff, 0]), "body 2 bytes (binary)");
    }
}
