//! What a verified client certificate says about its holder: subject and SANs, for
//! `subjectAltNames` checks and Envoy's `x-forwarded-client-cert` header.

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerIdentity {
    /// SHA-256 of the certificate DER, lower-case hex (XFCC `Hash`).
    pub hash: String,
    /// RFC 2253 subject (`CN=client,O=Example`).
    pub subject: String,
    pub uris: Vec<String>,
    pub dns: Vec<String>,
    /// IP and e-mail SANs: only for `subjectAltNames` matching.
    pub other_sans: Vec<String>,
}

impl PeerIdentity {
    /// Parses a DER certificate; `None` when it does not parse.
    pub fn from_der(der: &[u8]) -> Option<PeerIdentity> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let mut id = PeerIdentity {
            hash: hex(&pingora::tls::hash_certificate(&der.to_vec().into())),
            subject: rfc2253(cert.subject()),
            ..PeerIdentity::default()
        };
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::URI(u) => id.uris.push((*u).to_string()),
                    GeneralName::DNSName(d) => id.dns.push((*d).to_string()),
                    GeneralName::RFC822Name(m) => id.other_sans.push((*m).to_string()),
                    GeneralName::IPAddress(b) => {
                        let ip = match b.len() {
                            4 => <[u8; 4]>::try_from(*b).map(std::net::IpAddr::from).ok(),
                            16 => <[u8; 16]>::try_from(*b).map(std::net::IpAddr::from).ok(),
                            _ => None,
                        };
                        if let Some(ip) = ip {
                            id.other_sans.push(ip.to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
        Some(id)
    }

    /// Istio `subjectAltNames`: the certificate carries one of these SANs exactly.
    pub fn has_any_san(&self, allowed: &[String]) -> bool {
        self.uris
            .iter()
            .chain(&self.dns)
            .chain(&self.other_sans)
            .any(|s| allowed.iter().any(|a| a == s))
    }

    /// Envoy's `x-forwarded-client-cert` element with the details Istio's gateway asks
    /// for (`Hash`, `Subject`, `URI`, `DNS`).
    pub fn xfcc(&self) -> String {
        let mut out = format!(
            "Hash={};Subject=\"{}\"",
            self.hash,
            self.subject.replace('\\', "\\\\").replace('"', "\\\"")
        );
        for u in &self.uris {
            out.push_str(";URI=");
            out.push_str(u);
        }
        for d in &self.dns {
            out.push_str(";DNS=");
            out.push_str(d);
        }
        out
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An X.509 name as RFC 2253 prints it: last RDN first, `,` between, specials escaped.
fn rfc2253(name: &x509_parser::x509::X509Name) -> String {
    let registry = x509_parser::objects::oid_registry();
    let mut rdns: Vec<String> = Vec::new();
    for rdn in name.iter() {
        let parts: Vec<String> = rdn
            .iter()
            .map(|atv| {
                let key = x509_parser::objects::oid2abbrev(atv.attr_type(), registry)
                    .map(str::to_string)
                    .unwrap_or_else(|_| atv.attr_type().to_id_string());
                let value = atv.as_str().unwrap_or("");
                format!("{key}={}", escape_rfc2253(value))
            })
            .collect();
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    rdns.join(",")
}

fn escape_rfc2253(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i + 1 == v.chars().count() && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xfcc_quotes_the_subject() {
        let id = PeerIdentity {
            hash: "ab".into(),
            subject: "CN=a \"b\",O=c".into(),
            uris: vec!["spiffe://cluster.local/ns/default/sa/client".into()],
            dns: vec!["client.example.com".into()],
            other_sans: vec![],
        };
        assert_eq!(
            id.xfcc(),
            "Hash=ab;Subject=\"CN=a \\\"b\\\",O=c\";URI=spiffe://cluster.local/ns/default/sa/client;DNS=client.example.com"
        );
        assert!(id.has_any_san(&["client.example.com".into()]));
        assert!(!id.has_any_san(&["other.example.com".into()]));
    }

    #[test]
    fn escapes() {
        assert_eq!(escape_rfc2253("a,b"), "a\\,b");
        assert_eq!(escape_rfc2253(" x "), "\\ x\\ ");
        assert_eq!(escape_rfc2253("#1"), "\\#1");
    }

    #[test]
    fn garbage_is_not_an_identity() {
        assert_eq!(PeerIdentity::from_der(b"\x30\x03abc"), None);
        assert_eq!(PeerIdentity::from_der(b""), None);
    }
}
