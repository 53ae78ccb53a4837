//! A request's tries as Envoy's router runs them under Istio's `HTTPRetry`: how long each
//! try may wait for the upstream, how long to back off before the next, and after each
//! failure whether to try again, with the response flags the decision leaves (UF, UR,
//! UT, URX). Pure logic over a [`RetryPolicy`] and the clock the caller passes in; the
//! pipeline's Pingora hooks only translate their errors into an [`Outcome`].

use crate::snapshot::route_policy::RetryPolicy;
use crate::telemetry::ResponseFlags;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How a try ended, as far as retrying cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No connection could be made (refused, unreachable, connect timeout).
    ConnectFailed,
    /// The upstream answered with this status (and `grpc-status`, when present).
    Answered { status: u16, grpc: Option<u32> },
    /// The upstream closed or reset the stream before a complete answer.
    Reset,
    /// No upstream bytes within the try's wait (its per-try timeout or the route's).
    TimedOut,
}

/// What to do after a failed try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub retry: bool,
    /// Flags to record on the request.
    pub flags: ResponseFlags,
}

/// Endpoints tried: the first inline (most requests have one try), all of them in a
/// `Vec` once there is a retry.
#[derive(Debug, Default)]
struct Tried {
    first: Option<SocketAddr>,
    /// Every endpoint tried (the first too), once there is more than one.
    all: Vec<SocketAddr>,
}

impl Tried {
    fn push(&mut self, endpoint: SocketAddr) {
        match self.first {
            None => self.first = Some(endpoint),
            Some(first) => {
                if self.all.is_empty() {
                    self.all.reserve(4);
                    self.all.push(first);
                }
                self.all.push(endpoint);
            }
        }
    }

    fn as_slice(&self) -> &[SocketAddr] {
        if self.all.is_empty() {
            self.first.as_slice()
        } else {
            &self.all
        }
    }
}

/// The tries of one request.
#[derive(Debug)]
pub struct RetryState {
    /// Tries started (1 during the first).
    pub attempts: u32,
    /// Endpoints already tried, so retries go elsewhere when they can.
    tried: Tried,
    /// When the current try started (`x-envoy-upstream-service-time`).
    pub attempt_started: Option<Instant>,
    /// The route `timeout` as an instant; `None` without one (or one too far away to
    /// represent, which is the same thing).
    deadline: Option<Instant>,
    /// The current try's wait is its per-try timeout rather than the route's.
    per_try_bounded: bool,
    /// A retriable answer was turned into an error to get Pingora to try again.
    status_retry_pending: bool,
}

impl RetryState {
    /// A request that arrived at `started` with the route's `timeout`.
    pub fn new(started: Instant, timeout: Option<Duration>) -> RetryState {
        RetryState {
            attempts: 0,
            tried: Tried::default(),
            attempt_started: None,
            deadline: timeout.and_then(|t| started.checked_add(t)),
            per_try_bounded: false,
            status_retry_pending: false,
        }
    }

    /// Endpoints already tried, in order.
    pub fn tried(&self) -> &[SocketAddr] {
        self.tried.as_slice()
    }

    /// Time left before the route's deadline (`None`: no deadline).
    pub fn remaining(&self, now: Instant) -> Option<Duration> {
        self.deadline.map(|d| d.saturating_duration_since(now))
    }

    fn in_time(&self, now: Instant) -> bool {
        self.deadline.is_none_or(|d| now < d)
    }

    /// The pause before the next try: none before the first; the policy's jittered,
    /// doubling back-off before a retry, never past the deadline.
    pub fn backoff(&self, policy: &RetryPolicy, random: u64, now: Instant) -> Duration {
        if self.attempts == 0 {
            return Duration::ZERO;
        }
        let b = policy.backoff_before(self.attempts, random);
        match self.remaining(now) {
            Some(r) => b.min(r),
            None => b,
        }
    }

