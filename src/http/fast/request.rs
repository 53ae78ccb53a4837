//! The request side of the HTTP/1 fast path: which request heads it takes, judged on
//! the head as parsed (pure), and the head it sends upstream: the request as Pingora's
//! pipeline would send it, with the gateway's own headers appended.

use crate::config::model::HeadersWithUnderscoresAction;
use crate::http::normalize;
use crate::snapshot::settings::DownstreamSettings;

/// Request headers parsed at most; a head with more goes to the full pipeline.
pub const MAX_HEADERS: usize = 64;

/// A request head the fast path takes.
pub struct Head<'a> {
    pub head_method: bool,
    pub method: &'a str,
    /// The request target as sent: path and query.
    pub target: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub host: &'a str,
    pub headers: &'a [httparse::Header<'a>],
    /// The head's length in bytes, blank line included.
    pub len: usize,
    /// The client sent `Connection: close` (its only connection option): the answer
    /// is the connection's last.
    pub close: bool,
    /// The client sent a header of [`HOP_BY_HOP`].
    pub hop_by_hop: bool,
}

/// The hop-by-hop headers the fast path takes and Pingora removes from the upstream
/// request, in the order it removes them (others of its list go to the full pipeline).
const HOP_BY_HOP: [&[u8]; 4] = [
    b"proxy-authenticate",
    b"proxy-authorization",
    b"trailer",
    b"connection",
];

impl<'a> Head<'a> {
    /// The first value of a header, by lower-case name.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            // Values are checked to be visible ASCII when parsed.
            .and_then(|h| std::str::from_utf8(h.value).ok())
    }
}

/// Headers whose presence sends a request to the full pipeline: framing and connection
/// management (a body, upgrades, a header named `close`, which `Connection: close`
/// would remove), and the headers the gateway sets or
/// removes itself (`x-forwarded-*`, `x-request-id`, Envoy's internal headers).
fn takes_full_pipeline(name: &[u8]) -> bool {
    const NAMES: [&[u8]; 12] = [
        b"content-length",
        b"transfer-encoding",
        b"close",
        b"upgrade",
        b"expect",
        b"te",
        b"keep-alive",
        b"proxy-connection",
        b"http2-settings",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-request-id",
    ];
    NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
        || name.eq_ignore_ascii_case(b"x-forwarded-client-cert")
        || (name.len() > 8 && name[..8].eq_ignore_ascii_case(b"x-envoy-"))
}

/// Bytes of a request target the fast path takes: those `http::Uri` keeps as they are.
fn target_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b)
}

/// Bytes of a `Host` the fast path takes.
fn host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.:[]".contains(&b)
}

/// Parses a complete request head at the start of `buf`; `Some` when the fast path takes
/// it: HTTP/1.1 `GET` or `HEAD` without a body, an origin-form target that path
/// normalization leaves as it is, one plain `Host`, within the header limits, no header
/// from [`takes_full_pipeline`], no gRPC, no name with `_` unless MeshConfig allows it,
/// and values of visible ASCII only.
pub fn parse<'a>(
    buf: &'a [u8],
    storage: &'a mut [httparse::Header<'a>],
    settings: &DownstreamSettings,
) -> Option<Head<'a>> {
    let mut req = httparse::Request::new(storage);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return None,
    };
    if req.version != Some(1) {
        return None;
    }
    let method = req.method?;
    let head_method = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return None,
    };
    let target = req.path?;
    if !target.starts_with('/') || !target.bytes().all(target_byte) {
        return None;
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    if !matches!(
        normalize::normalize(path.as_bytes(), settings.path_normalization),
        Ok(None)
    ) {
        return None;
    }
    let headers: &'a [httparse::Header<'a>] = req.headers;
    if headers.len() > settings.max_request_headers {
        return None;
    }
    let underscores = settings.headers_with_underscores == HeadersWithUnderscoresAction::Allow;
    let mut size = 0;
    let mut host = None;
    let mut close = false;
    let mut hop_by_hop = false;
    for h in headers {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"connection") {
            // `close` alone; any other option (a nominated header, `keep-alive`, an
            // upgrade) goes to the full pipeline.
            if close || !h.value.eq_ignore_ascii_case(b"close") {
                return None;
            }
            close = true;
        }
        hop_by_hop |= HOP_BY_HOP.iter().any(|n| n.eq_ignore_ascii_case(name));
        size += name.len() + h.value.len();
        if takes_full_pipeline(name)
            || (!underscores && name.contains(&b'_'))
            || !h
                .value
                .iter()
                .all(|b| (b' '..=b'~').contains(b) || *b == b'\t')
        {
            return None;
        }
        if name.eq_ignore_ascii_case(b"host") {
            if host.is_some() || h.value.is_empty() || !h.value.iter().all(|b| host_byte(*b)) {
                return None;
            }
            host = std::str::from_utf8(h.value).ok();
        } else if name.eq_ignore_ascii_case(b"content-type")
            && h.value.len() >= 16
            && h.value[..16].eq_ignore_ascii_case(b"application/grpc")
        {
            return None;
        }
    }
    if size > settings.max_request_headers_bytes {
        return None;
    }
    Some(Head {
        head_method,
        method,
        target,
        path,
        query,
        host: host?,
        headers,
        len,
        close,
        hop_by_hop,
    })
}

/// One `name: value` line.
pub fn header_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A header of the upstream request, in the order Pingora's header map holds them: a
/// name the client sent (all its values), or one the gateway adds.
#[derive(Clone, Copy)]
enum Entry<'a> {
    Client(&'a [u8]),
    Gateway(&'static [u8], &'a [u8]),
}

