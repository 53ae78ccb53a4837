//! TLS at the edge: reading a ClientHello without terminating (SNI routing and
//! passthrough), Gateway server credentials, the rustls configuration a server's
//! `ServerTLSSettings` describe, and the identity of a verified client.
//!
//! A leaf: nothing here imports the config model. Callers convert a server's Istio settings
//! into the plain [`settings::ServerTlsSpec`] (config does it) and pass that in.

pub mod client_hello;
pub mod connection;
pub mod credentials;
pub mod peer_identity;
pub mod resumption;
pub mod server_tls;
pub mod settings;
