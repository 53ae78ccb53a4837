//! The answer side of the HTTP/1 fast path (pure): the upstream's response head read as
//! Pingora's HTTP/1 client reads it (its parser options, header limits, `Content-Length`
//! reconciliation, framing and keep-alive rules), the head the client gets as Pingora's
//! pipeline writes it (headers grouped by name, `Content-Length` dropped beside
//! `Transfer-Encoding`, `x-envoy-upstream-service-time`, `Transfer-Encoding: chunked` for
//! a body framed by the connection's end, `Date`, `Connection`), and a decoder for a
//! chunked body, re-chunked as Pingora relays it: what one read brought, one chunk.

use super::request::header_line;

/// Response headers parsed at most (Pingora's limit); an answer with more fails as a
/// reset, as there.
pub const MAX_HEADERS: usize = 256;

/// How the answer's body is framed on the upstream connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: `HEAD`, 204, 304.
    Empty,
    Length(u64),
    Chunked,
    /// Until the upstream closes: relayed chunked.
    Close,
    /// Until the upstream closes, with a `Transfer-Encoding` other than chunked: relayed
    /// as it comes, and the client's connection ends with it.
    CloseRaw,
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
    /// `grpc-status` (its first value), when a number.
    pub grpc: Option<u32>,
    /// The head's length in the buffer.
    pub len: usize,
}

/// Why an upstream head was refused (treated as a reset, as Pingora's parse error is).
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed;

/// Pingora's HTTP/1 client parser options.
fn parser() -> httparse::ParserConfig {
    let mut p = httparse::ParserConfig::default();
    p.allow_spaces_after_header_name_in_responses(true);
    p.allow_obsolete_multiline_headers_in_responses(true);
    p
}

/// Headers parsed on the first attempt: most answers have a few, and the full
/// [`MAX_HEADERS`] is 8 KiB of stack to clear.
const FEW_HEADERS: usize = 32;

/// Parses the head at the start of `buf` and hands it to `f` (`None` while incomplete),
/// with room for [`FEW_HEADERS`] first and [`MAX_HEADERS`] when there are more.
fn with_head<R>(
    buf: &[u8],
    f: impl FnOnce(Option<(&httparse::Response<'_, '_>, usize)>) -> R,
) -> Result<R, Malformed> {
    fn parse<'h, 'b>(
        buf: &'b [u8],
        storage: &'h mut [httparse::Header<'b>],
    ) -> Result<(httparse::Response<'h, 'b>, Option<usize>), httparse::Error> {
        let mut resp = httparse::Response::new(storage);
        match parser().parse_response(&mut resp, buf)? {
            httparse::Status::Complete(n) => Ok((resp, Some(n))),
            httparse::Status::Partial => Ok((resp, None)),
        }
    }
    let mut few = [httparse::EMPTY_HEADER; FEW_HEADERS];
    match parse(buf, &mut few) {
        Ok((resp, n)) => Ok(f(n.map(|n| (&resp, n)))),
        Err(httparse::Error::TooManyHeaders) => {
            let mut all = [httparse::EMPTY_HEADER; MAX_HEADERS];
            match parse(buf, &mut all) {
                Ok((resp, n)) => Ok(f(n.map(|n| (&resp, n)))),
                Err(_) => Err(Malformed),
            }
        }
        Err(_) => Err(Malformed),
    }
}

/// Digits only, as Pingora's `from_digits`.
fn digits(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |n, b| match b {
        b'0'..=b'9' => n.checked_mul(10)?.checked_add(u64::from(b - b'0')),
        _ => None,
    })
}

/// Pingora's `content_length_parse_all`: every value of every `Content-Length` line,
/// comma-separated lists included, must be the same number.
fn content_length<'a>(values: impl Iterator<Item = &'a [u8]>) -> Result<Option<u64>, Malformed> {
    let mut length = None;
    for line in values {
        if !line
            .iter()
            .all(|b| (b' '..=b'~').contains(b) || *b == b'\t')
        {
            return Err(Malformed);
        }
        for v in line.split(|b| *b == b',') {
            let n = digits(v.trim_ascii()).ok_or(Malformed)?;
            if length.is_some_and(|l| l != n) {
                return Err(Malformed);
            }
            length = Some(n);
        }
    }
    Ok(length)
}

