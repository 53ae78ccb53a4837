//! Consistent-hash load balancing: Envoy's ring hash and Maglev, as selected by an Istio
//! `DestinationRule` `trafficPolicy.loadBalancer.consistentHash` (`ringHash.minimumRingSize`,
//! `maglev.tableSize`; Envoy's `RingHashLbConfig` and `MaglevLbConfig`).
//!
//! Both structures map a request's 64-bit hash (of a header, cookie, source IP or query
//! parameter) to an endpoint index so that the same key keeps reaching the same endpoint, and
//! so that a change in the endpoint set moves as few keys as possible. Endpoints are named by a
//! caller-supplied key string (the address), never by their index, so the ring points or Maglev
//! permutation an endpoint contributes do not depend on which other endpoints exist, and neither
//! structure depends on the order in which the endpoints are listed.
//!
//! Self-contained (`std` only) so it can be tested on its own with `rustc --test`.

/// FNV-1a 64-bit offset basis.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64-bit prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// Perturbs the FNV basis to get Maglev's second, independent hash of an endpoint key.
const SKIP_SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// Envoy's `RingHashLbConfig.maximum_ring_size` default: bounds memory (16 bytes a point)
/// and build time however large `minimumRingSize` or the weight ratios are.
const MAX_RING_SIZE: usize = 8_388_608;

/// Table slot not yet claimed while a Maglev table is being filled.
const EMPTY: u32 = u32::MAX;

/// A stable 64-bit hash of bytes (same value across processes and releases; FNV-1a 64 followed
/// by a splitmix64-style finaliser): hash keys (header values, cookie values, source IPs, query
/// parameters) and endpoint names.
///
/// Stability matters because several gateway replicas must send a key to the same endpoint, so
/// `std`'s randomly keyed `DefaultHasher` is unsuitable. FNV-1a alone mixes its last bytes
/// poorly into the high bits (and ring positions are compared as whole `u64`s), hence the
/// finaliser.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    seeded_hash(FNV_OFFSET, bytes)
}

fn seeded_hash(basis: u64, bytes: &[u8]) -> u64 {
    let mut h = basis;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    // splitmix64 finaliser: full avalanche over all 64 bits.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Envoy's ring hash (Ketama-style): each endpoint gets a number of points on a `u64` ring
/// proportional to its weight, the ring having at least `min_ring_size` points (Istio's
/// `ringHash.minimumRingSize`, Envoy's `RingHashLbConfig.minimum_ring_size`, default 1024) and at
/// most 8,388,608 (Envoy's `maximum_ring_size` default).
///
/// Point hashes are [`hash_bytes`] of `"<endpoint key>_<i>"`, so where an endpoint's points lie
/// does not depend on the other endpoints: removing an endpoint moves its keys to the endpoints
/// owning the next points. As in Envoy, the number of points per endpoint is scaled so the
/// lightest endpoint gets its share of `min_ring_size`; removing an endpoint can raise that
/// count, and the added points take some keys from the remaining endpoints too.
#[derive(Debug, Clone)]
pub struct RingHash {
    /// Sorted by point (ties by endpoint index, so the order is deterministic).
    ring: Vec<(u64, u32)>,
    /// Number of endpoints given to `new` (bounds the memo in the slow path of `pick`).
    endpoints: usize,
    /// Number of distinct endpoints that own at least one point.
    present: usize,
}

impl RingHash {
    /// `endpoints`: (key, weight>=1) per endpoint index; a weight of 0 is treated as 1. Empty
    /// input: an empty ring. A `min_ring_size` of 0 is treated as 1.
    ///
    /// # Panics
    /// If there are `u32::MAX` endpoints or more.
    pub fn new(endpoints: &[(&str, u32)], min_ring_size: usize) -> RingHash {
        Self::build(endpoints, min_ring_size, MAX_RING_SIZE)
    }

    fn build(endpoints: &[(&str, u32)], min_ring_size: usize, max_ring_size: usize) -> RingHash {
        check_endpoint_count(endpoints.len());
        let weights: Vec<u64> = endpoints
            .iter()
            .map(|&(_, w)| u64::from(w.max(1)))
            .collect();
        let counts = ring_point_counts(&weights, min_ring_size.max(1), max_ring_size);
        let total = counts.iter().sum();
        let mut ring = Vec::with_capacity(total);
        let mut name = Vec::new();
        let mut present = 0;
        for (index, (&(key, _), &count)) in endpoints.iter().zip(&counts).enumerate() {
            if count > 0 {
                present += 1;
            }
            let index = index_u32(index);
            name.clear();
            name.extend_from_slice(key.as_bytes());
            name.push(b'_');
            let prefix = name.len();
            for i in 0..count {
                name.truncate(prefix);
                push_decimal(&mut name, i);
                ring.push((hash_bytes(&name), index));
            }
        }
        ring.sort_unstable();
        RingHash {
            ring,
            endpoints: endpoints.len(),
            present,
        }
    }

    /// The endpoint index for `hash`: the first point >= hash, wrapping around; the first point
    /// after it whose endpoint `usable(index)` says true (ejected or already tried endpoints are
    /// skipped); `None` if none is usable or the ring is empty.
    ///
    /// Walking the ring (rather than rehashing) keeps the fallback consistent too: every request
    /// with this key whose first choice is down lands on the same second choice.
    pub fn pick(&self, hash: u64, usable: impl Fn(usize) -> bool) -> Option<usize> {
        if self.ring.is_empty() {
            return None;
        }
        let start = self.ring.partition_point(|&(point, _)| point < hash) % self.ring.len();
        walk(
            self.ring.len(),
            start,
            |i| widen(self.ring[i].1),
            self.endpoints,
            self.present,
            usable,
        )
    }

    /// Number of points on the ring.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// True when the ring has no points (no endpoints were given).
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }
}

