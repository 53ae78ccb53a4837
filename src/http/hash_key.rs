//! The key a `consistentHash` balancer hashes, read from the request as Envoy's hash
//! policies do: a header, a cookie, the client's IP, or a query parameter. A missing key
//! gives no hash (a random endpoint), except a cookie with a `ttl`: then the gateway makes
//! one from the connection (so racing requests of a connection agree), hashes it, and
//! sets it on the response, so the client sticks to that endpoint from then on.

use crate::snapshot::cluster::HashKey;
use crate::upstream::balancer::hash::hash_bytes;
use pingora::http::RequestHeader;
use std::net::SocketAddr;

/// The hash, and a `Set-Cookie` value to add to the response.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Key {
    pub hash: Option<u64>,
    pub set_cookie: Option<String>,
}

/// The key of `key` in request `req` from `client` on `local`.
pub fn of(
    key: &HashKey,
    req: &RequestHeader,
    client: Option<SocketAddr>,
    local: SocketAddr,
) -> Key {
    let hash = |b: &[u8]| Key {
        hash: Some(hash_bytes(b)),
        set_cookie: None,
    };
    match key {
        HashKey::Header(name) => {
            // Several values of the header hash as one, in order (Envoy joins them).
            let mut values = req.headers.get_all(name.as_str()).iter();
            let Some(first) = values.next() else {
                return Key::default();
            };
            let mut joined = first.as_bytes().to_vec();
            for v in values {
                joined.push(b',');
                joined.extend_from_slice(v.as_bytes());
            }
            hash(&joined)
        }
        // The client's address after trusted-proxy processing: `x-envoy-external-address`,
        // which the gateway has just set (Envoy's downstream remote address).
        HashKey::SourceIp => match req.headers.get("x-envoy-external-address") {
            Some(v) => hash(v.as_bytes()),
            None => match client {
                Some(a) => hash(a.ip().to_string().as_bytes()),
                None => Key::default(),
            },
        },
        HashKey::QueryParameter(name) => {
            let query = req.uri.query().unwrap_or("");
            query
                .split('&')
                .find_map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (k == name).then_some(v)
                })
                .map_or_else(Key::default, |v| hash(v.as_bytes()))
        }
        HashKey::Cookie {
            name,
            path,
            ttl,
            attributes,
        } => {
            if let Some(v) = cookie(req, name) {
                return hash(v.as_bytes());
            }
            let Some(ttl) = ttl else {
                return Key::default();
            };
            let connection = format!(
                "{}{}",
                client.map(|a| a.to_string()).unwrap_or_default(),
                local
            );
            let value = format!("{:016x}", hash_bytes(connection.as_bytes()));
            let mut set = format!("{name}=\"{value}\"");
            if !ttl.is_zero() {
                set.push_str(&format!("; Max-Age={}", ttl.as_secs()));
            }
            if let Some(p) = path {
                set.push_str(&format!("; Path={p}"));
            }
            for (k, v) in attributes {
                match v {
                    Some(v) => set.push_str(&format!("; {k}={v}")),
                    None => set.push_str(&format!("; {k}")),
                }
            }
            set.push_str("; HttpOnly");
            Key {
                hash: Some(hash_bytes(value.as_bytes())),
                set_cookie: Some(set),
            }
        }
    }
}

/// The value of cookie `name` (quotes removed, as Envoy's `parseCookieValue`).
fn cookie<'r>(req: &'r RequestHeader, name: &str) -> Option<&'r str> {
    req.headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then(|| v.trim_matches('"'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn req(uri: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", uri.as_bytes(), None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    const LOCAL: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 80);

    #[test]
    fn headers_query_parameters_and_source_ips() {
        let h = HashKey::Header("x-user".into());
        let a = of(&h, &req("/", &[("x-user", "alice")]), None, LOCAL);
        let b = of(&h, &req("/", &[("x-user", "bob")]), None, LOCAL);
        assert_eq!(a, of(&h, &req("/x", &[("X-User", "alice")]), None, LOCAL));
        assert_ne!(a.hash, b.hash);
        assert_eq!(of(&h, &req("/", &[]), None, LOCAL), Key::default());
        let q = HashKey::QueryParameter("u".into());
        assert_eq!(
            of(&q, &req("/p?a=1&u=alice", &[]), None, LOCAL).hash,
            Some(hash_bytes(b"alice"))
        );
        assert_eq!(of(&q, &req("/p?user=alice", &[]), None, LOCAL).hash, None);
        let ip = |s: &str| Some(s.parse::<SocketAddr>().unwrap());
        assert_eq!(
            of(
                &HashKey::SourceIp,
                &req("/", &[]),
                ip("10.0.0.1:1000"),
                LOCAL
            ),
            of(
                &HashKey::SourceIp,
                &req("/", &[]),
                ip("10.0.0.1:2000"),
                LOCAL
            ),
            "the port does not count"
        );
        let behind = req("/", &[("x-envoy-external-address", "10.0.0.1")]);
        let direct = req("/", &[]);
        assert_eq!(
            of(&HashKey::SourceIp, &behind, ip("192.168.1.1:3000"), LOCAL),
            of(&HashKey::SourceIp, &direct, ip("10.0.0.1:1000"), LOCAL),
            "the trusted client address, not the proxy's"
        );
    }

    #[test]
    fn a_cookie_is_read_or_made_when_a_ttl_is_given() {
        let c = |ttl| HashKey::Cookie {
            name: "user".into(),
            path: Some("/".into()),
            ttl,
            attributes: vec![("SameSite".into(), Some("Strict".into()))],
        };
        let with = req("/", &[("cookie", "a=b; user=\"42\"")]);
        assert_eq!(
            of(&c(None), &with, None, LOCAL).hash,
            Some(hash_bytes(b"42"))
        );
        assert_eq!(of(&c(None), &req("/", &[]), None, LOCAL), Key::default());
        let client = Some("127.0.0.9:5555".parse().unwrap());
        let made = of(
            &c(Some(Duration::from_secs(60))),
            &req("/", &[]),
            client,
            LOCAL,
        );
        let set = made.set_cookie.unwrap();
        assert!(set.starts_with("user=\""), "{set}");
        assert!(
            set.ends_with("; Max-Age=60; Path=/; SameSite=Strict; HttpOnly"),
            "{set}"
        );
        // Sending the made cookie back hashes the same.
        let value = set.split('"').nth(1).unwrap();
        let back = req("/", &[("cookie", &format!("user=\"{value}\""))]);
        assert_eq!(of(&c(None), &back, None, LOCAL).hash, made.hash);
    }
}
