//! Traffic mirroring (Istio `mirror` / `mirrors`): a copy of the request, body included,
//! sent to another cluster and forgotten. The copy's Host carries Envoy's `-shadow`
//! suffix; its answer is read and dropped; nothing it does reaches the client's request.

use crate::snapshot::cluster::Cluster;
use pingora::http::RequestHeader;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A mirrored request gives up after this long.
const MIRROR_TIMEOUT: Duration = Duration::from_secs(10);

/// Bodies larger than this are not mirrored (the copy is held in memory until sent).
pub const MAX_MIRROR_BODY: usize = 1024 * 1024;

/// `host[:port]` → `host-shadow[:port]`, as Envoy names a shadowed authority.
pub fn shadow_host(authority: &str) -> String {
    match crate::snapshot::host_index::split_host_port(authority) {
        (h, Some(p)) => format!("{h}-shadow:{p}"),
        (h, None) => format!("{h}-shadow"),
    }
}

/// The request as HTTP/1.1 bytes, Host replaced, body length fixed, connection closed.
fn encode(head: &RequestHeader, host: &str, body: &[u8]) -> Vec<u8> {
    let path = head.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut out = format!("{} {path} HTTP/1.1\r\nhost: {host}\r\n", head.method).into_bytes();
    for (k, v) in head.headers.iter() {
        if matches!(
            k.as_str(),
            "host"
                | "connection"
                | "content-length"
                | "transfer-encoding"
                | "keep-alive"
                | "upgrade"
        ) {
            continue;
        }
        out.extend_from_slice(k.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(
        format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body);
    out
}

/// Sends a copy of `head` + `body` to an endpoint of `cluster` in the background.
pub fn send(cluster: Arc<Cluster>, head: &RequestHeader, authority: &str, body: &[u8]) {
    let Some(ep) = cluster.pick(&[]) else { return };
    let addr = ep.address;
    let bytes = encode(head, &shadow_host(authority), body);
    tokio::spawn(async move {
        let _ = tokio::time::timeout(MIRROR_TIMEOUT, async move {
            let mut s = tokio::net::TcpStream::connect(addr).await?;
            s.write_all(&bytes).await?;
            let mut sink = [0u8; 4096];
            while s.read(&mut sink).await? > 0 {}
            Ok::<_, std::io::Error>(())
        })
        .await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_hosts() {
        assert_eq!(shadow_host("httpbin:8000"), "httpbin-shadow:8000");
        assert_eq!(shadow_host("httpbin"), "httpbin-shadow");
        assert_eq!(shadow_host("[::1]:80"), "[::1]-shadow:80");
    }

    #[test]
    fn encoding_replaces_host_and_length() {
        let mut h = RequestHeader::build("POST", b"/a?b=1", None).unwrap();
        h.insert_header("host", "x.com").unwrap();
        h.insert_header("transfer-encoding", "chunked").unwrap();
        h.insert_header("x-y", "z").unwrap();
        let out = String::from_utf8(encode(&h, "x.com-shadow", b"hi")).unwrap();
        assert!(
            out.starts_with("POST /a?b=1 HTTP/1.1\r\nhost: x.com-shadow\r\n"),
            "{out}"
        );
        assert!(out.contains("x-y: z\r\n") && !out.contains("chunked"));
        assert!(out.ends_with("content-length: 2\r\nconnection: close\r\n\r\nhi"));
    }
}
