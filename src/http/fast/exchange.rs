//! One request's tries on the fast path, as the full pipeline's hooks run them: the
//! circuit breaker's admission, back-off, endpoint pick, the try's wait for upstream
//! bytes (per-try or route timeout, or `streamIdleTimeout`), connect or a pooled
//! connection, the retry decision after each failure or answer, and the answer relayed
//! (or the local reply fail-to-proxy would write), then the request's metrics.

use super::response::{self, Added, Answer, Dechunker, Framing};
use super::{FastPath, Served};
use crate::http::local_reply::{
    h1_reply, Reply, BODY_CONNECT_FAILURE, BODY_NO_HEALTHY_UPSTREAM, BODY_OVERFLOW, BODY_RESET,
    BODY_STREAM_TIMEOUT, BODY_TIMEOUT,
};
use crate::http::number_value;
use crate::http::retry::{Outcome, RetryState};
use crate::snapshot::route_table::Route;
use crate::telemetry::{Destination, HttpSample, RequestProtocol, ResponseFlags};
use crate::upstream::balancer;
use crate::upstream::cluster::ClusterState;
use crate::upstream::endpoint::InFlight;
use crate::upstream::limits::RetrySlot;
use crate::upstream::outlier::Outcome as Attempt;
use crate::upstream::{connect, connection};
use bytes::BytesMut;
use pingora::protocols::Stream;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// An upstream answer's head may be this large at most (Pingora's limit).
const MAX_ANSWER_HEAD: usize = 1024 * 1024 - 1;

/// Upstream body bytes read at once.
const BODY_READ: usize = 32 * 1024;

/// What a request taken by the fast path needs for its tries.
pub(super) struct Plan {
    /// The upstream request head without the per-try headers and blank line (room
    /// reserved for them: they are appended in place on each try).
    pub head: Vec<u8>,
    pub head_request: bool,
    pub route: Arc<Route>,
    pub cluster: Arc<ClusterState>,
    pub dest: Arc<Destination>,
    pub stream_idle: Duration,
    pub keep_alive: bool,
    pub started: Instant,
    /// Client bytes kept while an answer is awaited at most (MeshConfig
    /// `maxRequestHeadersKb`).
    pub pending_limit: usize,
}

/// How the last try failed, as fail-to-proxy tells its answers apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failed {
    /// No connection (refused, unreachable, timed out).
    Connect,
    /// No upstream bytes in time (or the route's time was up before a try).
    Timeout,
    /// The upstream closed, reset, or sent what is not HTTP.
    Reset,
    /// No endpoint to try.
    NoEndpoint,
}

/// The answer the full pipeline's `fail_to_proxy` writes for a request whose request
/// body is complete (the fast path's have none).
fn failure_reply(flags: ResponseFlags, failed: Failed) -> (u16, &'static str) {
    if flags.contains(ResponseFlags::UH) {
        (503, BODY_NO_HEALTHY_UPSTREAM)
    } else if flags.contains(ResponseFlags::SI) {
        (504, BODY_STREAM_TIMEOUT)
    } else if flags.contains(ResponseFlags::UT) && failed == Failed::Timeout {
        (504, BODY_TIMEOUT)
    } else if failed == Failed::Connect || flags.contains(ResponseFlags::UF) {
        (503, BODY_CONNECT_FAILURE)
    } else {
        (503, BODY_RESET)
    }
}

/// How one try ended.
enum Try {
    /// A final answer's head, in `buf` (with whatever body bytes followed it).
    Answered(TcpStream, Answer),
    Failed(Failed, Outcome),
    /// The request could not be written within `streamIdleTimeout`.
    WriteTimedOut,
    /// The client went away (or stopped reading a 1xx answer).
    ClientGone(ClientFailed),
}

/// The request's state across tries.
struct Tries<'a> {
    plan: &'a Plan,
    retry: RetryState,
    flags: ResponseFlags,
    retry_slot: Option<RetrySlot>,
    /// Answer bytes read from the upstream.
    buf: Vec<u8>,
    /// The upstream request head: the plan's, then each try's headers after `head_base`.
    head: Vec<u8>,
    head_base: usize,
}

