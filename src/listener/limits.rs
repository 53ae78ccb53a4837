//! Downstream connection limits (MeshConfig `maxConnections`, overall, and
//! `maxConnectionsPerListener`): a connection beyond them is closed as soon as it is
//! accepted, so the process never runs out of file descriptors and the admin listener,
//! a separate service, always has one to answer with.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Descriptors kept back from the limit for the admin listener, logs, config and
/// credential files.
const RESERVED_FDS: u64 = 64;

/// The default overall limit: half of what the descriptor limit leaves after the
/// reserve, since a proxied connection may hold an upstream connection as well.
pub fn default_max_connections() -> u32 {
    let soft = open_files_limit().unwrap_or(1024);
    (soft.saturating_sub(RESERVED_FDS) / 2).clamp(16, u64::from(u32::MAX)) as u32
}

/// The soft `RLIMIT_NOFILE`, from `/proc/self/limits`.
fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line.split_whitespace().nth(3)?;
    match soft {
        "unlimited" => Some(u64::from(u32::MAX)),
        n => n.parse().ok(),
    }
}

/// Open downstream connections overall; each listener keeps its own count (listeners
/// come and go with reloads) and hands it to [`Connections::admit`].
#[derive(Debug, Default)]
pub struct Connections {
    total: Arc<AtomicUsize>,
}

/// Holds one connection's place; released when dropped.
#[derive(Debug)]
pub struct Admitted {
    counters: [Option<Arc<AtomicUsize>>; 2],
}

impl Drop for Admitted {
    fn drop(&mut self) {
        for c in self.counters.iter().flatten() {
            c.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Takes a place on `counter` if it is under `max`.
fn take(counter: &Arc<AtomicUsize>, max: usize) -> Option<Arc<AtomicUsize>> {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .ok()
        .map(|_| counter.clone())
}

impl Connections {
    /// A place for a connection under the limits (`listener`: that listener's own
    /// count), or `None`.
    pub fn admit(
        &self,
        listener: Option<&Arc<AtomicUsize>>,
        max_total: u32,
        max_per_listener: Option<u32>,
    ) -> Option<Admitted> {
        let total = take(&self.total, max_total as usize)?;
        let per = match (max_per_listener, listener) {
            (Some(max), Some(c)) => match take(c, max as usize) {
                Some(c) => Some(c),
                None => {
                    total.fetch_sub(1, Ordering::Relaxed);
                    return None;
                }
            },
            _ => None,
        };
        Some(Admitted {
            counters: [Some(total), per],
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_overall_and_per_listener() {
        let (a, b) = (Arc::default(), Arc::default());
        let (a, b) = (Some(&a), Some(&b));
        let c = Connections::default();
        let first = c.admit(a, 3, Some(2)).unwrap();
        let second = c.admit(a, 3, Some(2)).unwrap();
        assert!(c.admit(a, 3, Some(2)).is_none(), "listener a is full");
        let third = c.admit(b, 3, Some(2)).unwrap();
        assert!(c.admit(b, 3, Some(2)).is_none(), "the total is full");
        assert_eq!(c.open(), 3);
        drop(first);
        assert!(c.admit(a, 3, Some(2)).is_some(), "a place was freed");
        drop((second, third));
        assert_eq!(c.open(), 0);
    }

    #[test]
    fn the_default_leaves_room_for_upstreams() {
        let n = default_max_connections();
        let soft = open_files_limit().unwrap();
        assert!(u64::from(n) * 2 <= soft.max(2 * 16 + RESERVED_FDS));
        assert!(n >= 16);
    }
}
