//! TLS origination material (DestinationRule `tls`): the CA bundle and client
//! certificate a cluster's upstream connections use, read once when the cluster's state
//! is made (a changed file takes a reload, as in a new cluster identity).

use crate::snapshot::cluster::UpstreamTls;
use pingora::protocols::tls::CaType;
use pingora::utils::tls::{parse_x509, CertKey, WrappedX509};
use std::path::Path;
use std::sync::Arc;

/// What a cluster's TLS peers are given.
#[derive(Default)]
pub struct Material {
    pub ca: Option<Arc<CaType>>,
    pub client: Option<Arc<CertKey>>,
    /// Why the files could not be used: the cluster then refuses every request with
    /// 503 UF (never plain text, never a weaker check).
    pub error: Option<String>,
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Material")
            .field("ca", &self.ca.as_ref().map(|c| c.len()))
            .field("client", &self.client.is_some())
            .field("error", &self.error)
            .finish()
    }
}

/// The DER certificates of a PEM file, each checked to parse (Pingora's own parser
/// panics on a bad one).
fn certificates(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs: Vec<Vec<u8>> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .into_iter()
        .map(|c| c.to_vec())
        .collect();
    if certs.is_empty() {
        return Err(format!("{}: no certificate", path.display()));
    }
    for c in &certs {
        x509_parser::parse_x509_certificate(c).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(certs)
}

/// Reads the files `tls` names; an unreadable file is an error naming it.
pub fn load(tls: &UpstreamTls) -> Result<Material, String> {
    let ca = match &tls.ca {
        Some(p) => {
            let list: Vec<WrappedX509> = certificates(p)?
                .into_iter()
                .map(|der| WrappedX509::new(der, parse_x509))
                .collect();
            Some(Arc::from(list.into_boxed_slice()))
        }
        None => None,
    };
    let client = match &tls.client {
        Some((cert, key)) => {
            let chain = certificates(cert)?;
            let pem = std::fs::read(key).map_err(|e| format!("{}: {e}", key.display()))?;
            let key_der = rustls_pemfile::private_key(&mut pem.as_slice())
                .map_err(|e| format!("{}: {e}", key.display()))?
                .ok_or_else(|| format!("{}: no private key", key.display()))?;
            Some(Arc::new(CertKey::new(chain, key_der.secret_der().to_vec())))
        }
        None => None,
    };
    Ok(Material {
        ca,
        client,
        error: None,
    })
}
