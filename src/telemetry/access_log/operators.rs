//! Envoy's command operators (`%NAME(arg):len%`): each parsed once into an [`Op`], and
//! read from an [`Exchange`] as a [`Value`] that borrows from it, so a log line is
//! written without building strings.
//!
//! Names, argument rules and error texts follow Envoy's `stream_info_formatter.cc`,
//! `http_specific_formatter.cc` and `CommandSyntaxChecker`.

use super::digits::{push_ipv4, push_u64};
use super::json::escape_into;
use super::time::TimeFormat;
// absl's `StatusCodeToString` names, indexed by code: the names `fault.abort.grpcStatus`
// accepts.
use crate::config::validate::virtual_service::GRPC_STATUSES;
use crate::telemetry::{Exchange, ResponseFlags};
use http::header::{HeaderName, HOST};
use pingora::http::{RequestHeader, ResponseHeader};
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::time::SystemTime;

/// A `%REQ()%` / `%RESP()%` header: a name, or a pseudo header Envoy keeps in the map.
#[derive(Debug, Clone)]
pub enum Header {
    Named(HeaderName),
    /// `:METHOD`
    Method,
    /// `:PATH`: path and query.
    Path,
    /// `:AUTHORITY`: the `Host` header (HTTP/1 carries it there), else the URI's.
    Authority,
    /// `:SCHEME`
    Scheme,
    /// `:STATUS` (responses).
    Status,
}

/// `%REQ(X?Y):Z%`: header X, else Y, cut to Z bytes (Envoy's `HeaderFormatter`).
#[derive(Debug, Clone)]
pub struct HeaderOp {
    main: Header,
    alt: Option<Header>,
    max: Option<usize>,
}

/// Whose address an address operator prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    UpstreamHost,
    UpstreamLocal,
    DownstreamLocal,
    DownstreamRemote,
}

/// `ip:port` (`[v6]:port`), `_WITHOUT_PORT` (the bare IP) or `_PORT` (a number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Full,
    Ip,
    Port,
}

/// `%GRPC_STATUS(X)%`: `CAMEL_STRING` (default, `NotFound`), `SNAKE_STRING`
/// (`NOT_FOUND`) or `NUMBER` (`5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrpcForm {
    Camel,
    Snake,
    Number,
}

/// One parsed command operator.
#[derive(Debug, Clone)]
pub enum Op {
    /// `%START_TIME%`, `%START_TIME(fmt)%`
    StartTime(TimeFormat),
    /// `%REQ(X?Y):Z%`
    Req(HeaderOp),
    /// `%RESP(X?Y):Z%`
    Resp(HeaderOp),
    /// `%PROTOCOL%`
    Protocol,
    /// `%RESPONSE_CODE%`: 0 when none was sent (and for TCP), as Envoy.
    ResponseCode,
    /// `%RESPONSE_CODE_DETAILS%`: whitespace becomes `_` unless `(ALLOW_WHITESPACES)`.
    ResponseCodeDetails { allow_whitespaces: bool },
    /// `%CONNECTION_TERMINATION_DETAILS%`
    ConnectionTerminationDetails,
    /// `%RESPONSE_FLAGS%`
    ResponseFlags,
    /// `%BYTES_RECEIVED%`
    BytesReceived,
    /// `%BYTES_SENT%`
    BytesSent,
    /// `%DURATION%`: milliseconds.
    Duration,
    /// `%UPSTREAM_CLUSTER%`, `%UPSTREAM_CLUSTER_RAW%`: one name here (Envoy's differ
    /// only by `alt_stat_name`, which Istio's clusters do not set).
    UpstreamCluster,
    /// `%UPSTREAM_HOST%`, `%DOWNSTREAM_REMOTE_ADDRESS%` and their kin.
    Address(Endpoint, Part),
    /// `%REQUESTED_SERVER_NAME%`: the SNI, `invalid:`-prefixed when not a host name.
    RequestedServerName,
    /// `%ROUTE_NAME%`
    RouteName,
    /// `%UPSTREAM_TRANSPORT_FAILURE_REASON%`: spaces become `_`.
    UpstreamTransportFailureReason,
    /// `%GRPC_STATUS(X)%`, `%GRPC_STATUS_NUMBER%`
    GrpcStatus(GrpcForm),
    /// `%UPSTREAM_REQUEST_ATTEMPT_COUNT%`: 0 when unknown, as Envoy.
    AttemptCount,
    /// A value fixed when the format is compiled: `%HOSTNAME%` (absent when unknown),
    /// `%ENVIRONMENT(X):Z%` (Envoy writes `-` when unset).
    Constant(Option<Box<[u8]>>),
}

