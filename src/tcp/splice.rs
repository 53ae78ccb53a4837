//! Two streams joined: bytes both ways, half-close passed on, an idle limit, and the
//! bytes moved each way counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Copies `from` to `to` until end of stream, then shuts `to`'s write side; counts the
/// bytes in `moved`.
async fn pump<R, W>(
    from: &mut R,
    to: &mut W,
    activity: &AtomicU64,
    moved: &AtomicU64,
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
        moved.fetch_add(n as u64, Ordering::Relaxed);
        activity.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

/// Bytes moved by a splice: (from `a` to `b`, from `b` to `a`).
pub type Moved = (u64, u64);

/// Bytes both ways until both sides have finished, either side fails, nothing moves
/// for `idle`, or the connection is `lifetime` old (`maxConnectionDuration`).
pub async fn splice<A, B>(a: A, b: B, idle: Duration, lifetime: Option<Duration>) -> Moved
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let activity = AtomicU64::new(0);
    let (mut ar, mut aw) = tokio::io::split(a);
    let (mut br, mut bw) = tokio::io::split(b);
    let (a_to_b, b_to_a) = (AtomicU64::new(0), AtomicU64::new(0));
    let up = pump(&mut ar, &mut bw, &activity, &a_to_b, start);
    let down = pump(&mut br, &mut aw, &activity, &b_to_a, start);
    let idle_watch = async {
        loop {
            let last = start + Duration::from_millis(activity.load(Ordering::Relaxed));
            let mut deadline = last + idle;
            if let Some(l) = lifetime {
                deadline = deadline.min(start + l);
            }
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
    (
        a_to_b.load(Ordering::Relaxed),
        b_to_a.load(Ordering::Relaxed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    #[tokio::test]
    async fn half_close_passes_and_answers_still_arrive() {
        let (client, gw_down) = duplex(1024);
        let (gw_up, server) = duplex(1024);
        let relay = tokio::spawn(splice(gw_down, gw_up, Duration::from_secs(5), None));
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
        assert_eq!(relay.await.unwrap(), (4, 4), "bytes counted each way");
    }

    #[tokio::test]
    async fn idle_connections_are_closed() {
        let (client, gw_down) = duplex(1024);
        let (gw_up, _server) = duplex(1024);
        let t = Instant::now();
        let relay = tokio::spawn(splice(gw_down, gw_up, Duration::from_millis(200), None));
        let (mut cr, _cw) = tokio::io::split(client);
        let mut buf = [0u8; 1];
        let n = cr.read(&mut buf).await.unwrap();
        assert_eq!(n, 0, "closed");
        assert!(t.elapsed() >= Duration::from_millis(200));
        relay.await.unwrap();
    }

    #[tokio::test]
    async fn connections_end_at_their_lifetime_however_busy() {
        let (client, gw_down) = duplex(1024);
        let (gw_up, mut server) = duplex(1024);
        let t = Instant::now();
        let life = Some(Duration::from_millis(200));
        let relay = tokio::spawn(splice(gw_down, gw_up, Duration::from_secs(5), life));
        let (mut cr, mut cw) = tokio::io::split(client);
        // Busy the whole time: a byte every 20 ms.
        let chatter = tokio::spawn(async move {
            let mut b = [0u8; 1];
            loop {
                if cw.write_all(b"x").await.is_err() || server.read(&mut b).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let mut buf = [0u8; 1];
        assert_eq!(cr.read(&mut buf).await.unwrap(), 0, "closed");
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(2),
            "{took:?}"
        );
        let (up, _) = relay.await.unwrap();
        assert!(up > 0, "bytes still counted");
        chatter.abort();
    }
}
