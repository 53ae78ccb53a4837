//! `rewrite`: path (matched prefix, whole path, or `uriRegexRewrite`) and authority.

use crate::config::model::*;
use crate::snapshot::matcher::StrMatch;
use regex::Regex;
use std::sync::Arc;

/// Istio `HTTPRewrite`.
#[derive(Debug, Default)]
pub struct Rewrite {
    uri: Option<String>,
    /// (pattern, replacement in the regex crate's `${n}` form).
    regex: Option<(Arc<Regex>, String)>,
    pub authority: Option<String>,
}

/// RE2's `\1` group references → the regex crate's `${1}`.
pub(super) fn regex_replacement(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push_str("${");
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    out.push(d);
                    chars.next();
                }
                out.push('}');
            }
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out
}

/// The path after Envoy's `prefix_rewrite` as Istio sets it: the matched prefix of a
/// prefix match is replaced; an exact or regex match has the whole path replaced; a rule
/// without a `uri` condition (Istio's catch-all `/` prefix) has its leading `/` replaced.
pub(super) fn replace_matched(path: &str, matched: Option<&StrMatch>, to: &str) -> String {
    match matched {
        Some(StrMatch::Prefix(p)) if path.len() >= p.len() => {
            format!("{to}{}", &path[p.len()..])
        }
        Some(StrMatch::Exact(_) | StrMatch::Regex(_)) => to.to_string(),
        _ => format!("{to}{}", path.strip_prefix('/').unwrap_or(path)),
    }
}

impl Rewrite {
    pub fn compile(r: &HttpRewrite) -> Result<Rewrite, crate::snapshot::matcher::InvalidRegex> {
        let regex = match &r.uri_regex_rewrite {
            Some(rr) => Some((
                crate::snapshot::matcher::regex(&rr.r#match)?,
                regex_replacement(&rr.rewrite),
            )),
            None => None,
        };
        Ok(Rewrite {
            uri: r.uri.clone().filter(|u| !u.is_empty()),
            regex,
            authority: r.authority.clone().filter(|a| !a.is_empty()),
        })
    }

    /// The rewritten path (query not included), or `None` when the path stays.
    pub fn path(&self, path: &str, matched: Option<&StrMatch>) -> Option<String> {
        if let Some(to) = &self.uri {
            return Some(replace_matched(path, matched, to));
        }
        let (re, to) = self.regex.as_ref()?;
        Some(re.replace_all(path, to.as_str()).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites() {
        assert_eq!(regex_replacement("a\\1b$c\\12"), "a${1}b$$c${12}");
        let rw = |y: &str| Rewrite::compile(&serde_yaml::from_str(y).unwrap()).unwrap();
        let prefix = StrMatch::Prefix("/ratings".into());
        let exact = StrMatch::Exact("/ratings".into());
        assert_eq!(
            rw("{uri: /v1/bookRatings}")
                .path("/ratings/2", Some(&prefix))
                .as_deref(),
            Some("/v1/bookRatings/2")
        );
        assert_eq!(
            rw("{uri: /v1}").path("/ratings", Some(&exact)).as_deref(),
            Some("/v1")
        );
        assert_eq!(rw("{uri: /v1/}").path("/x", None).as_deref(), Some("/v1/x"));
        let regex = StrMatch::Regex(Regex::new("^(?:/r/.*)$").unwrap().into());
        assert_eq!(
            rw("{uri: /v2}").path("/r/a/b", Some(&regex)).as_deref(),
            Some("/v2"),
            "a regex match swaps the whole path"
        );
        assert_eq!(
            rw("{uriRegexRewrite: {match: \"^/service/([^/]+)(/.*)$\", rewrite: \"\\\\2/instance/\\\\1\"}}")
                .path("/service/foo/v1/api", None)
                .as_deref(),
            Some("/v1/api/instance/foo")
        );
        assert_eq!(rw("{authority: x}").path("/a", None), None);
    }
}