/// Reads more upstream bytes into `buf` within `wait`: `Ok(0)` at the end of the stream.
async fn read_more(
    up: &mut TcpStream,
    buf: &mut Vec<u8>,
    wait: Duration,
    room: usize,
) -> Result<usize, Failed> {
    if buf.capacity() - buf.len() < room / 4 {
        buf.reserve(room);
    }
    match tokio::time::timeout(wait, up.read_buf(buf)).await {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(_)) => Err(Failed::Reset),
        Err(_) => Err(Failed::Timeout),
    }
}

/// Why bytes did not reach the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientFailed {
    /// It closed or reset the connection (Envoy's DC).
    Gone,
    /// It did not take them within `streamIdleTimeout` (SI).
    Stalled,
}

impl ClientFailed {
    /// The flag the full pipeline records for it.
    fn flag(self) -> ResponseFlags {
        match self {
            ClientFailed::Gone => ResponseFlags::DC,
            ClientFailed::Stalled => ResponseFlags::SI,
        }
    }
}

/// Writes `bytes` to the client and flushes, within `wait`.
async fn to_client(down: &mut Stream, bytes: &[u8], wait: Duration) -> Result<(), ClientFailed> {
    let written = tokio::time::timeout(wait, async {
        down.write_all(bytes).await?;
        down.flush().await
    })
    .await;
    match written {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(ClientFailed::Gone),
        Err(_) => Err(ClientFailed::Stalled),
    }
}

/// `wait` from now, or as far as the clock goes.
fn deadline(wait: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(wait)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30))
}

/// Counts the request in Istio's metrics (the fast path runs only without an access log).
fn report(plan: &Plan, status: u16, flags: ResponseFlags, sent: u64) {
    plan.dest.http(&HttpSample {
        protocol: RequestProtocol::Http,
        response_code: status,
        flags,
        grpc_status: None,
        duration: plan.started.elapsed(),
        request_bytes: 0,
        response_bytes: sent,
        request_messages: 0,
        response_messages: 0,
    });
}

impl Tries<'_> {
    fn record(&self, ep: &InFlight, attempt: Attempt) {
        self.plan.cluster.record(ep.endpoint(), attempt);
    }

    /// A slot for one more retry under `maxRetries` (the previous one freed first).
    fn retry_slot(&mut self) -> bool {
        self.retry_slot = None;
        match self.plan.cluster.breaker.retry() {
            Ok(slot) => {
                self.retry_slot = slot;
                true
            }
            Err(_) => false,
        }
    }

    /// After a failed try: whether to try again (the decision's flags recorded).
    fn again(&mut self, outcome: Outcome) -> bool {
        let policy = &self.plan.route.policy.retry;
        let decision = self
            .retry
            .after(policy, outcome, std::time::Instant::now(), true);
        self.flags.insert(decision.flags);
        decision.retry && self.retry_slot()
    }

    /// The request head with this try's headers: `Connection: close` on a connection's
    /// last request, then `x-envoy-attempt-count`.
    fn set_try_headers(&mut self, close_upstream: bool) {
        let head = &mut self.head;
        head.truncate(self.head_base);
        if close_upstream {
            head.extend_from_slice(b"connection: close\r\n");
        }
        head.extend_from_slice(b"x-envoy-attempt-count: ");
        head.extend_from_slice(number_value(u64::from(self.retry.attempts)).as_bytes());
        head.extend_from_slice(b"\r\n\r\n");
    }

    /// One try on `up`: the request sent, 1xx answers relayed, the final answer's head
    /// read into `buf`. Meanwhile the client is watched, as Pingora watches it: its
    /// close ends the request; bytes it sends (a pipelined request) are kept in
    /// `pending`, up to `pending_limit`.
    async fn exchange(
        &mut self,
        down: &mut Stream,
        pending: &mut BytesMut,
        mut up: TcpStream,
        close_upstream: bool,
        read: Duration,
    ) -> Try {
        let plan = self.plan;
        self.set_try_headers(close_upstream);
        let sent = tokio::time::timeout(plan.stream_idle, up.write_all(&self.head)).await;
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Try::Failed(Failed::Reset, Outcome::Reset),
            Err(_) => return Try::WriteTimedOut,
        }
        self.buf.clear();
        // Each read of the upstream may wait `read` (Pingora's read timeout is per read):
        // the deadline moves only when upstream bytes come.
        let wait = tokio::time::sleep_until(deadline(read));
        tokio::pin!(wait);
        let mut fresh = true;
        loop {
            if fresh {
                fresh = false;
                match response::parse(&self.buf, plan.head_request, close_upstream) {
                    Err(_) => return Try::Failed(Failed::Reset, Outcome::Reset),
                    Ok(Some(a)) if a.informational => {
                        let mut out = Vec::with_capacity(a.len);
                        let added = Added {
                            service_time: b"",
                            date: b"",
                            keep_alive: true,
                        };
                        response::client_head(&mut out, &self.buf[..a.len], &a, &added);
                        if let Err(f) = to_client(down, &out, plan.stream_idle).await {
                            return Try::ClientGone(f);
                        }
                        self.buf.drain(..a.len);
                        wait.as_mut().reset(deadline(read));
                        fresh = true;
                        continue;
                    }
                    Ok(Some(a)) => return Try::Answered(up, a),
                    Ok(None) if self.buf.len() > MAX_ANSWER_HEAD => {
                        return Try::Failed(Failed::Reset, Outcome::Reset)
                    }
                    Ok(None) => {}
                }
                if self.buf.capacity() - self.buf.len() < 1024 {
                    self.buf.reserve(4096);
                }
            }
            let watch = pending.len() < plan.pending_limit;
            tokio::select! {
                biased;
                r = up.read_buf(&mut self.buf) => match r {
                    Ok(0) | Err(_) => return Try::Failed(Failed::Reset, Outcome::Reset),
                    Ok(_) => {
                        wait.as_mut().reset(deadline(read));
                        fresh = true;
                    }
                },
                () = &mut wait => return Try::Failed(Failed::Timeout, Outcome::TimedOut),
                c = down.read_buf(pending), if watch => match c {
                    Ok(0) | Err(_) => return Try::ClientGone(ClientFailed::Gone),
                    Ok(_) => {}
                },
            }
        }
    }
}

