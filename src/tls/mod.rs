//! TLS at the edge: reading a ClientHello without terminating (SNI routing and
//! passthrough), Gateway server credentials, the rustls configuration a server's
//! `ServerTLSSettings` describe, and the identity of a verified client.

pub mod client_hello;
pub mod credentials;
pub mod peer_identity;
pub mod server_tls;
