//! An HTTP connection's life before and between requests, where a slow or idle client
//! would otherwise hold it for ever: the listener reads each request head itself, within
//! MeshConfig's `requestHeadersTimeout` (from the head's first byte, and from connect for
//! the first request) and `maxRequestHeadersKb`, waits at most `idleTimeout` for the next
//! request on a kept-alive connection, and tells an h2c preface from a short HTTP/1
//! request without waiting for bytes that may never come. The head is then replayed to
//! Pingora's HTTP session, which parses and proxies it as usual.

use super::idle::IdleWaiters;
use super::replay::Replay;
use crate::http::fast::{FastPath, Served as FastServed};
use crate::snapshot::settings::DownstreamSettings;
use crate::telemetry::{Exchange, ResponseFlags, Telemetry};
use crate::tls::connection::TlsConnection;
use bytes::BytesMut;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// The client's connection preface of HTTP/2 (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How serving a connection's requests ended.
pub enum Served {
    /// Pingora is done with it (the stream back when it may be reused, else `None`).
    Done(Option<Stream>),
    /// A CONNECT request on a CONNECT-proxy listener: its head (and any bytes after it),
    /// for the egress CONNECT proxy.
    Connect(Stream, BytesMut),
}

/// How reading a request head ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Head {
    /// The head up to its blank line (and whatever followed in the same reads).
    Complete,
    /// An HTTP/2 connection preface (h2c with prior knowledge).
    H2Preface,
    /// The client closed, or sent nothing before the deadline.
    Closed,
    /// The head started but did not complete in time: 408.
    TimedOut,
    /// The head outgrew the limit: 431.
    TooLarge,
}

/// Where a request head ends: the index after its blank line, if it is complete.
pub fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3);
    buf.get(start..)?
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| start + i + 4)
}

/// Reads a request head into `buf` (which may already hold bytes). The first byte must
/// come by `first_byte_by`; the rest within `headers_timeout` of it, and never after
/// `complete_by`.
async fn read_head(
    stream: &mut Stream,
    buf: &mut BytesMut,
    first_byte_by: Instant,
    complete_by: Option<Instant>,
    settings: &DownstreamSettings,
    h2c: bool,
) -> Head {
    let limit = settings.max_request_headers_bytes;
    let mut deadline = first_byte_by;
    let mut started = false;
    let mut scanned = 0;
    loop {
        if !buf.is_empty() && !started {
            started = true;
            deadline = Instant::now() + settings.request_headers_timeout;
            if let Some(c) = complete_by {
                deadline = deadline.min(c);
            }
        }
        if h2c && buf.starts_with(H2_PREFACE) {
            return Head::H2Preface;
        }
        let maybe_preface = h2c && H2_PREFACE.starts_with(&buf[..buf.len().min(H2_PREFACE.len())]);
        if !maybe_preface {
            if let Some(end) = head_end(buf, scanned) {
                // A read may bring more than was reserved: the head's own size decides.
                return if end > limit {
                    Head::TooLarge
                } else {
                    Head::Complete
                };
            }
        }
        scanned = buf.len();
        if buf.len() > limit {
            return Head::TooLarge;
        }
        if buf.is_empty() {
            // Waiting for a request's first bytes (an idle keep-alive connection, most of
            // the time): no heap buffer is held until they come.
            *buf = BytesMut::new();
            let mut first = [0u8; 512];
            match tokio::time::timeout_at(deadline, stream.read(&mut first)).await {
                Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&first[..n]),
                Ok(_) => return Head::Closed,
                Err(_) => return Head::Closed,
            }
            continue;
        }
        buf.reserve(4096.min(limit + 1 - buf.len()).max(1));
        match tokio::time::timeout_at(deadline, stream.read_buf(buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            Ok(_) if buf.is_empty() => return Head::Closed,
            Ok(_) => return Head::Closed, // closed mid-head: nothing to answer
            Err(_) if started => return Head::TimedOut,
            Err(_) => return Head::Closed,
        }
    }
}

/// Writes a final error answer on a connection Pingora never saw, then closes it.
async fn refuse(mut stream: Stream, status: &str) {
    let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.flush().await;
    })
    .await;
}

/// Reports a request refused here: Istio counts it (destination `unknown`) and the
/// access log has a line for it, as Envoy's codec errors have (flag DPE for a head too
/// large).
fn report_refused(t: &Telemetry, stream: &Stream, status: u16, details: &'static str, tls: bool) {
    let digest = stream.get_socket_digest();
    let addr = |a: Option<&pingora::protocols::l4::socket::SocketAddr>| {
        a.and_then(|a| a.as_inet()).copied()
    };
    let mut e = Exchange::new(SystemTime::now(), Duration::ZERO);
    e.protocol = Some("HTTP/1.1");
    e.scheme = Some(if tls { "https" } else { "http" });
    e.response_code = Some(status);
    if status == 431 {
        e.flags = ResponseFlags::DPE;
    }
    e.response_code_details = Some(details);
    e.downstream_local_address = digest.as_ref().and_then(|d| addr(d.local_addr()));
    e.downstream_remote_address = digest.as_ref().and_then(|d| addr(d.peer_addr()));
    t.http_refused(&e);
}

