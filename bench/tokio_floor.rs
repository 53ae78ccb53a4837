//! A floor under the proxies bench/matrix.sh measures: an HTTP/1 proxy on tokio that does
//! nothing a gateway may leave out. Each client connection gets its own kept-alive upstream
//! connection; request heads are parsed with httparse and forwarded as they came; answers
//! framed by `content-length` (or without a body: HEAD, 1xx, 204, 304) are relayed whole, in
//! one write. No routing, no headers added, no pool, no timeouts, no streaming (a body is
//! buffered whole). Anything else (chunked or close-delimited answers, a broken peer) ends
//! the connection, with a line on stderr. Its CPU per tiny request shows what tokio and the
//! kernel cost here, so a proxy's ratio to nginx can be told apart from the runtime's.
//! Built with `cargo build --release --example tokio_floor`.
//!
//!   tokio_floor LISTEN_ADDR UPSTREAM_ADDR
//!
//! It runs tokio's multi-thread runtime with one worker, as Pingora and meshgate do;
//! `RUNTIME=current` runs the current-thread one instead.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Reads until `buf` holds a whole head; its length, or `None` at end of stream.
async fn read_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(i + 4);
        }
        if buf.len() > 65536 {
            return None;
        }
        buf.reserve(4096);
        if s.read_buf(buf).await.ok()? == 0 {
            return None;
        }
    }
}

/// What a parsed head says about the message after it.
struct Framing {
    /// Body bytes after the head; `None`: framed otherwise (not relayed).
    body: Option<usize>,
    /// `Connection: close` was sent.
    close: bool,
}

fn framing(headers: &[httparse::Header], no_body: bool) -> Framing {
    let (mut len, mut close, mut other) = (None, false, false);
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            len = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok());
            other |= len.is_none();
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            other = true;
        } else if h.name.eq_ignore_ascii_case("connection") {
            close |= h.value.eq_ignore_ascii_case(b"close");
        }
    }
    let body = match (no_body, other, len) {
        (true, _, _) => Some(0),
        (false, true, _) => None,
        (false, false, len) => len,
    };
    Framing { body, close }
}

/// Reads a whole message into `buf`: its length and whether the sender closes after it.
/// A request without `content-length` has no body; an answer needs one unless `no_body`
/// (a HEAD request's) or its status has none.
async fn read_message(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    response: bool,
    head_request: bool,
) -> Result<(usize, bool, bool), &'static str> {
    let head = read_head(s, buf)
        .await
        .ok_or("closed, or a head over 64 KiB")?;
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let (f, is_head) = if response {
        let mut r = httparse::Response::new(&mut headers);
        r.parse(&buf[..head]).map_err(|_| "bad answer head")?;
        let status = r.code.unwrap_or(0);
        let no_body = head_request || status < 200 || status == 204 || status == 304;
        (framing(r.headers, no_body), false)
    } else {
        let mut r = httparse::Request::new(&mut headers);
        r.parse(&buf[..head]).map_err(|_| "bad request head")?;
        let mut f = framing(r.headers, false);
        f.body = f.body.or(Some(0));
        (f, r.method == Some("HEAD"))
    };
    let len = f.body.ok_or("a body not framed by content-length")?;
    while buf.len() < head + len {
        buf.reserve(head + len - buf.len());
        if s.read_buf(buf).await.map_err(|_| "read failed")? == 0 {
            return Err("closed mid-body");
        }
    }
    Ok((head + len, f.close, is_head))
}

async fn serve(mut client: TcpStream, upstream: SocketAddr) -> Result<(), &'static str> {
    client.set_nodelay(true).map_err(|_| "nodelay")?;
    let mut up: Option<TcpStream> = None;
    let (mut req, mut resp) = (Vec::with_capacity(4096), Vec::with_capacity(4096));
    loop {
        let Ok((n, client_closes, head)) = read_message(&mut client, &mut req, false, false).await
        else {
            return Ok(()); // the client is done
        };
        let u = match up.as_mut() {
            Some(u) => u,
            None => {
                let s = TcpStream::connect(upstream)
                    .await
                    .map_err(|_| "connect failed")?;
                s.set_nodelay(true).map_err(|_| "nodelay")?;
                up.insert(s)
            }
        };
        u.write_all(&req[..n])
            .await
            .map_err(|_| "upstream write failed")?;
        req.drain(..n);
        let (m, upstream_closes, _) = read_message(u, &mut resp, true, head).await?;
        client
            .write_all(&resp[..m])
            .await
            .map_err(|_| "client write failed")?;
        resp.drain(..m);
        if upstream_closes {
            up = None;
        }
        if client_closes {
            return Ok(());
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(listen), Some(upstream)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: tokio_floor LISTEN_ADDR UPSTREAM_ADDR");
        std::process::exit(2);
    };
    let upstream: SocketAddr = upstream.parse().expect("UPSTREAM_ADDR is ip:port");
    let rt = match std::env::var("RUNTIME").as_deref() {
        Ok("current") => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build(),
    }
    .expect("a tokio runtime");
    rt.block_on(async {
        let listener = TcpListener::bind(listen).await.expect("LISTEN_ADDR binds");
        loop {
            match listener.accept().await {
                Ok((client, _)) => {
                    tokio::spawn(async move {
                        if let Err(e) = serve(client, upstream).await {
                            eprintln!("tokio_floor: connection ended: {e}");
                        }
                    });
                }
                Err(e) => {
                    // Out of descriptors keeps failing at once: wait rather than spin.
                    eprintln!("tokio_floor: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    });
}
