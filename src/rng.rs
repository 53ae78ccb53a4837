//! Lock-free per-process randomness for the request path: request ids and weighted picks.

use std::sync::atomic::{AtomicU64, Ordering};

/// The 64-bit golden ratio: successive multiples are spread evenly over `u64`.
const WEYL: u64 = 0x9e37_79b9_7f4a_7c15;

pub struct Rng {
    seq: AtomicU64,
    seed: u64,
}

impl Default for Rng {
    fn default() -> Self {
        Rng::new()
    }
}

impl Rng {
    /// Seeded from the clock and the process id.
    pub fn new() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()) << 32;
        Rng {
            seq: AtomicU64::new(0),
            seed,
        }
    }

    fn step(&self) -> u64 {
        self.seed
            .wrapping_add(self.seq.fetch_add(1, Ordering::Relaxed).wrapping_mul(WEYL))
    }

    /// A well-mixed random number (a counter through splitmix64).
    pub fn random(&self) -> u64 {
        splitmix64(self.step())
    }

    /// A number for weighted choices: a Weyl sequence, uniform like a random number but
    /// with far lower discrepancy, so an 80/20 split is close to 80/20 even over a few
    /// hundred picks (Envoy's random choice wanders more).
    pub fn spread(&self) -> u64 {
        self.step()
    }

    /// A version-4 UUID, as Envoy generates for `x-request-id`.
    pub fn uuid(&self) -> String {
        let (a, b) = (self.random(), self.random());
        let hi = (a & 0xffff_ffff_ffff_0fff) | 0x4000;
        let lo = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xffff,
            hi & 0xffff,
            lo >> 48,
            lo & 0xffff_ffff_ffff
        )
    }
}

/// A random number from one process-wide generator, for code without its own.
pub fn random() -> u64 {
    static RNG: std::sync::OnceLock<Rng> = std::sync::OnceLock::new();
    RNG.get_or_init(Rng::new).random()
}

/// splitmix64: a counter or seed mixed into a well-spread 64-bit number.
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(WEYL);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4() {
        let r = Rng::new();
        let id = r.uuid();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(id, r.uuid());
    }
}
