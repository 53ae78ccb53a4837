//! What an Istio `HTTPRoute` does besides choosing a destination, compiled once: rewrite,
//! redirect, header operations, fault injection, timeout, retries, mirrors and CORS. Pure
//! logic (paths, locations, decisions); the proxy applies it to requests.

use super::cluster::ClusterId;
use super::host_index::split_host_port;
use super::matcher::StrMatch;
use crate::config::duration;
use crate::config::model::*;
use regex::Regex;
use std::time::Duration;

/// Istio `Percent` (0–100) or the deprecated integer form, as a fraction of requests.
/// Envoy applies a fault whose percentage is unset to no request.
fn fraction(p: Option<&Percent>, deprecated: Option<i32>) -> f64 {
    match (p, deprecated) {
        (Some(p), _) => (p.value / 100.0).clamp(0.0, 1.0),
        (None, Some(n)) => (f64::from(n) / 100.0).clamp(0.0, 1.0),
        (None, None) => 0.0,
    }
}

/// Whether a request with uniform number `r` falls in `fraction` of requests.
pub fn sampled(fraction: f64, r: u64) -> bool {
    fraction >= 1.0 || (r as f64 / u64::MAX as f64) < fraction
}

/// Picks `fraction` of requests (fault delays and aborts, mirrors) with its own
/// low-discrepancy sequence: over any run of requests the share is within a request or
/// two of the fraction, where Envoy's random draw wanders (a deliberate difference).
#[derive(Debug)]
pub struct Sampler {
    pub fraction: f64,
    seq: std::sync::atomic::AtomicU64,
}

impl Sampler {
    pub fn new(fraction: f64) -> Sampler {
        // Start at a per-process point so restarts do not repeat one pattern.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as u64);
        Sampler {
            fraction: fraction.clamp(0.0, 1.0),
            seq: std::sync::atomic::AtomicU64::new(seed),
        }
    }

