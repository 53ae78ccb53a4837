//! Circuit breaking (DestinationRule `connectionPool`, Envoy's cluster circuit breakers):
//! per cluster (per subset), shared by all threads. A slot is taken with one atomic
//! compare-and-swap; only a request that must wait for a connection touches the wait
//! queue (`tokio::sync::Notify`). Overflow is Envoy's UO: 503, `x-envoy-overloaded`.

use crate::snapshot::cluster::Limits;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Notify;

/// Which limit overflowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// `http2MaxRequests` (requests in flight).
    Requests,
    /// `maxConnections` with `http1MaxPendingRequests` full (or a TCP connection over
    /// `maxConnections`).
    Connections,
}

#[derive(Debug)]
pub struct CircuitBreaker {
    limits: Limits,
    requests: AtomicU32,
    connections: AtomicU32,
    pending: AtomicU32,
    retries: AtomicU32,
    /// Wakes a pending request when a connection slot frees.
    freed: Notify,
}

/// Takes one unit of `counter` if it is below `max`.
fn take(counter: &AtomicU32, max: u32) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

fn give(counter: &AtomicU32) {
    let _ = counter.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| n.checked_sub(1));
}

/// What a request holds while in flight: released when dropped.
#[derive(Debug)]
pub struct Admission {
    breaker: Arc<CircuitBreaker>,
    connection: bool,
}

impl Drop for Admission {
    fn drop(&mut self) {
        give(&self.breaker.requests);
        if self.connection {
            give(&self.breaker.connections);
            if self.breaker.pending.load(Ordering::Acquire) > 0 {
                self.breaker.freed.notify_one();
            }
        }
    }
}

/// A request waiting for a connection slot (`http1MaxPendingRequests`).
struct Pending<'a>(&'a CircuitBreaker);

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        give(&self.0.pending);
    }
}

/// A retry in flight (`http.maxRetries`): released when dropped.
#[derive(Debug)]
pub struct RetrySlot(Arc<CircuitBreaker>);

impl Drop for RetrySlot {
    fn drop(&mut self) {
        give(&self.0.retries);
    }
}

/// A TCP connection counted against `maxConnections`: released when dropped.
#[derive(Debug)]
pub struct ConnectionSlot(Arc<CircuitBreaker>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        give(&self.0.connections);
        if self.0.pending.load(Ordering::Acquire) > 0 {
            self.0.freed.notify_one();
        }
    }
}

