//! A downstream stream with bytes put back in front of it. The listener reads a request's
//! head itself (to bound its time and size before Pingora sees it), then hands Pingora a
//! stream that replays those bytes first. Works the same over plain TCP and terminated
//! TLS; everything else (digests, TLS info, shutdown) is the inner stream's.
//!
//! Small writes are gathered until a flush, as Pingora's own listener streams do with
//! their one-segment write buffer: a response's head and a small body leave in one send
//! (the accept loops hand out unbuffered streams; without this, each response cost an
//! extra `sendto`, measured at ~15% more CPU per request).

use bytes::{Buf, BytesMut};
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::SslDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// Writes are gathered up to this (one TCP segment, Pingora's L4 write buffer size).
const WRITE_BUFFER: usize = 1460;

#[derive(Debug)]
pub struct Replay {
    prefix: BytesMut,
    inner: Stream,
    /// Written, not yet sent: sent on flush, shutdown, or when the next write would
    /// not fit.
    out: Vec<u8>,
}

impl Replay {
    /// `out`: an empty buffer to gather writes in (kept from the connection's last
    /// request, so a kept-alive connection allocates it once).
    pub fn new(inner: Stream, prefix: BytesMut, mut out: Vec<u8>) -> Replay {
        out.clear();
        Replay { prefix, inner, out }
    }

    /// The inner stream, the bytes not replayed yet and the write buffer; `None` when
    /// written bytes were never flushed (the connection cannot be reused then).
    pub fn into_parts(self) -> Option<(Stream, BytesMut, Vec<u8>)> {
        self.out
            .is_empty()
            .then_some((self.inner, self.prefix, self.out))
    }

    /// Sends what is gathered.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            let n = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Replay {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.out.len() + buf.len() > WRITE_BUFFER {
            std::task::ready!(this.poll_drain(cx))?;
            if buf.len() >= WRITE_BUFFER {
                return Pin::new(&mut this.inner).poll_write(cx, buf);
            }
        }
        this.out.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[async_trait::async_trait]
impl Shutdown for Replay {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for Replay {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Replay {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Replay {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Replay {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for Replay {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait::async_trait]
impl Peek for Replay {
    /// Fills `buf` from the replayed bytes, reading more from the inner stream into them
    /// when they are too few (the peeked bytes stay to be read).
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        while self.prefix.len() < buf.len() {
            let mut more = [0u8; 512];
            let want = (buf.len() - self.prefix.len()).min(more.len());
            let n = self.inner.read(&mut more[..want]).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.prefix.extend_from_slice(&more[..n]);
        }
        buf.copy_from_slice(&self.prefix[..buf.len()]);
        Ok(true)
    }
}