    /// Whether this request is in the fraction.
    pub fn sample(&self) -> bool {
        if self.fraction <= 0.0 {
            return false;
        }
        let n = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        sampled(self.fraction, n.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }
}

impl PartialEq for Sampler {
    fn eq(&self, other: &Sampler) -> bool {
        self.fraction == other.fraction
    }
}

/// Istio `HeaderOperations`, names lower-cased.
#[derive(Debug, Default, Clone)]
pub struct HeaderOps {
    pub set: Vec<(String, String)>,
    pub add: Vec<(String, String)>,
    pub remove: Vec<String>,
}

impl HeaderOps {
    fn compile(o: Option<&HeaderOperations>) -> HeaderOps {
        let Some(o) = o else {
            return HeaderOps::default();
        };
        let lower = |m: &OrderedMap<String>| {
            m.iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect()
        };
        HeaderOps {
            set: lower(&o.set),
            add: lower(&o.add),
            remove: o.remove.iter().map(|k| k.to_ascii_lowercase()).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// Istio `Headers` at one level (route or destination).
#[derive(Debug, Default, Clone)]
pub struct HeaderPolicy {
    /// Request operations other than the host.
    pub request: HeaderOps,
    pub response: HeaderOps,
    /// `set` of `host` / `:authority`: Istio turns it into a host rewrite.
    pub host_rewrite: Option<String>,
}

impl HeaderPolicy {
    pub fn compile(h: Option<&Headers>) -> HeaderPolicy {
        let mut request = HeaderOps::compile(h.and_then(|h| h.request.as_ref()));
        let mut host_rewrite = None;
        request.set.retain(|(k, v)| {
            if k == "host" || k == ":authority" {
                host_rewrite = Some(v.clone());
                false
            } else {
                true
            }
        });
        HeaderPolicy {
            request,
            response: HeaderOps::compile(h.and_then(|h| h.response.as_ref())),
            host_rewrite,
        }
    }
}

/// Istio `HTTPRewrite`.
#[derive(Debug, Default)]
pub struct Rewrite {
    uri: Option<String>,
    /// (pattern, replacement in the regex crate's `${n}` form).
    regex: Option<(Regex, String)>,
    pub authority: Option<String>,
}

/// RE2's `\1` group references → the regex crate's `${1}`.
fn regex_replacement(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push_str("${");
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    out.push(d);
                    chars.next();
                }
                out.push('}');
            }
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out
}

/// The path after Envoy's `prefix_rewrite` as Istio sets it: the matched prefix of a
/// prefix match is replaced; an exact or regex match has the whole path replaced; a rule
/// without a `uri` condition (Istio's catch-all `/` prefix) has its leading `/` replaced.
fn replace_matched(path: &str, matched: Option<&StrMatch>, to: &str) -> String {
    match matched {
        Some(StrMatch::Prefix(p)) if path.len() >= p.len() => {
            format!("{to}{}", &path[p.len()..])
        }
        Some(StrMatch::Exact(_) | StrMatch::Regex(_)) => to.to_string(),
        _ => format!("{to}{}", path.strip_prefix('/').unwrap_or(path)),
    }
}

impl Rewrite {
    pub fn compile(r: &HttpRewrite) -> Result<Rewrite, String> {
        let regex = match &r.uri_regex_rewrite {
            Some(rr) => Some((
                Regex::new(&rr.r#match).map_err(|e| e.to_string())?,
                regex_replacement(&rr.rewrite),
            )),
            None => None,
        };
        Ok(Rewrite {
            uri: r.uri.clone().filter(|u| !u.is_empty()),
            regex,
            authority: r.authority.clone().filter(|a| !a.is_empty()),
        })
    }

    /// The rewritten path (query not included), or `None` when the path stays.
    pub fn path(&self, path: &str, matched: Option<&StrMatch>) -> Option<String> {
        if let Some(to) = &self.uri {
            return Some(replace_matched(path, matched, to));
        }
        let (re, to) = self.regex.as_ref()?;
        Some(re.replace_all(path, to.as_str()).into_owned())
    }
}

/// Istio `HTTPRedirect`.
#[derive(Debug)]
pub struct Redirect {
    uri: Option<String>,
    prefix_rewrite: Option<String>,
    authority: Option<String>,
    port: Option<u16>,
    derive_port: Option<RedirectPortSelection>,
    scheme: Option<String>,
    pub code: u16,
}

/// What a redirect needs from the request.
pub struct RedirectInput<'a> {
    pub scheme: &'a str,
    /// The port of the listener the request arrived on (`derivePort: FROM_REQUEST_PORT`).
    pub listener_port: u16,
    pub authority: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub matched: Option<&'a StrMatch>,
}

impl Redirect {
    pub fn compile(r: &HttpRedirect) -> Redirect {
        Redirect {
            uri: r.uri.clone().filter(|u| !u.is_empty()),
            prefix_rewrite: r.prefix_rewrite.clone().filter(|u| !u.is_empty()),
            authority: r.authority.clone().filter(|a| !a.is_empty()),
            port: r.port.filter(|p| *p > 0 && *p <= 65535).map(|p| p as u16),
            derive_port: r.derive_port,
            scheme: r.scheme.clone().filter(|s| !s.is_empty()),
            code: r.redirect_code.filter(|c| *c > 0).map_or(301, |c| c as u16),
        }
    }

