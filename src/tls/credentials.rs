//! Gateway server credentials: which files a `ServerTLSSettings` names and loading them
//! (certificate chain, private key, client CA), with errors that name the file and the
//! field. Used both by `validate` (a warning per bad server) and when building listeners,
//! so a bad file never reaches Pingora (whose `TlsSettings::build` panics on one).

use super::settings::{ServerTlsSpec, TlsMode};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;
use std::path::{Path, PathBuf};

/// The files behind one server's TLS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Client CA bundle for MUTUAL / OPTIONAL_MUTUAL.
    pub ca: Option<PathBuf>,
    /// The field that named them (`credentialName` or `serverCertificate`), for messages.
    pub field: &'static str,
    /// The field that named the CA file.
    pub ca_field: &'static str,
}

/// A credential problem: the field (relative to `tls`) and what is wrong, naming the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialError {
    pub field: &'static str,
    pub message: String,
}

impl std::fmt::Display for CredentialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tls.{}: {}", self.field, self.message)
    }
}

/// A loaded, checked credential.
#[derive(Debug)]
pub struct Credential {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub client_roots: Option<RootCertStore>,
}

/// Whether the mode terminates TLS at the gateway (and so needs a credential).
pub fn terminates(mode: TlsMode) -> bool {
    matches!(
        mode,
        TlsMode::Simple | TlsMode::Mutual | TlsMode::OptionalMutual
    )
}

/// Whether the mode verifies client certificates.
pub fn verifies_clients(mode: TlsMode) -> bool {
    matches!(mode, TlsMode::Mutual | TlsMode::OptionalMutual)
}