/// Points per endpoint, scaled like Envoy's ring: the lightest endpoint gets
/// `ceil(min_ring_size * w_min / W)` points and the others proportionally more, so the ring
/// has at least `min_ring_size` points and the lightest endpoint still gets a fair share of
/// them; if that exceeds `max_ring_size`, the ring is `max_ring_size` points split by weight.
/// Counts come from rounding up cumulative targets, so rounding errors do not accumulate.
fn ring_point_counts(weights: &[u64], min_ring_size: usize, max_ring_size: usize) -> Vec<usize> {
    let (Some(&w_min), total_weight) = (weights.iter().min(), weights.iter().sum::<u64>()) else {
        return Vec::new();
    };
    let (total_weight, w_min) = (u128::from(total_weight), u128::from(w_min));
    let min_ring = u128::from(widen_usize(min_ring_size));
    let max_ring = u128::from(widen_usize(max_ring_size));
    // The cumulative target after endpoints with prefix weight sum S is
    // ceil(S * numerator / denominator).
    let lightest = (min_ring * w_min).div_ceil(total_weight);
    let (numerator, denominator) = if (lightest * total_weight).div_ceil(w_min) <= max_ring {
        (lightest, w_min)
    } else {
        (max_ring, total_weight)
    };
    let mut prefix = 0u128;
    let mut done = 0u128;
    weights
        .iter()
        .map(|&w| {
            prefix += u128::from(w);
            let target = (prefix * numerator).div_ceil(denominator);
            let count = target - done;
            done = target;
            // The whole ring is at most `max_ring_size` points, a usize.
            usize::try_from(count).expect("ring point count is bounded by max_ring_size")
        })
        .collect()
}