/// What an operator reads from an exchange, borrowed; written by [`Value::write`].
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    /// Envoy's unset value: `-` in text and in a longer JSON string, `null` alone.
    Absent,
    /// A JSON number when it is a field's whole value.
    Number(u64),
    /// Digits that stay a string in JSON (`%GRPC_STATUS%` of an unnamed code).
    Digits(u64),
    Bytes(&'a [u8]),
    /// Text whose whitespace (`true`) or spaces (`false`) become `_`.
    Underscored(&'a str, bool),
    /// An SNI: written as Envoy's `sanitizeInvalidHostname`.
    Hostname(&'a str),
    Addr(SocketAddr),
    Ip(IpAddr),
    Flags(ResponseFlags),
    Time(&'a TimeFormat, SystemTime),
}

/// Envoy operators this gateway has no value for (TLS peer details, metadata, filter
/// state, fine-grained timings): refused by name rather than called unknown.
const ENVOY_ONLY: &[&str] = &[
    "REQUEST_DURATION",
    "REQUEST_TX_DURATION",
    "RESPONSE_DURATION",
    "RESPONSE_TX_DURATION",
    "DOWNSTREAM_HANDSHAKE_DURATION",
    "ROUNDTRIP_DURATION",
    "COMMON_DURATION",
    "UPSTREAM_CONNECTION_POOL_READY_DURATION",
    "BYTES_RETRANSMITTED",
    "PACKETS_RETRANSMITTED",
    "UPSTREAM_PROTOCOL",
    "CUSTOM_FLAGS",
    "RESPONSE_FLAGS_LONG",
    "UPSTREAM_HOST_NAME",
    "UPSTREAM_HOST_NAME_WITHOUT_PORT",
    "UPSTREAM_CONNECTION_ID",
    "CONNECTION_ID",
    "DOWNSTREAM_TRANSPORT_FAILURE_REASON",
    "FILTER_CHAIN_NAME",
    "VIRTUAL_CLUSTER_NAME",
    "TLS_JA3_FINGERPRINT",
    "TLS_JA4_FINGERPRINT",
    "UNIQUE_ID",
    "STREAM_ID",
    "TRACE_ID",
    "START_TIME_LOCAL",
    "EMIT_TIME",
    "EMIT_TIME_LOCAL",
    "DYNAMIC_METADATA",
    "CLUSTER_METADATA",
    "UPSTREAM_METADATA",
    "METADATA",
    "FILTER_STATE",
    "UPSTREAM_FILTER_STATE",
    "TRAILER",
    "LOCAL_REPLY_BODY",
    "ACCESS_LOG_TYPE",
    "REQUEST_HEADERS_BYTES",
    "RESPONSE_HEADERS_BYTES",
    "RESPONSE_TRAILERS_BYTES",
    "STREAM_INFO_REQ",
    "REQ_WITHOUT_QUERY",
    "CEL",
];

/// Families of Envoy-only operators (TLS details of either side, wire byte counts).
const ENVOY_ONLY_PREFIXES: &[&str] = &[
    "DOWNSTREAM_PEER_",
    "DOWNSTREAM_LOCAL_URI_SAN",
    "DOWNSTREAM_LOCAL_DNS_SAN",
    "DOWNSTREAM_LOCAL_IP_SAN",
    "DOWNSTREAM_LOCAL_EMAIL_SAN",
    "DOWNSTREAM_LOCAL_OTHERNAME_SAN",
    "DOWNSTREAM_LOCAL_SUBJECT",
    "DOWNSTREAM_TLS_",
    "UPSTREAM_PEER_",
    "UPSTREAM_LOCAL_URI_SAN",
    "UPSTREAM_LOCAL_DNS_SAN",
    "UPSTREAM_LOCAL_IP_SAN",
    "UPSTREAM_TLS_",
    "UPSTREAM_WIRE_BYTES_",
    "UPSTREAM_HEADER_BYTES_",
    "UPSTREAM_DECOMPRESSED_HEADER_BYTES_",
    "DOWNSTREAM_WIRE_BYTES_",
    "DOWNSTREAM_HEADER_BYTES_",
    "DOWNSTREAM_DECOMPRESSED_HEADER_BYTES_",
];

/// Envoy's `CommandSyntaxChecker` flags.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Syntax {
    CommandOnly,
    ParamsOptional,
    ParamsRequiredLengthAllowed,
}

/// Parses one operator from its parts (`%command(arg):max%`); an empty `arg` is no
/// argument, as in Envoy. The error names the operator.
pub fn parse(command: &str, arg: &str, max: Option<usize>) -> Result<Op, String> {
    let syntax = match command {
        "START_TIME" | "GRPC_STATUS" | "RESPONSE_CODE_DETAILS" => Syntax::ParamsOptional,
        "REQ" | "RESP" | "ENVIRONMENT" => Syntax::ParamsRequiredLengthAllowed,
        _ => Syntax::CommandOnly,
    };
    let simple = match syntax {
        Syntax::CommandOnly => Some(simple(command)?),
        _ => None,
    };
    // Envoy's `CommandSyntaxChecker::verifySyntax`, in its order.
    if syntax == Syntax::CommandOnly && (!arg.is_empty() || max.is_some()) {
        return Err(format!(
            "%{command}% does not take any parameters or length"
        ));
    }
    if syntax == Syntax::ParamsRequiredLengthAllowed && arg.is_empty() {
        return Err(format!("%{command}% requires parameters"));
    }
    if syntax != Syntax::ParamsRequiredLengthAllowed && max.is_some() {
        return Err(format!("%{command}% does not allow length to be specified"));
    }
    if let Some(op) = simple {
        return Ok(op);
    }
    Ok(match command {
        "START_TIME" => {
            Op::StartTime(TimeFormat::parse(arg).map_err(|e| format!("%START_TIME%: {e}"))?)
        }
        "REQ" => Op::Req(header_op(command, arg, max, true)?),
        "RESP" => Op::Resp(header_op(command, arg, max, false)?),
        "ENVIRONMENT" => {
            // Read once, as Envoy's `EnvironmentFormatter`; unset is the text `-`.
            let mut v = std::env::var_os(arg)
                .map(|v| v.into_encoded_bytes())
                .unwrap_or_else(|| b"-".to_vec());
            if let Some(max) = max {
                v.truncate(max);
            }
            Op::Constant(Some(v.into()))
        }
        "GRPC_STATUS" => Op::GrpcStatus(match arg {
            "" | "CAMEL_STRING" => GrpcForm::Camel,
            "SNAKE_STRING" => GrpcForm::Snake,
            "NUMBER" => GrpcForm::Number,
            _ => {
                return Err(format!(
                    "%GRPC_STATUS({arg})%: GRPC_STATUS only supports CAMEL_STRING, SNAKE_STRING or NUMBER"
                ))
            }
        }),
        // Envoy does not check the argument: anything else keeps the `_`s.
        "RESPONSE_CODE_DETAILS" => Op::ResponseCodeDetails {
            allow_whitespaces: arg == "ALLOW_WHITESPACES",
        },
        _ => unreachable!("every operator taking parameters is above"),
    })
}

/// The operators taking no argument; unknown names are an error naming them.
fn simple(command: &str) -> Result<Op, String> {
    Ok(match command {
        "PROTOCOL" => Op::Protocol,
        "RESPONSE_CODE" => Op::ResponseCode,
        "CONNECTION_TERMINATION_DETAILS" => Op::ConnectionTerminationDetails,
        "RESPONSE_FLAGS" => Op::ResponseFlags,
        "BYTES_RECEIVED" => Op::BytesReceived,
        "BYTES_SENT" => Op::BytesSent,
        "DURATION" => Op::Duration,
        "UPSTREAM_CLUSTER" | "UPSTREAM_CLUSTER_RAW" => Op::UpstreamCluster,
        "REQUESTED_SERVER_NAME" => Op::RequestedServerName,
        "ROUTE_NAME" => Op::RouteName,
        "UPSTREAM_TRANSPORT_FAILURE_REASON" => Op::UpstreamTransportFailureReason,
        "UPSTREAM_REQUEST_ATTEMPT_COUNT" => Op::AttemptCount,
        "GRPC_STATUS_NUMBER" => Op::GrpcStatus(GrpcForm::Number),
        "HOSTNAME" => Op::Constant(hostname().map(|h| h.as_bytes().into())),
        _ => match address(command) {
            Some((endpoint, part)) => Op::Address(endpoint, part),
            None if ENVOY_ONLY.contains(&command)
                || ENVOY_ONLY_PREFIXES.iter().any(|p| command.starts_with(p)) =>
            {
                return Err(format!(
                    "%{command}% is an Envoy command operator meshgate has no value for"
                ))
            }
            None => return Err(format!("unknown command operator %{command}%")),
        },
    })
}

/// The address operators: Envoy's names, `DIRECT` ones the same here (no PROXY
/// protocol: the peer is the client).
fn address(command: &str) -> Option<(Endpoint, Part)> {
    use Endpoint::*;
    use Part::*;
    Some(match command {
        "UPSTREAM_HOST" | "UPSTREAM_REMOTE_ADDRESS" => (UpstreamHost, Full),
        "UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT" => (UpstreamHost, Ip),
        "UPSTREAM_REMOTE_PORT" => (UpstreamHost, Port),
        "UPSTREAM_LOCAL_ADDRESS" => (UpstreamLocal, Full),
        "UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT" => (UpstreamLocal, Ip),
        "UPSTREAM_LOCAL_PORT" => (UpstreamLocal, Port),
        "DOWNSTREAM_LOCAL_ADDRESS" | "DOWNSTREAM_DIRECT_LOCAL_ADDRESS" => (DownstreamLocal, Full),
        "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT"
        | "DOWNSTREAM_DIRECT_LOCAL_ADDRESS_WITHOUT_PORT" => (DownstreamLocal, Ip),
        "DOWNSTREAM_LOCAL_PORT" | "DOWNSTREAM_DIRECT_LOCAL_PORT" => (DownstreamLocal, Port),
        "DOWNSTREAM_REMOTE_ADDRESS" | "DOWNSTREAM_DIRECT_REMOTE_ADDRESS" => {
            (DownstreamRemote, Full)
        }
        "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT"
        | "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT" => (DownstreamRemote, Ip),
        "DOWNSTREAM_REMOTE_PORT" | "DOWNSTREAM_DIRECT_REMOTE_PORT" => (DownstreamRemote, Port),
        _ => return None,
    })
}

/// `X?Y` of `%REQ(X?Y):Z%`: one alternative at most, no newline (Envoy's
/// `parseSubcommandHeaders`); names are case-insensitive.
fn header_op(
    command: &str,
    arg: &str,
    max: Option<usize>,
    request: bool,
) -> Result<HeaderOp, String> {
    if arg.contains(['\n', '\r']) {
        return Err(format!("%{command}(...)%: a header name has a newline"));
    }
    let mut names = arg.split('?');
    let main = names.next().unwrap_or_default();
    let alt = names.next().filter(|a| !a.is_empty());
    if names.next().is_some() {
        return Err(format!(
            "%{command}({arg})%: more than one alternative header"
        ));
    }
    let header = |name: &str| -> Result<Header, String> {
        if let Some(pseudo) = name.strip_prefix(':') {
            return match (request, pseudo.to_ascii_lowercase().as_str()) {
                (true, "method") => Ok(Header::Method),
                (true, "path") => Ok(Header::Path),
                (true, "authority") => Ok(Header::Authority),
                (true, "scheme") => Ok(Header::Scheme),
                (false, "status") => Ok(Header::Status),
                _ => Err(format!("%{command}({arg})%: unknown pseudo header {name}")),
            };
        }
        HeaderName::from_bytes(name.as_bytes())
            .map(Header::Named)
            .map_err(|_| format!("%{command}({arg})%: {name:?} is not a header name"))
    };
    Ok(HeaderOp {
        main: header(main)?,
        alt: alt.map(header).transpose()?,
        max,
    })
}

/// The machine's name, read once (Envoy's `gethostname()` at config load).
fn hostname() -> Option<&'static str> {
    static HOSTNAME: OnceLock<Option<String>> = OnceLock::new();
    HOSTNAME
        .get_or_init(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
        .as_deref()
}

impl HeaderOp {
    fn request<'a>(&'a self, r: &'a RequestHeader, e: &Exchange<'a>) -> Value<'a> {
        let find = |h: &'a Header| -> Option<&'a [u8]> {
            match h {
                Header::Named(n) => r.headers.get(n).map(|v| v.as_bytes()),
                Header::Method => Some(r.method.as_str().as_bytes()),
                Header::Path => r.uri.path_and_query().map(|p| p.as_str().as_bytes()),
                Header::Authority => r
                    .headers
                    .get(HOST)
                    .map(|v| v.as_bytes())
                    .or_else(|| r.uri.authority().map(|a| a.as_str().as_bytes())),
                Header::Scheme => e.scheme.or(r.uri.scheme_str()).map(str::as_bytes),
                Header::Status => None,
            }
        };
        self.pick(find)
    }

    fn response<'a>(&'a self, r: &'a ResponseHeader) -> Value<'a> {
        self.pick(|h: &'a Header| match h {
            Header::Named(n) => r.headers.get(n).map(|v| v.as_bytes()),
            Header::Status => Some(r.status.as_str().as_bytes()),
            _ => None,
        })
    }

    /// The first value of the main header, else of the alternative (Envoy logs one value
    /// of a repeated header), cut to `max` bytes.
    fn pick<'a>(&'a self, find: impl Fn(&'a Header) -> Option<&'a [u8]>) -> Value<'a> {
        let v = find(&self.main).or_else(|| self.alt.as_ref().and_then(&find));
        match v {
            None => Value::Absent,
            Some(v) => Value::Bytes(&v[..v.len().min(self.max.unwrap_or(usize::MAX))]),
        }
    }
}