/// How a connection hears that the gateway drains: Pingora's watch, read per request (and
/// waited on by its HTTP/2 server), and the idle waiters, which end the waits between
/// requests.
pub struct Drain<'a> {
    pub watch: &'a ShutdownWatch,
    pub idle: &'a IdleWaiters,
}

/// What serves a connection's requests besides Pingora's proxy: the HTTP/1 fast path
/// (when on), and telemetry for the requests refused here.
pub struct Helpers<'a> {
    pub fast: Option<&'a FastPath>,
    pub telemetry: &'a Telemetry,
    /// The TLS connection the listener terminated, if any.
    pub tls: Option<&'a TlsConnection>,
}

/// Serves the HTTP requests of one connection (plain, or TLS already terminated) with
/// the fast path where it applies, else `app` (Pingora's proxy). `accepted` is when the
/// connection arrived.
pub async fn serve<H>(
    app: &Arc<H>,
    mut stream: Stream,
    settings: &DownstreamSettings,
    accepted: Instant,
    drain: Drain<'_>,
    helpers: Helpers<'_>,
    connect_proxy: bool,
) -> Served
where
    H: HttpServerApp + Send + Sync + 'static,
{
    let done = Served::Done;
    let telemetry = helpers.telemetry;
    let tls = stream.get_ssl_digest().is_some();
    // Pingora counts requests per connection only under a keep-alive request limit,
    // which the fast path does not keep.
    let fast = helpers.fast.filter(|_| {
        app.server_options()
            .is_none_or(|o| o.keepalive_request_limit.is_none())
    });
    if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
        // HTTP/2 over TLS: Pingora's HTTP/2 server (idle connections end with GOAWAY).
        return done(Box::pin(ServerApp::process_new(app, stream, drain.watch)).await);
    }
    let h2c = !tls && app.server_options().is_some_and(|o| o.h2c);
    let mut buf = BytesMut::new();
    // The write buffer of each request's replay stream, kept across requests.
    let mut out: Vec<u8> = Vec::new();
    let mut persistent: Option<HttpPersistentSettings> = None;
    // Taken at the first wait for a next request.
    let mut waiter = None;
    let mut first = true;
    loop {
        let (first_byte_by, complete_by) = if first {
            let by = accepted + settings.request_headers_timeout;
            (by, Some(by))
        } else {
            (Instant::now() + settings.idle_timeout, None)
        };
        let head = if first {
            read_head(
                &mut stream,
                &mut buf,
                first_byte_by,
                complete_by,
                settings,
                h2c,
            )
            .await
        } else {
            // Waiting for the next request on a kept-alive connection: a drain closes it
            // unless a request has started arriving.
            let waiter = waiter.get_or_insert_with(|| drain.idle.waiter());
            let waited = tokio::select! {
                biased;
                h = read_head(&mut stream, &mut buf, first_byte_by, complete_by, settings, false) => Some(h),
                _ = waiter.drained() => None,
            };
            match waited {
                Some(h) => h,
                None if buf.is_empty() => Head::Closed,
                None => {
                    read_head(
                        &mut stream,
                        &mut buf,
                        first_byte_by,
                        complete_by,
                        settings,
                        false,
                    )
                    .await
                }
            }
        };
        match head {
            Head::Closed => return done(None),
            Head::TimedOut => {
                report_refused(telemetry, &stream, 408, "request_header_timeout", tls);
                refuse(stream, "408 Request Timeout").await;
                return done(None);
            }
            Head::TooLarge => {
                report_refused(telemetry, &stream, 431, "http1.headers_too_large", tls);
                refuse(stream, "431 Request Header Fields Too Large").await;
                return done(None);
            }
            Head::H2Preface => {
                let replay: Stream = Box::new(Replay::new(stream, buf, Vec::new()));
                return done(Box::pin(ServerApp::process_new(app, replay, drain.watch)).await);
            }
            Head::Complete if connect_proxy && buf.starts_with(b"CONNECT ") => {
                return Served::Connect(stream, buf);
            }
            Head::Complete => {}
        }
        first = false;
        if let Some(f) = fast {
            let keep_alive = !*drain.watch.borrow();
            match f
                .serve(&mut stream, &mut buf, helpers.tls, keep_alive)
                .await
            {
                FastServed::Declined => {}
                FastServed::KeepAlive => continue,
                FastServed::Close => {
                    // As Pingora ends a session: TLS close_notify, then FIN (a TLS client
                    // takes a bare close for a truncation, and keeps no session).
                    let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
                    return done(None);
                }
            }
        }
        let replay: Stream = Box::new(Replay::new(
            stream,
            std::mem::take(&mut buf),
            std::mem::take(&mut out),
        ));
        let mut session = ServerSession::new_http1(replay);
        match persistent.take() {
            Some(p) => p.apply_to_session(&mut session),
            None => {
                session.set_keepalive_reuses_remaining(
                    app.server_options().and_then(|o| o.keepalive_request_limit),
                );
            }
        }
        if *drain.watch.borrow() {
            session.set_keepalive(None);
        } else {
            session.set_keepalive(Some(settings.idle_timeout.as_secs().max(1)));
        }
        // Not boxed: measured, boxing it saved no idle memory (its pages are not touched
        // while the connection waits) and cost an allocation per request.
        let Some(reused) = app.process_new_http(session, drain.watch).await else {
            return done(None);
        };
        let (next, settings_next) = reused.consume();
        persistent = settings_next;
        // The stream comes back as the replay wrapper: unwrap it, keeping any bytes the
        // session did not read (the start of the next request).
        if !next.as_any().is::<Replay>() {
            return done(None);
        }
        let Some((inner, rest, spare)) = next
            .into_any()
            .downcast::<Replay>()
            .ok()
            .and_then(|r| r.into_parts())
        else {
            return done(None);
        };
        stream = inner;
        buf = rest;
        out = spare;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_end_finds_the_blank_line_across_reads() {
        assert_eq!(head_end(b"GET / HTTP/1.0\r\n\r\n", 0), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nhost: a\r\n", 0), None);
        // The blank line split over two reads: scanning resumes three bytes back.
        let buf = b"GET / HTTP/1.1\r\nhost: a\r\n\r\nbody";
        assert_eq!(head_end(buf, 25), Some(27));
        assert_eq!(head_end(b"", 0), None);
    }

    fn settings() -> DownstreamSettings {
        DownstreamSettings {
            request_headers_timeout: std::time::Duration::from_millis(200),
            max_request_headers_bytes: 64,
            ..DownstreamSettings::default()
        }
    }

    /// A connected pair of Pingora streams over loopback.
    async fn pair() -> (Stream, tokio::net::TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(l.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = l.accept().await.unwrap();
        let s: Stream = Box::new(pingora::protocols::l4::stream::Stream::from(server));
        (s, client)
    }

    #[tokio::test]
    async fn heads_are_bounded_in_time_and_size() {
        let s = settings();
        let soon = || Instant::now() + std::time::Duration::from_millis(200);
        // A short HTTP/1.0 request with h2c on: complete at once, no wait for 24 bytes.
        let (mut server, mut client) = pair().await;
        client.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
        let mut buf = BytesMut::new();
        let head = read_head(&mut server, &mut buf, soon(), None, &s, true).await;
        assert_eq!(head, Head::Complete);
        // The h2c preface.
        let (mut server, mut client) = pair().await;
        client.write_all(H2_PREFACE).await.unwrap();
        let mut buf = BytesMut::new();
        let head = read_head(&mut server, &mut buf, soon(), None, &s, true).await;
        assert_eq!(head, Head::H2Preface);
        // Silence: closed at the deadline.
        let (mut server, _client) = pair().await;
        let t = Instant::now();
        let head = read_head(&mut server, &mut BytesMut::new(), soon(), None, &s, false).await;
        assert_eq!(head, Head::Closed);
        assert!(t.elapsed() >= std::time::Duration::from_millis(190));
        // A head that never ends: timed out.
        let (mut server, mut client) = pair().await;
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let head = read_head(&mut server, &mut BytesMut::new(), soon(), None, &s, false).await;
        assert_eq!(head, Head::TimedOut);
        // Too large.
        let (mut server, mut client) = pair().await;
        client.write_all(&[b'a'; 200]).await.unwrap();
        let head = read_head(&mut server, &mut BytesMut::new(), soon(), None, &s, false).await;
        assert_eq!(head, Head::TooLarge);
        // Too large though complete, all in one read (a read may bring more than the
        // limit): still too large.
        let (mut server, mut client) = pair().await;
        let mut big = b"GET / HTTP/1.1\r\nx: ".to_vec();
        big.extend_from_slice(&[b'a'; 100]);
        big.extend_from_slice(b"\r\n\r\n");
        client.write_all(&big).await.unwrap();
        let head = read_head(&mut server, &mut BytesMut::new(), soon(), None, &s, false).await;
        assert_eq!(head, Head::TooLarge);
    }
}
