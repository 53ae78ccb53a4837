//! Reads the SNI and ALPN of a TLS ClientHello without terminating TLS (what Envoy's
//! `tls_inspector` does for Istio's PASSTHROUGH servers and SNI filter-chain matching).
//! Pure: works on the bytes peeked so far and says how many more it needs, so the caller
//! controls deadlines and the size cap. A ClientHello may span several records.

/// Largest ClientHello accepted, records included (Envoy's `max_client_hello_size`).
pub const MAX_CLIENT_HELLO: usize = 64 * 1024;

/// Largest plaintext record (RFC 8446 §5.1).
const MAX_RECORD: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientHello {
    /// `server_name` host name, lower-cased, trailing dot removed.
    pub sni: Option<String>,
    /// ALPN protocols offered, in the client's order.
    pub alpn: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parse {
    /// The first `need` bytes of the stream are needed to go on.
    Incomplete {
        need: usize,
    },
    Done(ClientHello),
    /// The first byte is not a TLS handshake record: a plaintext client.
    NotTls,
    Invalid(&'static str),
}

/// Parses the start of a connection.
pub fn parse(buf: &[u8]) -> Parse {
    let mut pos = 0;
    let mut handshake: Vec<u8> = Vec::new();
    loop {
        if buf.len() < pos + 5 {
            return Parse::Incomplete { need: pos + 5 };
        }
        let header = &buf[pos..pos + 5];
        if header[0] != 22 {
            return if pos == 0 {
                Parse::NotTls
            } else {
                Parse::Invalid("non-handshake record inside a ClientHello")
            };
        }
        if header[1] != 3 {
            return Parse::Invalid("not a TLS record version");
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len == 0 || len > MAX_RECORD {
            return Parse::Invalid("bad record length");
        }
        let end = pos + 5 + len;
        if end > MAX_CLIENT_HELLO {
            return Parse::Invalid("ClientHello too large");
        }
        if buf.len() < end {
            return Parse::Incomplete { need: end };
        }
        handshake.extend_from_slice(&buf[pos + 5..end]);
        pos = end;
        if handshake.len() < 4 {
            continue;
        }
        if handshake[0] != 1 {
            return Parse::Invalid("first handshake message is not a ClientHello");
        }
        let mlen = usize::from(handshake[1]) << 16
            | usize::from(handshake[2]) << 8
            | usize::from(handshake[3]);
        if 4 + mlen > MAX_CLIENT_HELLO {
            return Parse::Invalid("ClientHello too large");
        }
        if handshake.len() >= 4 + mlen {
            return match body(&handshake[4..4 + mlen]) {
                Some(hello) => Parse::Done(hello),
                None => Parse::Invalid("malformed ClientHello"),
            };
        }
    }
}

/// A cursor over big-endian, length-prefixed fields; `None` on any overrun.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| usize::from(b[0]))
    }
    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(n)
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(n)
    }
}

fn body(b: &[u8]) -> Option<ClientHello> {
    let mut r = Reader(b);
    r.take(2 + 32)?; // legacy_version, random
    r.vec8()?; // legacy_session_id
    r.vec16()?; // cipher_suites
    r.vec8()?; // legacy_compression_methods
    let mut hello = ClientHello::default();
    if r.0.is_empty() {
        return Some(hello); // no extensions (TLS 1.0-era clients)
    }
    let mut exts = Reader(r.vec16()?);
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let data = exts.vec16()?;
        match kind {
            0 => hello.sni = server_name(data)?,
            16 => {
                let mut list = Reader(Reader(data).vec16()?);
                while !list.0.is_empty() {
                    let p = list.vec8()?;
                    hello.alpn.push(String::from_utf8_lossy(p).into_owned());
                }
            }
            _ => {}
        }
    }
    Some(hello)
}

