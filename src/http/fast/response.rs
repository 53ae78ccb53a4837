//! The answer side of the HTTP/1 fast path (pure): the upstream's response head read,
//! its framing, the head the client gets (as Pingora's pipeline writes it: headers
//! grouped by name, `x-envoy-upstream-service-time`, `Transfer-Encoding: chunked` for
//! a body framed by the connection's end, `Date`, `Connection`), and a decoder for a
//! chunked body, re-chunked as Pingora relays it: what one read brought, one chunk.

use super::request::{header_line, write_grouped};

/// Response headers parsed at most; an answer with more fails as a reset.
pub const MAX_HEADERS: usize = 128;

/// How the answer's body is framed on the upstream connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: `HEAD`, 204, 304.
    Empty,
    Length(u64),
    Chunked,
    /// Until the upstream closes: relayed chunked.
    Close,
}

/// An upstream response head.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// 1xx other than 101: relayed as it is, the final answer follows.
    pub informational: bool,
    pub framing: Framing,
    /// The upstream connection may carry another request after this answer.
    pub reusable: bool,
    /// `grpc-status`, when present and a number.
    pub grpc: Option<u32>,
    /// The head's length in the buffer.
    pub len: usize,
}

/// Why an upstream head was refused (treated as a reset, as Pingora's parse error is).
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed;

fn token_in(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// Parses the response head at the start of `buf`: `Ok(None)` while incomplete.
/// `head_request`: the request was `HEAD` (no body follows whatever the head says).
pub fn parse(buf: &[u8], head_request: bool) -> Result<Option<Answer>, Malformed> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut storage);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Malformed),
    };
    let status = resp.code.ok_or(Malformed)?;
    if status == 101 {
        // Nothing asked to upgrade.
        return Err(Malformed);
    }
    let mut length = None;
    let mut chunked = false;
    let mut close = resp.version != Some(1);
    let mut grpc = None;
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or(Malformed)?;
            if length.is_some_and(|l| l != n) {
                return Err(Malformed);
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = h
                .value
                .rsplit(|b| *b == b',')
                .next()
                .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"connection") {
            if token_in(h.value, b"close") {
                close = true;
            } else if token_in(h.value, b"keep-alive") && resp.version == Some(0) {
                close = false;
            }
        } else if name.eq_ignore_ascii_case(b"grpc-status") {
            grpc = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.parse().ok());
        }
    }
    let informational = (100..200).contains(&status);
    let framing = if head_request || status == 204 || status == 304 || informational {
        Framing::Empty
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::Close
    };
    Ok(Some(Answer {
        status,
        informational,
        framing,
        reusable: !close && framing != Framing::Close,
        grpc,
        len,
    }))
}

/// What the client's head gets besides the upstream's headers.
pub struct Added<'a> {
    /// `x-envoy-upstream-service-time` (milliseconds, as text).
    pub service_time: &'a [u8],
    /// `Date`.
    pub date: &'a [u8],
    /// `Connection: keep-alive` (else `close`).
    pub keep_alive: bool,
}