fn text<'a>(s: Option<&'a str>) -> Value<'a> {
    match s {
        Some(s) if !s.is_empty() => Value::Bytes(s.as_bytes()),
        _ => Value::Absent,
    }
}

impl Op {
    /// Reads the operator's value; no allocation.
    pub fn value<'a>(&'a self, e: &Exchange<'a>) -> Value<'a> {
        match self {
            Op::StartTime(f) => Value::Time(f, e.start),
            Op::Req(h) => e.request.map_or(Value::Absent, |r| h.request(r, e)),
            Op::Resp(h) => e.response.map_or(Value::Absent, |r| h.response(r)),
            Op::Protocol => text(e.protocol),
            Op::ResponseCode => Value::Number(e.response_code.unwrap_or(0).into()),
            Op::ResponseCodeDetails { allow_whitespaces } => match e.response_code_details {
                Some(d) if *allow_whitespaces => Value::Bytes(d.as_bytes()),
                Some(d) => Value::Underscored(d, true),
                None => Value::Absent,
            },
            Op::ConnectionTerminationDetails => text(e.connection_termination_details),
            Op::ResponseFlags => Value::Flags(e.flags),
            Op::BytesReceived => Value::Number(e.bytes_received),
            Op::BytesSent => Value::Number(e.bytes_sent),
            Op::Duration => {
                Value::Number(u64::try_from(e.duration.as_millis()).unwrap_or(u64::MAX))
            }
            Op::UpstreamCluster => text(e.upstream_cluster),
            Op::Address(endpoint, part) => {
                let addr = match endpoint {
                    Endpoint::UpstreamHost => e.upstream_host,
                    Endpoint::UpstreamLocal => e.upstream_local_address,
                    Endpoint::DownstreamLocal => e.downstream_local_address,
                    Endpoint::DownstreamRemote => e.downstream_remote_address,
                };
                match (addr, part) {
                    (None, _) => Value::Absent,
                    (Some(a), Part::Full) => Value::Addr(a),
                    (Some(a), Part::Ip) => Value::Ip(a.ip()),
                    (Some(a), Part::Port) => Value::Number(a.port().into()),
                }
            }
            Op::RequestedServerName => match e.requested_server_name {
                Some(s) if !s.is_empty() => Value::Hostname(s),
                _ => Value::Absent,
            },
            Op::RouteName => text(e.route_name),
            Op::UpstreamTransportFailureReason => match e.upstream_transport_failure_reason {
                Some(s) if !s.is_empty() => Value::Underscored(s, false),
                _ => Value::Absent,
            },
            Op::GrpcStatus(form) => match (e.grpc_status, form) {
                (None, _) => Value::Absent,
                (Some(c), GrpcForm::Number) => Value::Number(c.into()),
                (Some(c), GrpcForm::Camel) => grpc_name(c, &GRPC_CAMEL),
                (Some(c), GrpcForm::Snake) => grpc_name(c, GRPC_STATUSES),
            },
            Op::AttemptCount => Value::Number(e.attempts.unwrap_or(0).into()),
            Op::Constant(v) => v.as_deref().map_or(Value::Absent, Value::Bytes),
        }
    }
}

