//! DestinationRule `trafficPolicy.tls` (TLS origination) resolved to files: the
//! `caCertificates`, `clientCertificate`/`privateKey` paths (relative to the rule's file),
//! or a `credentialName` under MeshConfig `credentialsDir` (`tls.crt`, `tls.key`,
//! `ca.crt`). Shared by the snapshot (what clusters use) and analysis (checking the files
//! as `run` will read them).

use super::model::{ClientTlsMode, ClientTlsSettings};
use super::resource::Resource;
use super::Config;
use serde::Serialize;
use std::path::PathBuf;

/// TLS origination (DestinationRule `tls`, mode SIMPLE or MUTUAL), with file paths
/// resolved: `caCertificates`, `clientCertificate`/`privateKey`, or a `credentialName`
/// under MeshConfig `credentialsDir` (`tls.crt`, `tls.key`, `ca.crt`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct UpstreamTls {
    /// The SNI sent and (unless `subject_alt_names` say otherwise) the name verified:
    /// `sni`, else the service host.
    pub sni: String,
    /// `sni` is unset: the request's host is sent (and verified) instead, as Istio's
    /// auto SNI; `sni` above serves where no request is at hand.
    pub auto_sni: bool,
    /// CA bundle to verify the upstream with; `None`: the system's roots.
    pub ca: Option<PathBuf>,
    /// MUTUAL: the client certificate chain and key.
    pub client: Option<(PathBuf, PathBuf)>,
    /// `subjectAltNames`: the upstream certificate must carry the first of these
    /// (meshgate checks one name, and sends it as the SNI: Pingora verifies the SNI).
    pub subject_alt_names: Vec<String>,
    /// `insecureSkipVerify`.
    pub insecure_skip_verify: bool,
    /// The files' modification times and sizes when the config was compiled: part of the
    /// cluster's identity, so a reload after a file changed (a fixed or rotated
    /// certificate) reads it again.
    #[serde(skip)]
    pub stamp: u64,
}

/// A fingerprint of `files`' metadata (missing files count too).
fn stamp<'a>(files: impl Iterator<Item = &'a PathBuf>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for f in files {
        let meta = std::fs::metadata(f).ok();
        meta.as_ref().map(|m| m.len()).hash(&mut h);
        meta.and_then(|m| m.modified().ok()).hash(&mut h);
    }
    h.finish()
}

/// `tls` of the DestinationRule `res`, for service host `host`; `None` for no TLS
/// (absent, DISABLE; ISTIO_MUTUAL needs a mesh identity meshgate does not have).
pub fn resolve(
    c: &Config,
    res: &Resource,
    tls: &ClientTlsSettings,
    host: &str,
) -> Option<UpstreamTls> {
    let mutual = match tls.mode {
        Some(ClientTlsMode::Simple) => false,
        Some(ClientTlsMode::Mutual) => true,
        _ => return None,
    };
    let base = res
        .source
        .file
        .parent()
        .unwrap_or(std::path::Path::new("."));
    let path = |p: &str| {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            p
        } else {
            base.join(p)
        }
    };
    let credential = tls
        .credential_name
        .as_deref()
        .and_then(|n| c.credentials_dir().map(|d| d.join(n)));
    let ca = tls.ca_certificates.as_deref().map(path).or_else(|| {
        credential
            .as_ref()
            .map(|d| d.join("ca.crt"))
            .filter(|p| p.exists())
    });
    let client = if mutual {
        match (&tls.client_certificate, &tls.private_key, &credential) {
            (Some(cert), Some(key), _) => Some((path(cert), path(key))),
            (_, _, Some(d)) => Some((d.join("tls.crt"), d.join("tls.key"))),
            _ => None,
        }
    } else {
        None
    };
    let stamp = stamp(ca.iter().chain(client.iter().flat_map(|(c, k)| [c, k])));
    Some(UpstreamTls {
        stamp,
        sni: tls.sni.clone().unwrap_or_else(|| host.to_string()),
        auto_sni: tls.sni.is_none(),
        ca,
        client,
        subject_alt_names: tls.subject_alt_names.clone(),
        insecure_skip_verify: tls.insecure_skip_verify.unwrap_or(false),
    })
}
