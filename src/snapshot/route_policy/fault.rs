//! `fault`: delay and abort, each on its own share of requests.

use super::*;
use crate::config::duration;
use crate::config::model::*;
use std::time::Duration;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
