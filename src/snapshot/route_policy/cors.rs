//! `corsPolicy` as Envoy's CORS filter applies it.

use crate::config::duration;
use crate::config::model::*;
use crate::snapshot::matcher::StrMatch;

/// Istio `CorsPolicy` as Envoy's CORS filter applies it.
#[derive(Debug)]
pub struct Cors {
    origins: Vec<StrMatch>,
    pub allow_methods: String,
    pub allow_headers: String,
    pub expose_headers: String,
    /// Seconds, as `access-control-max-age` wants it.
    pub max_age: Option<String>,
    pub allow_credentials: bool,
    /// `unmatchedPreflights: IGNORE`: answer a preflight from an unknown origin without
    /// CORS headers instead of forwarding it.
    pub ignore_unmatched_preflights: bool,
}

impl Cors {
    pub fn compile(c: &CorsPolicy) -> Result<Cors, crate::snapshot::matcher::InvalidRegex> {
        let mut origins = Vec::new();
        for o in &c.allow_origins {
            if let Some(m) = StrMatch::compile(o, false)? {
                origins.push(m);
            }
        }
        origins.extend(c.allow_origin.iter().map(|o| StrMatch::Exact(o.clone())));
        Ok(Cors {
            origins,
            allow_methods: c.allow_methods.join(","),
            allow_headers: c.allow_headers.join(","),
            expose_headers: c.expose_headers.join(","),
            max_age: c
                .max_age
                .as_deref()
                .and_then(|d| duration::parse(d).ok())
                .map(|d| d.as_secs().to_string()),
            allow_credentials: c.allow_credentials.unwrap_or(false),
            ignore_unmatched_preflights: c.unmatched_preflights
                == Some(UnmatchedPreflights::Ignore),
        })
    }

    /// Whether `origin` is allowed (`*` exact allows any).
    pub fn allows(&self, origin: &str) -> bool {
        self.origins.iter().any(|m| match m {
            StrMatch::Exact(e) if e == "*" => true,
            m => m.matches(origin),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_origins() {
        let c: CorsPolicy = serde_yaml::from_str("{allowOrigins: [{exact: \"https://example.com\"}, {regex: \"https://.*\\\\.example\\\\.org\"}], maxAge: 24h, allowMethods: [GET, POST]}").unwrap();
        let c = Cors::compile(&c).unwrap();
        assert!(c.allows("https://example.com") && c.allows("https://a.example.org"));
        assert!(!c.allows("https://evil.com"));
        assert_eq!(c.max_age.as_deref(), Some("86400"));
        assert_eq!(c.allow_methods, "GET,POST");
    }
}
