//! Envoy's access-log format, as Istio configures it: a `text_format` template or a
//! `json_format` object of templates, compiled once at config load into literal bytes
//! and parsed operators, then written for each exchange into a caller's buffer with no
//! allocation beyond that buffer's growth.
//!
//! The template grammar is Envoy's `SubstitutionFormatParser`: `%%` is a literal `%`;
//! any other `%` must start `%COMMAND(arg):len%` (`COMMAND` of `A-Z0-9_`), else the
//! format is refused, naming the position.

use super::digits::push_u64;
use super::json::{self, Node};
use super::operators::{self, Op, Value};
use crate::telemetry::Exchange;
use std::fmt;

/// Istio's default `TEXT` access-log format (`EnvoyTextLogFormat` of MeshConfig).
pub const ISTIO_TEXT: &str = concat!(
    "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" ",
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% ",
    "\"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% ",
    "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" ",
    "\"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER_RAW% ",
    "%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% ",
    "%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n",
);

/// Istio's default `JSON` access-log format (`EnvoyJSONLogFormatIstio`).
pub const ISTIO_JSON: &str = r#"{
  "start_time": "%START_TIME%",
  "route_name": "%ROUTE_NAME%",
  "method": "%REQ(:METHOD)%",
  "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
  "protocol": "%PROTOCOL%",
  "response_code": "%RESPONSE_CODE%",
  "response_flags": "%RESPONSE_FLAGS%",
  "response_code_details": "%RESPONSE_CODE_DETAILS%",
  "connection_termination_details": "%CONNECTION_TERMINATION_DETAILS%",
  "bytes_received": "%BYTES_RECEIVED%",
  "bytes_sent": "%BYTES_SENT%",
  "duration": "%DURATION%",
  "upstream_service_time": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
  "x_forwarded_for": "%REQ(X-FORWARDED-FOR)%",
  "user_agent": "%REQ(USER-AGENT)%",
  "request_id": "%REQ(X-REQUEST-ID)%",
  "authority": "%REQ(:AUTHORITY)%",
  "upstream_host": "%UPSTREAM_HOST%",
  "upstream_cluster": "%UPSTREAM_CLUSTER_RAW%",
  "upstream_local_address": "%UPSTREAM_LOCAL_ADDRESS%",
  "downstream_local_address": "%DOWNSTREAM_LOCAL_ADDRESS%",
  "downstream_remote_address": "%DOWNSTREAM_REMOTE_ADDRESS%",
  "requested_server_name": "%REQUESTED_SERVER_NAME%",
  "upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%"
}"#;

/// A format that does not compile; the message names the operator, position or JSON
/// error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError(pub String);

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FormatError {}

/// A piece of a template: literal bytes (escaped already inside a JSON string) or an
/// operator.
#[derive(Debug, Clone)]
enum Piece {
    Literal(Box<[u8]>),
    Op(Op),
}

/// A piece of a JSON line.
#[derive(Debug, Clone)]
enum JsonPiece {
    /// Serialized at compile time: keys, punctuation, constant values.
    Raw(Box<[u8]>),
    /// A value that is one operator: its own type (a number, a string, or `null` when
    /// absent), as Envoy's typed JSON formatter.
    Typed(Op),
    /// A value mixing text and operators: always a string, absent values `-`.
    String(Box<[Piece]>),
}

#[derive(Debug, Clone)]
enum Kind {
    Text(Box<[Piece]>),
    Json(Box<[JsonPiece]>),
}

/// A compiled access-log format. Immutable, so one is shared by every thread.
#[derive(Debug, Clone)]
pub struct Format {
    kind: Kind,
}

impl Format {
    /// Compiles an Envoy `text_format` template. A line is one exchange: a template not
    /// ending in `\n` gets one, as Istio adds it to every format.
    pub fn text(template: &str) -> Result<Format, FormatError> {
        let mut pieces = Vec::new();
        for p in parse_template(template)? {
            pieces.push(match p {
                Part::Literal(s) => Piece::Literal(s.into_bytes().into()),
                Part::Op(op) => Piece::Op(op),
            });
        }
        match pieces.last_mut() {
            Some(Piece::Literal(l)) if l.ends_with(b"\n") => {}
            Some(Piece::Literal(l)) => *l = [&**l, b"\n"].concat().into(),
            _ => pieces.push(Piece::Literal(b"\n"[..].into())),
        }
        Ok(Format {
            kind: Kind::Text(pieces.into()),
        })
    }