/// The `host_name` entry of a `server_name` extension (RFC 6066 §3).
fn server_name(data: &[u8]) -> Option<Option<String>> {
    let mut list = Reader(Reader(data).vec16()?);
    while !list.0.is_empty() {
        let kind = list.u8()?;
        let name = list.vec16()?;
        if kind == 0 {
            let name = std::str::from_utf8(name).ok()?;
            if name.is_empty() || !name.is_ascii() {
                return None;
            }
            return Some(Some(name.trim_end_matches('.').to_ascii_lowercase()));
        }
    }
    Some(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello handshake message with the given extensions.
    fn hello_message(exts: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend([7u8; 32]);
        body.push(0); // session id
        body.extend([0, 2, 0x13, 0x01]); // one cipher suite
        body.extend([1, 0]); // null compression
        let mut ext_bytes = Vec::new();
        for (kind, data) in exts {
            ext_bytes.extend(kind.to_be_bytes());
            ext_bytes.extend((data.len() as u16).to_be_bytes());
            ext_bytes.extend(data);
        }
        body.extend((ext_bytes.len() as u16).to_be_bytes());
        body.extend(ext_bytes);
        let mut msg = vec![1];
        msg.extend(&(body.len() as u32).to_be_bytes()[1..]);
        msg.extend(body);
        msg
    }

    fn sni_ext(name: &str) -> (u16, Vec<u8>) {
        let mut entry = vec![0];
        entry.extend((name.len() as u16).to_be_bytes());
        entry.extend(name.as_bytes());
        let mut data = (entry.len() as u16).to_be_bytes().to_vec();
        data.extend(entry);
        (0, data)
    }

    fn alpn_ext(protos: &[&str]) -> (u16, Vec<u8>) {
        let mut list = Vec::new();
        for p in protos {
            list.push(p.len() as u8);
            list.extend(p.as_bytes());
        }
        let mut data = (list.len() as u16).to_be_bytes().to_vec();
        data.extend(list);
        (16, data)
    }

    /// Wraps a handshake message in records of at most `chunk` bytes.
    fn records(msg: &[u8], chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for part in msg.chunks(chunk) {
            out.extend([22, 3, 1]);
            out.extend((part.len() as u16).to_be_bytes());
            out.extend(part);
        }
        out
    }

    #[test]
    fn reads_sni_and_alpn() {
        let msg = hello_message(&[sni_ext("Bookinfo.COM."), alpn_ext(&["h2", "http/1.1"])]);
        let wire = records(&msg, 16384);
        assert_eq!(
            parse(&wire),
            Parse::Done(ClientHello {
                sni: Some("bookinfo.com".into()),
                alpn: vec!["h2".into(), "http/1.1".into()],
            })
        );
    }

    #[test]
    fn no_sni() {
        let wire = records(&hello_message(&[alpn_ext(&["h2"])]), 16384);
        match parse(&wire) {
            Parse::Done(h) => assert_eq!(h.sni, None),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn asks_for_exactly_what_it_needs() {
        let wire = records(&hello_message(&[sni_ext("a.com")]), 16384);
        assert_eq!(parse(&wire[..0]), Parse::Incomplete { need: 5 });
        assert_eq!(parse(&wire[..3]), Parse::Incomplete { need: 5 });
        assert_eq!(parse(&wire[..5]), Parse::Incomplete { need: wire.len() });
        assert_eq!(
            parse(&wire[..wire.len() - 1]),
            Parse::Incomplete { need: wire.len() }
        );
    }

    #[test]
    fn fragmented_over_records() {
        let msg = hello_message(&[sni_ext("frag.example.com")]);
        let wire = records(&msg, 7);
        // Feed it as a peeking caller would: always exactly what was asked for.
        let mut have = 0;
        loop {
            match parse(&wire[..have]) {
                Parse::Incomplete { need } => {
                    assert!(need > have && need <= wire.len());
                    have = need;
                }
                Parse::Done(h) => {
                    assert_eq!(h.sni.as_deref(), Some("frag.example.com"));
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn plaintext_and_garbage() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Parse::NotTls);
        assert!(matches!(parse(&[22, 9, 1, 0, 1, 0]), Parse::Invalid(_)));
        assert!(matches!(parse(&[22, 3, 1, 0, 0]), Parse::Invalid(_)));
        // A server hello (type 2) where a ClientHello belongs.
        assert!(matches!(
            parse(&[22, 3, 1, 0, 4, 2, 0, 0, 0]),
            Parse::Invalid(_)
        ));
        // A truncated extension list.
        let mut msg = hello_message(&[sni_ext("a.com")]);
        let n = msg.len();
        msg.truncate(n - 2);
        msg[3] -= 2;
        assert!(matches!(parse(&records(&msg, 16384)), Parse::Invalid(_)));
    }

    #[test]
    fn size_is_capped() {
        // A ClientHello that claims 70 KiB is refused as soon as its header is read.
        let mut wire = vec![22, 3, 1, 0, 4, 1, 0x01, 0x18, 0x00];
        wire.truncate(9);
        assert!(matches!(parse(&wire), Parse::Invalid(_)));
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            /// Any bytes: a verdict, never a panic, and `need` always moves forward.
            #[test]
            fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
                if let Parse::Incomplete { need } = parse(&bytes) {
                    prop_assert!(need > bytes.len());
                    prop_assert!(need <= MAX_CLIENT_HELLO);
                }
            }
        }
    }
}