    /// The `Location` of a redirect, as Envoy's `newUri` writes it for the route Istio
    /// generates: the scheme replaced or kept; the host replaced (`authority`, as given)
    /// or kept. A redirect port (`port`, or the listener's port for `derivePort:
    /// FROM_REQUEST_PORT`) replaces the Host's port, except that a Host already naming
    /// that port keeps it as sent and the new scheme's default port is left out (Istio's
    /// routing tests: `https://b:80/foo`, `http://b/foo`, `http://b:80/foo` for `Host:
    /// b:80`). Without one, the Host's port stays unless the scheme changes away from the
    /// port's default (`FROM_PROTOCOL_DEFAULT` drops it). The path is replaced (`uri`) or
    /// its matched prefix rewritten; the query is kept unless the new path carries one.
    pub fn location(&self, r: &RedirectInput) -> String {
        let scheme = self.scheme.as_deref().unwrap_or(r.scheme);
        let default_port = match scheme {
            "https" => 443,
            "http" => 80,
            _ => 0,
        };
        let redirect_port = match (self.port, self.derive_port) {
            (Some(p), _) => Some(p),
            (None, Some(RedirectPortSelection::FromRequestPort)) => Some(r.listener_port),
            _ => None,
        };
        let (req_host, req_port) = split_host_port(r.authority);
        let mut out = format!("{scheme}://");
        match (&self.authority, redirect_port) {
            (Some(a), None) => out.push_str(a),
            (Some(a), Some(p)) => {
                out.push_str(split_host_port(a).0);
                if p != default_port {
                    out.push_str(&format!(":{p}"));
                }
            }
            (None, Some(p)) => {
                out.push_str(req_host);
                if req_port == Some(p.to_string().as_str()) || p != default_port {
                    out.push_str(&format!(":{p}"));
                }
            }
            (None, None) => {
                out.push_str(req_host);
                let old_default = match r.scheme {
                    "https" => "443",
                    _ => "80",
                };
                let drop = self.derive_port == Some(RedirectPortSelection::FromProtocolDefault)
                    || (scheme != r.scheme && req_port == Some(old_default));
                if let (Some(p), false) = (req_port, drop) {
                    out.push(':');
                    out.push_str(p);
                }
            }
        }
        let path = match (&self.uri, &self.prefix_rewrite) {
            (Some(u), _) => u.clone(),
            (None, Some(p)) => replace_matched(r.path, r.matched, p),
            (None, None) => r.path.to_string(),
        };
        out.push_str(&path);
        if let Some(q) = r.query.filter(|q| !q.is_empty()) {
            if !path.contains('?') {
                out.push('?');
                out.push_str(q);
            }
        }
        out
    }
}

/// How a fault aborts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abort {
    Http(u16),
    /// A gRPC status code: answered as a trailers-only gRPC response (HTTP 200).
    Grpc(u32),
}

/// Istio `HTTPFaultInjection`: delay and abort, each with its own fraction of requests.
#[derive(Debug, Default)]
pub struct Fault {
    pub delay: Option<(Duration, Sampler)>,
    pub abort: Option<(Abort, Sampler)>,
}

impl Fault {
    pub fn compile(f: &HttpFaultInjection) -> Fault {
        let delay = f.delay.as_ref().and_then(|d| {
            let t = duration::parse(d.fixed_delay.as_deref()?).ok()?;
            Some((t, Sampler::new(fraction(d.percentage.as_ref(), d.percent))))
        });
        let abort = f.abort.as_ref().and_then(|a| {
            let kind = if let Some(s) = a.http_status {
                Abort::Http(s as u16)
            } else {
                let name = a.grpc_status.as_deref()?;
                let code = crate::config::validate::virtual_service::GRPC_STATUSES
                    .iter()
                    .position(|s| *s == name)?;
                Abort::Grpc(code as u32)
            };
            Some((kind, Sampler::new(fraction(a.percentage.as_ref(), None))))
        });
        Fault { delay, abort }
    }
}

/// Envoy `retry_on` conditions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryOn(u32);

impl RetryOn {
    pub const FIVE_XX: RetryOn = RetryOn(1);
    pub const GATEWAY_ERROR: RetryOn = RetryOn(1 << 1);
    pub const RESET: RetryOn = RetryOn(1 << 2);
    pub const CONNECT_FAILURE: RetryOn = RetryOn(1 << 3);
    pub const RETRIABLE_4XX: RetryOn = RetryOn(1 << 4);
    pub const REFUSED_STREAM: RetryOn = RetryOn(1 << 5);
    pub const RETRIABLE_STATUS_CODES: RetryOn = RetryOn(1 << 6);
    pub const CANCELLED: RetryOn = RetryOn(1 << 7);
    pub const DEADLINE_EXCEEDED: RetryOn = RetryOn(1 << 8);
    pub const INTERNAL: RetryOn = RetryOn(1 << 9);
    pub const RESOURCE_EXHAUSTED: RetryOn = RetryOn(1 << 10);
    pub const UNAVAILABLE: RetryOn = RetryOn(1 << 11);