/// The upstream request head up to the headers each try adds: the request line, the
/// client's headers, then the gateway's own (`x-forwarded-for`, `x-forwarded-proto`,
/// `x-envoy-external-address`, `x-request-id`), in the full pipeline's order. The
/// client's hop-by-hop headers go as Pingora's map removes an entry: the last entry
/// takes its place.
pub fn upstream_head(
    head: &Head,
    scheme: &str,
    peer_ip: Option<&str>,
    request_id: &[u8],
) -> Vec<u8> {
    // Room for the gateway's headers and each try's (`x-envoy-attempt-count`, ...).
    let mut out = Vec::with_capacity(head.len + 256);
    out.extend_from_slice(head.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(head.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut entries = Vec::with_capacity(head.headers.len() + 4);
    for (i, h) in head.headers.iter().enumerate() {
        let name = h.name.as_bytes();
        if head.headers[..i]
            .iter()
            .any(|p| p.name.as_bytes().eq_ignore_ascii_case(name))
        {
            continue;
        }
        entries.push(Entry::Client(name));
    }
    let ip = peer_ip.map(str::as_bytes);
    for e in [
        ip.map(|ip| Entry::Gateway(b"x-forwarded-for", ip)),
        Some(Entry::Gateway(b"x-forwarded-proto", scheme.as_bytes())),
        ip.map(|ip| Entry::Gateway(b"x-envoy-external-address", ip)),
        Some(Entry::Gateway(b"x-request-id", request_id)),
    ]
    .into_iter()
    .flatten()
    {
        entries.push(e);
    }
    if head.hop_by_hop {
        for hop in HOP_BY_HOP {
            let found = entries
                .iter()
                .position(|e| matches!(e, Entry::Client(k) if k.eq_ignore_ascii_case(hop)));
            if let Some(i) = found {
                entries.swap_remove(i);
            }
        }
    }
    for e in &entries {
        match *e {
            Entry::Gateway(k, v) => header_line(&mut out, k, v),
            Entry::Client(name) => {
                for h in head.headers {
                    if h.name.as_bytes().eq_ignore_ascii_case(name) {
                        header_line(&mut out, h.name.as_bytes(), h.value);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn takes(head: &str) -> bool {
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
        parse(
            head.as_bytes(),
            &mut storage,
            &DownstreamSettings::default(),
        )
        .is_some()
    }

    #[test]
    fn only_plain_bodiless_requests_are_taken() {
        assert!(takes(
            "GET /a/b?x=1&y=%2F HTTP/1.1\r\nHost: a.example.com:8080\r\nAccept: */*\r\n\r\n"
        ));
        assert!(takes("HEAD / HTTP/1.1\r\nhost: a\r\n\r\n"));
        for refused in [
            "GET / HTTP/1.0\r\nHost: a\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, x-a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nclose: 1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nx-request-id: 1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nX-Envoy-Retry-On: 5xx\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\ncontent-type: application/grpc+proto\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nx: caf\u{e9}\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
            "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET /a/../b HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET /%41 HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET /a{b} HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\n",
        ] {
            assert!(!takes(refused), "{refused:?}");
        }
    }

    #[test]
    fn connection_close_leaves_as_pingora_removes_it() {
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let raw = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nAccept: x\r\n\r\n";
        let head = parse(raw.as_bytes(), &mut storage, &DownstreamSettings::default()).unwrap();
        assert!(head.close && head.hop_by_hop);
        let out = upstream_head(&head, "http", Some("10.0.0.1"), b"id");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET / HTTP/1.1\r\nHost: a\r\nx-request-id: id\r\nAccept: x\r\n\
             x-forwarded-for: 10.0.0.1\r\nx-forwarded-proto: http\r\n\
             x-envoy-external-address: 10.0.0.1\r\n"
        );
    }

    #[test]
    fn header_limits_and_underscores_follow_mesh_config() {
        let mut s = DownstreamSettings {
            max_request_headers: 2,
            ..DownstreamSettings::default()
        };
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let three = "GET / HTTP/1.1\r\nHost: a\r\nb: 1\r\nc: 2\r\n\r\n";
        assert!(parse(three.as_bytes(), &mut storage, &s).is_none());
        s.max_request_headers = 100;
        s.max_request_headers_bytes = 8;
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
        assert!(parse(three.as_bytes(), &mut storage, &s).is_none());
        s.max_request_headers_bytes = 60 * 1024;
        s.headers_with_underscores = HeadersWithUnderscoresAction::DropHeader;
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let under = "GET / HTTP/1.1\r\nHost: a\r\nx_y: 1\r\n\r\n";
        assert!(parse(under.as_bytes(), &mut storage, &s).is_none());
        s.headers_with_underscores = HeadersWithUnderscoresAction::Allow;
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
        assert!(parse(under.as_bytes(), &mut storage, &s).is_some());
    }

    #[test]
    fn the_upstream_head_groups_names_and_appends_the_gateway_headers() {
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let raw =
            "GET /p?q HTTP/1.1\r\nHost:a\r\nAccept: x\r\nUser-Agent: u\r\naccept: y\r\n\r\nrest";
        let head = parse(raw.as_bytes(), &mut storage, &DownstreamSettings::default()).unwrap();
        assert_eq!(head.len, raw.len() - 4);
        assert_eq!(head.header("user-agent"), Some("u"));
        let out = upstream_head(&head, "http", Some("10.0.0.1"), b"id");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /p?q HTTP/1.1\r\nHost: a\r\nAccept: x\r\naccept: y\r\nUser-Agent: u\r\n\
             x-forwarded-for: 10.0.0.1\r\nx-forwarded-proto: http\r\n\
             x-envoy-external-address: 10.0.0.1\r\nx-request-id: id\r\n"
        );
    }
}
