//! The series of one destination: fixed-capacity open-addressing tables (one for
//! requests, one for TCP connections) keyed by what varies per request or connection
//! (protocol, response code, gRPC status, response flags). A lookup is a hash and a few
//! probes of `OnceLock`s, whose read is one atomic load, so a series already seen costs no
//! lock and no allocation. A new key boxes its series once and installs it in the first
//! empty slot of its probe sequence; slots are never emptied, so a key found once is found
//! at the same place for the table's life. When every slot holds another key, the key
//! folds into its protocol's overflow series: counts are kept, cardinality stays bounded.
//! No `unsafe`: the `OnceLock`s publish the boxes and `Drop` frees them.

use super::histogram::{Histogram, HistogramSnapshot};
use crate::telemetry::ResponseFlags;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;

/// Slots per destination: more distinct (code, flags, gRPC status) keys than a healthy
/// destination shows; the rest fold into the overflow series.
pub(crate) const SLOTS: usize = 64;
const SHIFT: u32 = 64 - SLOTS.trailing_zeros();

/// Istio's `request_protocol` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Protocol {
    Http = 0,
    Grpc = 1,
    Tcp = 2,
}

impl Protocol {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Grpc => "grpc",
            Protocol::Tcp => "tcp",
        }
    }
}

/// What tells apart the series of one destination. The field order is the render order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Key {
    pub(crate) protocol: Protocol,
    /// The series of every key the full table had no room for: rendered with
    /// `response_code`, `grpc_response_status` (gRPC) and `response_flags` "unknown".
    pub(crate) overflow: bool,
    /// HTTP and gRPC only; 0 for TCP.
    pub(crate) response_code: u16,
    /// gRPC only; `None` for HTTP and TCP (Istio prints "" for non-gRPC requests).
    pub(crate) grpc_status: Option<u32>,
    pub(crate) flags: ResponseFlags,
}

impl Key {
    pub(crate) fn request(
        protocol: Protocol,
        response_code: u16,
        flags: ResponseFlags,
        grpc_status: Option<u32>,
    ) -> Key {
        Key {
            protocol,
            overflow: false,
            response_code,
            grpc_status: if protocol == Protocol::Grpc {
                grpc_status
            } else {
                None
            },
            flags,
        }
    }

    pub(crate) fn tcp(flags: ResponseFlags) -> Key {
        Key {
            protocol: Protocol::Tcp,
            overflow: false,
            response_code: 0,
            grpc_status: None,
            flags,
        }
    }

    fn overflow(protocol: Protocol) -> Key {
        Key {
            protocol,
            overflow: true,
            response_code: 0,
            grpc_status: None,
            flags: ResponseFlags::default(),
        }
    }

    /// The key packed into a u64 (a gRPC status past 2^30 loses its high bits: only a
    /// hash) and multiplied by 2^64/φ (Fibonacci hashing); the top bits pick the first slot.
    fn slot(&self) -> usize {
        let grpc = self.grpc_status.map_or(0, |s| u64::from(s) + 1);
        let packed = u64::from(self.response_code)
            | u64::from(self.flags.bits()) << 16
            | (self.protocol as u64) << 32
            | grpc << 34;
        (packed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> SHIFT) as usize
    }
}

/// One key's values: [`RequestValues`] or [`TcpValues`].
#[derive(Debug)]
struct Series<V> {
    key: Key,
    values: V,
}

/// The slots, and one overflow series per protocol (allocated on first use). Requests
/// and TCP connections have a table each, so the type of a series' values is known.
#[derive(Debug)]
pub(crate) struct Table<V> {
    slots: [OnceLock<Box<Series<V>>>; SLOTS],
    overflow: [OnceLock<Box<Series<V>>>; 3],
}

impl<V> Default for Table<V> {
    fn default() -> Table<V> {
        Table {
            slots: std::array::from_fn(|_| OnceLock::new()),
            overflow: std::array::from_fn(|_| OnceLock::new()),
        }
    }
}

impl<V: Default> Table<V> {
    /// The values of `key`, created if new; the protocol's overflow series when all
    /// slots hold other keys. Linear probing over every slot: with no removals, a key is
    /// either before the first empty slot of its sequence or absent. A racer reaching an
    /// empty slot while another fills it waits for that `Box` (first sight of a key only).
    pub(crate) fn series(&self, key: Key) -> &V {
        let new = |key| {
            Box::new(Series {
                key,
                values: V::default(),
            })
        };
        let start = key.slot();
        for i in 0..SLOTS {
            let series = self.slots[(start + i) % SLOTS].get_or_init(|| new(key));
            if series.key == key {
                return &series.values;
            }
        }
        let protocol = key.protocol;
        &self.overflow[protocol as usize]
            .get_or_init(|| new(Key::overflow(protocol)))
            .values
    }