    fn by_name(n: &str) -> Option<RetryOn> {
        Some(match n {
            "5xx" => Self::FIVE_XX,
            "gateway-error" => Self::GATEWAY_ERROR,
            "reset" | "reset-before-request" => Self::RESET,
            "connect-failure" => Self::CONNECT_FAILURE,
            "retriable-4xx" => Self::RETRIABLE_4XX,
            "refused-stream" => Self::REFUSED_STREAM,
            "retriable-status-codes" => Self::RETRIABLE_STATUS_CODES,
            "cancelled" => Self::CANCELLED,
            "deadline-exceeded" => Self::DEADLINE_EXCEEDED,
            "internal" => Self::INTERNAL,
            "resource-exhausted" => Self::RESOURCE_EXHAUSTED,
            "unavailable" => Self::UNAVAILABLE,
            _ => return None,
        })
    }

    fn insert(&mut self, o: RetryOn) {
        self.0 |= o.0;
    }

    pub fn has(self, o: RetryOn) -> bool {
        self.0 & o.0 != 0
    }
}

/// Istio `HTTPRetry` as Envoy runs it.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first try (`attempts`).
    pub attempts: u32,
    pub per_try_timeout: Option<Duration>,
    pub on: RetryOn,
    /// Numeric `retryOn` entries (for `retriable-status-codes`; a number alone also
    /// enables it, as Istio does).
    pub codes: Vec<u16>,
    /// `backoff`: the base interval between retries (Envoy's default 25 ms), doubling per
    /// retry up to ten times the base, jittered.
    pub backoff: Duration,
}

/// Envoy's default retry back-off base interval.
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(25);

/// gRPC status codes by number, for `retryOn`'s gRPC conditions.
const GRPC_CANCELLED: u32 = 1;
const GRPC_DEADLINE_EXCEEDED: u32 = 4;
const GRPC_RESOURCE_EXHAUSTED: u32 = 8;
const GRPC_INTERNAL: u32 = 13;
const GRPC_UNAVAILABLE: u32 = 14;

impl Default for RetryPolicy {
    /// Istio's default: 2 retries on connect-failure, refused-stream, unavailable,
    /// cancelled and retriable-status-codes (with no codes, so a plain 503 is not retried).
    fn default() -> RetryPolicy {
        let mut on = RetryOn::default();
        for o in [
            RetryOn::CONNECT_FAILURE,
            RetryOn::REFUSED_STREAM,
            RetryOn::UNAVAILABLE,
            RetryOn::CANCELLED,
            RetryOn::RETRIABLE_STATUS_CODES,
        ] {
            on.insert(o);
        }
        RetryPolicy {
            attempts: 2,
            per_try_timeout: None,
            on,
            codes: Vec::new(),
            backoff: DEFAULT_RETRY_BACKOFF,
        }
    }
}

/// The most retries meshgate makes for one request (Pingora needs a fixed cap).
pub const MAX_RETRIES: u32 = 10;