/// Serves the planned request: its tries, then the answer or the local reply.
pub(super) async fn run(
    fast: &FastPath,
    down: &mut Stream,
    pending: &mut BytesMut,
    mut plan: Plan,
) -> Served {
    let cluster = &*plan.cluster;
    let policy = &cluster.spec.policy;
    let retry_policy = &plan.route.policy.retry;
    let head = std::mem::take(&mut plan.head);
    let mut t = Tries {
        head_base: head.len(),
        head,
        plan: &plan,
        retry: RetryState::new(plan.started.into_std(), plan.route.policy.timeout),
        flags: ResponseFlags::default(),
        retry_slot: None,
        buf: Vec::new(),
    };
    use pingora::protocols::http::date::get_cached_date as date;
    let next = if plan.keep_alive {
        Served::KeepAlive
    } else {
        Served::Close
    };
    // Circuit breakers: an HTTP/1 upstream holds a connection per request in flight.
    let _admission = match cluster.breaker.admit(true, t.retry.deadline()).await {
        Ok(a) => a,
        Err(_) => {
            cluster.stats.overflows.fetch_add(1, Ordering::Relaxed);
            let flags = ResponseFlags::UO;
            let mut out = Vec::with_capacity(256);
            let overloaded = [("x-envoy-overloaded", "true")];
            let reply = Reply {
                status: 503,
                headers: &overloaded,
                body: BODY_OVERFLOW.as_bytes(),
                head_request: plan.head_request,
            };
            h1_reply(&mut out, &reply, date().as_bytes(), plan.keep_alive);
            if let Err(f) = to_client(down, &out, plan.stream_idle).await {
                report(&plan, 0, flags | f.flag(), 0);
                return Served::Close;
            }
            report(&plan, 503, flags, reply.body_sent());
            return next;
        }
    };
    let answered = loop {
        let mut now = std::time::Instant::now();
        let backoff = t.retry.backoff(retry_policy, fast.rng.random(), now);
        if !backoff.is_zero() {
            tokio::time::sleep(backoff).await;
            now = std::time::Instant::now();
        }
        let picked = cluster.pick(balancer::Request {
            hash: None,
            tried: t.retry.tried(),
            random: fast.rng.random(),
        });
        let Some(ep) = picked else {
            // Every endpoint ejected (outlier detection): Envoy's "no healthy upstream".
            t.flags.insert(ResponseFlags::UH);
            break Err(Failed::NoEndpoint);
        };
        let wait = match t.retry.begin(retry_policy, ep.address, now) {
            Ok(w) => w,
            Err(flags) => {
                t.flags.insert(flags);
                break Err(Failed::Timeout);
            }
        };
        // The stream idle timeout bounds the wait too, when it is the shorter.
        let (read, idle_bounded) = match wait {
            Some(w) if w <= plan.stream_idle => (w, false),
            _ => (plan.stream_idle, true),
        };
        cluster.stats.requests.fetch_add(1, Ordering::Relaxed);
        let ep = InFlight::new(ep);
        let pooled = connect::pooled_http1(cluster, ep.endpoint().address);
        let reused = pooled.is_some();
        let up = match pooled {
            Some(s) => Ok(s),
            None => connect::new_http1(cluster, ep.endpoint()).await,
        };
        let (result, close_upstream) = match up {
            Ok(up) => {
                let close_upstream = connection::last_request(
                    up.as_raw_fd(),
                    reused,
                    policy.http_pool.max_requests_per_connection,
                    policy.max_connection_duration,
                );
                let r = t.exchange(down, pending, up, close_upstream, read).await;
                (r, close_upstream)
            }
            Err(()) => (Try::Failed(Failed::Connect, Outcome::ConnectFailed), false),
        };
        match result {
            Try::ClientGone(f) => {
                report(&plan, 0, t.flags | f.flag(), 0);
                return Served::Close;
            }
            Try::WriteTimedOut if idle_bounded => {
                // The request could not be sent within `streamIdleTimeout`: SI, as a
                // read (no retry, not counted against the endpoint).
                t.flags.insert(ResponseFlags::SI);
                break Err(Failed::Timeout);
            }
            Try::WriteTimedOut => {
                t.record(&ep, Attempt::Reset);
                if !t.again(Outcome::Reset) {
                    break Err(Failed::Reset);
                }
            }
            Try::Failed(Failed::Timeout, _) if idle_bounded => {
                // `streamIdleTimeout`: the stream is over, as in Envoy (no retry).
                t.flags.insert(ResponseFlags::SI);
                break Err(Failed::Timeout);
            }
            Try::Failed(failed, outcome) => {
                match failed {
                    Failed::Timeout => t.record(&ep, Attempt::TimedOut),
                    Failed::Reset => t.record(&ep, Attempt::Reset),
                    _ => {}
                }
                if !t.again(outcome) {
                    break Err(failed);
                }
            }
            Try::Answered(up, answer) => {
                t.record(&ep, Attempt::Status(answer.status));
                let now = std::time::Instant::now();
                let outcome = Outcome::Answered {
                    status: answer.status,
                    grpc: answer.grpc,
                };
                let decision = t.retry.after(retry_policy, outcome, now, true);
                t.flags.insert(decision.flags);
                if decision.retry && t.retry_slot() {
                    t.retry.take_status_retry();
                    continue;
                }
                break Ok((up, answer, close_upstream, ep, now, read, idle_bounded));
            }
        }
    };
    let (mut up, answer, close_upstream, ep, answered_at, read, idle_bounded) = match answered {
        Ok(a) => a,
        Err(failed) => {
            let (status, body) = failure_reply(t.flags, failed);
            let mut out = Vec::with_capacity(256);
            let reply = Reply {
                status,
                headers: &[],
                body: body.as_bytes(),
                head_request: plan.head_request,
            };
            h1_reply(&mut out, &reply, date().as_bytes(), plan.keep_alive);
            // As the full pipeline, the connection is not reused after such an answer.
            match to_client(down, &out, plan.stream_idle).await {
                Ok(()) => report(&plan, status, t.flags, reply.body_sent()),
                Err(f) => report(&plan, 0, t.flags | f.flag(), 0),
            }
            return Served::Close;
        }
    };
    let service_ms = t
        .retry
        .attempt_started
        .map_or(0, |s| answered_at.saturating_duration_since(s).as_millis());
    let service_time = number_value(u64::try_from(service_ms).unwrap_or(u64::MAX));
    let mut out = Vec::with_capacity(answer.len + 256 + t.buf.len());
    let date = date();
    let added = Added {
        service_time: service_time.as_bytes(),
        date: date.as_bytes(),
        keep_alive: plan.keep_alive,
    };
    response::client_head(&mut out, &t.buf[..answer.len], &answer, &added);
    let status = answer.status;
    let mut reusable = answer.reusable && !close_upstream;
    let mut relay = Relay {
        framing: answer.framing,
        left: match answer.framing {
            Framing::Length(n) => n,
            _ => 0,
        },
        chunks: Dechunker::default(),
        staged: 0,
        sent: 0,
    };
    let mut buf = std::mem::take(&mut t.buf);
    let mut done = relay.feed(&buf[answer.len..], &mut out, &mut reusable);
    loop {
        let Ok(complete) = done else {
            // Not HTTP: the upstream's fault, after the answer started (a reset).
            t.record(&ep, Attempt::Reset);
            t.again(Outcome::Reset);
            if to_client(down, &out, plan.stream_idle).await.is_ok() {
                relay.sent += relay.staged;
            }
            report(&plan, status, t.flags, relay.sent);
            return Served::Close;
        };
        if !out.is_empty() {
            if let Err(f) = to_client(down, &out, plan.stream_idle).await {
                report(&plan, status, t.flags | f.flag(), relay.sent);
                return Served::Close;
            }
        }
        relay.sent += std::mem::take(&mut relay.staged);
        out.clear();
        if complete {
            break;
        }
        buf.clear();
        let failed = match read_more(&mut up, &mut buf, read, BODY_READ).await {
            Ok(0) if relay.framing == Framing::Close => {
                out.extend_from_slice(response::LAST_CHUNK);
                done = Ok(true);
                continue;
            }
            Ok(0) if relay.framing == Framing::CloseRaw => {
                done = Ok(true);
                continue;
            }
            Ok(0) => Failed::Reset,
            Ok(_) => {
                done = relay.feed(&buf, &mut out, &mut reusable);
                continue;
            }
            Err(f) => f,
        };
        // The upstream failed mid-answer: counted as the full pipeline counts it; the
        // client's connection ends there.
        match failed {
            Failed::Timeout if idle_bounded => t.flags.insert(ResponseFlags::SI),
            Failed::Timeout => {
                t.record(&ep, Attempt::TimedOut);
                t.again(Outcome::TimedOut);
            }
            _ => {
                t.record(&ep, Attempt::Reset);
                t.again(Outcome::Reset);
            }
        }
        report(&plan, status, t.flags, relay.sent);
        return Served::Close;
    }
    if reusable {
        connect::keep_http1(cluster, ep.endpoint().address, up);
    }
    report(&plan, status, t.flags, relay.sent);
    // A body that ended with the upstream's connection ends the client's too.
    match relay.framing {
        Framing::CloseRaw => Served::Close,
        _ => next,
    }
}

