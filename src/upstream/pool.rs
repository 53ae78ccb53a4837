//! Kept-alive upstream HTTP/1 connections of one cluster state for the HTTP/1 fast path
//! (the full pipeline pools in Pingora's connector). A connection goes back only after a
//! complete answer that left it reusable; it is taken again only for the same endpoint,
//! within the cluster's `connectionPool.http.idleTimeout`, and only if the upstream has
//! neither closed it nor sent anything meanwhile. Kept in the cluster state, so an
//! unchanged cluster keeps its connections across a reload and a changed one starts
//! afresh, as Pingora's pool key does.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Idle connections kept per cluster state at most (Pingora's pool keeps 128 per peer
/// group by default); a connection over the cap is closed.
const MAX_IDLE: usize = 256;

struct Idle {
    endpoint: SocketAddr,
    stream: TcpStream,
    since: Instant,
}

/// The idle connections, most recently returned last. One short lock a request: taken
/// by the task that returns or takes a connection, never held across an await.
#[derive(Default)]
pub struct IdlePool {
    idle: Mutex<Vec<Idle>>,
}

impl std::fmt::Debug for IdlePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdlePool")
    }
}

/// Whether an idle connection is still good to send on: the upstream has not closed it
/// nor sent anything since its last answer. Asked of the socket itself (a non-blocking
/// peek), not of the runtime's readiness, which may not have seen the close yet.
fn quiet(stream: &TcpStream) -> bool {
    let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    // The socket is non-blocking (tokio's): no data and no close is `WouldBlock`.
    matches!(
        socket2::SockRef::from(stream).peek(&mut probe),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
    )
}

impl IdlePool {
    /// A reusable connection to `endpoint`, idle for less than `idle_timeout`.
    pub fn take(&self, endpoint: SocketAddr, idle_timeout: Duration) -> Option<TcpStream> {
        let now = Instant::now();
        loop {
            let found = {
                let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                // Connections idle too long, of any endpoint, go first.
                idle.retain(|c| now.saturating_duration_since(c.since) < idle_timeout);
                let i = idle.iter().rposition(|c| c.endpoint == endpoint)?;
                // Order kept (oldest first), so `put` finds the expired at the front.
                idle.remove(i)
            };
            if quiet(&found.stream) {
                return Some(found.stream);
            }
        }
    }

    /// Keeps a connection for reuse (closed instead when the pool is full). Connections
    /// idle past `idle_timeout` are closed here too, so an upstream that closed its end
    /// of an unused connection does not leave it half-open for long.
    pub fn put(&self, endpoint: SocketAddr, stream: TcpStream, idle_timeout: Duration) {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle
            .first()
            .is_some_and(|c| now.saturating_duration_since(c.since) >= idle_timeout)
        {
            idle.retain(|c| now.saturating_duration_since(c.since) < idle_timeout);
        }
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                endpoint,
                stream,
                since: now,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn only_quiet_connections_to_the_endpoint_in_time_come_back() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let other: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let pool = IdlePool::default();
        let long = Duration::from_secs(60);
        // A quiet connection comes back once, for its endpoint only.
        let c = TcpStream::connect(addr).await.unwrap();
        let (_s1, _) = l.accept().await.unwrap();
        pool.put(addr, c, long);
        assert!(pool.take(other, long).is_none());
        assert!(pool.take(addr, long).is_some());
        assert!(pool.take(addr, long).is_none());
        // One the upstream closed, or wrote to, is dropped, even before the runtime
        // polled its readiness (no await between the close and the take).
        let c = TcpStream::connect(addr).await.unwrap();
        let (s2, _) = l.accept().await.unwrap();
        pool.put(addr, c, long);
        let c = TcpStream::connect(addr).await.unwrap();
        let (mut s3, _) = l.accept().await.unwrap();
        pool.put(addr, c, long);
        s3.write_all(b"junk").await.unwrap();
        drop(s2);
        std::thread::sleep(Duration::from_millis(50));
        assert!(pool.take(addr, long).is_none());
        // One idle too long is dropped.
        let c = TcpStream::connect(addr).await.unwrap();
        let (_s4, _) = l.accept().await.unwrap();
        pool.put(addr, c, long);
        assert!(pool.take(addr, Duration::ZERO).is_none());
    }
}