impl RetryPolicy {
    pub fn compile(r: Option<&HttpRetry>) -> RetryPolicy {
        let Some(r) = r else {
            return RetryPolicy::default();
        };
        let mut p = RetryPolicy {
            attempts: r.attempts.clamp(0, MAX_RETRIES as i32) as u32,
            per_try_timeout: r
                .per_try_timeout
                .as_deref()
                .and_then(|d| duration::parse(d).ok()),
            on: RetryOn::default(),
            codes: Vec::new(),
            backoff: r
                .backoff
                .as_deref()
                .and_then(|d| duration::parse(d).ok())
                .filter(|d| !d.is_zero())
                .unwrap_or(DEFAULT_RETRY_BACKOFF),
        };
        match r.retry_on.as_deref().filter(|s| !s.is_empty()) {
            None => p.on = RetryPolicy::default().on,
            Some(list) => {
                for item in list.split(',').map(str::trim) {
                    if let Ok(code) = item.parse::<u16>() {
                        p.codes.push(code);
                        p.on.insert(RetryOn::RETRIABLE_STATUS_CODES);
                    } else if let Some(o) = RetryOn::by_name(item) {
                        p.on.insert(o);
                    }
                }
            }
        }
        p
    }

    /// Whether an upstream answer with `status` (and `grpc-status`, if any) is retried.
    pub fn retries_response(&self, status: u16, grpc: Option<u32>) -> bool {
        let on = self.on;
        (on.has(RetryOn::FIVE_XX) && status >= 500)
            || (on.has(RetryOn::GATEWAY_ERROR) && matches!(status, 502..=504))
            || (on.has(RetryOn::RETRIABLE_4XX) && status == 409)
            || (on.has(RetryOn::RETRIABLE_STATUS_CODES) && self.codes.contains(&status))
            || grpc.is_some_and(|g| {
                (on.has(RetryOn::CANCELLED) && g == GRPC_CANCELLED)
                    || (on.has(RetryOn::DEADLINE_EXCEEDED) && g == GRPC_DEADLINE_EXCEEDED)
                    || (on.has(RetryOn::INTERNAL) && g == GRPC_INTERNAL)
                    || (on.has(RetryOn::RESOURCE_EXHAUSTED) && g == GRPC_RESOURCE_EXHAUSTED)
                    || (on.has(RetryOn::UNAVAILABLE) && g == GRPC_UNAVAILABLE)
            })
    }

    /// How long to wait before retry number `n` (1 for the first retry), given a uniform
    /// random `r`: the base doubled per retry, capped at ten times the base, then a random
    /// point in its upper half.
    pub fn backoff_before(&self, n: u32, r: u64) -> Duration {
        let cap = self
            .backoff
            .saturating_mul(1 << n.clamp(1, 8).saturating_sub(1))
            .min(self.backoff * 10);
        cap / 2 + cap.mul_f64((r % 1000) as f64 / 2000.0)
    }

    /// Whether a failed connection attempt is retried.
    pub fn retries_connect_failure(&self) -> bool {
        self.on.has(RetryOn::CONNECT_FAILURE)
            || self.on.has(RetryOn::FIVE_XX)
            || self.on.has(RetryOn::GATEWAY_ERROR)
            || self.on.has(RetryOn::RESET)
    }

    /// Whether a reset or timed-out attempt (no response) is retried.
    pub fn retries_reset(&self) -> bool {
        self.on.has(RetryOn::RESET)
            || self.on.has(RetryOn::FIVE_XX)
            || self.on.has(RetryOn::GATEWAY_ERROR)
    }
}

/// Istio `HTTPMirrorPolicy`.
#[derive(Debug)]
pub struct Mirror {
    pub cluster_name: String,
    pub cluster: Option<ClusterId>,
    /// Absent `percentage` means every request.
    pub sampler: Sampler,
}

/// Istio `CorsPolicy` as Envoy's CORS filter applies it.
#[derive(Debug)]
pub struct Cors {
    origins: Vec<StrMatch>,
    pub allow_methods: String,
    pub allow_headers: String,
    pub expose_headers: String,
    /// Seconds, as `access-control-max-age` wants it.
    pub max_age: Option<String>,
    pub allow_credentials: bool,
    /// `unmatchedPreflights: IGNORE`: answer a preflight from an unknown origin without
    /// CORS headers instead of forwarding it.
    pub ignore_unmatched_preflights: bool,
}