/// Envoy's `Grpc::Utility::grpcStatusToString`.
const GRPC_CAMEL: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// A code without a name is written as its number, still a string (as Envoy).
fn grpc_name(code: u32, names: &'static [&'static str]) -> Value<'static> {
    match names.get(code as usize) {
        Some(n) => Value::Bytes(n.as_bytes()),
        None => Value::Digits(code.into()),
    }
}

/// Appends `%RESPONSE_FLAGS%` as `ResponseFlags`' `Display` writes it (`UF,URX`, `-`
/// when none), without `core::fmt`: its names, read once, one per bit in the bits'
/// order, which is Envoy's printing order.
fn push_flags(out: &mut Vec<u8>, f: ResponseFlags) {
    static NAMES: OnceLock<[Box<str>; 16]> = OnceLock::new();
    if f.is_empty() {
        out.push(b'-');
        return;
    }
    let names = NAMES.get_or_init(|| {
        std::array::from_fn(|i| ResponseFlags::from_bits(1 << i).to_string().into())
    });
    let mut bits = f.bits();
    let mut first = true;
    while bits != 0 {
        let i = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        if !first {
            out.push(b',');
        }
        out.extend_from_slice(names[i].as_bytes());
        first = false;
    }
}

impl Value<'_> {
    /// Appends the value (not [`Value::Absent`], which the caller writes): raw for a
    /// text line, escaped for the inside of a JSON string (`json`).
    pub fn write(&self, out: &mut Vec<u8>, json: bool) {
        let bytes = |b: &[u8], out: &mut Vec<u8>| {
            if json {
                escape_into(b, out)
            } else {
                out.extend_from_slice(b)
            }
        };
        match *self {
            Value::Absent => out.push(b'-'),
            Value::Number(n) | Value::Digits(n) => push_u64(out, n),
            Value::Bytes(b) => bytes(b, out),
            Value::Underscored(s, all_whitespace) => {
                let mut run = 0;
                for (i, b) in s.bytes().enumerate() {
                    if b == b' ' || (all_whitespace && b.is_ascii_whitespace()) {
                        bytes(&s.as_bytes()[run..i], out);
                        out.push(b'_');
                        run = i + 1;
                    }
                }
                bytes(&s.as_bytes()[run..], out);
            }
            Value::Hostname(s) => {
                let ok = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'-';
                if s.bytes().all(ok) {
                    out.extend_from_slice(s.as_bytes());
                } else {
                    out.extend_from_slice(b"invalid:");
                    out.extend(s.bytes().map(|b| if ok(b) { b } else { b'_' }));
                }
            }
            // IPv4 by hand (the common case); IPv6 (zero runs, mapped IPv4, scope ids)
            // as std writes it. Writing into a Vec cannot fail.
            Value::Addr(SocketAddr::V4(a)) => push_ipv4(out, *a.ip(), Some(a.port())),
            Value::Addr(a) => {
                let _ = write!(out, "{a}");
            }
            Value::Ip(IpAddr::V4(ip)) => push_ipv4(out, ip, None),
            Value::Ip(ip) => {
                let _ = write!(out, "{ip}");
            }
            Value::Flags(f) => push_flags(out, f),
            Value::Time(f, t) => f.write(t, out, json),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};
    use std::time::{Duration, UNIX_EPOCH};

    fn written(v: Value<'_>, json: bool) -> String {
        let mut out = b"<".to_vec();
        v.write(&mut out, json);
        out.push(b'>');
        String::from_utf8(out).unwrap()
    }

    fn both(v: Value<'_>) -> String {
        let (t, j) = (written(v, false), written(v, true));
        assert_eq!(t, j, "no address or flag needs escaping");
        t
    }

    #[test]
    fn addresses_are_written_exactly() {
        let cases: &[(&str, &str, &str)] = &[
            ("0.0.0.0:0", "<0.0.0.0:0>", "<0.0.0.0>"),
            ("1.2.3.4:5", "<1.2.3.4:5>", "<1.2.3.4>"),
            ("10.0.0.1:5555", "<10.0.0.1:5555>", "<10.0.0.1>"),
            ("127.0.0.1:28180", "<127.0.0.1:28180>", "<127.0.0.1>"),
            ("100.64.10.99:80", "<100.64.10.99:80>", "<100.64.10.99>"),
            (
                "255.255.255.255:65535",
                "<255.255.255.255:65535>",
                "<255.255.255.255>",
            ),
            ("[::]:0", "<[::]:0>", "<::>"),
            ("[::1]:443", "<[::1]:443>", "<::1>"),
            (
                "[2001:db8::1]:8080",
                "<[2001:db8::1]:8080>",
                "<2001:db8::1>",
            ),
            (
                "[::ffff:10.0.0.1]:80",
                "<[::ffff:10.0.0.1]:80>",
                "<::ffff:10.0.0.1>",
            ),
            (
                "[1:2:3:4:5:6:7:8]:65535",
                "<[1:2:3:4:5:6:7:8]:65535>",
                "<1:2:3:4:5:6:7:8>",
            ),
            (
                "[fe80::abcd:0:0:1]:1",
                "<[fe80::abcd:0:0:1]:1>",
                "<fe80::abcd:0:0:1>",
            ),
        ];
        for &(a, full, ip) in cases {
            let a: SocketAddr = a.parse().unwrap();
            assert_eq!(both(Value::Addr(a)), full);
            assert_eq!(both(Value::Ip(a.ip())), ip);
            assert_eq!(
                both(Value::Number(a.port().into())),
                format!("<{}>", a.port())
            );
        }
        // A scope id is written after the address, as std does.
        let scoped = SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 80, 7, 3));
        assert_eq!(both(Value::Addr(scoped)), "<[fe80::1%3]:80>");
    }

    /// The bytes are those of std's `Display` (what a line held before addresses were
    /// hand-written), over a spread of addresses and ports.
    #[test]
    fn addresses_match_std_display() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..20_000u32 {
            let r = next();
            // Every octet width and every port width.
            let octets = match i % 4 {
                0 => (r as u32).to_be_bytes(),
                1 => [(r % 10) as u8, (r >> 8) as u8 % 100, (r >> 16) as u8, 0],
                2 => [255, (r >> 8) as u8 % 10, 99, (r >> 24) as u8 % 100],
                _ => [(r >> 5) as u8, 0, 0, (r >> 40) as u8],
            };
            let port = match i % 5 {
                0 => (r >> 32) as u16,
                1 => (r >> 32) as u16 % 10,
                2 => (r >> 32) as u16 % 100,
                3 => (r >> 32) as u16 % 1000,
                _ => (r >> 32) as u16 % 10000,
            };
            let a = SocketAddr::from((Ipv4Addr::from(octets), port));
            assert_eq!(written(Value::Addr(a), true), format!("<{a}>"));
            assert_eq!(written(Value::Ip(a.ip()), false), format!("<{}>", a.ip()));
            let segs = [
                (r >> 48) as u16,
                0,
                (r >> 16) as u16 & (i as u16),
                0,
                0,
                r as u16,
                (r >> 32) as u16 % 3,
                1,
            ];
            let v6 = Ipv6Addr::new(
                segs[0], segs[1], segs[2], segs[3], segs[4], segs[5], segs[6], segs[7],
            );
            let a = SocketAddr::from((v6, port));
            assert_eq!(written(Value::Addr(a), false), format!("<{a}>"));
            assert_eq!(written(Value::Ip(a.ip()), true), format!("<{}>", a.ip()));
        }
    }

    #[test]
    fn flags_are_written_as_envoy() {
        assert_eq!(both(Value::Flags(ResponseFlags::default())), "<->");
        let mut f = ResponseFlags::default();
        f.insert(ResponseFlags::URX);
        f.insert(ResponseFlags::UF);
        assert_eq!(both(Value::Flags(f)), "<UF,URX>");
        assert_eq!(both(Value::Flags(ResponseFlags::DR)), "<DR>");
        assert_eq!(
            both(Value::Flags(ResponseFlags::from_bits(u16::MAX))),
            "<UH,UT,UR,UF,UC,UO,NR,DI,FI,RL,DC,URX,SI,DPE,NC,DR>"
        );
        for bits in 0..=u16::MAX {
            let f = ResponseFlags::from_bits(bits);
            assert_eq!(written(Value::Flags(f), bits % 2 == 0), format!("<{f}>"));
        }
    }

    #[test]
    fn times_are_written_in_each_encoding() {
        let t = UNIX_EPOCH + Duration::new(1_717_334_697, 930_120_000);
        let f = TimeFormat::default();
        assert_eq!(both(Value::Time(&f, t)), "<2024-06-02T13:24:57.930Z>");
        let f = TimeFormat::parse("\"%s\\%E*S").unwrap();
        assert_eq!(
            written(Value::Time(&f, t), false),
            "<\"1717334697\\57.93012>"
        );
        assert_eq!(
            written(Value::Time(&f, t), true),
            "<\\\"1717334697\\\\57.93012>"
        );
    }

    fn request() -> RequestHeader {
        let mut r = RequestHeader::build("POST", b"/a/b?c=d&e", None).unwrap();
        r.insert_header("Host", "example.com:8443").unwrap();
        r.insert_header("User-Agent", "curl/8.0").unwrap();
        r.insert_header("x-custom", "caf\u{e9} \"q\"\\").unwrap();
        r.append_header("x-dup", "first").unwrap();
        r.append_header("x-dup", "second").unwrap();
        r.insert_header("x-empty", "").unwrap();
        r
    }

    fn op(s: &str) -> Op {
        let (command, rest) = s.split_once('(').unwrap();
        let (arg, max) = rest.split_once(')').unwrap();
        let max = max.strip_prefix(':').map(|m| m.parse().unwrap());
        parse(command, arg, max).unwrap()
    }

    #[test]
    fn header_operators_with_and_without_max() {
        let req = request();
        let mut resp = ResponseHeader::build(503, None).unwrap();
        resp.insert_header("x-envoy-upstream-service-time", "12")
            .unwrap();
        resp.insert_header("Server", "meshgate").unwrap();
        let mut e = Exchange::new(UNIX_EPOCH, Duration::ZERO);
        e.request = Some(&req);
        e.response = Some(&resp);
        e.scheme = Some("https");
        // Text: the raw bytes (shown lossily), `-` when absent; JSON: a string,
        // escaped, or `null` when absent.
        let cases: &[(&str, &str, &str)] = &[
            ("REQ(:METHOD)", "POST", r#""POST""#),
            ("REQ(:method):2", "PO", r#""PO""#),
            ("REQ(:PATH)", "/a/b?c=d&e", r#""/a/b?c=d&e""#),
            ("REQ(:PATH):4", "/a/b", r#""/a/b""#),
            (
                "REQ(:AUTHORITY)",
                "example.com:8443",
                r#""example.com:8443""#,
            ),
            ("REQ(:AUTHORITY):7", "example", r#""example""#),
            ("REQ(:SCHEME)", "https", r#""https""#),
            ("REQ(USER-AGENT)", "curl/8.0", r#""curl/8.0""#),
            ("REQ(user-agent):0", "", r#""""#),
            ("REQ(User-Agent):100", "curl/8.0", r#""curl/8.0""#),
            (
                "REQ(X-CUSTOM)",
                "caf\u{e9} \"q\"\\",
                "\"caf\u{e9} \\\"q\\\"\\\\\"",
            ),
            // A cut inside a UTF-8 character: the raw byte, escaped in JSON.
            ("REQ(X-CUSTOM):4", "caf\u{fffd}", r#""caf\u00c3""#),
            ("REQ(X-DUP)", "first", r#""first""#),
            ("REQ(X-EMPTY)", "", r#""""#),
            ("REQ(X-MISSING)", "-", "null"),
            ("REQ(X-MISSING):3", "-", "null"),
            ("REQ(X-MISSING?USER-AGENT)", "curl/8.0", r#""curl/8.0""#),
            ("REQ(X-MISSING?USER-AGENT):3", "cur", r#""cur""#),
            ("REQ(HOST?USER-AGENT):4", "exam", r#""exam""#),
            ("REQ(X-MISSING?X-ALSO-MISSING)", "-", "null"),
            (
                "REQ(X-ENVOY-ORIGINAL-PATH?:PATH)",
                "/a/b?c=d&e",
                r#""/a/b?c=d&e""#,
            ),
            ("RESP(:STATUS)", "503", r#""503""#),
            ("RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)", "12", r#""12""#),
            ("RESP(server):4", "mesh", r#""mesh""#),
            ("RESP(X-MISSING?SERVER)", "meshgate", r#""meshgate""#),
            ("RESP(X-MISSING)", "-", "null"),
            ("RESP(:STATUS?SERVER):1", "5", r#""5""#),
        ];
        for &(o, text, json) in cases {
            let op = op(o);
            let v = op.value(&e);
            let mut t = Vec::new();
            v.write(&mut t, false);
            assert_eq!(String::from_utf8_lossy(&t), text, "{o} text");
            let mut j = Vec::new();
            match v {
                Value::Absent => j.extend_from_slice(b"null"),
                v => {
                    j.push(b'"');
                    v.write(&mut j, true);
                    j.push(b'"');
                }
            }
            assert_eq!(String::from_utf8(j).unwrap(), json, "{o} json");
        }
        // No request or response: absent.
        let e = Exchange::new(UNIX_EPOCH, Duration::ZERO);
        for o in [
            "REQ(:METHOD)",
            "REQ(USER-AGENT)",
            "RESP(:STATUS)",
            "RESP(SERVER):2",
        ] {
            assert!(matches!(op(o).value(&e), Value::Absent), "{o}");
        }
    }
}