/// Parses the response head at the start of `buf`: `Ok(None)` while incomplete.
/// `head_request`: the request was `HEAD` (no body follows whatever the head says);
/// `close_sent`: the request said `Connection: close`.
pub fn parse(
    buf: &[u8],
    head_request: bool,
    close_sent: bool,
) -> Result<Option<Answer>, Malformed> {
    with_head(buf, |head| match head {
        None => Ok(None),
        Some((resp, len)) => answer(resp, len, head_request, close_sent).map(Some),
    })?
}

/// The [`Answer`] a complete head gives.
fn answer(
    resp: &httparse::Response<'_, '_>,
    len: usize,
    head_request: bool,
    close_sent: bool,
) -> Result<Answer, Malformed> {
    let status = resp.code.ok_or(Malformed)?;
    if !(100..=999).contains(&status) || status == 101 {
        // Not a status `http` takes, or an upgrade nothing asked for.
        return Err(Malformed);
    }
    let named = |name: &'static [u8]| {
        resp.headers
            .iter()
            .filter(move |h| h.name.as_bytes().eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let last_te = named(b"transfer-encoding").next_back();
    let chunked = last_te.is_some_and(|v| {
        v.rsplit(|b| *b == b',')
            .next()
            .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"))
    });
    // `Transfer-Encoding` overrides `Content-Length` (which Pingora then drops unread).
    let length = match last_te {
        Some(_) => None,
        None => content_length(named(b"content-length"))?,
    };
    let grpc = named(b"grpc-status")
        .next()
        .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok());
    // Pingora's `respect_keepalive`: the request's `Connection`, then the answer's, then
    // the version's default.
    let http10 = resp.version == Some(0);
    let mut keep_alive = None;
    for v in named(b"connection") {
        for t in v.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
            if t.eq_ignore_ascii_case(b"keep-alive") {
                keep_alive = Some(true);
            } else if t.eq_ignore_ascii_case(b"close") && keep_alive.is_none() {
                keep_alive = Some(false);
            }
        }
    }
    let keep_alive = !close_sent && keep_alive.unwrap_or(!http10) && !(http10 && last_te.is_some());
    let informational = (100..200).contains(&status);
    let framing = if informational || status == 204 || status == 304 || head_request {
        Framing::Empty
    } else if chunked {
        Framing::Chunked
    } else if last_te.is_some() {
        Framing::CloseRaw
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::Close
    };
    Ok(Answer {
        status,
        informational,
        framing,
        reusable: keep_alive && !matches!(framing, Framing::Close | Framing::CloseRaw),
        grpc,
        len,
    })
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

/// A header of the client's head, in the order Pingora's header map holds them.
#[derive(Clone, Copy)]
enum Entry<'a> {
    /// A name the upstream sent (all its values).
    Upstream(&'a [u8]),
    /// A header Pingora or the pipeline set (name as written).
    Set(&'static [u8], &'a [u8]),
}

impl Entry<'_> {
    fn is(&self, name: &[u8]) -> bool {
        match self {
            Entry::Upstream(n) => n.eq_ignore_ascii_case(name),
            Entry::Set(n, _) => n.eq_ignore_ascii_case(name),
        }
    }
}

/// A header value as Pingora stores it (RFC 9112 §5.2, RFC 9110 §5.5): each obs-fold
/// (a line break and the blanks around it) one space, any other CR, LF or NUL a space.
fn field_value(raw: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let stray = |b: &u8| if matches!(b, b'\r' | b'\0') { b' ' } else { *b };
    if !raw.iter().any(|b| matches!(b, b'\r' | b'\n' | b'\0')) {
        return raw.into();
    }
    let mut lines = raw.split(|b| *b == b'\n');
    let first = lines.next().unwrap_or_default();
    if first.len() == raw.len() {
        return raw.iter().map(stray).collect::<Vec<u8>>().into();
    }
    let mut out: Vec<u8> = first.trim_ascii_end().iter().map(stray).collect();
    for line in lines.map(<[u8]>::trim_ascii).filter(|l| !l.is_empty()) {
        if !out.is_empty() {
            out.push(b' ');
        }
        out.extend(line.iter().map(stray));
    }
    out.into()
}