impl Cors {
    pub fn compile(c: &CorsPolicy) -> Result<Cors, String> {
        let mut origins = Vec::new();
        for o in &c.allow_origins {
            if let Some(m) = StrMatch::compile(o, false)? {
                origins.push(m);
            }
        }
        origins.extend(c.allow_origin.iter().map(|o| StrMatch::Exact(o.clone())));
        Ok(Cors {
            origins,
            allow_methods: c.allow_methods.join(","),
            allow_headers: c.allow_headers.join(","),
            expose_headers: c.expose_headers.join(","),
            max_age: c
                .max_age
                .as_deref()
                .and_then(|d| duration::parse(d).ok())
                .map(|d| d.as_secs().to_string()),
            allow_credentials: c.allow_credentials.unwrap_or(false),
            ignore_unmatched_preflights: c.unmatched_preflights
                == Some(UnmatchedPreflights::Ignore),
        })
    }

    /// Whether `origin` is allowed (`*` exact allows any).
    pub fn allows(&self, origin: &str) -> bool {
        self.origins.iter().any(|m| match m {
            StrMatch::Exact(e) if e == "*" => true,
            m => m.matches(origin),
        })
    }
}

/// Everything an `HTTPRoute` does around its destination.
#[derive(Debug, Default)]
pub struct RoutePolicy {
    pub rewrite: Option<Rewrite>,
    pub headers: HeaderPolicy,
    pub fault: Option<Fault>,
    /// `timeout`: the whole request, retries included. Istio's default: none.
    pub timeout: Option<Duration>,
    pub retry: RetryPolicy,
    pub mirrors: Vec<Mirror>,
    pub cors: Option<Cors>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redirect(yaml: &str) -> Redirect {
        Redirect::compile(&serde_yaml::from_str(yaml).unwrap())
    }

    fn loc(r: &Redirect, scheme: &str, authority: &str, path: &str, query: Option<&str>) -> String {
        loc_at(r, 8080, scheme, authority, path, query)
    }

    fn loc_at(
        r: &Redirect,
        listener_port: u16,
        scheme: &str,
        authority: &str,
        path: &str,
        query: Option<&str>,
    ) -> String {
        r.location(&RedirectInput {
            scheme,
            listener_port,
            authority,
            path,
            query,
            matched: None,
        })
    }

