//! The TLS settings of one Gateway server, as plain data.
//!
//! `tls` is a leaf module: it knows nothing of the configuration model. The layer above
//! (config, snapshot) converts a Gateway server's Istio `ServerTLSSettings` into a
//! [`ServerTlsSpec`] (see `config::tls_spec`) and passes it in, so everything here is
//! built from these types only. They carry exactly the fields `tls` reads; the rest of
//! `ServerTLSSettings` (`httpsRedirect`, `credentialNames`, `tlsCertificates`, ...) is
//! handled or refused by config.

/// `ServerTLSSettings.mode` (`TLSmode`): how a server handles TLS. Unset is PASSTHROUGH,
/// the proto enum's zero value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum TlsMode {
    /// `PASSTHROUGH`: route on SNI, forward the bytes unterminated.
    #[default]
    Passthrough,
    /// `SIMPLE`: terminate with the server's certificate.
    Simple,
    /// `MUTUAL`: terminate and require a client certificate signed by `caCertificates`.
    Mutual,
    /// `AUTO_PASSTHROUGH`: forward unterminated, the SNI naming the destination.
    AutoPassthrough,
    /// `ISTIO_MUTUAL`: mutual TLS with Istio's mesh certificates.
    IstioMutual,
    /// `OPTIONAL_MUTUAL`: terminate, verify a client certificate when one is sent.
    OptionalMutual,
}

impl TlsMode {
    /// The Istio spelling, for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Passthrough => "PASSTHROUGH",
            TlsMode::Simple => "SIMPLE",
            TlsMode::Mutual => "MUTUAL",
            TlsMode::AutoPassthrough => "AUTO_PASSTHROUGH",
            TlsMode::IstioMutual => "ISTIO_MUTUAL",
            TlsMode::OptionalMutual => "OPTIONAL_MUTUAL",
        }
    }
}

/// `ServerTLSSettings.minProtocolVersion` / `maxProtocolVersion` (`TLSProtocol`), ordered
/// oldest to newest after `Auto`. Unset is `TLS_AUTO`, the proto enum's zero value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    /// `TLS_AUTO`: the default bound (TLS 1.2 minimum, TLS 1.3 maximum).
    #[default]
    Auto,
    /// `TLSV1_0`
    V1_0,
    /// `TLSV1_1`
    V1_1,
    /// `TLSV1_2`
    V1_2,
    /// `TLSV1_3`
    V1_3,
}

/// What `tls` needs of one server's `ServerTLSSettings`. Empty strings are treated as
/// unset, as in the YAML.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerTlsSpec {
    /// `mode`, unset resolved to PASSTHROUGH.
    pub mode: TlsMode,
    /// `serverCertificate`: certificate chain file (relative to the Gateway's file).
    pub server_certificate: Option<String>,
    /// `privateKey`: private key file (relative to the Gateway's file).
    pub private_key: Option<String>,
    /// `caCertificates`: client CA bundle file for MUTUAL / OPTIONAL_MUTUAL.
    pub ca_certificates: Option<String>,
    /// `credentialName`: a folder under MeshConfig's `credentialsDir` (wins over the files).
    pub credential_name: Option<String>,
    /// `subjectAltNames`: a verified client certificate must carry one of these.
    pub subject_alt_names: Vec<String>,
    /// `minProtocolVersion`, unset resolved to `TLS_AUTO`.
    pub min_protocol_version: TlsVersion,
    /// `maxProtocolVersion`, unset resolved to `TLS_AUTO`.
    pub max_protocol_version: TlsVersion,
    /// `cipherSuites`: TLS 1.2 suites by OpenSSL name (BoringSSL `[A|B]` groups allowed).
    pub cipher_suites: Vec<String>,
}
