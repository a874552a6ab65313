//! Latency histogram: log-linear buckets (64 per power of two, so a
//! quantile is within 1.6 % of the truth), exact minimum and maximum, fixed
//! size, no allocation after creation.

use serde::Serialize;

/// Sub-buckets per power of two.
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
/// Powers of two covered: values up to 2^40 ns (18 minutes).
const MAX_EXP: u32 = 40;

/// A histogram of nanosecond values.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    n: u64,
    min: u64,
    max: u64,
    sum: u128,
}

/// Summary of a histogram in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Samples.
    pub samples: u64,
    /// Smallest value, µs.
    pub min_us: f64,
    /// Median, µs.
    pub median_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// Largest value, µs.
    pub max_us: f64,
    /// Mean, µs.
    pub mean_us: f64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; ((MAX_EXP + 1) as u64 * SUB) as usize],
            n: 0,
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < SUB {
            return v as usize;
        }
        let exp = 63 - v.leading_zeros() - SUB_BITS + 1; // >= 1
        let exp = exp.min(MAX_EXP);
        let sub = (v >> (exp - 1)) & (SUB - 1);
        (u64::from(exp) * SUB + sub).min(u64::from(MAX_EXP + 1) * SUB - 1) as usize
    }

    /// The largest value that lands in bucket `i`.
    fn upper(i: usize) -> u64 {
        let i = i as u64;
        let (exp, sub) = (i / SUB, i % SUB);
        if exp == 0 {
            return sub;
        }
        ((SUB + sub + 1) << (exp - 1)) - 1
    }

    /// Adds one value.
    #[inline]
    pub fn record(&mut self, v: u64) {
        self.counts[Self::index(v)] += 1;
        self.n += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum += u128::from(v);
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.n += other.n;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    /// Number of values.
    pub fn len(&self) -> u64 {
        self.n
    }

    /// Whether no value was recorded.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The value at quantile `q` (0..=1): the upper edge of its bucket,
    /// clamped to the exact extremes. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.n == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::upper(i).clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// Min, median, p99, max and mean in microseconds.
    pub fn summary(&self) -> LatencySummary {
        if self.n == 0 {
            return LatencySummary::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        LatencySummary {
            samples: self.n,
            min_us: us(self.min),
            median_us: us(self.quantile(0.5)),
            p99_us: us(self.quantile(0.99)),
            max_us: us(self.max),
            mean_us: (self.sum / u128::from(self.n)) as f64 / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_two_percent() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v * 10);
        }
        for (q, want) in [(0.5, 500_000.0), (0.99, 990_000.0), (0.01, 10_000.0)] {
            let got = h.quantile(q) as f64;
            assert!((got - want).abs() / want < 0.02, "q{q}: {got} vs {want}");
        }
        assert_eq!(h.quantile(0.0), 10);
        assert_eq!(h.quantile(1.0), 1_000_000);
        let s = h.summary();
        assert_eq!(s.samples, 100_000);
        assert_eq!(s.min_us, 0.01);
        assert_eq!(s.max_us, 1000.0);
        assert!((s.mean_us - 500.005).abs() < 0.01);
    }

    #[test]
    fn buckets_cover_their_values() {
        for v in [0u64, 1, 63, 64, 65, 127, 128, 1000, 123_456_789, 1 << 39] {
            let i = Histogram::index(v);
            assert!(Histogram::upper(i) >= v, "{v} in bucket {i}");
            if i > 0 {
                assert!(Histogram::upper(i - 1) < v, "{v} in bucket {i}");
            }
        }
        let mut h = Histogram::new();
        h.record(u64::MAX);
        assert_eq!(h.quantile(0.5), u64::MAX);
    }

    #[test]
    fn small_samples_and_merge() {
        let mut a = Histogram::new();
        assert_eq!(a.summary(), LatencySummary::default());
        a.record(5_000);
        let mut b = Histogram::new();
        b.record(7_000);
        b.record(9_000);
        a.merge(&b);
        assert_eq!(a.len(), 3);
        let m = a.quantile(0.5);
        assert!((7_000..=7_100).contains(&m), "{m}");
        assert_eq!(a.quantile(0.99), 9_000);
    }
}
