//! One terminating Gateway server's TLS: the rustls `ServerConfig` its settings describe
//! (credential, client verification, protocol versions, cipher suites, ALPN), rebuilt
//! when its files change so new handshakes use the new certificate without a restart.

use super::credentials::{self, Credential, CredentialError, CredentialFiles};
use super::peer_identity::PeerIdentity;
use super::resumption::{self, Resumption};
use super::settings::{ServerTlsSpec, TlsMode, TlsVersion};
use arc_swap::ArcSwap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme,
    SupportedCipherSuite,
};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// ALPN a terminating HTTPS server offers: HTTP/2 first, then HTTP/1.1.
pub const ALPN_HTTP: &[&[u8]] = &[b"h2", b"http/1.1"];

/// TLS 1.2 cipher suites by their OpenSSL/Envoy names (`cipherSuites`); TLS 1.3 suites are
/// not configurable in Envoy either.
const TLS12_SUITES: &[(&str, SupportedCipherSuite)] = &[
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        aws_lc_rs::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        aws_lc_rs::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        aws_lc_rs::cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        aws_lc_rs::cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        aws_lc_rs::cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        aws_lc_rs::cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// The names in a `cipherSuites` entry (BoringSSL's `[A|B]` groups included).
fn suite_names(entry: &str) -> impl Iterator<Item = &str> {
    entry
        .trim_matches(|c| c == '[' || c == ']')
        .split('|')
        .map(str::trim)
}

/// `cipherSuites` entries rustls has no suite for (warned at validation).
pub fn unknown_cipher_suites(entries: &[String]) -> Vec<String> {
    entries
        .iter()
        .flat_map(|e| suite_names(e))
        .filter(|n| !TLS12_SUITES.iter().any(|(name, _)| name == n))
        .map(str::to_string)
        .collect()
}

/// The aws-lc-rs provider narrowed to the TLS 1.2 suites named (all TLS 1.3 suites kept).
/// aws-lc-rs rather than ring (which Pingora's own connectors keep): measured in memory
/// on the 2-core rig, an ECDSA P-256 server handshake costs 76 µs instead of 85 (TLS 1.3)
/// and 51 instead of 75 (TLS 1.2).
fn provider(cipher_suites: &[String]) -> CryptoProvider {
    let mut p = aws_lc_rs::default_provider();
    if !cipher_suites.is_empty() {
        let wanted: Vec<&str> = cipher_suites.iter().flat_map(|e| suite_names(e)).collect();
        p.cipher_suites.retain(|s| match s {
            SupportedCipherSuite::Tls13(_) => true,
            SupportedCipherSuite::Tls12(_) => TLS12_SUITES
                .iter()
                .any(|(name, suite)| suite == s && wanted.contains(name)),
        });
    }
    p
}

/// The protocol versions between `minProtocolVersion` (default TLSV1_2, Istio's gateway
/// default) and `maxProtocolVersion` (default TLSV1_3). rustls has no TLS 1.0/1.1.
fn versions(tls: &ServerTlsSpec) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let min = match tls.min_protocol_version {
        TlsVersion::V1_3 => TlsVersion::V1_3,
        _ => TlsVersion::V1_2,
    };
    let max = match tls.max_protocol_version {
        TlsVersion::V1_2 | TlsVersion::V1_1 | TlsVersion::V1_0 => TlsVersion::V1_2,
        TlsVersion::Auto | TlsVersion::V1_3 => TlsVersion::V1_3,
    };
    let mut out = Vec::new();
    if min <= TlsVersion::V1_2 && max >= TlsVersion::V1_2 {
        out.push(&rustls::version::TLS12);
    }
    if max >= TlsVersion::V1_3 {
        out.push(&rustls::version::TLS13);
    }
    out
}

/// A client verifier that also requires one of `subjectAltNames` on the certificate, so a
/// certificate from the right CA with the wrong identity fails the handshake itself.
#[derive(Debug)]
struct SanRestricted {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<String>,
}