/// Writes the client's head for the upstream head `raw` (complete, as [`parse`] found it):
/// the status line as sent (HTTP/1.1 when the body is re-chunked), the headers grouped,
/// and Pingora's insertions, each replacing a header of its name where it stood, else
/// appended. An informational head is written as it came (headers grouped).
pub fn client_head(out: &mut Vec<u8>, raw: &[u8], answer: &Answer, added: &Added) {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut storage);
    if !matches!(resp.parse(raw), Ok(httparse::Status::Complete(_))) {
        return;
    }
    let rechunk = answer.framing == Framing::Close;
    out.extend_from_slice(if resp.version == Some(1) || rechunk {
        b"HTTP/1.1 "
    } else {
        b"HTTP/1.0 "
    });
    // httparse reads three digits.
    out.extend_from_slice(&[
        b'0' + (answer.status / 100 % 10) as u8,
        b'0' + (answer.status / 10 % 10) as u8,
        b'0' + (answer.status % 10) as u8,
    ]);
    out.push(b' ');
    out.extend_from_slice(resp.reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut pairs: [(&[u8], &[u8]); MAX_HEADERS] = [(&[], &[]); MAX_HEADERS];
    let n = resp.headers.len();
    for (p, h) in pairs.iter_mut().zip(resp.headers.iter()) {
        *p = (h.name.as_bytes(), h.value);
    }
    if answer.informational {
        write_grouped(out, &pairs[..n]);
        out.extend_from_slice(b"\r\n");
        return;
    }
    let connection: &[u8] = if added.keep_alive {
        b"keep-alive"
    } else {
        b"close"
    };
    // In the order Pingora inserts them.
    let mut inserts: [(&[u8], &[u8], bool); 4] = [
        (b"x-envoy-upstream-service-time", added.service_time, true),
        (b"Transfer-Encoding", b"chunked", rechunk),
        (b"Date", added.date, true),
        (b"Connection", connection, true),
    ];
    for (i, (name, _)) in pairs[..n].iter().enumerate() {
        if pairs[..i].iter().any(|(p, _)| p.eq_ignore_ascii_case(name)) {
            continue;
        }
        if let Some(ins) = inserts
            .iter_mut()
            .find(|(k, _, on)| *on && k.eq_ignore_ascii_case(name))
        {
            header_line(out, ins.0, ins.1);
            ins.2 = false;
            continue;
        }
        for (k, v) in &pairs[i..n] {
            if k.eq_ignore_ascii_case(name) {
                header_line(out, k, v);
            }
        }
    }
    for (k, v, on) in inserts {
        if on {
            header_line(out, k, v);
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Where a chunked body's decoding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size {
        digits: u8,
    },
    /// After the size: an extension, up to the line's end.
    Extension,
    SizeLf,
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final blank line).
    TrailerStart,
    Trailer,
    TrailerLf {
        blank: bool,
    },
    Done,
}

/// A chunked body decoder (RFC 9112 §7.1); trailers are read and dropped, as Pingora's
/// HTTP/1 relay drops them.
#[derive(Debug)]
pub struct Dechunker {
    state: State,
    size: u64,
}

impl Default for Dechunker {
    fn default() -> Self {
        Dechunker {
            state: State::Size { digits: 0 },
            size: 0,
        }
    }
}

impl Dechunker {
    /// Decodes `input`, calling `data` with each run of body bytes; returns how many
    /// bytes of `input` were used (fewer than all only once the body ended).
    pub fn feed(&mut self, input: &[u8], mut data: impl FnMut(&[u8])) -> Result<usize, Malformed> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Done => return Ok(i),
                State::Size { digits } => {
                    if let Some(d) = (b as char).to_digit(16) {
                        if digits >= 15 {
                            return Err(Malformed);
                        }
                        self.size = self.size * 16 + u64::from(d);
                        self.state = State::Size { digits: digits + 1 };
                    } else if digits == 0 {
                        return Err(Malformed);
                    } else if b == b'\r' {
                        self.state = State::SizeLf;
                    } else if b == b';' || b == b' ' || b == b'\t' {
                        self.state = State::Extension;
                    } else {
                        return Err(Malformed);
                    }
                }
                State::Extension => {
                    if b == b'\r' {
                        self.state = State::SizeLf;
                    }
                }
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(Malformed);
                    }
                    self.state = if self.size == 0 {
                        State::TrailerStart
                    } else {
                        State::Data(self.size)
                    };
                }
                State::Data(left) => {
                    let n = (input.len() - i).min(usize::try_from(left).unwrap_or(usize::MAX));
                    data(&input[i..i + n]);
                    i += n;
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data(left)
                    };
                    continue;
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(Malformed);
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(Malformed);
                    }
                    self.size = 0;
                    self.state = State::Size { digits: 0 };
                }
                State::TrailerStart => {
                    self.state = if b == b'\r' {
                        State::TrailerLf { blank: true }
                    } else {
                        State::Trailer
                    };
                }
                State::Trailer => {
                    if b == b'\r' {
                        self.state = State::TrailerLf { blank: false };
                    }
                }
                State::TrailerLf { blank } => {
                    if b != b'\n' {
                        return Err(Malformed);
                    }
                    self.state = if blank {
                        State::Done
                    } else {
                        State::TrailerStart
                    };
                }
            }
            i += 1;
        }
        Ok(i)
    }

    /// The body, last chunk and trailers included, has been read.
    pub fn done(&self) -> bool {
        self.state == State::Done
    }
}