/// The files a terminating server's settings name. `base` is the directory of the file
/// declaring the Gateway (relative `serverCertificate` paths are relative to it);
/// `credentials_dir` is MeshConfig's, where `credentialName: X` is the folder `X` holding
/// `tls.crt`, `tls.key` and `ca.crt` (or Istio's separate `X-cacert/ca.crt`).
pub fn credential_files(
    tls: &ServerTlsSpec,
    base: &Path,
    credentials_dir: Option<&Path>,
) -> Result<CredentialFiles, CredentialError> {
    let want_ca = verifies_clients(tls.mode);
    let relative = |p: &str| {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    if let Some(name) = tls.credential_name.as_deref().filter(|n| !n.is_empty()) {
        let name = name.strip_prefix("kubernetes://").unwrap_or(name);
        let Some(dir) = credentials_dir else {
            return Err(CredentialError {
                field: "credentialName",
                message: format!(
                    "credential {name:?} cannot be found: no MeshConfig credentialsDir is set"
                ),
            });
        };
        let own = dir.join(name);
        let ca = if !want_ca {
            None
        } else if own.join("ca.crt").exists() {
            Some(own.join("ca.crt"))
        } else {
            Some(dir.join(format!("{name}-cacert")).join("ca.crt"))
        };
        return Ok(CredentialFiles {
            cert: own.join("tls.crt"),
            key: own.join("tls.key"),
            ca,
            field: "credentialName",
            ca_field: "credentialName",
        });
    }
    let cert = tls.server_certificate.as_deref().filter(|s| !s.is_empty());
    let key = tls.private_key.as_deref().filter(|s| !s.is_empty());
    let (Some(cert), Some(key)) = (cert, key) else {
        return Err(CredentialError {
            field: "credentialName",
            message: "no credential: set credentialName or serverCertificate and privateKey".into(),
        });
    };
    let ca = if want_ca {
        match tls.ca_certificates.as_deref().filter(|s| !s.is_empty()) {
            Some(ca) => Some(relative(ca)),
            None => {
                return Err(CredentialError {
                    field: "caCertificates",
                    message: format!(
                        "mode {} needs caCertificates to verify client certificates",
                        tls.mode.as_str()
                    ),
                })
            }
        }
    } else {
        None
    };
    Ok(CredentialFiles {
        cert: relative(cert),
        key: relative(key),
        ca,
        field: "serverCertificate",
        ca_field: "caCertificates",
    })
}

fn read(path: &Path, field: &'static str, what: &str) -> Result<Vec<u8>, CredentialError> {
    std::fs::read(path).map_err(|e| CredentialError {
        field,
        message: format!("cannot read {what} {}: {e}", path.display()),
    })
}

fn certificates(
    path: &Path,
    field: &'static str,
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, CredentialError> {
    let pem = read(path, field, what)?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut pem.as_slice()).collect();
    match certs {
        Ok(c) if !c.is_empty() => Ok(c),
        Ok(_) => Err(CredentialError {
            field,
            message: format!("{what} {} holds no PEM certificate", path.display()),
        }),
        Err(e) => Err(CredentialError {
            field,
            message: format!("{what} {} is not valid PEM: {e}", path.display()),
        }),
    }
}

/// Loads a CA bundle (`field` names it in errors): readable, PEM, usable certificates.
pub fn load_ca(ca: &Path, field: &'static str) -> Result<RootCertStore, CredentialError> {
    let mut roots = RootCertStore::empty();
    for c in certificates(ca, field, "CA certificate")? {
        roots.add(c).map_err(|e| CredentialError {
            field,
            message: format!("CA certificate {} is not usable: {e}", ca.display()),
        })?;
    }
    Ok(roots)
}

/// Loads and checks the files: readable, PEM, a certificate, a private key that belongs
/// to it, and (when `files.ca` is set) at least one usable CA certificate.
pub fn load(files: &CredentialFiles) -> Result<Credential, CredentialError> {
    let key_field = if files.field == "credentialName" {
        "credentialName"
    } else {
        "privateKey"
    };
    let chain = certificates(&files.cert, files.field, "certificate")?;
    let key_pem = read(&files.key, key_field, "private key")?;
    let key = match rustls_pemfile::private_key(&mut key_pem.as_slice()) {
        Ok(Some(k)) => k,
        Ok(None) => {
            return Err(CredentialError {
                field: key_field,
                message: format!("private key {} holds no PEM key", files.key.display()),
            })
        }
        Err(e) => {
            return Err(CredentialError {
                field: key_field,
                message: format!("private key {} is not valid PEM: {e}", files.key.display()),
            })
        }
    };
    let signer =
        rustls::crypto::aws_lc_rs::sign::any_supported_type(&key).map_err(|e| CredentialError {
            field: key_field,
            message: format!("private key {} is not usable: {e}", files.key.display()),
        })?;
    rustls::sign::CertifiedKey::new(chain.clone(), signer)
        .keys_match()
        .map_err(|e| CredentialError {
            field: key_field,
            message: format!(
                "private key {} does not match certificate {}: {e}",
                files.key.display(),
                files.cert.display()
            ),
        })?;
    let client_roots = match &files.ca {
        None => None,
        Some(ca) => Some(load_ca(ca, files.ca_field)?),
    };
    Ok(Credential {
        chain,
        key,
        client_roots,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(mode: TlsMode, credential_name: &str) -> ServerTlsSpec {
        ServerTlsSpec {
            mode,
            credential_name: Some(credential_name.into()),
            ..ServerTlsSpec::default()
        }
    }

    fn files(mode: TlsMode, cert: &str, key: &str, ca: Option<&str>) -> ServerTlsSpec {
        ServerTlsSpec {
            mode,
            server_certificate: Some(cert.into()),
            private_key: Some(key.into()),
            ca_certificates: ca.map(Into::into),
            ..ServerTlsSpec::default()
        }
    }

    #[test]
    fn credential_name_layout() {
        let dir = Path::new("/etc/meshgate/certs");
        let f = credential_files(
            &named(TlsMode::Simple, "bookinfo"),
            Path::new("/conf"),
            Some(dir),
        )
        .unwrap();
        assert_eq!(f.cert, dir.join("bookinfo/tls.crt"));
        assert_eq!(f.key, dir.join("bookinfo/tls.key"));
        assert_eq!(f.ca, None);
        // MUTUAL without X/ca.crt looks for Istio's separate X-cacert credential.
        let f = credential_files(
            &named(TlsMode::Mutual, "kubernetes://bookinfo"),
            Path::new("/conf"),
            Some(dir),
        )
        .unwrap();
        assert_eq!(f.ca, Some(dir.join("bookinfo-cacert/ca.crt")));
    }

    #[test]
    fn file_paths_are_relative_to_the_gateway_file() {
        let f = credential_files(
            &files(TlsMode::Mutual, "c.pem", "/abs/k.pem", Some("ca.pem")),
            Path::new("/conf"),
            None,
        )
        .unwrap();
        assert_eq!(f.cert, PathBuf::from("/conf/c.pem"));
        assert_eq!(f.key, PathBuf::from("/abs/k.pem"));
        assert_eq!(f.ca, Some(PathBuf::from("/conf/ca.pem")));
    }

    #[test]
    fn missing_pieces_are_named() {
        let e = credential_files(&named(TlsMode::Simple, "x"), Path::new("/"), None).unwrap_err();
        assert_eq!(e.field, "credentialName");
        assert!(e.message.contains("credentialsDir"), "{e}");
        let e = credential_files(
            &files(TlsMode::Mutual, "c", "k", None),
            Path::new("/"),
            None,
        )
        .unwrap_err();
        assert_eq!(e.field, "caCertificates");
    }

    #[test]
    fn unreadable_and_non_pem_files_are_named() {
        let dir = std::env::temp_dir().join(format!("meshgate-cred-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let files = CredentialFiles {
            cert: dir.join("absent.pem"),
            key: junk.clone(),
            ca: None,
            field: "serverCertificate",
            ca_field: "caCertificates",
        };
        let e = load(&files).unwrap_err();
        assert!(e.message.contains("absent.pem"), "{e}");
        let files = CredentialFiles {
            cert: junk.clone(),
            ..files
        };
        let e = load(&files).unwrap_err();
        assert!(
            e.message.contains("junk.pem") && e.message.contains("no PEM"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
