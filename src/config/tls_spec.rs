//! From the model's `ServerTLSSettings` to the plain [`ServerTlsSpec`] the `tls` module
//! builds from. Config sits above `tls`, so the conversion lives here and `tls` stays a
//! leaf that never sees the model.

use crate::config::model::{ServerTlsMode, ServerTlsSettings, TlsProtocol};
use crate::tls::settings::{ServerTlsSpec, TlsMode, TlsVersion};

impl From<ServerTlsMode> for TlsMode {
    fn from(m: ServerTlsMode) -> TlsMode {
        match m {
            ServerTlsMode::Passthrough => TlsMode::Passthrough,
            ServerTlsMode::Simple => TlsMode::Simple,
            ServerTlsMode::Mutual => TlsMode::Mutual,
            ServerTlsMode::AutoPassthrough => TlsMode::AutoPassthrough,
            ServerTlsMode::IstioMutual => TlsMode::IstioMutual,
            ServerTlsMode::OptionalMutual => TlsMode::OptionalMutual,
        }
    }
}

impl From<TlsProtocol> for TlsVersion {
    fn from(p: TlsProtocol) -> TlsVersion {
        match p {
            TlsProtocol::Auto => TlsVersion::Auto,
            TlsProtocol::V1_0 => TlsVersion::V1_0,
            TlsProtocol::V1_1 => TlsVersion::V1_1,
            TlsProtocol::V1_2 => TlsVersion::V1_2,
            TlsProtocol::V1_3 => TlsVersion::V1_3,
        }
    }
}

/// Unset `mode` becomes PASSTHROUGH and unset protocol bounds `TLS_AUTO` (the proto zero
/// values); the fields `tls` does not read are dropped.
impl From<&ServerTlsSettings> for ServerTlsSpec {
    fn from(s: &ServerTlsSettings) -> ServerTlsSpec {
        ServerTlsSpec {
            mode: s.effective_mode().into(),
            server_certificate: s.server_certificate.clone(),
            private_key: s.private_key.clone(),
            ca_certificates: s.ca_certificates.clone(),
            credential_name: s.credential_name.clone(),
            subject_alt_names: s.subject_alt_names.clone(),
            min_protocol_version: s.min_protocol_version.map_or(TlsVersion::Auto, Into::into),
            max_protocol_version: s.max_protocol_version.map_or(TlsVersion::Auto, Into::into),
            cipher_suites: s.cipher_suites.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> ServerTlsSpec {
        let s: ServerTlsSettings = serde_yaml::from_str(yaml).unwrap();
        ServerTlsSpec::from(&s)
    }

    #[test]
    fn unset_fields_take_the_proto_defaults() {
        assert_eq!(spec("{}"), ServerTlsSpec::default());
        assert_eq!(spec("{}").mode, TlsMode::Passthrough);
        assert_eq!(
            spec("{minProtocolVersion: TLS_AUTO}").min_protocol_version,
            TlsVersion::Auto
        );
    }

    #[test]
    fn fields_carry_over() {
        let s = spec(
            "{mode: OPTIONAL_MUTUAL, serverCertificate: c.pem, privateKey: k.pem, \
             caCertificates: ca.pem, credentialName: cred, subjectAltNames: [a, b], \
             minProtocolVersion: TLSV1_2, maxProtocolVersion: TLSV1_3, \
             cipherSuites: [ECDHE-RSA-AES256-GCM-SHA384], httpsRedirect: true}",
        );
        assert_eq!(
            s,
            ServerTlsSpec {
                mode: TlsMode::OptionalMutual,
                server_certificate: Some("c.pem".into()),
                private_key: Some("k.pem".into()),
                ca_certificates: Some("ca.pem".into()),
                credential_name: Some("cred".into()),
                subject_alt_names: vec!["a".into(), "b".into()],
                min_protocol_version: TlsVersion::V1_2,
                max_protocol_version: TlsVersion::V1_3,
                cipher_suites: vec!["ECDHE-RSA-AES256-GCM-SHA384".into()],
            }
        );
    }

    #[test]
    fn enums_map_one_to_one() {
        for m in [
            ServerTlsMode::Passthrough,
            ServerTlsMode::Simple,
            ServerTlsMode::Mutual,
            ServerTlsMode::AutoPassthrough,
            ServerTlsMode::IstioMutual,
            ServerTlsMode::OptionalMutual,
        ] {
            assert_eq!(TlsMode::from(m).as_str(), m.as_str());
        }
        let all = [
            TlsProtocol::Auto,
            TlsProtocol::V1_0,
            TlsProtocol::V1_1,
            TlsProtocol::V1_2,
            TlsProtocol::V1_3,
        ];
        for a in all {
            for b in all {
                assert_eq!(a.cmp(&b), TlsVersion::from(a).cmp(&TlsVersion::from(b)));
            }
        }
    }
}
