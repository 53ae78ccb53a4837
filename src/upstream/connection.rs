//! Per-connection limits on pooled upstream HTTP connections, which Pingora's pool does
//! not know: `connectionPool.http.maxRequestsPerConnection` and
//! `connectionPool.tcp.maxConnectionDuration`. Each upstream connection is known by its
//! file descriptor: a fixed table of atomics indexed by fd records its requests and birth,
//! so the check is one atomic add, no lock and no allocation. A connection whose limit is
//! reached carries `Connection: close` on its last request, and Pingora does not pool it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// File descriptors tracked; a connection on a higher fd is not limited.
const SLOTS: usize = 1 << 16;

/// Per fd: requests so far (low 24 bits) and the second it was opened (high 40 bits).
static TABLE: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];

const COUNT_BITS: u32 = 24;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

fn seconds() -> u64 {
    super::endpoint::now_ms() / 1000
}

/// Counts a request on upstream connection `fd` (`reused`: it came from the pool) and
/// says whether it must be the connection's last: its `max_requests` is reached or it is
/// older than `max_age`.
pub fn last_request(
    fd: i32,
    reused: bool,
    max_requests: Option<u32>,
    max_age: Option<Duration>,
) -> bool {
    if max_requests.is_none() && max_age.is_none() {
        return false;
    }
    let Some(slot) = usize::try_from(fd).ok().and_then(|i| TABLE.get(i)) else {
        return false;
    };
    let now = seconds();
    let (count, born) = if reused {
        let v = slot.fetch_add(1, Ordering::Relaxed) + 1;
        (v & COUNT_MASK, v >> COUNT_BITS)
    } else {
        slot.store((now << COUNT_BITS) | 1, Ordering::Relaxed);
        (1, now)
    };
    max_requests.is_some_and(|m| count >= u64::from(m))
        || max_age.is_some_and(|a| now.saturating_sub(born) >= a.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nth_request_on_a_connection_is_its_last() {
        let fd = 60_000;
        assert!(!last_request(fd, false, Some(3), None));
        assert!(!last_request(fd, true, Some(3), None));
        assert!(last_request(fd, true, Some(3), None));
        // A new connection on the same fd starts again.
        assert!(!last_request(fd, false, Some(3), None));
        assert!(
            last_request(fd, false, Some(1), None),
            "one request a connection"
        );
        assert!(!last_request(fd, true, None, None));
        assert!(!last_request(-1, false, Some(1), None));
        assert!(!last_request(1 << 20, false, Some(1), None));
        assert!(last_request(60_001, false, None, Some(Duration::ZERO)));
    }
}
