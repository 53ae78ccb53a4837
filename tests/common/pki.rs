//! Certificates made at test time with the `openssl` command: CAs, server and client
//! leaves with the SANs a test needs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct Cert {
    pub crt: PathBuf,
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is installed by tests/setup.sh");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed CA named `name` in `dir`.
pub fn ca(dir: &Path, name: &str) -> Cert {
    std::fs::create_dir_all(dir).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/O=meshgate tests/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
        ],
    );
    Cert {
        crt: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
    }
}

/// A leaf signed by `ca`, with subject `subject` (e.g. `/CN=a.example.com/O=one`) and
/// `sans` in openssl form (`DNS:a.example.com`, `URI:spiffe://...`); usable for both
/// server and client authentication.
pub fn leaf(dir: &Path, ca: &Cert, name: &str, subject: &str, sans: &[&str]) -> Cert {
    let ext = dir.join(format!("{name}.ext"));
    std::fs::write(
        &ext,
        format!(
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName={}\n",
            sans.join(",")
        ),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            subject,
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            ca.crt.to_str().unwrap(),
            "-CAkey",
            ca.key.to_str().unwrap(),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            ext.to_str().unwrap(),
            "-out",
            &format!("{name}.crt"),
        ],
    );
    Cert {
        crt: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
    }
}

/// Copies a leaf (and optionally a CA) into the credentialsDir layout: `dir/name/tls.crt`,
/// `tls.key`, `ca.crt`.
pub fn install_credential(credentials_dir: &Path, name: &str, leaf: &Cert, ca: Option<&Cert>) {
    let d = credentials_dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    // Write to a temporary name, then rename: a watcher never sees half a file.
    let put = |from: &Path, to: &str| {
        let tmp = d.join(format!(".{to}.tmp"));
        std::fs::copy(from, &tmp).unwrap();
        std::fs::rename(&tmp, d.join(to)).unwrap();
    };
    put(&leaf.key, "tls.key");
    put(&leaf.crt, "tls.crt");
    if let Some(ca) = ca {
        put(&ca.crt, "ca.crt");
    }
}
