//! Property tests of the ClientHello reader, the one parser that reads bytes from anyone
//! before any authentication: it never panics and never loops, on arbitrary bytes and on
//! real ClientHellos (made by rustls) cut, re-fragmented and mutated; on any prefix of a
//! hello it asks for more than it has and never for more than the hello holds (a peek that
//! asked for more would wait for bytes that never come).
//!
//! Bounded for CI: PROPTEST_CASES (default below) sets the cases per property. For a long
//! run, e.g. `PROPTEST_CASES=200000 cargo test --release --test fuzz_props`.

use meshgate::tls::client_hello::{parse, ClientHello, Parse, MAX_CLIENT_HELLO};
use proptest::prelude::*;
use std::sync::Arc;

fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default_cases);
    ProptestConfig::with_cases(cases)
}

/// The handshake bytes of a ClientHello rustls sends for `sni` and `alpn`.
fn rustls_hello(sni: &str, alpn: &[Vec<u8>]) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = alpn.to_vec();
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut wire = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut wire).unwrap();
    }
    // Unwrap rustls' records: the handshake message alone, to re-fragment.
    let mut msg = Vec::new();
    let mut rest = &wire[..];
    while rest.len() >= 5 {
        assert_eq!(rest[0], 22, "rustls sends a handshake record first");
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        msg.extend_from_slice(&rest[5..5 + len]);
        rest = &rest[5 + len..];
    }
    msg
}

/// `msg` in records whose sizes cycle through `sizes` (each 1..=16384).
fn records(msg: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pos = 0;
    for &size in sizes.iter().cycle() {
        if pos == msg.len() {
            break;
        }
        let part = &msg[pos..(pos + size).min(msg.len())];
        out.extend([22, 3, 1]);
        out.extend((part.len() as u16).to_be_bytes());
        out.extend(part);
        pos += part.len();
    }
    out
}

/// The listener's loop (`read_client_hello`): peek up to `need` from 5 and re-parse. A
/// stream that ends first is `None` (the peek would fail). Checks `need` moves forward and
/// stays under the cap, so the loop ends.
fn listener_loop(stream: &[u8]) -> Result<(Option<Parse>, usize), TestCaseError> {
    let mut need = 5;
    let mut calls = 0;
    loop {
        if need > stream.len() {
            return Ok((None, calls));
        }
        calls += 1;
        match parse(&stream[..need]) {
            Parse::Incomplete { need: n } => {
                prop_assert!(n > need, "need {n} after {need}");
                prop_assert!(n <= MAX_CLIENT_HELLO, "need {n} over the cap");
                need = n;
            }
            verdict => return Ok((Some(verdict), calls)),
        }
    }
}

fn sni_strategy() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,20}(\\.[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?){0,3}\\.(com|example|internal)"
}

fn alpn_strategy() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(b'!'..=b'~', 1..40), 0..60)
}

/// Record sizes: mostly small (the expensive case), sometimes full.
fn sizes_strategy() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(
        prop_oneof![4 => 1usize..8, 2 => 1usize..600, 1 => Just(16384usize)],
        1..6,
    )
}

proptest! {
    #![proptest_config(config(256))]

    /// Any bytes: a verdict, never a panic, and the listener's loop ends.
    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        if let Parse::Incomplete { need } = parse(&bytes) {
            prop_assert!(need > bytes.len() && need <= MAX_CLIENT_HELLO);
        }
        listener_loop(&bytes)?;
    }

    /// Bytes that look like handshake records (the parser's deeper states): same.
    #[test]
    fn record_shaped_bytes(
        parts in prop::collection::vec(
            (any::<bool>(), prop::collection::vec(any::<u8>(), 1..300), 0usize..3),
            1..12,
        )
    ) {
        let mut stream = Vec::new();
        for (header_ok, body, len_skew) in parts {
            stream.extend([if header_ok { 22 } else { 23 }, 3, 3]);
            stream.extend(((body.len() + len_skew) as u16).to_be_bytes());
            stream.extend(body);
        }
        listener_loop(&stream)?;
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// A real ClientHello in any record sizes: every prefix asks for more than it holds and
    /// no more than the whole; the whole gives its SNI and ALPN; the listener's loop gets
    /// there in few calls.
    #[test]
    fn real_hello_prefixes(
        sni in sni_strategy(),
        alpn in alpn_strategy(),
        sizes in sizes_strategy(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 64),
    ) {
        let msg = rustls_hello(&sni, &alpn);
        let wire = records(&msg, &sizes);
        prop_assume!(wire.len() <= MAX_CLIENT_HELLO);
        let expected = ClientHello {
            sni: Some(sni.clone()),
            alpn: alpn.iter().map(|p| String::from_utf8(p.clone()).unwrap()).collect(),
        };
        prop_assert_eq!(parse(&wire), Parse::Done(expected.clone()));
        let prefixes = (0..wire.len().min(200)).chain(cuts.iter().map(|c| c.index(wire.len())));
        for len in prefixes {
            match parse(&wire[..len]) {
                Parse::Incomplete { need } => {
                    prop_assert!(need > len && need <= wire.len(), "prefix {len}: need {need} of {}", wire.len());
                }
                other => prop_assert!(false, "prefix {len} of {}: {other:?}", wire.len()),
            }
        }
        let (verdict, calls) = listener_loop(&wire)?;
        prop_assert_eq!(verdict, Some(Parse::Done(expected)));
        prop_assert!(calls <= 64, "{calls} calls for {} bytes", wire.len());
    }

    /// A real ClientHello with bytes flipped, cut out or put in: never a panic, the loop
    /// ends, and a prefix of the stream still never asks past what a whole hello could be.
    #[test]
    fn mutated_real_hello(
        sni in sni_strategy(),
        alpn in alpn_strategy(),
        sizes in sizes_strategy(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<u8>()), 1..8),
    ) {
        let mut wire = records(&rustls_hello(&sni, &alpn), &sizes);
        for (at, kind, byte) in edits {
            let i = at.index(wire.len());
            match kind {
                0 => wire[i] ^= byte.max(1),
                1 => { wire.remove(i); }
                _ => wire.insert(i, byte),
            }
        }
        if let Parse::Incomplete { need } = parse(&wire) {
            prop_assert!(need > wire.len() && need <= MAX_CLIENT_HELLO);
        }
        listener_loop(&wire)?;
    }
}
