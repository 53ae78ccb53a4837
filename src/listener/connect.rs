//! The HTTP CONNECT proxy of the egress role (beyond Istio): on a listener whose Gateway
//! carries `meshgate.io/connect-proxy: "true"`, `CONNECT host:port` opens a tunnel when
//! the registry allows `host` on `port` (any under ALLOW_ANY; else 403 naming the reason).
//! The tunnel's first bytes must be a TLS ClientHello whose SNI is the CONNECT host (no
//! domain fronting): otherwise it is closed before anything leaves. Then the bytes go as
//! an egress connection to `host:port` (see `egress.rs`), with its audit line.

use super::egress::REFUSED;
use super::http1::head_end;
use super::replay::Replay;
use super::ListenerApp;
use crate::snapshot::egress::label;
use crate::tcp::Downstream;
use crate::telemetry::{Exchange, ResponseFlags};
use crate::tls::client_hello::{self, Parse};
use crate::upstream::Generation;
use bytes::BytesMut;
use pingora::apps::HttpServerApp;
use pingora::protocols::Stream;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// `%RESPONSE_CODE_DETAILS%` of a tunnel closed for what its first bytes were.
pub const NOT_TLS: &str = "egress_refused_tunnel_not_tls";
pub const SNI_MISMATCH: &str = "egress_refused_sni_mismatch";

/// The largest ClientHello read from a tunnel (as the TLS listener's).
const MAX_HELLO: usize = 64 * 1024;

/// `CONNECT host:port HTTP/1.x` → (host, port); `None` for anything else.
pub fn target(head: &[u8]) -> Option<(String, u16)> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let mut parts = line.split(' ');
    let (method, authority, version) = (parts.next()?, parts.next()?, parts.next()?);
    if method != "CONNECT" || !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return None;
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (h, p) = v6.split_once("]:")?;
            (h, p)
        }
        None => authority.rsplit_once(':')?,
    };
    let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
    (!host.is_empty() && !host.contains('/')).then(|| (host.to_ascii_lowercase(), port))
}

impl<H: HttpServerApp + Send + Sync + 'static> ListenerApp<H> {
    /// Serves a CONNECT request whose head (and any bytes after it) is `buf`.
    pub(super) async fn connect(&self, mut stream: Stream, mut buf: BytesMut, local: SocketAddr) {
        let active = self.active.load_full();
        let remote = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).copied());
        let Some((host, port)) = target(&buf) else {
            answer(
                &mut stream,
                "400 Bad Request",
                "meshgate: a CONNECT target is host:port\n",
            )
            .await;
            self.refused_connect(
                local,
                remote,
                None,
                400,
                ResponseFlags::DPE,
                "invalid_connect_target",
            );
            return;
        };
        if !self.egress_allowed(&active, &host, port) {
            self.telemetry.own.egress("refused", "unregistered");
            log::info!("CONNECT refused: {host}:{port} is not registered (REGISTRY_ONLY)");
            let body = format!(
                "meshgate: CONNECT to {host}:{port} refused: no ServiceEntry registers {host} on port {port} and outboundTrafficPolicy is REGISTRY_ONLY\n"
            );
            answer(&mut stream, "403 Forbidden", &body).await;
            self.refused_connect(local, remote, Some(&host), 403, ResponseFlags::NR, REFUSED);
            return;
        }
        let end = head_end(&buf, 0).unwrap_or(buf.len());
        let mut hello = buf.split_off(end);
        drop(buf);
        let established = b"HTTP/1.1 200 Connection established\r\n\r\n";
        if stream.write_all(established).await.is_err() || stream.flush().await.is_err() {
            return;
        }
        // The tunnel's first bytes: a ClientHello naming the CONNECT host.
        let deadline = Instant::now() + active.snapshot.downstream.request_headers_timeout;
        let sni = loop {
            match client_hello::parse(&hello) {
                Parse::Done(h) => break h.sni,
                Parse::Incomplete { need } if need <= MAX_HELLO => {
                    // Read until the bytes the parser asked for are here, then parse again.
                    while hello.len() < need {
                        hello.reserve(need - hello.len());
                        let read = tokio::time::timeout_at(deadline, stream.read_buf(&mut hello));
                        match read.await {
                            Ok(Ok(n)) if n > 0 => {}
                            _ => {
                                self.refused_tunnel(&active, local, remote, (&host, port), NOT_TLS);
                                return;
                            }
                        }
                    }
                }
                _ => {
                    self.refused_tunnel(&active, local, remote, (&host, port), NOT_TLS);
                    return;
                }
            }
        };
        if !sni
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case(&host))
        {
            log::info!(
                "CONNECT {host}:{port}: the tunnel's SNI is {sni:?}, not the CONNECT host: closed"
            );
            self.refused_tunnel(&active, local, remote, (&host, port), SNI_MISMATCH);
            return;
        }
        let conn = Downstream {
            local: Some(local),
            remote,
            sni: Some(&host),
        };
        let tunnel: Stream = Box::new(Replay::new(stream, hello, Vec::new()));
        self.egress(tunnel, &host, port, &active, &conn).await;
    }

    /// The audit line of a CONNECT refused with `status`.
    fn refused_connect(
        &self,
        local: SocketAddr,
        remote: Option<SocketAddr>,
        host: Option<&str>,
        status: u16,
        flags: ResponseFlags,
        details: &'static str,
    ) {
        let mut e = Exchange::new(SystemTime::now(), Duration::ZERO);
        e.protocol = Some("HTTP/1.1");
        e.scheme = Some("http");
        e.response_code = Some(status);
        e.flags = flags;
        e.response_code_details = Some(details);
        e.downstream_local_address = Some(local);
        e.downstream_remote_address = remote;
        e.requested_server_name = host;
        self.telemetry.http_refused(&e);
    }

    /// The audit line of a tunnel closed for its first bytes.
    fn refused_tunnel(
        &self,
        active: &Generation,
        local: SocketAddr,
        remote: Option<SocketAddr>,
        (host, port): (&str, u16),
        details: &'static str,
    ) {
        // Counted under the ServiceEntry the CONNECT target matched, if any.
        let decision = active.snapshot.egress.decide(host, u32::from(port));
        self.telemetry.own.egress("refused", label(&decision));
        let conn = Downstream {
            local: Some(local),
            remote,
            sni: Some(host),
        };
        crate::tcp::refused(&conn, ResponseFlags::NR, Some(details), &self.telemetry);
    }
}

/// A short answer that ends the connection.
async fn answer(stream: &mut Stream, status: &str, body: &str) {
    let text = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(text.as_bytes()).await;
        let _ = stream.flush().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::target;

    #[test]
    fn connect_targets() {
        assert_eq!(
            target(b"CONNECT Example.com:443 HTTP/1.1\r\nhost: x\r\n\r\n"),
            Some(("example.com".into(), 443))
        );
        assert_eq!(
            target(b"CONNECT [::1]:8443 HTTP/1.1\r\n\r\n"),
            Some(("::1".into(), 8443))
        );
        for bad in [
            &b"CONNECT example.com HTTP/1.1\r\n\r\n"[..],
            b"CONNECT example.com:0 HTTP/1.1\r\n\r\n",
            b"CONNECT :443 HTTP/1.1\r\n\r\n",
            b"GET example.com:443 HTTP/1.1\r\n\r\n",
            b"CONNECT example.com:443 HTTP/2\r\n\r\n",
            b"CONNECT http://example.com:443/ HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(target(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