    /// Every series present, overflow ones included, read by `read`, in key order.
    pub(crate) fn snapshot<S>(&self, read: impl Fn(&V) -> S) -> Vec<(Key, S)> {
        let mut out: Vec<(Key, S)> = self
            .slots
            .iter()
            .chain(&self.overflow)
            .filter_map(OnceLock::get)
            .map(|s| (s.key, read(&s.values)))
            .collect();
        out.sort_unstable_by_key(|(k, _)| *k);
        out
    }
}

/// A request series (HTTP or gRPC). `istio_requests_total` is the duration histogram's
/// count, so the two always agree.
#[derive(Debug, Default)]
pub(crate) struct RequestValues {
    pub(crate) duration: Histogram,
    pub(crate) request_bytes: Histogram,
    pub(crate) response_bytes: Histogram,
    /// gRPC messages each way (`istio_request_messages_total`,
    /// `istio_response_messages_total`); rendered for gRPC series only.
    pub(crate) request_messages: AtomicU64,
    pub(crate) response_messages: AtomicU64,
}

impl RequestValues {
    pub(crate) fn snapshot(&self) -> RequestSnapshot {
        RequestSnapshot {
            duration: self.duration.snapshot(),
            request_bytes: self.request_bytes.snapshot(),
            response_bytes: self.response_bytes.snapshot(),
            request_messages: self.request_messages.load(Relaxed),
            response_messages: self.response_messages.load(Relaxed),
        }
    }
}

/// A request series read once for a scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestSnapshot {
    pub(crate) duration: HistogramSnapshot,
    pub(crate) request_bytes: HistogramSnapshot,
    pub(crate) response_bytes: HistogramSnapshot,
    pub(crate) request_messages: u64,
    pub(crate) response_messages: u64,
}

/// A TCP series: Istio's four `istio_tcp_*` counters.
#[derive(Debug, Default)]
pub(crate) struct TcpValues {
    pub(crate) opened: AtomicU64,
    pub(crate) closed: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) sent: AtomicU64,
}

impl TcpValues {
    pub(crate) fn snapshot(&self) -> TcpSnapshot {
        TcpSnapshot {
            opened: self.opened.load(Relaxed),
            closed: self.closed.load(Relaxed),
            received: self.received.load(Relaxed),
            sent: self.sent.load(Relaxed),
        }
    }
}

/// A TCP series read once for a scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TcpSnapshot {
    pub(crate) opened: u64,
    pub(crate) closed: u64,
    pub(crate) received: u64,
    pub(crate) sent: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(code: u16) -> Key {
        Key::request(Protocol::Http, code, ResponseFlags::default(), None)
    }

    fn keys(t: &Table<TcpValues>) -> Vec<Key> {
        t.snapshot(|_| ()).into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn the_same_key_finds_the_same_series() {
        let t = Table::<TcpValues>::default();
        let a: *const TcpValues = t.series(http(200));
        let b: *const TcpValues = t.series(http(200));
        let c: *const TcpValues = t.series(http(404));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(keys(&t), [http(200), http(404)]);
    }

    #[test]
    fn grpc_status_is_kept_for_grpc_only() {
        let k = Key::request(Protocol::Http, 200, ResponseFlags::default(), Some(3));
        assert_eq!(k.grpc_status, None);
        let g = Key::request(Protocol::Grpc, 200, ResponseFlags::default(), Some(3));
        assert_eq!(g.grpc_status, Some(3));
        let t = Table::<TcpValues>::default();
        t.series(g);
        assert_eq!(keys(&t), [g]);
    }

    #[test]
    fn a_full_table_folds_new_keys_into_one_overflow_series_per_protocol() {
        let t = Table::<TcpValues>::default();
        for code in 0..SLOTS as u16 {
            t.series(http(code)).opened.fetch_add(1, Relaxed);
        }
        assert!(keys(&t).iter().all(|k| !k.overflow));
        let over: *const TcpValues = t.series(http(999));
        assert_eq!(over, t.series(http(998)) as *const TcpValues);
        // Keys already in keep their own series.
        assert_ne!(over, t.series(http(7)) as *const TcpValues);
        // Each protocol has its own.
        let tcp: *const TcpValues = t.series(Key::tcp(ResponseFlags::UF));
        assert_ne!(over, tcp);
        let keys = keys(&t);
        assert_eq!(keys.len(), SLOTS + 2);
        // Overflow sorts after the protocol's other series.
        assert_eq!(keys[SLOTS - 1], http(SLOTS as u16 - 1));
        assert_eq!(keys[SLOTS], Key::overflow(Protocol::Http));
        assert_eq!(keys[SLOTS + 1], Key::overflow(Protocol::Tcp));
    }

    #[test]
    fn slots_spread_over_the_table() {
        let used: std::collections::HashSet<usize> =
            (0..SLOTS as u16).map(|i| http(200 + i).slot()).collect();
        assert!(used.len() > SLOTS / 2, "{} distinct slots", used.len());
    }
}
