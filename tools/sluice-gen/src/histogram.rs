//! A fixed latency histogram in nanoseconds: log-linear buckets (16 per power of two, so every
//! bucket is at most 1/16 = 6.25 % wide relative to its values), exact below 16 ns, covering
//! the whole u64 range in 976 counters. Recording is a shift, a count of leading zeros and an
//! increment: no allocation, no branch on the value's size beyond one compare.

/// Sub-buckets per power of two: 2^SUB_BITS.
const SUB_BITS: u32 = 4;
const SUB: u64 = 1 << SUB_BITS;
/// Buckets to cover every u64: SUB exact ones, then SUB per exponent from SUB_BITS to 63.
pub const BUCKETS: usize = ((64 - SUB_BITS + 1) as usize) * SUB as usize;

pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: Box::new([0; BUCKETS]), total: 0, max: 0 }
    }
}

/// The bucket of `value`.
#[inline]
pub fn bucket(value: u64) -> usize {
    if value < SUB {
        return value as usize;
    }
    let exp = 63 - value.leading_zeros(); // >= SUB_BITS
    let sub = (value >> (exp - SUB_BITS)) & (SUB - 1);
    ((exp - SUB_BITS + 1) as u64 * SUB + sub) as usize
}

/// The smallest value that falls into bucket `b`.
pub fn lower_bound(b: usize) -> u64 {
    let b = b as u64;
    if b < SUB {
        return b;
    }
    let exp = (b / SUB) as u32 + SUB_BITS - 1;
    let sub = b % SUB;
    (1u64 << exp) | (sub << (exp - SUB_BITS))
}

/// The largest value that falls into bucket `b`.
pub fn upper_bound(b: usize) -> u64 {
    if b + 1 >= BUCKETS {
        u64::MAX
    } else {
        lower_bound(b + 1) - 1
    }
}

impl Histogram {
    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.counts[bucket(ns)] += 1;
        self.total += 1;
        self.max = self.max.max(ns);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1): the upper bound of the bucket holding the sample of
    /// rank ceil(q * count), never above the largest value recorded. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return upper_bound(b).min(self.max);
            }
        }
        self.max
    }
}

/// TSC cycles to nanoseconds with one 128-bit multiply (no division per packet).
#[derive(Debug, Clone, Copy)]
pub struct CyclesToNs {
    /// Nanoseconds per cycle in 32.32 fixed point.
    factor: u128,
}

impl CyclesToNs {
    pub fn new(hz: u64) -> CyclesToNs {
        CyclesToNs { factor: (1_000_000_000u128 << 32) / u128::from(hz.max(1)) }
    }

    #[inline]
    pub fn ns(&self, cycles: u64) -> u64 {
        ((u128::from(cycles) * self.factor) >> 32).min(u128::from(u64::MAX)) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_tile_the_range() {
        assert_eq!(BUCKETS, 976);
        assert_eq!(lower_bound(0), 0);
        for b in 0..BUCKETS - 1 {
            assert_eq!(upper_bound(b) + 1, lower_bound(b + 1), "bucket {b}");
            assert_eq!(bucket(lower_bound(b)), b);
            assert_eq!(bucket(upper_bound(b)), b);
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn buckets_are_narrow() {
        for b in SUB as usize..BUCKETS - 1 {
            let (lo, hi) = (lower_bound(b), upper_bound(b));
            assert!((hi - lo + 1) as f64 / lo as f64 <= 1.0 / SUB as f64, "bucket {b}: {lo}..={hi}");
        }
    }

    #[test]
    fn quantiles_of_a_uniform_sample() {
        let mut h = Histogram::default();
        for ns in 1..=10_000 {
            h.record(ns);
        }
        assert_eq!(h.count(), 10_000);
        assert_eq!(h.max(), 10_000);
        let p50 = h.quantile(0.5);
        let p99 = h.quantile(0.99);
        assert!((5_000..=5_000 + 5_000 / 16).contains(&p50), "p50 {p50}");
        assert!((9_900..=10_000).contains(&p99), "p99 {p99}");
        assert_eq!(h.quantile(1.0), 10_000);
        assert_eq!(h.quantile(0.0), 1);
    }

    #[test]
    fn quantiles_of_a_skewed_sample() {
        let mut h = Histogram::default();
        for _ in 0..990 {
            h.record(800);
        }
        for _ in 0..10 {
            h.record(1_000_000);
        }
        assert_eq!(h.quantile(0.5), upper_bound(bucket(800)));
        assert_eq!(h.quantile(0.99), upper_bound(bucket(800)), "the 990th of 1000 is still fast");
        assert_eq!(h.quantile(0.995), 1_000_000, "clamped to the maximum");
        assert_eq!(Histogram::default().quantile(0.5), 0);
    }

    #[test]
    fn converts_cycles() {
        let c = CyclesToNs::new(2_700_000_000);
        assert_eq!(c.ns(2_700_000_000), 999_999_999); // fixed point rounds down by at most 1
        assert_eq!(c.ns(2_700), 999);
        assert_eq!(CyclesToNs::new(1_000_000_000).ns(12_345), 12_345);
        assert_eq!(c.ns(0), 0);
    }
}