/// An answer's body on its way to the client.
struct Relay {
    framing: Framing,
    /// Bytes still to come of a body of known length.
    left: u64,
    chunks: Dechunker,
    /// Body bytes fed, not yet written to the client.
    staged: u64,
    /// Body bytes the client took (Istio's response size).
    sent: u64,
}

impl Relay {
    /// Appends to `out` what the client gets of `input` (upstream bytes after the head);
    /// `Ok(true)` once the body is complete. Bytes past the body's end make the upstream
    /// connection unfit for reuse.
    fn feed(&mut self, input: &[u8], out: &mut Vec<u8>, reusable: &mut bool) -> Result<bool, ()> {
        match self.framing {
            Framing::Empty => {
                *reusable &= input.is_empty();
                Ok(true)
            }
            Framing::Length(_) => {
                let k = input
                    .len()
                    .min(usize::try_from(self.left).unwrap_or(usize::MAX));
                out.extend_from_slice(&input[..k]);
                self.left -= k as u64;
                self.staged += k as u64;
                *reusable &= k == input.len();
                Ok(self.left == 0)
            }
            Framing::Chunked => {
                let mut data = Vec::new();
                let used = self
                    .chunks
                    .feed(input, |d| data.extend_from_slice(d))
                    .map_err(|_| ())?;
                response::write_chunk(out, &data);
                self.staged += data.len() as u64;
                if self.chunks.done() {
                    out.extend_from_slice(response::LAST_CHUNK);
                    *reusable &= used == input.len();
                }
                Ok(self.chunks.done())
            }
            Framing::Close => {
                response::write_chunk(out, input);
                self.staged += input.len() as u64;
                Ok(false)
            }
            Framing::CloseRaw => {
                out.extend_from_slice(input);
                self.staged += input.len() as u64;
                Ok(false)
            }
        }
    }
}