    #[test]
    fn redirect_locations_follow_envoy() {
        let r = redirect("{uri: /v1/bookRatings, authority: newratings.default.svc.cluster.local}");
        assert_eq!(
            loc(
                &r,
                "http",
                "ratings.com:8080",
                "/v1/getProductRatings",
                Some("a=1")
            ),
            "http://newratings.default.svc.cluster.local/v1/bookRatings?a=1",
            "Envoy's host_redirect replaces the Host with its port"
        );
        assert_eq!(r.code, 301);
        let r = redirect("{scheme: https, redirectCode: 302}");
        assert_eq!(loc(&r, "http", "a.com", "/x", None), "https://a.com/x");
        assert_eq!(r.code, 302);
        // Leaving http, the Host's port 80 goes with it; another port stays (Envoy).
        assert_eq!(
            loc(&redirect("{scheme: https}"), "http", "a.com:80", "/", None),
            "https://a.com/"
        );
        assert_eq!(
            loc(
                &redirect("{scheme: https}"),
                "http",
                "a.com:8443",
                "/",
                None
            ),
            "https://a.com:8443/"
        );
        assert_eq!(
            loc(&redirect("{port: 8443}"), "http", "a.com:80", "/p", None),
            "http://a.com:8443/p"
        );
        assert_eq!(
            loc(&redirect("{port: 80}"), "http", "a.com:8080", "/p", None),
            "http://a.com/p"
        );
        assert_eq!(
            loc(
                &redirect("{derivePort: FROM_PROTOCOL_DEFAULT}"),
                "http",
                "a.com:8080",
                "/p",
                None
            ),
            "http://a.com/p"
        );
        assert_eq!(
            loc(
                &redirect("{derivePort: FROM_REQUEST_PORT, scheme: https}"),
                "http",
                "a.com:8080",
                "/p",
                None
            ),
            "https://a.com:8080/p"
        );
        // Istio's routing tests "redirect port and scheme" and "redirect request port".
        let from_request = redirect("{derivePort: FROM_REQUEST_PORT}");
        assert_eq!(
            loc_at(
                &redirect("{derivePort: FROM_REQUEST_PORT, scheme: https}"),
                80,
                "http",
                "b",
                "/foo",
                None
            ),
            "https://b:80/foo"
        );
        assert_eq!(
            loc_at(&from_request, 80, "http", "b", "/foo", None),
            "http://b/foo"
        );
        assert_eq!(
            loc_at(&from_request, 80, "http", "b:80", "/foo", None),
            "http://b:80/foo"
        );
        assert_eq!(
            loc_at(&from_request, 85, "http", "b", "/foo", None),
            "http://b:85/foo"
        );
        assert_eq!(
            loc_at(&from_request, 85, "http", "b:85", "/foo", None),
            "http://b:85/foo"
        );
        assert_eq!(
            loc(
                &redirect("{authority: b.com:9000}"),
                "http",
                "a.com:8080",
                "/",
                None
            ),
            "http://b.com:9000/"
        );
        // A new path with its own query replaces the query.
        assert_eq!(
            loc(
                &redirect("{uri: \"/n?x=1\"}"),
                "http",
                "a.com",
                "/o",
                Some("y=2")
            ),
            "http://a.com/n?x=1"
        );
    }

    #[test]
    fn rewrites() {
        let rw = |y: &str| Rewrite::compile(&serde_yaml::from_str(y).unwrap()).unwrap();
        let prefix = StrMatch::Prefix("/ratings".into());
        let exact = StrMatch::Exact("/ratings".into());
        assert_eq!(
            rw("{uri: /v1/bookRatings}")
                .path("/ratings/2", Some(&prefix))
                .as_deref(),
            Some("/v1/bookRatings/2")
        );
        assert_eq!(
            rw("{uri: /v1}").path("/ratings", Some(&exact)).as_deref(),
            Some("/v1")
        );
        assert_eq!(rw("{uri: /v1/}").path("/x", None).as_deref(), Some("/v1/x"));
        let regex = StrMatch::Regex(Regex::new("^(?:/r/.*)$").unwrap());
        assert_eq!(
            rw("{uri: /v2}").path("/r/a/b", Some(&regex)).as_deref(),
            Some("/v2"),
            "a regex match swaps the whole path"
        );
        assert_eq!(
            rw("{uriRegexRewrite: {match: \"^/service/([^/]+)(/.*)$\", rewrite: \"\\\\2/instance/\\\\1\"}}")
                .path("/service/foo/v1/api", None)
                .as_deref(),
            Some("/v1/api/instance/foo")
        );
        assert_eq!(rw("{authority: x}").path("/a", None), None);
    }

    #[test]
    fn header_policy_turns_host_into_a_rewrite() {
        let h: Headers = serde_yaml::from_str("{request: {set: {Host: new.com, X-A: \"1\"}, add: {x-b: \"2\"}, remove: [X-C]}, response: {remove: [server]}}").unwrap();
        let p = HeaderPolicy::compile(Some(&h));
        assert_eq!(p.host_rewrite.as_deref(), Some("new.com"));
        assert_eq!(p.request.set, vec![("x-a".to_string(), "1".to_string())]);
        assert_eq!(p.request.remove, vec!["x-c".to_string()]);
        assert_eq!(p.response.remove, vec!["server".to_string()]);
    }