    /// Compiles an Envoy `json_format`: a JSON object whose string values are templates
    /// (a string without `%` is a constant, as in Envoy), nested objects and arrays
    /// allowed, other values written as they are. Keys keep the order written.
    pub fn json(object: &str) -> Result<Format, FormatError> {
        let fields = json::parse_object(object).map_err(FormatError)?;
        let mut b = JsonBuilder::default();
        b.object(&fields, "")?;
        b.flush();
        Ok(Format {
            kind: Kind::Json(b.pieces.into()),
        })
    }

    /// Istio's default text format ([`ISTIO_TEXT`]).
    pub fn istio_text() -> Format {
        Format::text(ISTIO_TEXT).expect("Istio's text format compiles")
    }

    /// Istio's default JSON format ([`ISTIO_JSON`]).
    pub fn istio_json() -> Format {
        Format::json(ISTIO_JSON).expect("Istio's JSON format compiles")
    }

    /// Appends the line for `e`, `\n` included. Text values are written raw, as Envoy
    /// does, except that CR and LF become spaces so a value cannot split the line.
    pub fn write(&self, e: &Exchange<'_>, out: &mut Vec<u8>) {
        match &self.kind {
            Kind::Text(pieces) => {
                for p in pieces.iter() {
                    match p {
                        Piece::Literal(l) => out.extend_from_slice(l),
                        Piece::Op(op) => {
                            let start = out.len();
                            op.value(e).write(out, false);
                            for b in &mut out[start..] {
                                if *b == b'\n' || *b == b'\r' {
                                    *b = b' ';
                                }
                            }
                        }
                    }
                }
            }
            Kind::Json(pieces) => {
                for p in pieces.iter() {
                    match p {
                        JsonPiece::Raw(r) => out.extend_from_slice(r),
                        JsonPiece::Typed(op) => match op.value(e) {
                            Value::Absent => out.extend_from_slice(b"null"),
                            Value::Number(n) => push_u64(out, n),
                            v => {
                                out.push(b'"');
                                v.write(out, true);
                                out.push(b'"');
                            }
                        },
                        JsonPiece::String(parts) => {
                            out.push(b'"');
                            for p in parts.iter() {
                                match p {
                                    Piece::Literal(l) => out.extend_from_slice(l),
                                    Piece::Op(op) => op.value(e).write(out, true),
                                }
                            }
                            out.push(b'"');
                        }
                    }
                }
                out.push(b'\n');
            }
        }
    }
}

/// A parsed template: literal text and operators.
enum Part {
    Literal(String),
    Op(Op),
}

/// Envoy's `SubstitutionFormatParser::parse`.
fn parse_template(t: &str) -> Result<Vec<Part>, FormatError> {
    let b = t.as_bytes();
    let mut parts = Vec::new();
    let mut lit = String::new();
    let (mut i, mut run) = (0, 0);
    while i < b.len() {
        if b[i] != b'%' {
            i += 1;
            continue;
        }
        if b.get(i + 1) == Some(&b'%') {
            // `%%`: keep one.
            lit.push_str(&t[run..=i]);
            i += 2;
            run = i;
            continue;
        }
        lit.push_str(&t[run..i]);
        if !lit.is_empty() {
            parts.push(Part::Literal(std::mem::take(&mut lit)));
        }
        let Some(c) = command_at(t, i) else {
            let snippet: String = t[i..].chars().take(32).collect();
            return Err(FormatError(format!(
                "no valid command operator at position {i} ({snippet:?}); a literal % is written %%"
            )));
        };
        parts.push(Part::Op(
            operators::parse(c.command, c.arg, c.max).map_err(FormatError)?,
        ));
        i = c.end;
        run = i;
    }
    lit.push_str(&t[run..]);
    if !lit.is_empty() {
        parts.push(Part::Literal(lit));
    }
    Ok(parts)
}