    /// Starts a try to `endpoint`: how long it may wait for upstream bytes (the per-try
    /// timeout or what is left of the route's; `None`: unbounded). `Err` with UT when the
    /// route's time is already up.
    /// The route `timeout` as an instant, if any.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    pub fn begin(
        &mut self,
        policy: &RetryPolicy,
        endpoint: SocketAddr,
        now: Instant,
    ) -> Result<Option<Duration>, ResponseFlags> {
        let remaining = self.remaining(now);
        if remaining.is_some_and(|r| r.is_zero()) {
            return Err(ResponseFlags::UT);
        }
        self.tried.push(endpoint);
        self.attempts = self.attempts.saturating_add(1);
        self.attempt_started = Some(now);
        let (wait, per_try) = match (policy.per_try_timeout, remaining) {
            (Some(p), Some(r)) => (Some(p.min(r)), p < r),
            (Some(p), None) => (Some(p), true),
            (None, r) => (r, false),
        };
        self.per_try_bounded = per_try;
        Ok(wait)
    }

    /// Whether another try is allowed at all: retries left and time left.
    fn may_retry(&self, policy: &RetryPolicy, now: Instant) -> bool {
        self.attempts <= policy.attempts && self.in_time(now)
    }

    /// After a try ended with `outcome`: retry or give up. `replayable` says whether the
    /// request body can be sent again (it fit Pingora's retry buffer).
    pub fn after(
        &mut self,
        policy: &RetryPolicy,
        outcome: Outcome,
        now: Instant,
        replayable: bool,
    ) -> Decision {
        let mut flags = ResponseFlags::default();
        let retry = match outcome {
            Outcome::ConnectFailed => {
                flags.insert(ResponseFlags::UF);
                policy.retries_connect_failure() && self.may_retry(policy, now)
            }
            Outcome::Answered { status, grpc } => {
                if !policy.retries_response(status, grpc) {
                    return Decision {
                        retry: false,
                        flags,
                    };
                }
                let retry = self.may_retry(policy, now) && replayable;
                self.status_retry_pending = retry;
                retry
            }
            Outcome::TimedOut if !self.per_try_bounded || !self.in_time(now) => {
                // The route's own timeout: the request is over (504).
                flags.insert(ResponseFlags::UT);
                return Decision {
                    retry: false,
                    flags,
                };
            }
            Outcome::TimedOut => {
                flags.insert(ResponseFlags::UT);
                policy.retries_reset() && self.may_retry(policy, now) && replayable
            }
            Outcome::Reset => {
                flags.insert(ResponseFlags::UR);
                policy.retries_reset() && self.may_retry(policy, now) && replayable
            }
        };
        if !retry && self.attempts > 1 {
            flags.insert(ResponseFlags::URX);
        }
        Decision { retry, flags }
    }

    /// Whether the error Pingora reports now is the retriable answer [`Self::after`]
    /// turned into one (cleared by the call).
    pub fn take_status_retry(&mut self) -> bool {
        std::mem::take(&mut self.status_retry_pending)
    }

    /// Whether the current try's wait was bounded by its per-try timeout.
    pub fn per_try_bounded(&self) -> bool {
        self.per_try_bounded
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::HttpRetry;

    fn policy(yaml: &str) -> RetryPolicy {
        let r: HttpRetry = serde_yaml::from_str(yaml).unwrap();
        RetryPolicy::compile(Some(&r))
    }

    fn ep(n: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], n))
    }

    /// Runs tries that each end with `outcome` until the state gives up; returns the
    /// number of tries and the last decision.
    fn run(p: &RetryPolicy, outcome: Outcome) -> (u32, Decision) {
        let now = Instant::now();
        let mut s = RetryState::new(now, None);
        loop {
            s.begin(p, ep(s.attempts as u16), now).unwrap();
            let d = s.after(p, outcome, now, true);
            if !d.retry {
                return (s.attempts, d);
            }
            assert!(s.attempts <= 11, "retries are bounded");
        }
    }

    const E503: Outcome = Outcome::Answered {
        status: 503,
        grpc: None,
    };

    fn grpc(code: u32) -> Outcome {
        Outcome::Answered {
            status: 200,
            grpc: Some(code),
        }
    }

    #[test]
    fn istios_default_policy() {
        let p = RetryPolicy::compile(None);
        // Two retries on a connect failure, then URX with UF.
        let (tries, d) = run(&p, Outcome::ConnectFailed);
        assert_eq!(tries, 3);
        assert!(d.flags.contains(ResponseFlags::UF) && d.flags.contains(ResponseFlags::URX));
        // A plain 503 is passed on after one try; so is a reset.
        assert_eq!(run(&p, E503).0, 1);
        let (tries, d) = run(&p, Outcome::Reset);
        assert_eq!(tries, 1);
        assert!(d.flags.contains(ResponseFlags::UR) && !d.flags.contains(ResponseFlags::URX));
        // gRPC UNAVAILABLE and CANCELLED are retried, INTERNAL is not.
        assert_eq!(run(&p, grpc(14)).0, 3);
        assert_eq!(run(&p, grpc(1)).0, 3);
        assert_eq!(run(&p, grpc(13)).0, 1);
        // A success is never retried.
        assert_eq!(
            run(
                &p,
                Outcome::Answered {
                    status: 200,
                    grpc: None
                }
            )
            .0,
            1
        );
    }

    #[test]
    fn each_retry_on_condition() {
        let cases: &[(&str, Outcome, u32)] = &[
            ("5xx", E503, 3),
            (
                "5xx",
                Outcome::Answered {
                    status: 500,
                    grpc: None,
                },
                3,
            ),
            (
                "5xx",
                Outcome::Answered {
                    status: 404,
                    grpc: None,
                },
                1,
            ),
            ("5xx", Outcome::Reset, 3),
            ("5xx", Outcome::ConnectFailed, 3),
            (
                "gateway-error",
                Outcome::Answered {
                    status: 502,
                    grpc: None,
                },
                3,
            ),
            (
                "gateway-error",
                Outcome::Answered {
                    status: 504,
                    grpc: None,
                },
                3,
            ),
            (
                "gateway-error",
                Outcome::Answered {
                    status: 500,
                    grpc: None,
                },
                1,
            ),
            ("reset", Outcome::Reset, 3),
            ("reset", E503, 1),
            ("connect-failure", Outcome::ConnectFailed, 3),
            ("connect-failure", Outcome::Reset, 1),
            (
                "retriable-4xx",
                Outcome::Answered {
                    status: 409,
                    grpc: None,
                },
                3,
            ),
            (
                "retriable-4xx",
                Outcome::Answered {
                    status: 404,
                    grpc: None,
                },
                1,
            ),
            (
                "retriable-status-codes,418",
                Outcome::Answered {
                    status: 418,
                    grpc: None,
                },
                3,
            ),
            (
                "418",
                Outcome::Answered {
                    status: 418,
                    grpc: None,
                },
                3,
            ),
            (
                "retriable-status-codes",
                Outcome::Answered {
                    status: 418,
                    grpc: None,
                },
                1,
            ),
            ("cancelled", grpc(1), 3),
            ("deadline-exceeded", grpc(4), 3),
            ("internal", grpc(13), 3),
            ("resource-exhausted", grpc(8), 3),
            ("unavailable", grpc(14), 3),
            ("unavailable", grpc(13), 1),
            // refused-stream: an HTTP/2 REFUSED_STREAM is seen as a reset (README).
            ("refused-stream", Outcome::Reset, 1),
        ];
        for (on, outcome, want) in cases {
            let p = policy(&format!("{{attempts: 2, retryOn: \"{on}\"}}"));
            assert_eq!(run(&p, *outcome).0, *want, "retryOn {on} with {outcome:?}");
        }
    }

    #[test]
    fn attempts_zero_disables_and_attempts_are_capped() {
        assert_eq!(run(&policy("{attempts: 0}"), Outcome::ConnectFailed).0, 1);
        let p = policy("{attempts: 1000, retryOn: 5xx}");
        assert_eq!(run(&p, E503).0, 11, "at most 10 retries");
    }

    #[test]
    fn a_body_that_cannot_be_replayed_is_not_retried() {
        let p = policy("{attempts: 3, retryOn: 5xx}");
        let now = Instant::now();
        let mut s = RetryState::new(now, None);
        s.begin(&p, ep(1), now).unwrap();
        assert!(!s.after(&p, E503, now, false).retry);
        assert!(!s.take_status_retry());
        let mut s = RetryState::new(now, None);
        s.begin(&p, ep(1), now).unwrap();
        assert!(s.after(&p, E503, now, true).retry);
        assert!(s.take_status_retry(), "the answer's error is the retry");
        assert!(!s.take_status_retry());
    }

    #[test]
    fn per_try_and_route_timeouts() {
        let p = policy("{attempts: 5, perTryTimeout: 400ms, retryOn: gateway-error}");
        let t0 = Instant::now();
        let mut s = RetryState::new(t0, Some(Duration::from_secs(1)));
        // The first try waits its per-try timeout; a per-try timeout is retried.
        assert_eq!(s.begin(&p, ep(1), t0), Ok(Some(Duration::from_millis(400))));
        let d = s.after(&p, Outcome::TimedOut, t0 + Duration::from_millis(400), true);
        assert!(d.retry && d.flags.contains(ResponseFlags::UT));
        // Near the deadline the wait shrinks to what is left, and that timeout ends it.
        let late = t0 + Duration::from_millis(800);
        assert_eq!(
            s.begin(&p, ep(2), late),
            Ok(Some(Duration::from_millis(200)))
        );
        assert!(!s.per_try_bounded());
        let d = s.after(&p, Outcome::TimedOut, t0 + Duration::from_secs(1), true);
        assert!(!d.retry && d.flags.contains(ResponseFlags::UT));
        // Past the deadline no try starts.
        assert_eq!(
            s.begin(&p, ep(3), t0 + Duration::from_secs(2)),
            Err(ResponseFlags::UT)
        );
        // Without a per-try timeout the route's timeout ends the request at once.
        let p = policy("{attempts: 5, retryOn: 5xx}");
        let mut s = RetryState::new(t0, Some(Duration::from_secs(1)));
        assert_eq!(s.begin(&p, ep(1), t0), Ok(Some(Duration::from_secs(1))));
        assert!(
            !s.after(&p, Outcome::TimedOut, t0 + Duration::from_secs(1), true)
                .retry
        );
        // No retry once the deadline has passed, even with retries left.
        let mut s = RetryState::new(t0, Some(Duration::from_millis(10)));
        s.begin(&p, ep(1), t0).unwrap();
        assert!(!s.after(&p, E503, t0 + Duration::from_secs(1), true).retry);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_stops_at_the_deadline() {
        let p = policy("{attempts: 5, retryOn: 5xx, backoff: 100ms}");
        let t0 = Instant::now();
        let mut s = RetryState::new(t0, None);
        assert_eq!(
            s.backoff(&p, 7, t0),
            Duration::ZERO,
            "no pause before the first try"
        );
        s.begin(&p, ep(1), t0).unwrap();
        let b1 = s.backoff(&p, 999, t0);
        assert!(
            b1 >= Duration::from_millis(50) && b1 <= Duration::from_millis(100),
            "{b1:?}"
        );
        s.begin(&p, ep(2), t0).unwrap();
        let b2 = s.backoff(&p, 999, t0);
        assert!(b2 > b1 && b2 <= Duration::from_millis(200), "{b2:?}");
        for n in 3..6 {
            s.begin(&p, ep(n), t0).unwrap();
        }
        assert!(
            s.backoff(&p, 999, t0) <= Duration::from_secs(1),
            "capped at 10x the base"
        );
        let mut s = RetryState::new(t0, Some(Duration::from_millis(30)));
        s.begin(&p, ep(1), t0).unwrap();
        assert!(s.backoff(&p, 999, t0) <= Duration::from_millis(30));
    }

    #[test]
    fn the_largest_durations_do_not_overflow() {
        let huge = Duration::from_secs(u64::MAX / 4);
        let mut p = policy("{attempts: 10, retryOn: 5xx}");
        p.backoff = huge;
        p.per_try_timeout = Some(huge);
        let t0 = Instant::now();
        let mut s = RetryState::new(t0, Some(huge));
        for n in 0..10 {
            s.begin(&p, ep(n), t0).unwrap();
            let _ = s.backoff(&p, u64::MAX, t0);
            let _ = s.after(&p, E503, t0, true);
        }
        let mut s = RetryState::new(t0, Some(Duration::MAX));
        assert!(s.begin(&p, ep(1), t0).is_ok());
    }

    #[test]
    fn tried_endpoints_in_order() {
        let p = policy("{attempts: 5}");
        let t0 = Instant::now();
        let mut s = RetryState::new(t0, None);
        assert!(s.tried().is_empty());
        s.begin(&p, ep(1), t0).unwrap();
        assert_eq!(s.tried(), [ep(1)]);
        for n in 2..=6 {
            s.begin(&p, ep(n), t0).unwrap();
        }
        assert_eq!(s.tried(), (1..=6).map(ep).collect::<Vec<_>>());
    }
}
