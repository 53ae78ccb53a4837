//! Carrying a connection's bytes to an upstream and back: TCP routes, passthrough TLS,
//! and terminated TLS servers with `tcp` routes. Half-close is passed on (a client that
//! shuts its write side still gets the rest of the answer); a connection with no bytes
//! either way for the cluster's `idleTimeout` is closed.

use crate::snapshot::cluster::{Cluster, CONNECT_TIMEOUT};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Connects to an endpoint of `cluster` and splices `downstream` to it. Envoy's TCP proxy
/// makes one connect attempt; a failure closes the client's connection (flag UF).
pub async fn forward<S>(downstream: S, cluster: &Cluster)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(ep) = cluster.pick(&[]) else {
        log(&cluster.name, "no healthy upstream (UH)");
        return;
    };
    let upstream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(ep.address)).await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            log(
                &cluster.name,
                &format!("connect to {} failed (UF): {e}", ep.address),
            );
            return;
        }
        Err(_) => {
            log(
                &cluster.name,
                &format!("connect to {} timed out (UF)", ep.address),
            );
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    splice(downstream, upstream, cluster.tcp_idle_timeout).await;
}

fn log(cluster: &str, msg: &str) {
    eprintln!("meshgate: tcp {cluster}: {msg}");
}

/// Copies `from` to `to` until end of stream, then shuts `to`'s write side.
async fn pump<R, W>(
    from: &mut R,
    to: &mut W,
    activity: &AtomicU64,
    start: Instant,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            to.shutdown().await?;
            return Ok(());
        }
        to.write_all(&buf[..n]).await?;
        to.flush().await?;
        activity.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

/// Bytes both ways until both sides have finished, either side fails, or nothing moves
/// for `idle`.
pub async fn splice<A, B>(a: A, b: B, idle: Duration)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let activity = AtomicU64::new(0);
    let (mut ar, mut aw) = tokio::io::split(a);
    let (mut br, mut bw) = tokio::io::split(b);
    let up = pump(&mut ar, &mut bw, &activity, start);
    let down = pump(&mut br, &mut aw, &activity, start);
    let idle_watch = async {
        loop {
            let last = start + Duration::from_millis(activity.load(Ordering::Relaxed));
            let deadline = last + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    };
    tokio::pin!(up, down, idle_watch);
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        tokio::select! {
            r = &mut up, if !up_done => {
                up_done = true;
                if r.is_err() { break; }
            }
            r = &mut down, if !down_done => {
                down_done = true;
                if r.is_err() { break; }
            }
            _ = &mut idle_watch => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    #[tokio::test]
    async fn half_close_passes_and_answers_still_arrive() {
        let (client, gw_down) = duplex(1024);
        let (gw_up, server) = duplex(1024);
        let relay = tokio::spawn(splice(gw_down, gw_up, Duration::from_secs(5)));
        let (mut cr, mut cw) = tokio::io::split(client);
        let (mut sr, mut sw) = tokio::io::split(server);
        cw.write_all(b"ping").await.unwrap();
        cw.shutdown().await.unwrap();
        let mut got = Vec::new();
        sr.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"ping", "the server sees the client's end of stream");
        sw.write_all(b"pong").await.unwrap();
        sw.shutdown().await.unwrap();
        let mut back = Vec::new();
        cr.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"pong");
        relay.await.unwrap();
    }

    #[tokio::test]
    async fn idle_connections_are_closed() {
        let (client, gw_down) = duplex(1024);
        let (gw_up, _server) = duplex(1024);
        let t = Instant::now();
        let relay = tokio::spawn(splice(gw_down, gw_up, Duration::from_millis(200)));
        let (mut cr, _cw) = tokio::io::split(client);
        let mut buf = [0u8; 1];
        let n = cr.read(&mut buf).await.unwrap();
        assert_eq!(n, 0, "closed");
        assert!(t.elapsed() >= Duration::from_millis(200));
        relay.await.unwrap();
    }
}