struct Command<'t> {
    command: &'t str,
    arg: &'t str,
    max: Option<usize>,
    /// Just past the closing `%`.
    end: usize,
}

/// Matches Envoy's `^%((?:[A-Z]|[0-9]|_)+)(?:\((.*?)\))?(?::([0-9]+))?%` at `pos`:
/// the argument ends at the first `)` that a `%` or `:len%` follows (so it may hold
/// `%` and `)`, as `%START_TIME(%H)%` needs) and cannot span a newline.
fn command_at(t: &str, pos: usize) -> Option<Command<'_>> {
    let b = t.as_bytes();
    let mut j = pos + 1;
    while j < b.len() && (b[j].is_ascii_uppercase() || b[j].is_ascii_digit() || b[j] == b'_') {
        j += 1;
    }
    if j == pos + 1 {
        return None;
    }
    let command = &t[pos + 1..j];
    // `(?::([0-9]+))?%` from `k`: the length, if any, and the end.
    let tail = |k: usize| -> Option<(Option<usize>, usize)> {
        if b.get(k) == Some(&b'%') {
            return Some((None, k + 1));
        }
        if b.get(k) != Some(&b':') {
            return None;
        }
        let digits = b[k + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        let e = k + 1 + digits;
        if digits == 0 || b.get(e) != Some(&b'%') {
            return None;
        }
        Some((Some(t[k + 1..e].parse().ok()?), e + 1))
    };
    if b.get(j) != Some(&b'(') {
        let (max, end) = tail(j)?;
        return Some(Command {
            command,
            arg: "",
            max,
            end,
        });
    }
    let mut k = j + 1;
    while k < b.len() && b[k] != b'\n' {
        if b[k] == b')' {
            if let Some((max, end)) = tail(k + 1) {
                return Some(Command {
                    command,
                    arg: &t[j + 1..k],
                    max,
                    end,
                });
            }
        }
        k += 1;
    }
    None
}

/// Serializes a `json_format` tree into raw JSON pieces and operator slots, as Envoy's
/// `JsonFormatBuilder`: everything constant is written once, here.
#[derive(Default)]
struct JsonBuilder {
    raw: Vec<u8>,
    pieces: Vec<JsonPiece>,
}

impl JsonBuilder {
    fn flush(&mut self) {
        if !self.raw.is_empty() {
            self.pieces
                .push(JsonPiece::Raw(std::mem::take(&mut self.raw).into()));
        }
    }

    fn string(&mut self, s: &str) {
        self.raw.push(b'"');
        json::escape_into(s.as_bytes(), &mut self.raw);
        self.raw.push(b'"');
    }

    fn object(&mut self, fields: &[(String, Node)], path: &str) -> Result<(), FormatError> {
        self.raw.push(b'{');
        for (i, (k, v)) in fields.iter().enumerate() {
            if i > 0 {
                self.raw.push(b',');
            }
            self.string(k);
            self.raw.push(b':');
            let path = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            self.value(v, &path)?;
        }
        self.raw.push(b'}');
        Ok(())
    }