impl ClientCertVerifier for SanRestricted {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }
    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        match PeerIdentity::from_der(end_entity) {
            Some(id) if id.has_any_san(&self.allowed) => Ok(verified),
            _ => Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName,
            )),
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Builds the rustls config for a server from its loaded credential; sessions resume
/// through `resumption`'s cache and ticket keys.
pub fn server_config(
    cred: Credential,
    tls: &ServerTlsSpec,
    alpn: &[&[u8]],
    resumption: &Resumption,
) -> Result<ServerConfig, CredentialError> {
    let err = |field: &'static str| {
        move |e: rustls::Error| CredentialError {
            field,
            message: e.to_string(),
        }
    };
    let provider = Arc::new(provider(&tls.cipher_suites));
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions(tls))
        .map_err(err("minProtocolVersion"))?;
    let mode = tls.mode;
    let builder = match cred.client_roots {
        Some(roots) if credentials::verifies_clients(mode) => {
            let mut v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if mode == TlsMode::OptionalMutual {
                v = v.allow_unauthenticated();
            }
            let mut verifier: Arc<dyn ClientCertVerifier> =
                v.build().map_err(|e| CredentialError {
                    field: "caCertificates",
                    message: e.to_string(),
                })?;
            if !tls.subject_alt_names.is_empty() {
                verifier = Arc::new(SanRestricted {
                    inner: verifier,
                    allowed: tls.subject_alt_names.clone(),
                });
            }
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(cred.chain, cred.key)
        .map_err(err("serverCertificate"))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.session_storage = resumption.cache.clone();
    if let Some(t) = &resumption.tickets {
        config.ticketer = t.clone();
    }
    Ok(config)
}

/// A file's identity for change detection.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(p: &PathBuf) -> Stamp {
    let m = std::fs::metadata(p).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// A terminating server's live TLS configuration.
pub struct ServerTls {
    pub files: CredentialFiles,
    settings: ServerTlsSpec,
    alpn: &'static [&'static [u8]],
    config: ArcSwap<ServerConfig>,
    /// Session cache and ticket keys, kept across reloads and certificate refreshes; new
    /// when the client CA changes (a session verified against the old CA must not
    /// resume). Taken only when a config is built.
    resumption: Mutex<Resumption>,
    /// Stamps of the files the current config was built from; only the refresher takes it.
    stamps: Mutex<Vec<Stamp>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    pub fn new(
        files: CredentialFiles,
        settings: &ServerTlsSpec,
        alpn: &'static [&'static [u8]],
    ) -> Result<ServerTls, CredentialError> {
        let stamps = Self::stamps_of(&files);
        let resumption = Self::resumption(&files, settings);
        let config = Self::build(&files, settings, alpn, &resumption)?;
        Ok(ServerTls {
            files,
            settings: settings.clone(),
            alpn,
            config: ArcSwap::from_pointee(config),
            resumption: Mutex::new(resumption),
            stamps: Mutex::new(stamps),
        })
    }

    /// The resumption state of a server with these files, settings and client CA file
    /// as it is now (see [`resumption::for_server`]).
    fn resumption(files: &CredentialFiles, settings: &ServerTlsSpec) -> Resumption {
        let ca = files.ca.as_ref().map(stamp);
        resumption::for_server(&format!("{files:?} {settings:?} {ca:?}"), || {
            aws_lc_rs::Ticketer::new()
                .map_err(|e| log::warn!("TLS session tickets off: {e}"))
                .ok()
        })
    }

    fn stamps_of(files: &CredentialFiles) -> Vec<Stamp> {
        std::iter::once(&files.cert)
            .chain(std::iter::once(&files.key))
            .chain(files.ca.iter())
            .map(stamp)
            .collect()
    }

    fn build(
        files: &CredentialFiles,
        settings: &ServerTlsSpec,
        alpn: &[&[u8]],
        resumption: &Resumption,
    ) -> Result<ServerConfig, CredentialError> {
        let cred = credentials::load(files)?;
        server_config(cred, settings, alpn, resumption)
    }

    /// The config new handshakes use.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.config.load_full()
    }

    /// Rebuilds the config when a file changed. `Ok(true)`: new config in place;
    /// `Err`: the files changed but are unusable (the previous config stays).
    pub fn refresh(&self) -> Result<bool, CredentialError> {
        let now = Self::stamps_of(&self.files);
        let mut seen = self.stamps.lock().unwrap_or_else(|p| p.into_inner());
        if *seen == now {
            return Ok(false);
        }
        let ca_changed = seen.get(2) != now.get(2);
        *seen = now;
        let mut resumption = self.resumption.lock().unwrap_or_else(|p| p.into_inner());
        if ca_changed {
            *resumption = Self::resumption(&self.files, &self.settings);
        }
        let config = Self::build(&self.files, &self.settings, self.alpn, &resumption)?;
        self.config.store(Arc::new(config));
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(min: TlsVersion, max: TlsVersion) -> ServerTlsSpec {
        ServerTlsSpec {
            mode: TlsMode::Simple,
            min_protocol_version: min,
            max_protocol_version: max,
            ..ServerTlsSpec::default()
        }
    }

    #[test]
    fn version_bounds() {
        let v = |min, max| {
            versions(&spec(min, max))
                .iter()
                .map(|v| format!("{:?}", v.version))
                .collect::<Vec<_>>()
                .join(",")
        };
        use TlsVersion::*;
        assert_eq!(v(Auto, Auto), "TLSv1_2,TLSv1_3");
        assert_eq!(v(V1_3, Auto), "TLSv1_3");
        assert_eq!(v(Auto, V1_2), "TLSv1_2");
        assert_eq!(v(V1_0, Auto), "TLSv1_2,TLSv1_3");
        assert_eq!(v(Auto, V1_1), "TLSv1_2");
    }

    #[test]
    fn cipher_suites_narrow_tls12_only() {
        let p = provider(&["ECDHE-RSA-AES256-GCM-SHA384".into()]);
        let tls12: Vec<_> = p
            .cipher_suites
            .iter()
            .filter(|s| matches!(s, SupportedCipherSuite::Tls12(_)))
            .collect();
        assert_eq!(tls12.len(), 1);
        assert!(p
            .cipher_suites
            .iter()
            .any(|s| matches!(s, SupportedCipherSuite::Tls13(_))));
        assert_eq!(
            unknown_cipher_suites(&[
                "[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]".into(),
                "AES128-SHA".into()
            ]),
            vec!["AES128-SHA".to_string()]
        );
    }
}
