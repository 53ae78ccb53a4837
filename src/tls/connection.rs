//! What the listener learnt about a TLS connection it terminated, handed to the HTTP
//! pipeline. Pingora gives a downstream session no hook for per-connection data, but
//! every session (HTTP/1 and HTTP/2) carries its stream's `ProxyDigest`, whose
//! `user_data` is ours to fill; the listener sets it before the handshake.

use super::peer_identity::PeerIdentity;
use pingora::http::ResponseHeader;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::GetProxyDigest;
use pingora_proxy::Session;
use std::sync::{Arc, OnceLock};

#[derive(Debug)]
pub struct TlsConnection {
    /// The filter chain (Gateway server) that terminated it: its routes serve the requests.
    pub chain: Arc<str>,
    pub sni: Option<String>,
    /// The verified client certificate, set once the handshake is done.
    pub peer: OnceLock<Option<PeerIdentity>>,
}

impl TlsConnection {
    /// The verified client's identity, if it presented a certificate.
    pub fn peer(&self) -> Option<&PeerIdentity> {
        self.peer.get().and_then(Option::as_ref)
    }
}

/// Attaches `info` to a stream about to be handed to the TLS acceptor.
pub fn attach(stream: &mut impl GetProxyDigest, info: Arc<TlsConnection>) {
    let Ok(header) = ResponseHeader::build(200, Some(0)) else {
        return;
    };
    stream.set_proxy_digest(ProxyDigest::new(Box::new(header), Some(Box::new(info))));
}

/// The terminated connection a request arrived on; `None` for plain-text listeners.
pub fn of(session: &Session) -> Option<&Arc<TlsConnection>> {
    session
        .digest()?
        .proxy_digest
        .as_ref()?
        .user_data
        .as_ref()?
        .downcast_ref::<Arc<TlsConnection>>()
}