    fn value(&mut self, v: &Node, path: &str) -> Result<(), FormatError> {
        match v {
            Node::Null => self.raw.extend_from_slice(b"null"),
            Node::Bool(b) => self
                .raw
                .extend_from_slice(if *b { b"true" } else { b"false" }),
            Node::Number(n) => json::write_number(n, &mut self.raw),
            Node::Object(fields) => self.object(fields, path)?,
            Node::Array(items) => {
                self.raw.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.raw.push(b',');
                    }
                    self.value(item, &format!("{path}[{i}]"))?;
                }
                self.raw.push(b']');
            }
            Node::String(s) if !s.contains('%') => self.string(s),
            Node::String(s) => {
                let mut parts = parse_template(s)
                    .map_err(|e| FormatError(format!("JSON format key {path:?}: {e}")))?;
                match parts.as_mut_slice() {
                    [] => self.string(""),
                    [Part::Literal(l)] => self.string(l),
                    [Part::Op(_)] => {
                        let Some(Part::Op(op)) = parts.pop() else {
                            unreachable!("one operator")
                        };
                        self.flush();
                        self.pieces.push(JsonPiece::Typed(op));
                    }
                    _ => {
                        let pieces: Vec<Piece> = parts
                            .into_iter()
                            .map(|p| match p {
                                Part::Literal(l) => {
                                    let mut escaped = Vec::with_capacity(l.len());
                                    json::escape_into(l.as_bytes(), &mut escaped);
                                    Piece::Literal(escaped.into())
                                }
                                Part::Op(op) => Piece::Op(op),
                            })
                            .collect();
                        self.flush();
                        self.pieces.push(JsonPiece::String(pieces.into()));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::ResponseFlags;
    use http::HeaderValue;
    use pingora::http::{RequestHeader, ResponseHeader};
    use serde_json::Value as J;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    fn start() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_717_334_697_930)
    }

    fn request() -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/p?q=1", None).unwrap();
        r.insert_header("Host", "example.com").unwrap();
        r.insert_header("User-Agent", "curl/8.0").unwrap();
        r.insert_header("X-Request-Id", "abc").unwrap();
        r.insert_header("X-Forwarded-For", "10.0.0.1").unwrap();
        r
    }

    fn response() -> ResponseHeader {
        let mut r = ResponseHeader::build(200, None).unwrap();
        r.insert_header("x-envoy-upstream-service-time", "5")
            .unwrap();
        r
    }

    fn http<'a>(req: &'a RequestHeader, resp: &'a ResponseHeader) -> Exchange<'a> {
        let mut e = Exchange::new(start(), Duration::from_micros(12_900));
        e.request = Some(req);
        e.response = Some(resp);
        e.scheme = Some("http");
        e.protocol = Some("HTTP/1.1");
        e.response_code = Some(200);
        e.response_code_details = Some("via_upstream");
        e.bytes_sent = 11;
        e.upstream_host = Some("10.1.0.5:8080".parse().unwrap());
        e.upstream_cluster = Some("outbound|8080||svc.ns.svc.cluster.local");
        e.upstream_local_address = Some("10.0.0.2:40000".parse().unwrap());
        e.downstream_local_address = Some("10.0.0.2:80".parse().unwrap());
        e.downstream_remote_address = Some("10.0.0.1:5555".parse().unwrap());
        e.route_name = Some("default");
        e.attempts = Some(1);
        e
    }

