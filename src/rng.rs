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

    /// A version-4 UUID, as Envoy generates for `x-request-id`: 36 ASCII bytes
    /// (`8-4-4-4-12` lowercase hex digits), written without allocating.
    pub fn uuid_bytes(&self) -> [u8; 36] {
        let (a, b) = (self.random(), self.random());
        uuid_from(a, b)
    }

    /// [`Self::uuid_bytes`] as a string.
    pub fn uuid(&self) -> String {
        let b = self.uuid_bytes();
        // Hex digits and dashes only: ASCII.
        String::from_utf8_lossy(&b).into_owned()
    }
}

/// The UUID of two random numbers: version 4, variant 10, lowercase hex with dashes.
fn uuid_from(a: u64, b: u64) -> [u8; 36] {
    /// Each byte's two lowercase hex digits.
    const HEX: [[u8; 2]; 256] = {
        let digits = b"0123456789abcdef";
        let mut t = [[0; 2]; 256];
        let mut i = 0;
        while i < 256 {
            t[i] = [digits[i >> 4], digits[i & 0xf]];
            i += 1;
        }
        t
    };
    let hi = (a & 0xffff_ffff_ffff_0fff) | 0x4000;
    let lo = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    let mut out = [b'-'; 36];
    // `hi` fills the first three groups (8, 4, 4 digits), `lo` the last two (4, 12):
    // where each byte's two digits go.
    const AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
    let bytes = [hi.to_be_bytes(), lo.to_be_bytes()];
    for (k, &byte) in bytes.as_flattened().iter().enumerate() {
        let at = AT[k];
        out[at..at + 2].copy_from_slice(&HEX[byte as usize]);
    }
    out
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

    /// The formatter `uuid_from` replaced.
    fn formatted(a: u64, b: u64) -> String {
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

    #[test]
    fn uuids_as_formatted_before() {
        let edges = [0, 1, u64::MAX, 0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210];
        for a in edges {
            for b in edges {
                assert_eq!(uuid_from(a, b).as_slice(), formatted(a, b).as_bytes());
            }
        }
        for seed in [0, 1, 42, 0xdead_beef, u64::MAX] {
            let r = Rng {
                seq: AtomicU64::new(0),
                seed,
            };
            let check = Rng {
                seq: AtomicU64::new(0),
                seed,
            };
            for _ in 0..100 {
                let (a, b) = (check.random(), check.random());
                assert_eq!(r.uuid(), formatted(a, b));
            }
        }
    }
}