/// Maglev (Google's Maglev paper, Envoy's `MaglevLoadBalancer`; Istio's `maglev.tableSize`,
/// Envoy's `MaglevLbConfig.table_size`): a lookup table of `table_size` entries (must be prime
/// so every skip visits every slot; Envoy's default 65537; a non-prime is rounded up to the next
/// prime) filled by each endpoint's permutation of the slots (offset and skip from two hashes of
/// its key).
///
/// Weighted as Envoy does: endpoints take turns claiming their next free slot, an endpoint of
/// weight `w` taking a turn in `w / w_max` of the rounds, so slots split in proportion to weight.
/// Because permutations depend only on the key, removing an endpoint moves its keys plus a small
/// share of others (lookups are O(1), unlike the ring's binary search, at the cost of that
/// slightly larger disruption).
#[derive(Debug, Clone)]
pub struct Maglev {
    table: Vec<u32>,
    /// Number of endpoints given to `new` (bounds the memo in the slow path of `pick`).
    endpoints: usize,
    /// Number of distinct endpoints owning at least one slot.
    present: usize,
}

impl Maglev {
    /// `endpoints`: (key, weight>=1) per endpoint index; a weight of 0 is treated as 1. Empty
    /// input: an empty table. `table_size` is rounded up to a prime (at least 2); with more
    /// endpoints than slots some endpoints get no slot.
    ///
    /// # Panics
    /// If there are `u32::MAX` endpoints or more.
    pub fn new(endpoints: &[(&str, u32)], table_size: usize) -> Maglev {
        check_endpoint_count(endpoints.len());
        if endpoints.is_empty() {
            return Maglev {
                table: Vec::new(),
                endpoints: 0,
                present: 0,
            };
        }
        let size = next_prime(table_size);
        let size64 = widen_usize(size);
        // Endpoints take turns in key order, not list order: contested slots then go the same
        // way however the caller (e.g. an EDS update) happens to order the endpoints.
        let mut order: Vec<usize> = (0..endpoints.len()).collect();
        order.sort_by_key(|&i| (endpoints[i].0, i));
        let mut perms: Vec<Permutation> = order
            .into_iter()
            .map(|i| {
                let (key, weight) = endpoints[i];
                Permutation {
                    index: index_u32(i),
                    next: hash_bytes(key.as_bytes()) % size64,
                    skip: seeded_hash(FNV_OFFSET ^ SKIP_SEED, key.as_bytes()) % (size64 - 1) + 1,
                    weight: u64::from(weight.max(1)),
                    credit: 0,
                }
            })
            .collect();
        let w_max = perms.iter().map(|p| p.weight).max().unwrap_or(1);
        let mut table = vec![EMPTY; size];
        let mut filled = 0;
        // Each round every endpoint earns its weight in credit and claims a slot per `w_max` of
        // credit; the heaviest endpoint claims every round, so each round makes progress.
        'fill: loop {
            for p in &mut perms {
                p.credit += p.weight;
                if p.credit < w_max {
                    continue;
                }
                p.credit -= w_max;
                // `size` is prime and 1 <= skip < size, so the walk visits every slot and
                // finds a free one while any remains.
                while table[narrow(p.next)] != EMPTY {
                    p.next = (p.next + p.skip) % size64;
                }
                table[narrow(p.next)] = p.index;
                p.next = (p.next + p.skip) % size64;
                filled += 1;
                if filled == size {
                    break 'fill;
                }
            }
        }
        let mut seen = vec![false; endpoints.len()];
        for &e in &table {
            seen[widen(e)] = true;
        }
        Maglev {
            table,
            endpoints: endpoints.len(),
            present: seen.iter().filter(|&&s| s).count(),
        }
    }

    /// `table[hash % size]`; if that endpoint is not usable, deterministic fallback: try
    /// successive table entries (index+1, +2, … wrapping) until a usable one; `None` if none is
    /// usable or the table is empty.
    pub fn pick(&self, hash: u64, usable: impl Fn(usize) -> bool) -> Option<usize> {
        if self.table.is_empty() {
            return None;
        }
        let start = reduce(hash, self.table.len());
        walk(
            self.table.len(),
            start,
            |i| widen(self.table[i]),
            self.endpoints,
            self.present,
            usable,
        )
    }

    /// Number of table entries (a prime), or 0 for an empty table (no endpoints).
    pub fn table_size(&self) -> usize {
        self.table.len()
    }
}

