//! Loop lag: how late timers run, as a log-scale histogram.
//!
//! ```text
//!  lateness (ns) -> bucket:  [0, 1024) ns           -> 0
//!                            then 4 buckets an octave (each a quarter of
//!                            the octave), up to 2^63 ns
//! ```
//!
//! Recording is a few instructions per timer, so it is always on. Percentiles
//! are reported as the upper bound of their bucket (at most 19% high); the
//! maximum is exact.

const FIRST_SHIFT: u32 = 10;
const SUB: u32 = 4;
const BUCKETS: usize = ((64 - FIRST_SHIFT) * SUB + 1) as usize;

pub struct LagHistogram {
    counts: [u64; BUCKETS],
    samples: u64,
    max: u64,
}

impl Default for LagHistogram {
    fn default() -> Self {
        LagHistogram {
            counts: [0; BUCKETS],
            samples: 0,
            max: 0,
        }
    }
}

#[inline]
fn bucket(late: u64) -> usize {
    if late < (1 << FIRST_SHIFT) {
        return 0;
    }
    let octave = 63 - late.leading_zeros(); // >= FIRST_SHIFT
    let quarter = (late >> (octave - 2)) & 3; // the two bits below the top one
    (1 + (octave - FIRST_SHIFT) * SUB + quarter as u32) as usize
}

/// The largest lateness that falls in bucket `b`.
fn upper(b: usize) -> u64 {
    if b == 0 {
        return (1 << FIRST_SHIFT) - 1;
    }
    let b = b as u32 - 1;
    let octave = FIRST_SHIFT + b / SUB;
    let quarter = (b % SUB) as u64;
    let base = 1u64 << octave;
    let step = base >> 2;
    base.checked_add((quarter + 1) * step)
        .map_or(u64::MAX, |end| end - 1)
}

impl LagHistogram {
    #[inline]
    pub fn record(&mut self, late: u64) {
        self.counts[bucket(late)] += 1;
        self.samples += 1;
        if late > self.max {
            self.max = late;
        }
    }

    pub fn samples(&self) -> u64 {
        self.samples
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The lateness (ns) that `p` (0..=1) of the samples do not exceed, as
    /// a bucket bound, never above the maximum; 0 with no samples.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.samples == 0 {
            return 0;
        }
        let rank = ((p * self.samples as f64).ceil() as u64).clamp(1, self.samples);
        let mut seen = 0;
        for (b, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return upper(b).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_bound_their_values() {
        let mut last = 0;
        for late in [
            0u64,
            1023,
            1024,
            1279,
            1280,
            2047,
            2048,
            1 << 20,
            (1 << 20) + 5,
            1 << 40,
            u64::MAX,
        ] {
            let b = bucket(late);
            assert!(b >= last, "bucket of {late}");
            assert!(upper(b) >= late, "upper bound of bucket {b} below {late}");
            last = b;
        }
    }

    #[test]
    fn percentiles_and_the_maximum() {
        let mut h = LagHistogram::default();
        assert_eq!(h.percentile(0.5), 0);
        for _ in 0..99 {
            h.record(10_000);
        }
        h.record(5_000_000);
        assert_eq!(h.samples(), 100);
        assert_eq!(h.max(), 5_000_000);
        let p50 = h.percentile(0.5);
        assert!((10_000..=12_288).contains(&p50), "p50 {p50}");
        assert!(h.percentile(0.99) <= 12_288);
        assert_eq!(h.percentile(1.0), 5_000_000);
    }
}
