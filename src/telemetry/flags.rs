//! Envoy's response flags: why a request or connection ended the way it did, recorded
//! where the failure arises and written by the access log and metrics.

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
    /// Upstream request timeout (route `timeout`): 504.
    pub const UT: ResponseFlags = ResponseFlags(1 << 6);
    /// Delay injected by a fault.
    pub const DI: ResponseFlags = ResponseFlags(1 << 7);
    /// Aborted by a fault.
    pub const FI: ResponseFlags = ResponseFlags(1 << 8);
    /// Upstream reset (connection closed before a response).
    pub const UR: ResponseFlags = ResponseFlags(1 << 9);
    /// Stream idle timeout (`streamIdleTimeout`): 504, or 408 while the request arrives.
    pub const SI: ResponseFlags = ResponseFlags(1 << 10);

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
            (Self::UT, "UT"),
            (Self::DI, "DI"),
            (Self::FI, "FI"),
            (Self::UR, "UR"),
            (Self::SI, "SI"),
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