/// One endpoint's walk through its Maglev permutation `offset + j * skip (mod size)`.
struct Permutation {
    /// The endpoint's index in the caller's list (what the table stores).
    index: u32,
    /// The next slot of the permutation to try.
    next: u64,
    skip: u64,
    weight: u64,
    /// Weight earned but not yet spent on slots.
    credit: u64,
}

/// Scans `len` entries from `start` (wrapping) for the first whose endpoint is usable. The
/// first entry is checked directly (the common case, no allocation); past it, each endpoint's
/// verdict is memoised so `usable` runs at most once per endpoint, and the scan stops once all
/// `present` endpoints were rejected instead of walking millions of ring points.
fn walk(
    len: usize,
    start: usize,
    endpoint_at: impl Fn(usize) -> usize,
    endpoints: usize,
    present: usize,
    usable: impl Fn(usize) -> bool,
) -> Option<usize> {
    let first = endpoint_at(start);
    if usable(first) {
        return Some(first);
    }
    let mut rejected = vec![false; endpoints];
    rejected[first] = true;
    let mut rejected_count = 1;
    for step in 1..len {
        if rejected_count >= present {
            return None;
        }
        let endpoint = endpoint_at((start + step) % len);
        if rejected[endpoint] {
            continue;
        }
        if usable(endpoint) {
            return Some(endpoint);
        }
        rejected[endpoint] = true;
        rejected_count += 1;
    }
    None
}

/// Smallest prime >= `n` (and >= 2), by trial division: table sizes are at most a few million,
/// so this costs at most a few thousand divisions per candidate.
fn next_prime(n: usize) -> usize {
    let mut candidate = n.max(2);
    while !is_prime(candidate) {
        candidate += 1;
    }
    candidate
}

fn is_prime(n: usize) -> bool {
    if n < 2 {
        return false;
    }
    let mut divisor = 2;
    // `divisor <= n / divisor` rather than `divisor * divisor <= n`, which could overflow.
    while divisor <= n / divisor {
        // Not `is_multiple_of`: the crate's MSRV (1.83) predates it.
        let remainder = n % divisor;
        if remainder == 0 {
            return false;
        }
        divisor += 1;
    }
    true
}

/// Appends the decimal digits of `n` (ring point names; avoids the formatting machinery, which
/// dominates building an 8M-point ring).
fn push_decimal(buf: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + narrow_digit(n % 10);
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[at..]);
}

fn narrow_digit(d: usize) -> u8 {
    u8::try_from(d).expect("a decimal digit fits in u8")
}

fn check_endpoint_count(n: usize) {
    // u32::MAX is Maglev's empty-slot marker, so indices must stay below it.
    assert!(
        u32::try_from(n).is_ok_and(|n| n < u32::MAX),
        "too many endpoints for consistent hashing: {n}"
    );
}

fn index_u32(index: usize) -> u32 {
    u32::try_from(index).expect("endpoint count checked against u32::MAX")
}

/// `u32` to `usize`: lossless on every target with at least 32-bit pointers (all that `std`
/// networking supports).
fn widen(index: u32) -> usize {
    usize::try_from(index).expect("usize is at least 32 bits")
}

/// `usize` to `u64`: lossless, `usize` is at most 64 bits on every supported target.
fn widen_usize(n: usize) -> u64 {
    u64::try_from(n).expect("usize is at most 64 bits")
}

/// A `u64` slot number known to be below a `usize` table length back to `usize`.
fn narrow(slot: u64) -> usize {
    usize::try_from(slot).expect("slot is below a usize table length")
}

