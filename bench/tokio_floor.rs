//! The floor of an HTTP/1 proxy on tokio, what bench/floor.sh sets beside nginx and stock
//! Pingora: each client connection gets its own kept-alive upstream connection, request
//! heads are parsed with httparse and forwarded as they came, answers with a
//! `content-length` are relayed in one write. No routing, no headers added, no pool, no
//! timeouts: nothing a gateway may leave out, so its CPU per request is the least any
//! tokio proxy on this rig can spend (the question issue 17's nginx targets raise).
//! Built with `cargo build --release --example tokio_floor`.
//!
//!   tokio_floor LISTEN_ADDR UPSTREAM_ADDR
//!
//! `RUNTIME=multi` runs tokio's multi-thread runtime with one worker (as Pingora does)
//! instead of the current-thread one.

use std::net::SocketAddr;
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

/// The `content-length` of a head (0 when absent); `None` when the body has another
/// framing (the floor does not relay those).
fn body_len(headers: &[httparse::Header]) -> Option<usize> {
    let mut len = 0;
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            len = std::str::from_utf8(h.value).ok()?.trim().parse().ok()?;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return None;
        }
    }
    Some(len)
}

/// Reads a whole message (head and `content-length` body) into `buf`; its length.
async fn read_message(s: &mut TcpStream, buf: &mut Vec<u8>, response: bool) -> Option<usize> {
    let head = read_head(s, buf).await?;
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let len = if response {
        let mut r = httparse::Response::new(&mut headers);
        r.parse(&buf[..head]).ok()?;
        body_len(r.headers)?
    } else {
        let mut r = httparse::Request::new(&mut headers);
        r.parse(&buf[..head]).ok()?;
        body_len(r.headers)?
    };
    while buf.len() < head + len {
        buf.reserve(head + len - buf.len());
        if s.read_buf(buf).await.ok()? == 0 {
            return None;
        }
    }
    Some(head + len)
}

async fn serve(mut client: TcpStream, upstream: SocketAddr) -> Option<()> {
    client.set_nodelay(true).ok()?;
    let mut up: Option<TcpStream> = None;
    let (mut req, mut resp) = (Vec::with_capacity(4096), Vec::with_capacity(4096));
    loop {
        let n = read_message(&mut client, &mut req, false).await?;
        if up.is_none() {
            let s = TcpStream::connect(upstream).await.ok()?;
            s.set_nodelay(true).ok()?;
            up = Some(s);
        }
        let u = up.as_mut()?;
        u.write_all(&req[..n]).await.ok()?;
        req.drain(..n);
        let m = read_message(u, &mut resp, true).await?;
        client.write_all(&resp[..m]).await.ok()?;
        resp.drain(..m);
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
        Ok("multi") => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    }
    .expect("a tokio runtime");
    rt.block_on(async {
        let listener = TcpListener::bind(listen).await.expect("LISTEN_ADDR binds");
        loop {
            let Ok((client, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(serve(client, upstream));
        }
    });
}
