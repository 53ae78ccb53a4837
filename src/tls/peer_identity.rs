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
    /// for (`Hash`, `Subject`, `URI`, `DNS`), as Envoy's `mutateXfccRequestHeader` writes
    /// it: `Subject` always quoted, with the RFC 2253 name inside as it is (RFC 2253 already
    /// writes `"` and `\` as `\"` and `\\`); `URI` present even when the certificate has
    /// none. A SAN holding `,` `;` `=` or `"` is quoted, as Envoy's header documentation
    /// asks, with `"` and `\` escaped by a backslash: a SAN cannot add fields or elements.
    /// (Envoy's own code still leaves SANs unquoted: a TODO in `mutateXfccRequestHeader`.)
    pub fn xfcc(&self) -> String {
        let mut out = format!("Hash={};Subject=\"", self.hash);
        quote_escaped(&mut out, &self.subject);
        out.push('"');
        if self.uris.is_empty() {
            out.push_str(";URI=");
        }
        for u in &self.uris {
            out.push_str(";URI=");
            push_value(&mut out, u);
        }
        for d in &self.dns {
            out.push_str(";DNS=");
            push_value(&mut out, d);
        }
        out
    }
}

/// An XFCC value: as it is, or quoted when it holds a delimiter or a quote.
fn push_value(out: &mut String, v: &str) {
    if !v.contains([',', ';', '=', '"']) {
        out.push_str(v);
        return;
    }
    out.push('"');
    for c in v.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// The inside of a quoted value that is already escaped (an RFC 2253 name): escape pairs
/// kept, so Envoy's form is unchanged, and a stray `"` or trailing `\` escaped, so the
/// quotes always close where they should.
fn quote_escaped(out: &mut String, v: &str) {
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push('\\');
                out.push(chars.next().unwrap_or('\\'));
            }
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
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

/// An attribute value escaped as BoringSSL's `XN_FLAG_RFC2253` prints it (what Envoy's
/// `Subject` carries): RFC 2253's specials behind a backslash, control characters and every
/// byte of a non-ASCII character as `\XX`.
fn escape_rfc2253(v: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(v.len());
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        if c.is_ascii_control() || !c.is_ascii() {
            for b in c.encode_utf8(&mut [0; 4]).bytes() {
                let _ = write!(out, "\\{b:02X}");
            }
            continue;
        }
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
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

    /// Splits an XFCC header as Envoy's documentation describes it: elements by `,`,
    /// pairs by `;`, key and value by the first `=`, all outside double quotes; inside
    /// quotes a backslash escapes the next character.
    fn parse_xfcc(h: &str) -> Vec<Vec<(String, String)>> {
        let (mut elements, mut pairs) = (Vec::new(), Vec::new());
        let (mut key, mut value) = (String::new(), String::new());
        let (mut in_key, mut quoted) = (true, false);
        let mut chars = h.chars();
        while let Some(c) = chars.next() {
            if quoted {
                match c {
                    '\\' => value.push(chars.next().expect("escape at the end")),
                    '"' => quoted = false,
                    c => value.push(c),
                }
                continue;
            }
            match c {
                '"' if !in_key => quoted = true,
                '=' if in_key => in_key = false,
                ';' | ',' => {
                    pairs.push((std::mem::take(&mut key), std::mem::take(&mut value)));
                    in_key = true;
                    if c == ',' {
                        elements.push(std::mem::take(&mut pairs));
                    }
                }
                c if in_key => key.push(c),
                c => value.push(c),
            }
        }
        assert!(!quoted, "unterminated quote in {h}");
        pairs.push((key, value));
        elements.push(pairs);
        elements
    }

    /// A DER TLV with a definite length.
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let n = content.len();
        match n {
            0..=127 => out.push(n as u8),
            128..=255 => out.extend([0x81, n as u8]),
            _ => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend(content);
        out
    }

    /// An X.509 certificate (unsigned: only parsed here) with the given subject attributes
    /// (`(oid, value)`, first RDN first) and URI and DNS SANs.
    fn certificate(subject: &[(&[u8], &str)], uris: &[&str], dns: &[&str]) -> Vec<u8> {
        let seq = |parts: &[Vec<u8>]| tlv(0x30, &parts.concat());
        let ecdsa_sha256 = seq(&[tlv(6, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 4, 3, 2])]);
        let name = |attrs: &[(&[u8], &str)]| {
            let rdns: Vec<Vec<u8>> = attrs
                .iter()
                .map(|(oid, v)| tlv(0x31, &seq(&[tlv(6, oid), tlv(0x0c, v.as_bytes())])))
                .collect();
            seq(&rdns)
        };
        let time = |t: &str| tlv(0x17, t.as_bytes());
        let mut point = vec![0, 4];
        point.extend([1u8; 64]);
        let spki = seq(&[
            seq(&[
                tlv(6, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 2, 1]),
                tlv(6, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 3, 1, 7]),
            ]),
            tlv(3, &point),
        ]);
        let sans: Vec<Vec<u8>> = uris
            .iter()
            .map(|u| tlv(0x86, u.as_bytes()))
            .chain(dns.iter().map(|d| tlv(0x82, d.as_bytes())))
            .collect();
        let san_ext = seq(&[tlv(6, &[0x55, 0x1d, 0x11]), tlv(4, &seq(&sans))]);
        let tbs = seq(&[
            tlv(0xa0, &tlv(2, &[2])),
            tlv(2, &[1]),
            ecdsa_sha256.clone(),
            name(&[(&[0x55, 4, 3], "ca")]),
            seq(&[time("250101000000Z"), time("350101000000Z")]),
            name(subject),
            spki,
            tlv(0xa3, &seq(&[san_ext])),
        ]);
        seq(&[tbs, ecdsa_sha256, tlv(3, &[0, 0x30, 0x00])])
    }

    const CN: &[u8] = &[0x55, 4, 3];
    const O: &[u8] = &[0x55, 4, 10];

    #[test]
    fn sans_cannot_inject_xfcc_fields() {
        let der = certificate(
            &[(O, "Ex\u{e9}\r\n"), (CN, "a\"b;c,d=e\\")],
            &[
                "spiffe://a/b;DNS=evil",
                "spiffe://c,By=x",
                "x\";Hash=forged;\\",
                "spiffe://cluster.local/ns/default/sa/client",
            ],
            &["ok.example.com", "a=b"],
        );
        let id = PeerIdentity::from_der(&der).expect("parses");
        assert_eq!(id.subject, "CN=a\\\"b\\;c\\,d=e\\\\,O=Ex\\C3\\A9\\0D\\0A");
        let header = id.xfcc();
        // Envoy's Subject: the RFC 2253 name in quotes, as it is.
        assert!(
            header.contains(&format!(";Subject=\"{}\";", id.subject)),
            "{header}"
        );
        let fields = parse_xfcc(&header);
        let expected: Vec<(String, String)> = [
            ("Hash", id.hash.as_str()),
            ("Subject", "CN=a\"b;c,d=e\\,O=ExC3A90D0A"),
            ("URI", "spiffe://a/b;DNS=evil"),
            ("URI", "spiffe://c,By=x"),
            ("URI", "x\";Hash=forged;\\"),
            ("URI", "spiffe://cluster.local/ns/default/sa/client"),
            ("DNS", "ok.example.com"),
            ("DNS", "a=b"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(fields, vec![expected], "{header}");
        assert!(header.is_ascii() && !header.contains(['\r', '\n']));
        // Plain values stay unquoted, as Envoy writes them.
        assert!(
            header.contains(
                ";URI=spiffe://cluster.local/ns/default/sa/client;DNS=ok.example.com;DNS=\"a=b\""
            ),
            "{header}"
        );
    }

    #[test]
    fn xfcc_without_uri_sans_has_an_empty_uri() {
        let id = PeerIdentity::from_der(&certificate(&[(CN, "c")], &[], &["c.example"])).unwrap();
        assert_eq!(
            id.xfcc(),
            format!("Hash={};Subject=\"CN=c\";URI=;DNS=c.example", id.hash)
        );
    }

    proptest::proptest! {
        /// Whatever a certificate's names hold, the header parses back to exactly its
        /// fields: one element, SANs unchanged.
        #[test]
        fn xfcc_round_trips(
            cn in "\\PC{0,12}",
            uris in proptest::collection::vec("[a-z:/\",;=\\\\ ]{0,12}", 0..4),
            dns in proptest::collection::vec("[a-z.\",;=\\\\]{0,12}", 0..3),
        ) {
            let id = PeerIdentity {
                hash: "ab".into(),
                subject: format!("CN={}", escape_rfc2253(&cn)),
                uris: uris.clone(),
                dns: dns.clone(),
                other_sans: vec![],
            };
            let fields = parse_xfcc(&id.xfcc());
            proptest::prop_assert_eq!(fields.len(), 1);
            let keys: Vec<&str> = fields[0].iter().map(|(k, _)| k.as_str()).collect();
            let mut want = vec!["Hash", "Subject"];
            want.extend(std::iter::repeat_n("URI", uris.len().max(1)));
            want.extend(std::iter::repeat_n("DNS", dns.len()));
            proptest::prop_assert_eq!(keys, want);
            let got_uris: Vec<&str> = fields[0].iter().filter(|(k, _)| k == "URI").map(|(_, v)| v.as_str()).collect();
            let got_dns: Vec<&str> = fields[0].iter().filter(|(k, _)| k == "DNS").map(|(_, v)| v.as_str()).collect();
            if uris.is_empty() {
                proptest::prop_assert_eq!(got_uris, vec![""]);
            } else {
                proptest::prop_assert_eq!(got_uris, uris.iter().map(String::as_str).collect::<Vec<_>>());
            }
            proptest::prop_assert_eq!(got_dns, dns.iter().map(String::as_str).collect::<Vec<_>>());
        }

        /// A subject that was not escaped (a hand-made identity) still cannot break out.
        #[test]
        fn raw_subject_stays_quoted(subject in "[a-z\",;=\\\\]{0,12}") {
            let id = PeerIdentity { hash: "ab".into(), subject, ..PeerIdentity::default() };
            let fields = parse_xfcc(&id.xfcc());
            let keys: Vec<&str> = fields[0].iter().map(|(k, _)| k.as_str()).collect();
            proptest::prop_assert_eq!(fields.len(), 1);
            proptest::prop_assert_eq!(keys, vec!["Hash", "Subject", "URI"]);
        }
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