impl CircuitBreaker {
    pub fn new(limits: Limits) -> CircuitBreaker {
        CircuitBreaker {
            limits,
            requests: AtomicU32::new(0),
            connections: AtomicU32::new(0),
            pending: AtomicU32::new(0),
            retries: AtomicU32::new(0),
            freed: Notify::new(),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Admits an HTTP request: a request slot (`http2MaxRequests`) and, for HTTP/1
    /// upstreams (`per_connection`), a connection (`maxConnections`), waiting as one of at
    /// most `http1MaxPendingRequests` until `deadline` if none is free. `Ok(None)`: the
    /// cluster has no limits (nothing counted).
    pub async fn admit(
        self: &Arc<Self>,
        per_connection: bool,
        deadline: Option<Instant>,
    ) -> Result<Option<Admission>, Overflow> {
        if self.limits.is_unlimited() {
            return Ok(None);
        }
        if !take(&self.requests, self.limits.max_requests) {
            return Err(Overflow::Requests);
        }
        let mut admission = Admission {
            breaker: self.clone(),
            connection: false,
        };
        if !per_connection || self.limits.max_connections == u32::MAX {
            return Ok(Some(admission));
        }
        if take(&self.connections, self.limits.max_connections) {
            admission.connection = true;
            return Ok(Some(admission));
        }
        if !take(&self.pending, self.limits.max_pending_requests) {
            return Err(Overflow::Connections);
        }
        // Counted pending until this returns, or its future is dropped.
        let _pending = Pending(self);
        let waited = async {
            loop {
                // Registered before the slot is tried, so a slot freed in between wakes it.
                let freed = self.freed.notified();
                tokio::pin!(freed);
                freed.as_mut().enable();
                if take(&self.connections, self.limits.max_connections) {
                    return;
                }
                freed.await;
            }
        };
        let got = match deadline {
            Some(d) => tokio::time::timeout_at(d.into(), waited).await.is_ok(),
            None => {
                waited.await;
                true
            }
        };
        if !got {
            // Envoy's pending request ran out of time waiting: an overflow too.
            return Err(Overflow::Connections);
        }
        admission.connection = true;
        Ok(Some(admission))
    }

    /// A slot for one more retry (`http.maxRetries`); `None`: the retry budget is spent
    /// (Envoy's `upstream_rq_retry_overflow`: the answer so far stands).
    pub fn retry(self: &Arc<Self>) -> Result<Option<RetrySlot>, Overflow> {
        if self.limits.max_retries == u32::MAX {
            return Ok(None);
        }
        if take(&self.retries, self.limits.max_retries) {
            Ok(Some(RetrySlot(self.clone())))
        } else {
            Err(Overflow::Requests)
        }
    }

    /// A TCP connection against `maxConnections`; `Err`: overflow (UO).
    pub fn connection(self: &Arc<Self>) -> Result<Option<ConnectionSlot>, Overflow> {
        if self.limits.max_connections == u32::MAX {
            return Ok(None);
        }
        if take(&self.connections, self.limits.max_connections) {
            Ok(Some(ConnectionSlot(self.clone())))
        } else {
            Err(Overflow::Connections)
        }
    }

    /// (requests, connections, pending, retries) in flight.
    pub fn in_flight(&self) -> (u32, u32, u32, u32) {
        (
            self.requests.load(Ordering::Relaxed),
            self.connections.load(Ordering::Relaxed),
            self.pending.load(Ordering::Relaxed),
            self.retries.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::cluster::Limits;
    use std::time::Duration;

    fn breaker(conns: u32, pending: u32) -> Arc<CircuitBreaker> {
        Arc::new(CircuitBreaker::new(Limits {
            max_connections: conns,
            max_pending_requests: pending,
            ..Limits::NONE
        }))
    }

    #[tokio::test]
    async fn one_connection_one_pending_then_overflow() {
        let b = breaker(1, 1);
        let first = b.admit(true, None).await.unwrap().unwrap();
        // The second waits for the first's connection; the third overflows at once.
        let b2 = b.clone();
        let second = tokio::spawn(async move { b2.admit(true, None).await.map(|a| a.is_some()) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(b.in_flight().2, 1, "one pending");
        assert_eq!(
            b.admit(true, None).await.unwrap_err(),
            Overflow::Connections
        );
        drop(first);
        assert_eq!(second.await.unwrap(), Ok(true));
        assert_eq!(b.in_flight(), (0, 0, 0, 0), "everything released");
    }

    #[tokio::test]
    async fn a_pending_request_gives_up_at_its_deadline() {
        let b = breaker(1, 5);
        let _held = b.admit(true, None).await.unwrap();
        let deadline = Instant::now() + Duration::from_millis(30);
        assert_eq!(
            b.admit(true, Some(deadline)).await.unwrap_err(),
            Overflow::Connections
        );
        assert_eq!(b.in_flight().2, 0);
    }

    #[tokio::test]
    async fn request_and_retry_limits() {
        let b = Arc::new(CircuitBreaker::new(Limits {
            max_requests: 2,
            max_retries: 1,
            ..Limits::NONE
        }));
        let a = b.admit(false, None).await.unwrap();
        let _c = b.admit(false, None).await.unwrap();
        assert_eq!(b.admit(false, None).await.unwrap_err(), Overflow::Requests);
        drop(a);
        assert!(b.admit(false, None).await.is_ok());
        let r = b.retry().unwrap();
        assert!(r.is_some());
        assert!(b.retry().is_err());
        drop(r);
        assert!(b.retry().unwrap().is_some());
        // No limits: nothing is counted.
        let free = Arc::new(CircuitBreaker::new(Limits::NONE));
        assert!(free.admit(true, None).await.unwrap().is_none());
        assert!(free.connection().unwrap().is_none());
    }
}
