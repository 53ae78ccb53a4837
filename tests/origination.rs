//! TLS origination (DestinationRule `trafficPolicy.tls`, mode SIMPLE): plain HTTP in,
//! TLS to a real TLS upstream out, verified against the rule's CA and the SNI (or a
//! `subjectAltNames` entry); an upstream the CA does not vouch for gets 503 UF, never
//! plain text.

mod common;
use common::config::{gateway, start, vs};
use common::net::*;
use common::peers::TlsUpstream;
use common::{pki, scratch};

const HOST: &str = "a.example.com";

fn setup(name: &str, tls: &str) -> (Gateway, std::net::SocketAddr, TlsUpstream) {
    let dir = scratch(name);
    let ca = pki::ca(&dir.join("pki"), "ca");
    let leaf = pki::leaf(
        &dir.join("pki"),
        &ca,
        "api",
        "/CN=api.internal",
        &["DNS:api.internal"],
    );
    let other_ca = pki::ca(&dir.join("pki-other"), "other");
    let up = TlsUpstream::start("secure", &leaf);
    let yaml = format!(
        "{}---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: api}}\nspec:\n  hosts: [api.internal]\n  ports: [{{number: 443, name: https, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints: [{{address: 127.0.0.1, ports: {{https: {}}}}}]\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: api}}\nspec:\n  host: api.internal\n  trafficPolicy:\n    tls: {}\n{}",
        gateway("gw", "[\"*\"]"),
        up.port(),
        tls.replace("{CA}", &ca.crt.display().to_string())
            .replace("{OTHER_CA}", &other_ca.crt.display().to_string()),
        vs("v", &format!("[{HOST}]"), "[gw]", "  - route: [{destination: {host: api.internal}}]\n"),
    );
    let (gw, addr) = start(name, &yaml);
    (gw, addr, up)
}

#[test]
fn simple_tls_to_the_upstream_verified_by_the_rules_ca() {
    let (_gw, addr, up) = setup(
        "origination-simple",
        "{mode: SIMPLE, caCertificates: \"{CA}\"}",
    );
    let r = get(addr, HOST, "/x", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("secure"), "{}", r.text());
    let _ = up;
}

#[test]
fn an_upstream_the_ca_does_not_vouch_for_is_refused_not_sent_plain_text() {
    let (_gw, addr, _up) = setup(
        "origination-wrong-ca",
        "{mode: SIMPLE, caCertificates: \"{OTHER_CA}\"}",
    );
    let r = get(addr, HOST, "/x", &[]);
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("upstream connect error"), "{}", r.text());
}

#[test]
fn the_name_checked_is_the_sni_or_a_subject_alt_name() {
    // The SNI names a host the certificate lacks: refused ...
    let (_gw, addr, _up) = setup(
        "origination-wrong-sni",
        "{mode: SIMPLE, caCertificates: \"{CA}\", sni: nope.internal}",
    );
    assert_eq!(get(addr, HOST, "/x", &[]).status, 503);
    // ... unless subjectAltNames names the one it has.
    let (_gw, addr, _up) = setup(
        "origination-san",
        "{mode: SIMPLE, caCertificates: \"{CA}\", sni: nope.internal, subjectAltNames: [api.internal]}",
    );
    assert_eq!(get(addr, HOST, "/x", &[]).status, 200);
    // insecureSkipVerify: any certificate.
    let (_gw, addr, _up) = setup(
        "origination-insecure",
        "{mode: SIMPLE, insecureSkipVerify: true}",
    );
    assert_eq!(get(addr, HOST, "/x", &[]).status, 200);
}