    fn tcp() -> Exchange<'static> {
        let mut e = Exchange::new(start(), Duration::from_millis(1500));
        e.bytes_received = 100;
        e.bytes_sent = 200;
        e.upstream_host = Some("10.1.0.5:9000".parse().unwrap());
        e.upstream_cluster = Some("outbound|9000||db");
        e.upstream_local_address = Some("10.0.0.2:40001".parse().unwrap());
        e.downstream_local_address = Some("10.0.0.2:9000".parse().unwrap());
        e.downstream_remote_address = Some("10.0.0.1:5556".parse().unwrap());
        e.requested_server_name = Some("db.example.com");
        e
    }

    fn line(f: &Format, e: &Exchange<'_>) -> String {
        let mut out = Vec::new();
        f.write(e, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn text(template: &str, e: &Exchange<'_>) -> String {
        line(&Format::text(template).unwrap(), e)
    }

    fn err(r: Result<Format, FormatError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn istio_text_is_istios() {
        assert_eq!(
            ISTIO_TEXT,
            r#"[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%"#
                .to_owned()
                + "\n"
        );
    }

    #[test]
    fn istio_text_http() {
        let (req, resp) = (request(), response());
        assert_eq!(
            line(&Format::istio_text(), &http(&req, &resp)),
            "[2024-06-02T13:24:57.930Z] \"GET /p?q=1 HTTP/1.1\" 200 - via_upstream - \"-\" 0 11 12 5 \
             \"10.0.0.1\" \"curl/8.0\" \"abc\" \"example.com\" \"10.1.0.5:8080\" \
             outbound|8080||svc.ns.svc.cluster.local 10.0.0.2:40000 10.0.0.2:80 10.0.0.1:5555 - default\n"
        );
    }

    #[test]
    fn istio_text_tcp() {
        assert_eq!(
            line(&Format::istio_text(), &tcp()),
            "[2024-06-02T13:24:57.930Z] \"- - -\" 0 - - - \"-\" 100 200 1500 - \"-\" \"-\" \"-\" \"-\" \
             \"10.1.0.5:9000\" outbound|9000||db 10.0.0.2:40001 10.0.0.2:9000 10.0.0.1:5556 \
             db.example.com -\n"
        );
    }

    #[test]
    fn istio_json_http_and_tcp() {
        let (req, resp) = (request(), response());
        let l = line(&Format::istio_json(), &http(&req, &resp));
        assert!(
            l.ends_with("}\n") && !l[..l.len() - 1].contains('\n'),
            "one line: {l}"
        );
        let v: J = serde_json::from_str(&l).unwrap();
        assert_eq!(v["start_time"], "2024-06-02T13:24:57.930Z");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["path"], "/p?q=1");
        assert_eq!(v["response_code"], 200, "a number");
        assert_eq!(v["bytes_sent"], 11);
        assert_eq!(v["duration"], 12);
        assert_eq!(v["upstream_service_time"], "5", "a header: a string");
        assert_eq!(v["response_flags"], "-", "Envoy's flags are never unset");
        assert_eq!(v["requested_server_name"], J::Null);
        assert_eq!(v["upstream_host"], "10.1.0.5:8080");
        assert_eq!(v.as_object().unwrap().len(), 24);
        // Keys in the order written.
        assert!(l.starts_with(
            r#"{"start_time":"2024-06-02T13:24:57.930Z","route_name":"default","method""#
        ));
        assert!(l.ends_with("\"upstream_transport_failure_reason\":null}\n"));

        let v: J = serde_json::from_str(&line(&Format::istio_json(), &tcp())).unwrap();
        assert_eq!(v["method"], J::Null);
        assert_eq!(v["protocol"], J::Null);
        assert_eq!(v["response_code"], 0);
        assert_eq!(v["bytes_received"], 100);
        assert_eq!(v["requested_server_name"], "db.example.com");
    }

    /// Whole lines, byte for byte: IPv4 and IPv6 addresses, flags, headers with odd
    /// bytes, in both encodings.
    #[test]
    fn istio_lines_byte_for_byte() {
        let (mut req, resp) = (request(), response());
        let e = http(&req, &resp);
        assert_eq!(
            line(&Format::istio_json(), &e),
            concat!(
                r#"{"start_time":"2024-06-02T13:24:57.930Z","route_name":"default","method":"GET","#,
                r#""path":"/p?q=1","protocol":"HTTP/1.1","response_code":200,"response_flags":"-","#,
                r#""response_code_details":"via_upstream","connection_termination_details":null,"#,
                r#""bytes_received":0,"bytes_sent":11,"duration":12,"upstream_service_time":"5","#,
                r#""x_forwarded_for":"10.0.0.1","user_agent":"curl/8.0","request_id":"abc","#,
                r#""authority":"example.com","upstream_host":"10.1.0.5:8080","#,
                r#""upstream_cluster":"outbound|8080||svc.ns.svc.cluster.local","#,
                r#""upstream_local_address":"10.0.0.2:40000","downstream_local_address":"10.0.0.2:80","#,
                r#""downstream_remote_address":"10.0.0.1:5555","requested_server_name":null,"#,
                r#""upstream_transport_failure_reason":null}"#,
                "\n"
            )
        );
        req.insert_header(
            "user-agent",
            HeaderValue::from_bytes(b"Mozilla \"5.0\" \\ caf\xc3\xa9 \t\xff").unwrap(),
        )
        .unwrap();
        let mut e = http(&req, &resp);
        e.flags.insert(ResponseFlags::UC);
        e.flags.insert(ResponseFlags::DC);
        e.upstream_host = Some("[2001:db8:0:1::5]:8080".parse().unwrap());
        e.upstream_local_address = Some("[::1]:40000".parse().unwrap());
        e.downstream_local_address = Some("[::ffff:10.0.0.2]:80".parse().unwrap());
        e.downstream_remote_address = Some("255.255.255.255:65535".parse().unwrap());
        e.upstream_transport_failure_reason = Some("tls error: bad cert");
        e.requested_server_name = Some("a.example.com");
        assert_eq!(
            line(&Format::istio_json(), &e),
            concat!(
                r#"{"start_time":"2024-06-02T13:24:57.930Z","route_name":"default","method":"GET","#,
                r#""path":"/p?q=1","protocol":"HTTP/1.1","response_code":200,"response_flags":"UC,DC","#,
                r#""response_code_details":"via_upstream","connection_termination_details":null,"#,
                r#""bytes_received":0,"bytes_sent":11,"duration":12,"upstream_service_time":"5","#,
                r#""x_forwarded_for":"10.0.0.1","#,
                r#""user_agent":"Mozilla \"5.0\" \\ café \t\u00ff","request_id":"abc","#,
                r#""authority":"example.com","upstream_host":"[2001:db8:0:1::5]:8080","#,
                r#""upstream_cluster":"outbound|8080||svc.ns.svc.cluster.local","#,
                r#""upstream_local_address":"[::1]:40000","downstream_local_address":"[::ffff:10.0.0.2]:80","#,
                r#""downstream_remote_address":"255.255.255.255:65535","requested_server_name":"a.example.com","#,
                r#""upstream_transport_failure_reason":"tls_error:_bad_cert"}"#,
                "\n"
            )
        );
        let mut out = Vec::new();
        Format::istio_text().write(&e, &mut out);
        assert_eq!(
            out,
            [
                &b"[2024-06-02T13:24:57.930Z] \"GET /p?q=1 HTTP/1.1\" 200 UC,DC via_upstream - \
                   \"tls_error:_bad_cert\" 0 11 12 5 \"10.0.0.1\" \"Mozilla \"5.0\" \\ caf\xc3\xa9 \t\xff\" \
                   \"abc\" \"example.com\" \"[2001:db8:0:1::5]:8080\" \
                   outbound|8080||svc.ns.svc.cluster.local [::1]:40000 [::ffff:10.0.0.2]:80 \
                   255.255.255.255:65535 a.example.com default\n"[..],
            ]
            .concat()
        );
        let f = Format::json(
            r#"{"a": "%UPSTREAM_HOST% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%:%DOWNSTREAM_REMOTE_PORT%",
                "f": "[%RESPONSE_FLAGS%]", "t": "%START_TIME(%s.%3f)% %START_TIME%",
                "u": "<%REQ(USER-AGENT):9%>", "i": "%UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%",
                "p": "%UPSTREAM_LOCAL_PORT%"}"#,
        )
        .unwrap();
        assert_eq!(
            line(&f, &e),
            concat!(
                r#"{"a":"[2001:db8:0:1::5]:8080 255.255.255.255:65535","f":"[UC,DC]","#,
                r#""t":"1717334697.930 2024-06-02T13:24:57.930Z","u":"<Mozilla \">","#,
                r#""i":"::1","p":40000}"#,
                "\n"
            )
        );
    }

    #[test]
    fn custom_text_formats() {
        let (mut req, resp) = (request(), response());
        let e = http(&req, &resp);
        assert_eq!(
            text("%REQ(USER-AGENT):4%|%REQ(user-agent)%", &e),
            "curl|curl/8.0\n"
        );
        assert_eq!(text("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", &e), "/p?q=1\n");
        assert_eq!(text("%REQ(X-MISSING?X-REQUEST-ID):2%", &e), "ab\n");
        assert_eq!(
            text("%REQ(X-MISSING)% %RESP(:STATUS)% %REQ(:SCHEME)%", &e),
            "- 200 http\n"
        );
        assert_eq!(text("%START_TIME(%s.%3f)%", &e), "1717334697.930\n");
        assert_eq!(
            text("%START_TIME(%Y/%m/%dT%H:%M:%S%z)%", &e),
            "2024/06/02T13:24:57+0000\n"
        );
        assert_eq!(
            text("100%% of %PROTOCOL%\n", &e),
            "100% of HTTP/1.1\n",
            "one newline"
        );
        assert_eq!(text("", &e), "\n");
        assert_eq!(
            text("%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %DOWNSTREAM_REMOTE_PORT% %UPSTREAM_REQUEST_ATTEMPT_COUNT%", &e),
            "10.0.0.1 5555 1\n"
        );
        req.insert_header("X-Envoy-Original-Path", "/orig").unwrap();
        assert_eq!(
            text("%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", &http(&req, &resp)),
            "/orig\n"
        );
    }

    #[test]
    fn values_cannot_break_a_line() {
        let mut e = tcp();
        e.route_name = Some("a\nb\rc");
        e.upstream_transport_failure_reason = Some("tls handshake\nfailed");
        e.response_code_details = Some("upstream reset\tx");
        assert_eq!(
            text(
                "%ROUTE_NAME% %UPSTREAM_TRANSPORT_FAILURE_REASON% %RESPONSE_CODE_DETAILS%",
                &e
            ),
            "a b c tls_handshake failed upstream_reset_x\n"
        );
        let f = Format::json(
            r#"{"r": "%ROUTE_NAME%", "d": "x %RESPONSE_CODE_DETAILS(ALLOW_WHITESPACES)%"}"#,
        )
        .unwrap();
        let v: J = serde_json::from_str(&line(&f, &e)).unwrap();
        assert_eq!(v["r"], "a\nb\rc");
        assert_eq!(v["d"], "x upstream reset\tx");
    }

    #[test]
    fn hostile_header_bytes_stay_valid_json() {
        let mut req = request();
        req.insert_header(
            "user-agent",
            HeaderValue::from_bytes(b"a\"b\\c\xff\xfe\tz").unwrap(),
        )
        .unwrap();
        let resp = response();
        let e = http(&req, &resp);
        let l = line(&Format::istio_json(), &e);
        let v: J = serde_json::from_str(&l).unwrap();
        assert_eq!(v["user_agent"], "a\"b\\c\u{ff}\u{fe}\tz");
        // Text writes the bytes as they came, like Envoy.
        let mut out = Vec::new();
        Format::text("%REQ(USER-AGENT)%")
            .unwrap()
            .write(&e, &mut out);
        assert_eq!(out, b"a\"b\\c\xff\xfe\tz\n");
    }

    #[test]
    fn json_values_keep_types() {
        let (req, resp) = (request(), response());
        let mut e = http(&req, &resp);
        e.grpc_status = Some(5);
        let f = Format::json(
            r#"{"n": 1.0, "b": true, "z": null, "const": "no operators", "pct": "100%%",
                "mixed": "%REQ(:METHOD)% %REQ(X-MISSING)% %RESPONSE_CODE%",
                "nested": {"code": "%RESPONSE_CODE%", "list": ["%BYTES_SENT%", "x", 2]},
                "g": "%GRPC_STATUS%", "gs": "%GRPC_STATUS(SNAKE_STRING)%", "gn": "%GRPC_STATUS(NUMBER)%",
                "port": "%UPSTREAM_REMOTE_PORT%", "ip": "%UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
                "flags": "%RESPONSE_FLAGS%"}"#,
        )
        .unwrap();
        e.flags.insert(ResponseFlags::URX);
        e.flags.insert(ResponseFlags::UF);
        let l = line(&f, &e);
        assert!(
            l.starts_with(r#"{"n":1,"b":true,"z":null,"const":"no operators","pct":"100%","#),
            "{l}"
        );
        let v: J = serde_json::from_str(&l).unwrap();
        assert_eq!(
            v["mixed"], "GET - 200",
            "several pieces: a string, `-` for absent"
        );
        assert_eq!(v["nested"]["code"], 200);
        assert_eq!(v["nested"]["list"], serde_json::json!([11, "x", 2]));
        assert_eq!(
            (&v["g"], &v["gs"], &v["gn"]),
            (&J::from("NotFound"), &J::from("NOT_FOUND"), &J::from(5))
        );
        assert_eq!(
            (&v["port"], &v["ip"]),
            (&J::from(8080), &J::from("10.1.0.5"))
        );
        assert_eq!(v["flags"], "UF,URX");
        e.grpc_status = Some(42);
        let v: J = serde_json::from_str(&line(&f, &e)).unwrap();
        assert_eq!((&v["g"], &v["gn"]), (&J::from("42"), &J::from(42)));
    }

    #[test]
    fn addresses_hostnames_and_constants() {
        let mut e = tcp();
        e.downstream_remote_address = Some("[2001:db8::1]:443".parse().unwrap());
        e.requested_server_name = Some("bad host\u{e9}");
        assert_eq!(
            text("%DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT% %REQUESTED_SERVER_NAME%", &e),
            "[2001:db8::1]:443 2001:db8::1 invalid:bad_host__\n"
        );
        assert_eq!(text("%ENVIRONMENT(MESHGATE_SURELY_UNSET_VAR)%", &e), "-\n");
        let h = text("%HOSTNAME%", &e);
        assert!(
            !h.trim().is_empty() && !h.trim().contains(char::is_whitespace),
            "{h:?}"
        );
    }

    #[test]
    fn bad_formats_name_the_problem() {
        assert_eq!(
            err(Format::text("x %FOO% y")),
            "unknown command operator %FOO%"
        );
        assert!(err(Format::text("%DYNAMIC_METADATA(istio)%"))
            .contains("%DYNAMIC_METADATA% is an Envoy command operator"));
        let e = err(Format::text("50% off"));
        assert!(e.contains("position 2") && e.contains("%%"), "{e}");
        assert!(err(Format::text("%REQ(A)")).contains("position 0"));
        assert!(
            err(Format::text("%req(a)%")).contains("position 0"),
            "lower case is no command"
        );
        assert_eq!(
            err(Format::text("%PROTOCOL(x)%")),
            "%PROTOCOL% does not take any parameters or length"
        );
        assert_eq!(
            err(Format::text("%DURATION:3%")),
            "%DURATION% does not take any parameters or length"
        );
        assert_eq!(err(Format::text("%REQ%")), "%REQ% requires parameters");
        assert_eq!(
            err(Format::text("%START_TIME:3%")),
            "%START_TIME% does not allow length to be specified"
        );
        assert!(err(Format::text("%REQ(A?B?C)%")).contains("more than one alternative"));
        assert!(err(Format::text("%REQ(:BOGUS)%")).contains("unknown pseudo header :BOGUS"));
        assert!(err(Format::text("%REQ(BAD NAME)%")).contains("not a header name"));
        assert!(err(Format::text("%START_TIME(%Q)%")).contains("%Q"));
        assert!(err(Format::text("%GRPC_STATUS(HEX)%")).contains("CAMEL_STRING"));
        assert!(err(Format::json("{")).contains("not valid JSON"));
        assert!(err(Format::json("[]")).contains("not a JSON object"));
        assert_eq!(
            err(Format::json(r#"{"a": {"b": ["x", "%NOPE%"]}}"#)),
            "JSON format key \"a.b[1]\": unknown command operator %NOPE%"
        );
    }

    #[test]
    fn command_grammar_is_envoys() {
        let e = tcp();
        // The argument runs to the first `)` that closes the operator.
        assert_eq!(text("%START_TIME(%H)x)%", &e), "13)x\n");
        assert_eq!(text("(%START_TIME(%Y)%)", &e), "(2024)\n");
        assert_eq!(
            text("%START_TIME()%", &e),
            "2024-06-02T13:24:57.930Z\n",
            "empty: default"
        );
        assert_eq!(text("%BYTES_SENT%%BYTES_RECEIVED%", &e), "200100\n");
        assert_eq!(text("%%%BYTES_SENT%%%", &e), "%200%\n");
    }

    #[test]
    fn lines_are_appended_and_formats_shared() {
        fn is_send_sync<T: Send + Sync>() {}
        is_send_sync::<Format>();
        let f = Format::istio_text();
        let mut out = b"previous\n".to_vec();
        f.write(&tcp(), &mut out);
        f.write(&tcp(), &mut out);
        let s = String::from_utf8(out).unwrap();
        assert_eq!(s.lines().count(), 3);
        assert!(s.starts_with("previous\n["));
    }
}
