//! Per-request state carried through the pipeline's phases.

use crate::snapshot::cluster::Cluster;
use std::net::SocketAddr;
use std::sync::Arc;

/// Envoy response flags, recorded where an error arises (for access logs and metrics).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ResponseFlags(u16);

impl ResponseFlags {
    /// No route (no virtual host or no matching rule): 404.
    pub const NR: ResponseFlags = ResponseFlags(1);
    /// No cluster (unknown destination or subset): 503.
    pub const NC: ResponseFlags = ResponseFlags(1 << 1);
    /// No healthy upstream (no endpoints): 503.
    pub const UH: ResponseFlags = ResponseFlags(1 << 2);
    /// Upstream connection failure: 503.
    pub const UF: ResponseFlags = ResponseFlags(1 << 3);
    /// Retry limit reached.
    pub const URX: ResponseFlags = ResponseFlags(1 << 4);
    /// Direct response from the gateway.
    pub const DR: ResponseFlags = ResponseFlags(1 << 5);

    pub fn insert(&mut self, f: ResponseFlags) {
        self.0 |= f.0;
    }

    pub fn contains(self, f: ResponseFlags) -> bool {
        self.0 & f.0 == f.0 && f.0 != 0
    }

    /// Envoy's comma-separated form (`UF,URX`), `-` when empty.
    pub fn as_envoy(self) -> String {
        let names = [
            (Self::NR, "NR"),
            (Self::NC, "NC"),
            (Self::UH, "UH"),
            (Self::UF, "UF"),
            (Self::URX, "URX"),
            (Self::DR, "DR"),
        ];
        let s: Vec<&str> = names
            .iter()
            .filter(|(f, _)| self.contains(*f))
            .map(|(_, n)| *n)
            .collect();
        if s.is_empty() {
            "-".into()
        } else {
            s.join(",")
        }
    }
}

/// Istio's default retry policy: 2 retries on connect failure (and refused stream,
/// unavailable, cancelled) to other endpoints when there are any.
pub const DEFAULT_RETRIES: u32 = 2;

#[derive(Default)]
pub struct RequestContext {
    pub cluster: Option<Arc<Cluster>>,
    /// Endpoints already attempted, so retries go elsewhere.
    pub tried: Vec<SocketAddr>,
    /// Connection attempts that failed.
    pub connect_failures: u32,
    pub flags: ResponseFlags,
    pub route_name: Option<Arc<str>>,
}

#[cfg(test)]
mod tests {
    use super::ResponseFlags;

    #[test]
    fn flags_print_as_envoy_does() {
        let mut f = ResponseFlags::default();
        assert_eq!(f.as_envoy(), "-");
        f.insert(ResponseFlags::URX);
        f.insert(ResponseFlags::UF);
        assert_eq!(f.as_envoy(), "UF,URX");
        assert!(f.contains(ResponseFlags::UF) && !f.contains(ResponseFlags::NR));
    }
}
