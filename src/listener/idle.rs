//! The kept-alive HTTP/1 connections waiting for their next request, so that a drain ends
//! them at once (as Envoy's drain closes idle connections) rather than at their idle
//! timeout. A connection takes a slot once; each wait only leaves its waker there.
//!
//! Pingora's `ShutdownWatch` (a tokio `watch`) did this before: waiting on it registers
//! the waiter in lists every connection shares. With 9,000 kept-alive connections
//! (bench/matrix.sh's c10000 row, runs in pairs) that wait cost 45.5–46.5 µs per request
//! against 39.4–40.2 without any drain wait; these slots 42.8–43.5 against 46.3–47.4 for
//! the watch, and 0.8% fewer instructions per tiny request (callgrind).

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Poll, Waker};

/// Every connection's slot, and whether the gateway drains.
#[derive(Default)]
pub struct IdleWaiters {
    draining: AtomicBool,
    slots: Mutex<Slots>,
}

/// Slots by index; freed indexes are reused, so the table stays as large as the most
/// connections open at once.
#[derive(Default)]
struct Slots {
    taken: Vec<Option<Arc<Slot>>>,
    free: Vec<usize>,
}

/// Where a waiting connection leaves its waker.
#[derive(Default)]
struct Slot(Mutex<Option<Waker>>);

/// A connection's slot; given back when dropped.
pub struct Waiter<'a> {
    waiters: &'a IdleWaiters,
    index: usize,
    slot: Arc<Slot>,
}

impl IdleWaiters {
    /// A slot for one connection, kept for its life.
    pub fn waiter(&self) -> Waiter<'_> {
        let slot = Arc::new(Slot::default());
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let index = match slots.free.pop() {
            Some(i) => {
                slots.taken[i] = Some(slot.clone());
                i
            }
            None => {
                slots.taken.push(Some(slot.clone()));
                slots.taken.len() - 1
            }
        };
        Waiter {
            waiters: self,
            index,
            slot,
        }
    }

    /// The gateway drains: every wait ends now, and every later one at once.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        for slot in slots.taken.iter().flatten() {
            if let Some(w) = slot.0.lock().unwrap_or_else(PoisonError::into_inner).take() {
                w.wake();
            }
        }
    }

    /// Slots taken now (open connections that have waited for a next request).
    #[cfg(test)]
    fn taken(&self) -> usize {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.taken.len() - slots.free.len()
    }
}

impl Waiter<'_> {
    /// Resolves once the gateway drains (at once if it already does).
    pub async fn drained(&self) {
        poll_fn(|cx| {
            if self.waiters.draining.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            {
                let mut w = self.slot.0.lock().unwrap_or_else(PoisonError::into_inner);
                match w.as_ref() {
                    Some(old) if old.will_wake(cx.waker()) => {}
                    _ => *w = Some(cx.waker().clone()),
                }
            }
            // Looked at again after the waker is in place: a drain that ran in between
            // found no waker to wake, but has set the flag.
            if self.waiters.draining.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut slots = self
            .waiters
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        slots.taken[self.index] = None;
        slots.free.push(self.index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_drain_ends_every_wait_and_every_later_one() {
        let waiters = Arc::new(IdleWaiters::default());
        let mut waiting = Vec::new();
        for _ in 0..3 {
            let w = waiters.clone();
            waiting.push(tokio::spawn(async move {
                w.waiter().drained().await;
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(waiting.iter().all(|t| !t.is_finished()), "no drain yet");
        waiters.drain();
        for t in waiting {
            tokio::time::timeout(Duration::from_secs(1), t)
                .await
                .expect("woken by the drain")
                .unwrap();
        }
        // A wait that starts after the drain ends at once.
        let late = waiters.waiter();
        tokio::time::timeout(Duration::from_millis(100), late.drained())
            .await
            .expect("already draining");
    }

    #[tokio::test]
    async fn a_wait_without_a_drain_does_not_end_and_slots_are_reused() {
        let waiters = IdleWaiters::default();
        {
            let w = waiters.waiter();
            let waited = tokio::time::timeout(Duration::from_millis(50), w.drained()).await;
            assert!(waited.is_err(), "no drain: the wait goes on");
        }
        assert_eq!(waiters.taken(), 0, "a dropped waiter gives its slot back");
        let kept: Vec<_> = (0..10).map(|_| waiters.waiter()).collect();
        drop(kept);
        let again: Vec<_> = (0..10).map(|_| waiters.waiter()).collect();
        assert_eq!(waiters.taken(), 10);
        let len = waiters.slots.lock().unwrap().taken.len();
        assert_eq!(len, 10, "freed slots are reused, the table does not grow");
        drop(again);
        // Dropped waiters are not woken (nothing left to wake): no panic.
        waiters.drain();
    }
}