/// Appends `data` as one chunk, as Pingora writes them (size in upper-case hex).
pub fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    out.extend_from_slice(format!("{:X}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The chunked body's end.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(raw: &str, head: bool) -> Answer {
        parse(raw.as_bytes(), head).unwrap().unwrap()
    }

    #[test]
    fn framing_and_reuse_follow_the_head() {
        let a = answer("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false);
        assert_eq!(
            (a.framing, a.reusable, a.len),
            (Framing::Length(5), true, 38)
        );
        let a = answer(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            false,
        );
        assert_eq!(a.framing, Framing::Chunked);
        let a = answer("HTTP/1.1 200 OK\r\n\r\n", false);
        assert_eq!((a.framing, a.reusable), (Framing::Close, false));
        let a = answer("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true);
        assert_eq!((a.framing, a.reusable), (Framing::Empty, true));
        let a = answer("HTTP/1.1 204 No Content\r\n\r\n", false);
        assert_eq!(a.framing, Framing::Empty);
        let a = answer(
            "HTTP/1.1 200 OK\r\nConnection: Close\r\ncontent-length: 0\r\n\r\n",
            false,
        );
        assert!(!a.reusable);
        let a = answer("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n", false);
        assert!(!a.reusable);
        let a = answer(
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\ncontent-length: 0\r\n\r\n",
            false,
        );
        assert!(a.reusable);
        let a = answer("HTTP/1.1 100 Continue\r\n\r\n", false);
        assert!(a.informational);
        let a = answer(
            "HTTP/1.1 200 OK\r\ngrpc-status: 14\r\ncontent-length: 0\r\n\r\n",
            false,
        );
        assert_eq!(a.grpc, Some(14));
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Le", false)
            .unwrap()
            .is_none());
        for bad in [
            "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\n\r\n",
            "NOT HTTP\r\n\r\n",
        ] {
            assert_eq!(
                parse(bad.as_bytes(), false).unwrap_err(),
                Malformed,
                "{bad}"
            );
        }
    }

    fn client(raw: &str, keep_alive: bool) -> String {
        let a = answer(raw, false);
        let mut out = Vec::new();
        let added = Added {
            service_time: b"3",
            date: b"D",
            keep_alive,
        };
        client_head(&mut out, raw.as_bytes(), &a, &added);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_client_head_is_pingoras() {
        assert_eq!(
            client("HTTP/1.1 200 Fine\r\nSet-Cookie: a\r\nX: 1\r\nset-cookie: b\r\nContent-Length: 0\r\n\r\n", true),
            "HTTP/1.1 200 Fine\r\nSet-Cookie: a\r\nset-cookie: b\r\nX: 1\r\nContent-Length: 0\r\n\
             x-envoy-upstream-service-time: 3\r\nDate: D\r\nConnection: keep-alive\r\n\r\n"
        );
        assert_eq!(
            client(
                "HTTP/1.0 200 OK\r\nconnection: close\r\ndate: old\r\nX-Up: u\r\n\r\n",
                false
            ),
            "HTTP/1.1 200 OK\r\nConnection: close\r\nDate: D\r\nX-Up: u\r\n\
             x-envoy-upstream-service-time: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        assert_eq!(
            client("HTTP/1.1 100 Continue\r\nA: b\r\n\r\n", true),
            "HTTP/1.1 100 Continue\r\nA: b\r\n\r\n"
        );
    }

    #[test]
    fn chunked_bodies_decode_across_any_split() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: t\r\n\r\nNEXT";
        for split in 0..=body.len() - 4 {
            let mut d = Dechunker::default();
            let mut got = Vec::new();
            let a = d
                .feed(&body[..split], |b| got.extend_from_slice(b))
                .unwrap();
            assert_eq!(a, split);
            let b = d
                .feed(&body[split..], |b| got.extend_from_slice(b))
                .unwrap();
            assert_eq!(&got, b"hello world", "split at {split}");
            assert!(d.done());
            assert_eq!(&body[split + b..], b"NEXT");
        }
        let mut d = Dechunker::default();
        assert!(d.feed(b"zz\r\n", |_| {}).is_err());
        let mut d = Dechunker::default();
        assert!(d.feed(b"1\r\nab\r\n", |_| {}).is_err());
        let mut out = Vec::new();
        write_chunk(&mut out, b"hello world");
        write_chunk(&mut out, b"");
        assert_eq!(out, b"B\r\nhello world\r\n");
    }
}