/// Removes the entry named `name`, as `http::HeaderMap` does: the last takes its place.
fn remove(entries: &mut Vec<Entry>, name: &[u8]) {
    if let Some(i) = entries.iter().position(|e| e.is(name)) {
        entries.swap_remove(i);
    }
}

/// Inserts `e`, replacing the entry of its name where it stands, else appended.
fn set<'a>(entries: &mut Vec<Entry<'a>>, e: Entry<'a>) {
    let Entry::Set(name, _) = e else { return };
    match entries.iter().position(|x| x.is(name)) {
        Some(i) => entries[i] = e,
        None => entries.push(e),
    }
}

/// Writes the client's head for the upstream head `raw` (complete, as [`parse`] found it),
/// with Pingora's map operations in its order: `Content-Length` removed beside
/// `Transfer-Encoding` (the last entry takes its place), then each insertion replacing
/// the entry of its name where it stood, else appended. The status line is as sent
/// (HTTP/1.1 when the body is re-chunked). An informational head is written as it came
/// (headers grouped).
pub fn client_head(out: &mut Vec<u8>, raw: &[u8], answer: &Answer, added: &Added) {
    let _ = with_head(raw, |head| {
        if let Some((resp, _)) = head {
            write_client_head(out, resp, answer, added);
        }
    });
}