    #[test]
    fn retry_policies() {
        let d = RetryPolicy::default();
        assert_eq!(d.attempts, 2);
        assert!(
            !d.retries_response(503, None),
            "the default does not retry a plain 503"
        );
        assert!(
            d.retries_response(200, Some(14)),
            "but does retry gRPC unavailable"
        );
        assert!(d.retries_connect_failure());
        let p = |y: &str| RetryPolicy::compile(Some(&serde_yaml::from_str(y).unwrap()));
        let r = p("{attempts: 3, perTryTimeout: 2s, retryOn: \"gateway-error,connect-failure,refused-stream\"}");
        assert_eq!(
            (r.attempts, r.per_try_timeout),
            (3, Some(Duration::from_secs(2)))
        );
        assert!(r.retries_response(503, None) && !r.retries_response(500, None));
        let r = p("{attempts: 2, retryOn: \"5xx\"}");
        assert!(r.retries_response(500, None) && !r.retries_response(404, None));
        let r = p("{attempts: 2, retryOn: \"retriable-status-codes,418\"}");
        assert!(r.retries_response(418, None) && !r.retries_response(503, None));
        let r = p("{attempts: 2, retryOn: \"retriable-4xx\"}");
        assert!(r.retries_response(409, None) && !r.retries_response(404, None));
        assert_eq!(p("{attempts: 0}").attempts, 0);
        let b = p("{attempts: 5, backoff: 100ms}");
        assert_eq!(b.backoff_before(1, 0), Duration::from_millis(50));
        assert_eq!(b.backoff_before(3, 999), Duration::from_micros(399_800));
        assert_eq!(
            b.backoff_before(9, 0),
            Duration::from_millis(500),
            "capped at 10x base"
        );
        assert_eq!(d.backoff_before(1, 0), Duration::from_micros(12_500));
        let r = p(
            "{attempts: 1, retryOn: \"cancelled,deadline-exceeded,internal,resource-exhausted\"}",
        );
        assert!([1, 4, 13, 8]
            .iter()
            .all(|g| r.retries_response(200, Some(*g))));
        assert!(!r.retries_response(200, Some(14)));
    }

    #[test]
    fn faults_and_fractions() {
        let f: HttpFaultInjection = serde_yaml::from_str(
            "{delay: {fixedDelay: 2s, percentage: {value: 50}}, abort: {grpcStatus: UNAVAILABLE}}",
        )
        .unwrap();
        let f = Fault::compile(&f);
        assert_eq!(f.delay, Some((Duration::from_secs(2), Sampler::new(0.5))));
        assert_eq!(
            f.abort,
            Some((Abort::Grpc(14), Sampler::new(0.0))),
            "no percentage: Envoy aborts nothing"
        );
        let half = Sampler::new(0.5);
        let n = (0..200).filter(|_| half.sample()).count();
        assert!((98..=102).contains(&n), "{n}");
        let tenth = Sampler::new(0.1);
        assert!((8..=12).contains(&(0..100).filter(|_| tenth.sample()).count()));
        assert!(!Sampler::new(0.0).sample() && Sampler::new(1.0).sample());
        assert!(sampled(1.0, u64::MAX) && !sampled(0.0, 0));
        let hits = (0..1000u64)
            .filter(|i| sampled(0.25, i * (u64::MAX / 1000)))
            .count();
        assert_eq!(hits, 250);
    }

    #[test]
    fn cors_origins() {
        let c: CorsPolicy = serde_yaml::from_str("{allowOrigins: [{exact: \"https://example.com\"}, {regex: \"https://.*\\\\.example\\\\.org\"}], maxAge: 24h, allowMethods: [GET, POST]}").unwrap();
        let c = Cors::compile(&c).unwrap();
        assert!(c.allows("https://example.com") && c.allows("https://a.example.org"));
        assert!(!c.allows("https://evil.com"));
        assert_eq!(c.max_age.as_deref(), Some("86400"));
        assert_eq!(c.allow_methods, "GET,POST");
        assert_eq!(regex_replacement("a\\1b$c\\12"), "a${1}b$$c${12}");
    }
}
