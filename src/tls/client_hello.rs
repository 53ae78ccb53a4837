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
///
/// Linear in `buf.len()`, and the `need` of an `Incomplete` is the least the whole
/// ClientHello can still occupy given the record headers and the handshake length read so
/// far (the rest could come in full-size records), never more: a caller that re-peeks up to
/// `need` makes O(log size) calls even when a client sends one byte per record, instead of
/// one call per record.
pub fn parse(buf: &[u8]) -> Parse {
    let mut pos = 0;
    // Handshake bytes in the complete records before `pos`.
    let mut payload = 0;
    // The handshake message header (type and 24-bit length), as far as read.
    let mut head = [0u8; 4];
    let mut head_len = 0;
    // The handshake message's length with its header, once known.
    let mut total: Option<usize> = None;
    loop {
        work(1);
        let want = total.unwrap_or(4);
        if buf.len() < pos + 5 {
            if pos == 0 {
                // The first byte decides TLS or not: ask for no more than a record header.
                return Parse::Incomplete { need: 5 };
            }
            return incomplete(pos, want - payload);
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
        // The handshake header, from this record's bytes so far.
        for &b in buf[pos + 5..end.min(buf.len())].iter().take(4 - head_len) {
            head[head_len] = b;
            head_len += 1;
        }
        if total.is_none() && head_len >= 1 && head[0] != 1 {
            return Parse::Invalid("first handshake message is not a ClientHello");
        }
        if total.is_none() && head_len == 4 {
            let mlen =
                usize::from(head[1]) << 16 | usize::from(head[2]) << 8 | usize::from(head[3]);
            if 4 + mlen > MAX_CLIENT_HELLO {
                return Parse::Invalid("ClientHello too large");
            }
            total = Some(4 + mlen);
        }
        let want = total.unwrap_or(4);
        if buf.len() < end {
            return incomplete(end, want.saturating_sub(payload + len));
        }
        payload += len;
        pos = end;
        if let Some(total) = total.filter(|&t| payload >= t) {
            let message = reassemble(&buf[..pos], total);
            return match body(&message[4..]) {
                Some(hello) => Parse::Done(hello),
                None => Parse::Invalid("malformed ClientHello"),
            };
        }
    }
}

/// `Incomplete` for a stream that needs `at` bytes and then `rest` more handshake bytes:
/// those take at least `rest` bytes in full-size records, each with its 5-byte header.
fn incomplete(at: usize, rest: usize) -> Parse {
    let need = at + rest + 5 * rest.div_ceil(MAX_RECORD);
    if need > MAX_CLIENT_HELLO {
        return Parse::Invalid("ClientHello too large");
    }
    Parse::Incomplete { need }
}

/// The first `total` handshake bytes of `records` (complete records, headers checked);
/// borrowed when the first record holds them all.
fn reassemble(records: &[u8], total: usize) -> std::borrow::Cow<'_, [u8]> {
    let first = usize::from(u16::from_be_bytes([records[3], records[4]]));
    if first >= total {
        work(total);
        return std::borrow::Cow::Borrowed(&records[5..5 + total]);
    }
    let mut message = Vec::with_capacity(total);
    let mut pos = 0;
    while message.len() < total {
        let len = usize::from(u16::from_be_bytes([records[pos + 3], records[pos + 4]]));
        let data = &records[pos + 5..pos + 5 + len];
        let take = data.len().min(total - message.len());
        work(1 + take);
        message.extend_from_slice(&data[..take]);
        pos += 5 + len;
    }
    std::borrow::Cow::Owned(message)
}

#[cfg(test)]
thread_local! {
    /// Steps `parse` took on this thread (records visited, bytes copied): the tests' measure
    /// of its cost.
    static WORK: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[inline]
fn work(_steps: usize) {
    #[cfg(test)]
    WORK.with(|w| w.set(w.get() + _steps));
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

    /// The listener's loop (`read_client_hello`): peek up to `need`, starting at 5, and
    /// re-parse. Returns the verdict, the number of calls and `parse`'s steps.
    fn listener_loop(wire: &[u8]) -> (Parse, usize, usize) {
        WORK.with(|w| w.set(0));
        let (mut need, mut calls) = (5, 0);
        let verdict = loop {
            assert!(need <= wire.len(), "asked for {need} of {}", wire.len());
            calls += 1;
            match parse(&wire[..need]) {
                Parse::Incomplete { need: n } => {
                    assert!(n > need);
                    need = n;
                }
                other => break other,
            }
        };
        (verdict, calls, WORK.with(|w| w.get()))
    }

    /// A ClientHello message of exactly `len` bytes (a padding extension fills it up).
    fn hello_of_len(len: usize) -> Vec<u8> {
        let base = hello_message(&[sni_ext("big.example.com"), (21, vec![])]).len();
        let msg = hello_message(&[sni_ext("big.example.com"), (21, vec![0; len - base])]);
        assert_eq!(msg.len(), len);
        msg
    }

    #[test]
    fn one_byte_records_cost_is_linear() {
        // The largest ClientHello that fits the cap in 1-byte records: 6 wire bytes each.
        let wire = records(&hello_of_len(MAX_CLIENT_HELLO / 6 - 1), 1);
        assert!(wire.len() > 60_000 && wire.len() <= MAX_CLIENT_HELLO);
        let (verdict, calls, work) = listener_loop(&wire);
        assert!(
            matches!(&verdict, Parse::Done(h) if h.sni.as_deref() == Some("big.example.com")),
            "{verdict:?}"
        );
        // Was two calls per record (21,842), each walking every record so far.
        assert!(calls <= 64, "{calls} calls");
        assert!(
            work <= 16 * wire.len(),
            "{work} steps for {} bytes",
            wire.len()
        );

        // The same hello in one record: the header, then the record.
        let (verdict, calls, work) = listener_loop(&records(&hello_of_len(10_000), 16384));
        assert!(matches!(verdict, Parse::Done(_)));
        assert_eq!(calls, 2);
        assert!(work <= 10_000 + 10);
    }

    #[test]
    fn need_is_a_lower_bound_across_record_sizes() {
        // Never asks past the end of a hello, whatever its record sizes; few calls.
        for chunk in [1, 2, 3, 5, 100, 1000, 16383, 16384] {
            for len in [80, 300, 5000, 10_000] {
                let wire = records(&hello_of_len(len), chunk);
                let (verdict, calls, _) = listener_loop(&wire);
                assert!(
                    matches!(verdict, Parse::Done(_)),
                    "{chunk} {len}: {verdict:?}"
                );
                assert!(calls <= 64, "{chunk} {len}: {calls} calls");
            }
        }
    }

    #[test]
    fn oversized_hello_in_small_records_is_refused_early() {
        // 30,000 bytes in 1-byte records would take 180,000 on the wire: refused as soon as
        // the records read leave more to come than the cap has room for, in few calls.
        let msg = hello_of_len(30_000);
        let wire = records(&msg, 1);
        let (verdict, calls, _) = listener_loop(&wire[..MAX_CLIENT_HELLO]);
        assert!(matches!(verdict, Parse::Invalid(_)), "{verdict:?}");
        assert!(calls <= 64, "{calls} calls");
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