fn write_client_head(
    out: &mut Vec<u8>,
    resp: &httparse::Response<'_, '_>,
    answer: &Answer,
    added: &Added,
) {
    let rechunk = answer.framing == Framing::Close;
    out.extend_from_slice(if resp.version == Some(1) || rechunk {
        b"HTTP/1.1 "
    } else {
        b"HTTP/1.0 "
    });
    // Three digits, as `parse` checked.
    out.extend_from_slice(&[
        b'0' + (answer.status / 100 % 10) as u8,
        b'0' + (answer.status / 10 % 10) as u8,
        b'0' + (answer.status % 10) as u8,
    ]);
    out.push(b' ');
    out.extend_from_slice(resp.reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let headers = &*resp.headers;
    let mut entries = Vec::with_capacity(headers.len() + 4);
    for (i, h) in headers.iter().enumerate() {
        let name = h.name.as_bytes();
        if !headers[..i]
            .iter()
            .any(|p| p.name.as_bytes().eq_ignore_ascii_case(name))
        {
            entries.push(Entry::Upstream(name));
        }
    }
    if !answer.informational {
        if entries.iter().any(|e| e.is(b"transfer-encoding")) {
            remove(&mut entries, b"content-length");
        }
        // Pingora says keep-alive even when the body runs to the connection's end (and
        // then closes it).
        let connection: &[u8] = if added.keep_alive {
            b"keep-alive"
        } else {
            b"close"
        };
        // The pipeline's, then the proxy's, then the HTTP/1 session's.
        let inserts: [(&'static [u8], &[u8], bool); 4] = [
            (b"x-envoy-upstream-service-time", added.service_time, true),
            (b"Transfer-Encoding", b"chunked", rechunk),
            (b"Date", added.date, true),
            (b"Connection", connection, true),
        ];
        for (name, value, on) in inserts {
            if on {
                set(&mut entries, Entry::Set(name, value));
            }
        }
    }
    for e in &entries {
        match *e {
            Entry::Set(k, v) => header_line(out, k, v),
            Entry::Upstream(name) => {
                for h in headers {
                    if h.name.as_bytes().eq_ignore_ascii_case(name) {
                        header_line(out, h.name.as_bytes(), &field_value(h.value));
                    }
                }
            }
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
    /// After the size: blanks, before an extension or the line's end.
    Blank,
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
    /// Trailer bytes read (Pingora's limit applies).
    trailers: usize,
    /// Bytes of the current chunk-size line.
    line: usize,
}

/// The longest chunk-size line taken (Pingora's `PARTIAL_CHUNK_HEAD_LIMIT`).
const MAX_SIZE_LINE: usize = 8 * 1024;

/// The most trailer bytes taken (Pingora's HTTP/1 limit).
const MAX_TRAILERS: usize = 64 * 1024;

impl Default for Dechunker {
    fn default() -> Self {
        Dechunker {
            state: State::Size { digits: 0 },
            size: 0,
            trailers: 0,
            line: 0,
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
                    self.line += 1;
                    if let Some(d) = (b as char).to_digit(16) {
                        if digits >= 16 {
                            return Err(Malformed);
                        }
                        self.size = self.size * 16 + u64::from(d);
                        self.state = State::Size { digits: digits + 1 };
                    } else {
                        // httparse's chunk-size grammar: an empty size is 0.
                        self.state = after_size(b)?;
                    }
                }
                State::Blank => {
                    self.line += 1;
                    if self.line > MAX_SIZE_LINE {
                        return Err(Malformed);
                    }
                    self.state = after_size(b)?;
                }
                State::Extension => {
                    // Pingora's limit on a chunk's size line.
                    self.line += 1;
                    if self.line > MAX_SIZE_LINE {
                        return Err(Malformed);
                    }
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
                    self.line = 0;
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
                    self.trailers += 1;
                    if self.trailers > MAX_TRAILERS {
                        return Err(Malformed);
                    }
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

/// The state after a chunk size's last digit (or a blank after it): httparse's grammar
/// allows only blanks, then an extension or the line's end.
fn after_size(b: u8) -> Result<State, Malformed> {
    match b {
        b'\r' => Ok(State::SizeLf),
        b';' => Ok(State::Extension),
        b' ' | b'\t' => Ok(State::Blank),
        _ => Err(Malformed),
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
        parse(raw.as_bytes(), head, false).unwrap().unwrap()
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
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Le", false, false)
            .unwrap()
            .is_none());
        // Pingora's Content-Length rules: equal values collapse, TE wins.
        let a = answer(
            "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n",
            false,
        );
        assert_eq!(a.framing, Framing::Length(5));
        let a = answer(
            "HTTP/1.1 200 OK\r\nContent-Length: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
        );
        assert_eq!(a.framing, Framing::Chunked);
        let a = answer(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n",
            false,
        );
        assert_eq!((a.framing, a.reusable), (Framing::CloseRaw, false));
        let a = answer(
            "HTTP/1.1 200 OK\r\nX-Sp : v\r\nContent-Length: 0\r\n\r\n",
            false,
        );
        assert!(a.reusable);
        let a = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, true)
            .unwrap()
            .unwrap();
        assert!(!a.reusable, "the request said Connection: close");
        for bad in [
            "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\n\r\n",
            "HTTP/1.1 099 Low\r\n\r\n",
            "NOT HTTP\r\n\r\n",
        ] {
            assert_eq!(
                parse(bad.as_bytes(), false, false).unwrap_err(),
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
    fn folded_and_stray_line_breaks_become_spaces() {
        assert_eq!(&*field_value(b"plain"), b"plain");
        assert_eq!(&*field_value(b"a\r\n  b"), b"a b");
        assert_eq!(&*field_value(b"obs\r\n fold\r\n\t line"), b"obs fold line");
        assert_eq!(&*field_value(b"a\rb\0c"), b"a b c");
        assert_eq!(&*field_value(b"a \r\n\r\n b"), b"a b");
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
        assert!(
            d.feed(b"5 junk\r\n", |_| {}).is_err(),
            "only ; or blanks after a size"
        );
        let mut d = Dechunker::default();
        let mut got = Vec::new();
        d.feed(b"3 \t;x=1\r\nabc\r\n\r\n\r\n", |b| got.extend_from_slice(b))
            .unwrap();
        assert!(
            d.done() && got == b"abc",
            "blanks, an extension, an empty last size"
        );
        let mut d = Dechunker::default();
        let endless = [b"1;".as_slice(), &[b'x'; 9000]].concat();
        assert!(d.feed(&endless, |_| {}).is_err(), "a size line without end");
        let mut d = Dechunker::default();
        assert!(d.feed(b"1\r\nab\r\n", |_| {}).is_err());
        let mut out = Vec::new();
        write_chunk(&mut out, b"hello world");
        write_chunk(&mut out, b"");
        assert_eq!(out, b"B\r\nhello world\r\n");
    }
}
