//! Traffic mirroring (Istio `mirror` / `mirrors`): a copy of the request, body included,
//! sent to another cluster through the upstream HTTP client and forgotten. The copy's
//! Host carries Envoy's `-shadow` suffix; its answer is read and dropped; nothing it does
//! reaches the client's request. The bodies of copies held in memory (while the client's
//! body arrives, and until each copy is sent) share one process-wide cap.

use crate::upstream::cluster::ClusterState;
use crate::upstream::Registry;
use bytes::Bytes;
use pingora::http::RequestHeader;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A mirrored request gives up after this long.
const MIRROR_TIMEOUT: Duration = Duration::from_secs(10);

/// Bodies larger than this are not mirrored (the copy is held in memory until sent).
pub const MAX_MIRROR_BODY: usize = 1024 * 1024;

/// The most memory the bodies of in-flight mirror copies may hold, across the process.
pub const MAX_IN_FLIGHT_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Mirror copies skipped because the bodies already in flight reached
/// [`MAX_IN_FLIGHT_BODY_BYTES`] (one per mirror cluster of a request); read by metrics.
pub static SKIPPED_OVER_CAP: AtomicU64 = AtomicU64::new(0);

/// The process-wide budget of mirror body bytes.
pub static BODY_BUDGET: Budget = Budget::new(MAX_IN_FLIGHT_BODY_BYTES);

/// A cap on bytes held, shared by reservations that give their bytes back when dropped.
pub struct Budget {
    used: AtomicUsize,
    cap: usize,
}

impl Budget {
    pub const fn new(cap: usize) -> Budget {
        Budget {
            used: AtomicUsize::new(0),
            cap,
        }
    }

    /// An empty reservation, to grow as a body arrives.
    pub fn reserve(&'static self) -> Reservation {
        Reservation {
            budget: self,
            bytes: 0,
        }
    }

    /// Bytes reserved now.
    pub fn in_flight(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|t| *t <= self.cap)
            })
            .is_ok()
    }
}

/// Bytes taken from a [`Budget`], given back when dropped.
pub struct Reservation {
    budget: &'static Budget,
    bytes: usize,
}

impl Reservation {
    /// Takes `n` more bytes; `false` (nothing taken) when the budget cannot spare them.
    pub fn grow(&mut self, n: usize) -> bool {
        if n == 0 || self.budget.take(n) {
            self.bytes += n;
            true
        } else {
            false
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
        }
    }
}

/// Counts `copies` mirror copies skipped over the cap.
pub fn skipped_over_cap(copies: usize) {
    SKIPPED_OVER_CAP.fetch_add(copies as u64, Ordering::Relaxed);
    log::debug!(
        "mirror: {copies} cop(ies) skipped: in-flight mirror bodies at their {} MiB cap",
        MAX_IN_FLIGHT_BODY_BYTES >> 20
    );
}

/// `host[:port]` → `host-shadow[:port]`, as Envoy names a shadowed authority.
pub fn shadow_host(authority: &str) -> String {
    match crate::snapshot::host_index::split_host_port(authority) {
        (h, Some(p)) => format!("{h}-shadow:{p}"),
        (h, None) => format!("{h}-shadow"),
    }
}

/// The mirror's request head: the client's, with the shadow host, the body's length
/// fixed (the copy is sent whole), hop-by-hop headers dropped (`te` kept only as
/// `trailers`, which gRPC needs). Over HTTP/2 the host goes into `:authority` and no Host
/// header is sent, as Pingora's proxy does for its own HTTP/2 upstreams.
fn shadow_head(
    head: &RequestHeader,
    host: &str,
    body_len: usize,
    http2: bool,
) -> pingora::Result<RequestHeader> {
    let mut h = head.clone();
    let te_trailers = h
        .headers
        .get("te")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    for hop in [
        "connection",
        "proxy-connection",
        "transfer-encoding",
        "keep-alive",
        "upgrade",
        "te",
    ] {
        h.remove_header(hop);
    }
    if te_trailers {
        h.insert_header("te", "trailers")?;
    }
    h.insert_header("content-length", body_len.to_string())?;
    if http2 {
        h.remove_header("host");
        let path = head.uri.path_and_query().map_or("/", |p| p.as_str());
        let uri = http::Uri::builder()
            .scheme("http")
            .authority(host)
            .path_and_query(path)
            .build()
            .map_err(|e| {
                pingora::Error::because(
                    pingora::ErrorType::InvalidHTTPHeader,
                    "shadow authority",
                    e,
                )
            })?;
        h.set_uri(uri);
    } else {
        h.insert_header("host", host)?;
    }
    Ok(h)
}

