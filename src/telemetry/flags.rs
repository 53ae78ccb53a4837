//! Envoy's response flags: why a request or connection ended the way it did, recorded
//! where the failure arises and written by the access log and metrics.

use std::fmt;

/// Envoy response flags (`%RESPONSE_FLAGS%`, Istio's `response_flags` label), recorded
/// where an error arises.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResponseFlags(u16);

impl std::ops::BitOr for ResponseFlags {
    type Output = ResponseFlags;

    fn bitor(self, other: ResponseFlags) -> ResponseFlags {
        ResponseFlags(self.0 | other.0)
    }
}

impl ResponseFlags {
    /// No healthy upstream (no endpoints): 503.
    pub const UH: ResponseFlags = ResponseFlags(1);
    /// Upstream request timeout (route `timeout`): 504.
    pub const UT: ResponseFlags = ResponseFlags(1 << 1);
    /// Upstream reset (connection closed before a response).
    pub const UR: ResponseFlags = ResponseFlags(1 << 2);
    /// Upstream connection failure: 503.
    pub const UF: ResponseFlags = ResponseFlags(1 << 3);
    /// Upstream connection terminated mid-response.
    pub const UC: ResponseFlags = ResponseFlags(1 << 4);
    /// Upstream overflow (circuit breaking): 503.
    pub const UO: ResponseFlags = ResponseFlags(1 << 5);
    /// No route (no virtual host or no matching rule): 404.
    pub const NR: ResponseFlags = ResponseFlags(1 << 6);
    /// Delay injected by a fault.
    pub const DI: ResponseFlags = ResponseFlags(1 << 7);
    /// Aborted by a fault.
    pub const FI: ResponseFlags = ResponseFlags(1 << 8);
    /// Rate limited.
    pub const RL: ResponseFlags = ResponseFlags(1 << 9);
    /// Downstream connection terminated before the response was complete.
    pub const DC: ResponseFlags = ResponseFlags(1 << 10);
    /// Retry limit reached.
    pub const URX: ResponseFlags = ResponseFlags(1 << 11);
    /// Stream idle timeout (`streamIdleTimeout`): 504, or 408 while the request arrives.
    pub const SI: ResponseFlags = ResponseFlags(1 << 12);
    /// Downstream protocol error: a request the codec refused (400, 431).
    pub const DPE: ResponseFlags = ResponseFlags(1 << 13);
    /// No cluster (unknown destination or subset): 503.
    pub const NC: ResponseFlags = ResponseFlags(1 << 14);
    /// Downstream remote reset: the client went away mid-request.
    pub const DR: ResponseFlags = ResponseFlags(1 << 15);

    /// In Envoy's printing order (`ResponseFlagUtils`).
    const NAMES: [(ResponseFlags, &'static str); 16] = [
        (Self::UH, "UH"),
        (Self::UT, "UT"),
        (Self::UR, "UR"),
        (Self::UF, "UF"),
        (Self::UC, "UC"),
        (Self::UO, "UO"),
        (Self::NR, "NR"),
        (Self::DI, "DI"),
        (Self::FI, "FI"),
        (Self::RL, "RL"),
        (Self::DC, "DC"),
        (Self::URX, "URX"),
        (Self::SI, "SI"),
        (Self::DPE, "DPE"),
        (Self::NC, "NC"),
        (Self::DR, "DR"),
    ];

    pub fn insert(&mut self, f: ResponseFlags) {
        self.0 |= f.0;
    }

    pub fn contains(self, f: ResponseFlags) -> bool {
        self.0 & f.0 == f.0 && f.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The flags as a number (metrics keys); `from_bits` inverts it.
    pub fn bits(self) -> u16 {
        self.0
    }

    pub fn from_bits(bits: u16) -> ResponseFlags {
        ResponseFlags(bits)
    }

    /// Envoy's comma-separated form (`UF,URX`), `-` when empty.
    pub fn as_envoy(self) -> String {
        self.to_string()
    }
}

/// Envoy's form, written without allocating: `UF,URX`, `-` when empty.
impl fmt::Display for ResponseFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("-");
        }
        let mut first = true;
        for (flag, name) in Self::NAMES {
            if self.contains(flag) {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
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
        let mut g = ResponseFlags::default();
        g.insert(ResponseFlags::DR);
        g.insert(ResponseFlags::NC);
        g.insert(ResponseFlags::UH);
        assert_eq!(
            g.to_string(),
            "UH,NC,DR",
            "Envoy's order, not insertion order"
        );
        assert_eq!(ResponseFlags::from_bits(g.bits()), g);
    }
}