/// `hash % len` as a table index.
fn reduce(hash: u64, len: usize) -> usize {
    narrow(hash % widen_usize(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: usize = 10_000;

    fn key_hash(i: usize) -> u64 {
        hash_bytes(format!("key-{i}").as_bytes())
    }

    /// `n` as a fraction of KEYS.
    fn frac(n: usize) -> f64 {
        f64::from(u32::try_from(n).unwrap()) / f64::from(u32::try_from(KEYS).unwrap())
    }

    fn all(_: usize) -> bool {
        true
    }

    /// Share of KEYS picked per endpoint index.
    fn shares(n: usize, pick: impl Fn(u64) -> Option<usize>) -> Vec<f64> {
        let mut counts = vec![0usize; n];
        for i in 0..KEYS {
            counts[pick(key_hash(i)).expect("an endpoint")] += 1;
        }
        counts.into_iter().map(frac).collect()
    }

    /// Endpoint key picked for every test key.
    fn names(endpoints: &[(&str, u32)], pick: impl Fn(u64) -> Option<usize>) -> Vec<String> {
        (0..KEYS)
            .map(|i| {
                endpoints[pick(key_hash(i)).expect("an endpoint")]
                    .0
                    .to_string()
            })
            .collect()
    }

    const FOUR: [(&str, u32); 4] = [
        ("10.0.0.1:8080", 1),
        ("10.0.0.2:8080", 1),
        ("10.0.0.3:8080", 1),
        ("10.0.0.4:8080", 1),
    ];
    /// FOUR without "10.0.0.3:8080".
    const THREE: [(&str, u32); 3] = [
        ("10.0.0.1:8080", 1),
        ("10.0.0.2:8080", 1),
        ("10.0.0.4:8080", 1),
    ];
    const REMOVED: &str = "10.0.0.3:8080";
    const WEIGHTED: [(&str, u32); 2] = [("10.0.0.1:8080", 1), ("10.0.0.2:8080", 3)];

    #[test]
    fn hash_bytes_is_stable_and_discriminating() {
        assert_eq!(hash_bytes(b""), PIN_EMPTY);
        assert_eq!(hash_bytes(b"127.0.0.1:8080"), PIN_ADDR);
        assert_eq!(hash_bytes(b"user-1234"), PIN_USER);
        let inputs: [&[u8]; 6] = [b"", b"a", b"b", b"ab", b"ba", b"127.0.0.1:8080"];
        for (i, a) in inputs.iter().enumerate() {
            for b in &inputs[i + 1..] {
                assert_ne!(hash_bytes(a), hash_bytes(b));
            }
        }
        assert_ne!(hash_bytes(b"x"), seeded_hash(FNV_OFFSET ^ SKIP_SEED, b"x"));
    }

    const PIN_EMPTY: u64 = 0xf52a_15e9_a9b5_e89b;
    const PIN_ADDR: u64 = 0x210d_e053_f452_be8d;
    const PIN_USER: u64 = 0x0102_766d_80f5_16c1;

    #[test]
    fn ring_empty_and_single() {
        let empty = RingHash::new(&[], 1024);
        assert!(empty.is_empty());
        assert_eq!(empty.len(), 0);
        assert_eq!(empty.pick(42, all), None);

        let one = RingHash::new(&[("127.0.0.1:8080", 1)], 1024);
        assert_eq!(one.len(), 1024);
        for i in 0..1000 {
            assert_eq!(one.pick(key_hash(i), all), Some(0));
        }
        assert_eq!(one.pick(u64::MAX, all), Some(0));
        assert_eq!(one.pick(0, all), Some(0));
        assert_eq!(one.pick(7, |_| false), None);
    }

    #[test]
    fn ring_distributes_evenly() {
        let ring = RingHash::new(&FOUR, 1024);
        for share in shares(4, |h| ring.pick(h, all)) {
            assert!((share - 0.25).abs() <= 0.05, "share {share}");
        }
    }

    #[test]
    fn ring_respects_weights() {
        let ring = RingHash::new(&WEIGHTED, 1024);
        let s = shares(2, |h| ring.pick(h, all));
        assert!((s[0] - 0.25).abs() <= 0.05, "shares {s:?}");
        assert!((s[1] - 0.75).abs() <= 0.05, "shares {s:?}");
    }

    fn points_per_endpoint(ring: &RingHash, n: usize) -> Vec<usize> {
        let mut counts = vec![0; n];
        for &(_, e) in &ring.ring {
            counts[widen(e)] += 1;
        }
        counts
    }

    #[test]
    fn ring_size_follows_min_ring_size_and_weights() {
        let ring = RingHash::new(&FOUR, 1024);
        assert_eq!(ring.len(), 1024);
        assert_eq!(points_per_endpoint(&ring, 4), [256; 4]);
        assert!(ring.ring.windows(2).all(|w| w[0] <= w[1]), "sorted");

        // 1024 does not split into 3: every endpoint rounds up, the ring is at least 1024.
        let ring = RingHash::new(&THREE, 1024);
        assert_eq!(points_per_endpoint(&ring, 3), [342; 3]);

        let ring = RingHash::new(&WEIGHTED, 1000);
        assert_eq!(points_per_endpoint(&ring, 2), [250, 750]);

        // The lightest endpoint gets its share of min_ring_size; heavier ones proportionally
        // more (1:2:5 -> 1000 * 1/8 = 125 per unit of weight).
        let ring = RingHash::new(&[("a", 1), ("b", 2), ("c", 5)], 1000);
        assert_eq!(points_per_endpoint(&ring, 3), [125, 250, 625]);

        // Capped at the maximum (a small cap here, to keep the test fast), split by weight.
        let ring = RingHash::build(&WEIGHTED, 1_000_000, 4000);
        assert_eq!(points_per_endpoint(&ring, 2), [1000, 3000]);

        // A weight ratio that would exceed the cap.
        let ring = RingHash::build(&[("a", 1), ("b", 10_000)], 1024, 5000);
        assert_eq!(ring.len(), 5000);
    }

    #[test]
    fn ring_removal_moves_only_removed_keys() {
        // Same points per endpoint before and after (256), so the only change is the removed
        // endpoint's points: every other key stays put.
        let before = RingHash::new(&FOUR, 1024);
        let after = RingHash::new(&THREE, 768);
        assert_eq!(points_per_endpoint(&after, 3), [256; 3]);
        let old = names(&FOUR, |h| before.pick(h, all));
        let new = names(&THREE, |h| after.pick(h, all));
        let mut moved = 0;
        for (o, n) in old.iter().zip(&new) {
            if o == REMOVED {
                moved += 1;
            } else {
                assert_eq!(o, n);
            }
        }
        assert!((frac(moved) - 0.25).abs() <= 0.05);
    }

    #[test]
    fn ring_removal_with_fixed_min_ring_size_stays_bounded() {
        // With the same min_ring_size the survivors get more points (256 -> 342 each) and
        // those new points take some keys from each other too, as in Envoy.
        let before = RingHash::new(&FOUR, 1024);
        let after = RingHash::new(&THREE, 1024);
        let old = names(&FOUR, |h| before.pick(h, all));
        let new = names(&THREE, |h| after.pick(h, all));
        let moved = old.iter().zip(&new).filter(|(o, n)| o != n).count();
        let on_removed = old.iter().filter(|o| *o == REMOVED).count();
        assert!(moved >= on_removed);
        assert!(frac(moved) < 0.5, "moved {moved}");
    }

    #[test]
    fn ring_skips_unusable() {
        let ring = RingHash::new(&FOUR, 1024);
        let down = 2;
        for i in 0..KEYS {
            let h = key_hash(i);
            let first = ring.pick(h, all).unwrap();
            let fallback = ring.pick(h, |e| e != down).unwrap();
            if first == down {
                assert_ne!(fallback, down);
                // Deterministic: the same key always falls back to the same endpoint.
                assert_eq!(ring.pick(h, |e| e != down), Some(fallback));
            } else {
                assert_eq!(fallback, first);
            }
        }
        assert_eq!(ring.pick(1, |_| false), None);
        assert_eq!(ring.pick(1, |e| e == 3), Some(3));
    }

    #[test]
    fn maglev_empty_and_single() {
        let empty = Maglev::new(&[], 65537);
        assert_eq!(empty.table_size(), 0);
        assert_eq!(empty.pick(1, all), None);

        let one = Maglev::new(&[("127.0.0.1:8080", 1)], 65537);
        for i in 0..1000 {
            assert_eq!(one.pick(key_hash(i), all), Some(0));
        }
        assert_eq!(one.pick(5, |_| false), None);
    }

    #[test]
    fn maglev_table_size_is_prime() {
        assert_eq!(Maglev::new(&FOUR, 65537).table_size(), 65537);
        assert_eq!(Maglev::new(&FOUR, 100).table_size(), 101);
        assert_eq!(Maglev::new(&FOUR, 0).table_size(), 2);
        assert_eq!(next_prime(65536), 65537);
        assert_eq!(next_prime(5_000_000), 5_000_011);
        assert_eq!(next_prime(2), 2);
        assert_eq!(next_prime(3), 3);
        assert_eq!(next_prime(4), 5);
    }

    #[test]
    fn maglev_distributes_evenly_and_by_weight() {
        let maglev = Maglev::new(&FOUR, 65537);
        let mut slots = [0usize; 4];
        for &e in &maglev.table {
            slots[widen(e)] += 1;
        }
        assert!(
            slots.iter().all(|&s| s.abs_diff(65537 / 4) <= 1),
            "{slots:?}"
        );
        for share in shares(4, |h| maglev.pick(h, all)) {
            assert!((share - 0.25).abs() <= 0.05, "share {share}");
        }

        let maglev = Maglev::new(&WEIGHTED, 65537);
        let s = shares(2, |h| maglev.pick(h, all));
        assert!((s[0] - 0.25).abs() <= 0.05, "shares {s:?}");
        assert!((s[1] - 0.75).abs() <= 0.05, "shares {s:?}");
    }

    #[test]
    fn maglev_removal_is_minimally_disruptive() {
        let before = Maglev::new(&FOUR, 65537);
        let after = Maglev::new(&THREE, 65537);
        let old = names(&FOUR, |h| before.pick(h, all));
        let new = names(&THREE, |h| after.pick(h, all));
        let moved = old.iter().zip(&new).filter(|(o, n)| o != n).count();
        let on_removed = old.iter().filter(|o| *o == REMOVED).count();
        assert!(new.iter().all(|n| n != REMOVED));
        assert!(moved >= on_removed);
        assert!(frac(moved) < 0.30, "moved {moved}");
    }

    #[test]
    fn maglev_skips_unusable() {
        let maglev = Maglev::new(&FOUR, 65537);
        let down = 1;
        for i in 0..KEYS {
            let h = key_hash(i);
            let first = maglev.pick(h, all).unwrap();
            let fallback = maglev.pick(h, |e| e != down).unwrap();
            if first == down {
                assert_ne!(fallback, down);
                assert_eq!(maglev.pick(h, |e| e != down), Some(fallback));
            } else {
                assert_eq!(fallback, first);
            }
        }
        assert_eq!(maglev.pick(1, |_| false), None);
        assert_eq!(maglev.pick(1, |e| e == 2), Some(2));
    }

    #[test]
    fn builds_are_deterministic_and_order_independent() {
        let a = Maglev::new(&FOUR, 65537);
        let b = Maglev::new(&FOUR, 65537);
        assert_eq!(a.table, b.table);
        let mut reversed = FOUR;
        reversed.reverse();
        let ring = RingHash::new(&FOUR, 1024);
        let ring_rev = RingHash::new(&reversed, 1024);
        let maglev_rev = Maglev::new(&reversed, 65537);
        for i in 0..KEYS {
            let h = key_hash(i);
            let name = FOUR[ring.pick(h, all).unwrap()].0;
            assert_eq!(name, reversed[ring_rev.pick(h, all).unwrap()].0);
            let name = FOUR[a.pick(h, all).unwrap()].0;
            assert_eq!(name, reversed[maglev_rev.pick(h, all).unwrap()].0);
        }
    }
}