/// Sends a copy of `head` + `body` to `cluster` in the background, through the
/// upstream client (HTTP/1.1 or h2c as the cluster speaks, pooled connections). The
/// body's `reserved` bytes are given back when the last copy holding them is done.
pub fn send(
    registry: Arc<Registry>,
    cluster: Arc<ClusterState>,
    head: &RequestHeader,
    authority: &str,
    body: Bytes,
    reserved: Option<Arc<Reservation>>,
) {
    let http2 = cluster.spec.policy.http2;
    let head = match shadow_head(head, &shadow_host(authority), body.len(), http2) {
        Ok(h) => h,
        Err(e) => {
            log::debug!("mirror to {}: {e}", cluster.name());
            return;
        }
    };
    tokio::spawn(async move {
        if let Err(e) = registry
            .http_client
            .send(&cluster, head, body, MIRROR_TIMEOUT)
            .await
        {
            log::debug!("mirror to {}: {e}", cluster.name());
        }
        drop(reserved);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_caps_reservations_and_takes_back_on_drop() {
        static B: Budget = Budget::new(100);
        let mut a = B.reserve();
        assert!(a.grow(60));
        let mut b = B.reserve();
        assert!(!b.grow(41), "over the cap");
        assert!(b.grow(40));
        assert_eq!(B.in_flight(), 100);
        assert!(!a.grow(1));
        drop(a);
        assert_eq!(B.in_flight(), 40);
        let shared = Arc::new(b);
        let other = shared.clone();
        drop(shared);
        assert_eq!(B.in_flight(), 40, "held until the last copy is done");
        drop(other);
        assert_eq!(B.in_flight(), 0);
        assert!(B.reserve().grow(100));
        assert_eq!(B.in_flight(), 0);
    }

    #[test]
    fn shadow_hosts() {
        assert_eq!(shadow_host("httpbin:8000"), "httpbin-shadow:8000");
        assert_eq!(shadow_host("httpbin"), "httpbin-shadow");
        assert_eq!(shadow_host("[::1]:80"), "[::1]-shadow:80");
    }

    #[test]
    fn the_shadow_head_replaces_host_and_length() {
        let mut h = RequestHeader::build("POST", b"/a?b=1", None).unwrap();
        h.insert_header("host", "x.com").unwrap();
        h.insert_header("transfer-encoding", "chunked").unwrap();
        h.insert_header("x-y", "z").unwrap();
        h.insert_header("proxy-connection", "keep-alive").unwrap();
        h.insert_header("te", "trailers").unwrap();
        let out = shadow_head(&h, "x.com-shadow", 2, false).unwrap();
        assert_eq!(out.uri, "/a?b=1");
        assert_eq!(out.headers["host"], "x.com-shadow");
        assert_eq!(out.headers["content-length"], "2");
        assert_eq!(out.headers["x-y"], "z");
        assert_eq!(out.headers["te"], "trailers");
        assert!(out.headers.get("transfer-encoding").is_none());
        assert!(out.headers.get("proxy-connection").is_none());
        let h2 = shadow_head(&h, "x.com-shadow:8080", 2, true).unwrap();
        assert_eq!(h2.uri, "http://x.com-shadow:8080/a?b=1");
        assert!(h2.headers.get("host").is_none());
    }
}
