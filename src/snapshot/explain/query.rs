//! The request `meshgate explain` is asked about, and its form in the admin listener's
//! `GET /explain?host=..&path=..&method=..&port=..&sni=..&header=K:V` (what `--admin`
//! sends and the admin listener reads). Pure logic.

use std::fmt::Write as _;
use std::net::SocketAddr;

/// A request to explain. Everything is optional: the method defaults to `GET`, the path
/// to `/`, the host to the SNI; the port to the Host's port, else the only listener.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// The `Host` / `:authority` (a port in it is kept, as a client sends it).
    pub host: Option<String>,
    /// The path, with its query string if any.
    pub path: Option<String>,
    pub method: Option<String>,
    /// Request headers in order (names as given; matched case-insensitively).
    pub headers: Vec<(String, String)>,
    /// The listener: `PORT`, or `ADDR:PORT` for a listener bound to one address.
    pub port: Option<String>,
    /// The TLS SNI: the connection is TLS with this server name.
    pub sni: Option<String>,
}

/// Which listener a request arrives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerRef {
    Port(u16),
    Address(SocketAddr),
}

/// `PORT` or `ADDR:PORT` (`[v6]:PORT`).
pub fn parse_listener(s: &str) -> Result<ListenerRef, String> {
    if let Ok(p) = s.parse::<u16>() {
        if p == 0 {
            return Err("port 0 is not a listener port".into());
        }
        return Ok(ListenerRef::Port(p));
    }
    s.parse::<SocketAddr>()
        .map(ListenerRef::Address)
        .map_err(|_| format!("expected PORT or ADDR:PORT, got {s:?}"))
}

/// `K=V` (the command line) or `K:V` (the admin query): a header name and its value.
pub fn parse_header(s: &str) -> Result<(String, String), String> {
    // The first `=` or `:` after the first character (`:authority=x` names a
    // pseudo-header).
    let at = s
        .char_indices()
        .skip(1)
        .find(|(_, c)| *c == '=' || *c == ':')
        .map(|(i, _)| i);
    let Some(at) = at else {
        return Err(format!("expected NAME=VALUE, got {s:?}"));
    };
    let (name, value) = (&s[..at], &s[at + 1..]);
    let valid = !name.is_empty()
        && name
            .strip_prefix(':')
            .unwrap_or(name)
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !valid || name == ":" {
        return Err(format!("{name:?} is not a header name"));
    }
    Ok((name.to_string(), value.trim().to_string()))
}

impl Query {
    /// Checks what the request names before anything is explained (the command line's
    /// and the admin listener's bad arguments).
    pub fn check(&self) -> Result<(), String> {
        if let Some(p) = &self.port {
            parse_listener(p)?;
        }
        if let Some(m) = &self.method {
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(format!("{m:?} is not a method"));
            }
        }
        if let Some(p) = &self.path {
            if !p.starts_with('/') && p != "*" {
                return Err(format!("the path must start with /, got {p:?}"));
            }
            if p.bytes().any(|b| b.is_ascii_control() || b == b' ') {
                return Err(format!("the path {p:?} holds spaces or control characters"));
            }
        }
        Ok(())
    }

    /// The admin query string (`host=..&path=..&header=K:V`), percent-encoded.
    pub fn to_query_string(&self) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        for (k, v) in [
            ("host", &self.host),
            ("path", &self.path),
            ("method", &self.method),
            ("port", &self.port),
            ("sni", &self.sni),
        ] {
            if let Some(v) = v {
                pairs.push((k, v.clone()));
            }
        }
        for (k, v) in &self.headers {
            pairs.push(("header", format!("{k}:{v}")));
        }
        let mut out = String::new();
        for (i, (k, v)) in pairs.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            out.push_str(k);
            out.push('=');
            out.push_str(&encode(v));
        }
        out
    }

    /// Reads the admin query string; unknown keys are refused (a typo would otherwise
    /// explain another request than the one meant).
    pub fn from_query_string(qs: &str) -> Result<Query, String> {
        let mut q = Query::default();
        for pair in qs.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = decode(v)?;
            let slot = match k {
                "host" => &mut q.host,
                "path" => &mut q.path,
                "method" => &mut q.method,
                "port" => &mut q.port,
                "sni" => &mut q.sni,
                "header" => {
                    q.headers.push(parse_header(&v)?);
                    continue;
                }
                other => {
                    return Err(format!(
                        "unknown parameter {other:?}: use host, path, method, port, sni, header=K:V"
                    ))
                }
            };
            *slot = Some(v);
        }
        q.check()?;
        Ok(q)
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Percent-decodes (and `+` as a space, as forms send it); the result must be UTF-8.
fn decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad percent-escape in {s:?}"))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_round_trip() {
        let q = Query {
            host: Some("a.example.com:8080".into()),
            path: Some("/p?x=1&y=a+b%20".into()),
            method: Some("POST".into()),
            headers: vec![
                ("end-user".into(), "jason".into()),
                (":authority".into(), "x:1".into()),
            ],
            port: Some("127.0.0.1:8080".into()),
            sni: None,
        };
        let s = q.to_query_string();
        assert!(!s.contains("x=1&") && !s.contains('+'), "{s}");
        assert_eq!(Query::from_query_string(&s), Ok(q));
        assert_eq!(
            Query::from_query_string("path=%2Fa%2Bb%3Fq&header=x-a%3A1").unwrap(),
            Query {
                path: Some("/a+b?q".into()),
                headers: vec![("x-a".into(), "1".into())],
                ..Query::default()
            }
        );
        assert!(Query::from_query_string("hots=a").is_err());
        assert!(Query::from_query_string("port=eighty").is_err());
        assert!(Query::from_query_string("path=%zz").is_err());
        assert!(Query::from_query_string("path=nope").is_err());
    }

    #[test]
    fn headers_and_listeners() {
        assert_eq!(
            parse_header("end-user=jason"),
            Ok(("end-user".into(), "jason".into()))
        );
        assert_eq!(parse_header("x-a: 1"), Ok(("x-a".into(), "1".into())));
        assert_eq!(parse_header("x=a:b"), Ok(("x".into(), "a:b".into())));
        assert_eq!(
            parse_header(":method=GET"),
            Ok((":method".into(), "GET".into()))
        );
        assert!(parse_header("novalue").is_err());
        assert!(parse_header("bad name=1").is_err());
        assert_eq!(parse_listener("8080"), Ok(ListenerRef::Port(8080)));
        assert_eq!(
            parse_listener("127.0.0.2:443"),
            Ok(ListenerRef::Address("127.0.0.2:443".parse().unwrap()))
        );
        assert!(parse_listener("0").is_err() && parse_listener("x").is_err());
    }
}
