//! Response-time histogram with Goose's bucket scheme.
//!
//! Every power of two of microseconds is split into 64 equal buckets, so every time under
//! 128 µs has its own bucket and a bucket is never wider than 1/64 of its lowest time; a
//! bucket reports the time at its middle. This is the scheme Goose 0.19 uses for its own
//! `raw_data`, so our percentiles agree with Goose's at its precision, and histograms from
//! several windows or several processes add up exactly.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const SUB_BITS: u32 = 6;
const SUB_BUCKETS: u64 = 1 << SUB_BITS;
/// Every time below this many microseconds has a bucket of its own.
const EXACT_BELOW: u64 = SUB_BUCKETS << 1;

/// How many low bits of `us` the bucket holding it ignores.
fn ignored_bits(us: u64) -> u32 {
    if us < EXACT_BELOW {
        0
    } else {
        (63 - us.leading_zeros()) - SUB_BITS
    }
}

/// The lowest time of the bucket that holds `us`: the bucket's key.
pub fn bucket_floor(us: u64) -> u64 {
    let bits = ignored_bits(us);
    (us >> bits) << bits
}

/// The time a bucket reports: its middle.
pub fn bucket_value(floor: u64) -> u64 {
    floor + ((1u64 << ignored_bits(floor)) >> 1)
}

/// Counts of response times by bucket, with exact count, sum, min and max.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    /// Bucket floor in microseconds → how many times fell in it.
    pub buckets: BTreeMap<u64, u64>,
    pub count: u64,
    pub sum_us: u64,
    pub min_us: u64,
    pub max_us: u64,
}

impl Histogram {
    pub fn record(&mut self, us: u64) {
        *self.buckets.entry(bucket_floor(us)).or_insert(0) += 1;
        if self.count == 0 || us < self.min_us {
            self.min_us = us;
        }
        self.max_us = self.max_us.max(us);
        self.count += 1;
        self.sum_us = self.sum_us.saturating_add(us);
    }

    /// Adds every time of `other`: the result is what one histogram fed all of them holds.
    pub fn merge(&mut self, other: &Histogram) {
        if other.count == 0 {
            return;
        }
        for (floor, n) in &other.buckets {
            *self.buckets.entry(*floor).or_insert(0) += n;
        }
        if self.count == 0 || other.min_us < self.min_us {
            self.min_us = other.min_us;
        }
        self.max_us = self.max_us.max(other.max_us);
        self.count += other.count;
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
    }

    pub fn mean_us(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum_us as f64 / self.count as f64
        }
    }

    /// The time within which `percent` (0..=100) of the recorded times finished: the middle
    /// of the bucket holding the time at that rank, kept within the measured min and max.
    pub fn percentile_us(&self, percent: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        // The rank as Goose takes it (rounded), so both report the same percentile.
        let rank = ((self.count as f64) * percent / 100.0).round() as u64;
        if rank >= self.count {
            return self.max_us;
        }
        if rank <= 1 {
            return self.min_us;
        }
        let mut seen = 0;
        for (floor, n) in &self.buckets {
            seen += n;
            if seen >= rank {
                return bucket_value(*floor).clamp(self.min_us, self.max_us);
            }
        }
        self.max_us
    }

    pub fn percentile_ms(&self, percent: f64) -> f64 {
        self.percentile_us(percent) as f64 / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_times_have_their_own_bucket() {
        for us in 0..EXACT_BELOW {
            assert_eq!(bucket_floor(us), us);
            assert_eq!(bucket_value(us), us);
        }
    }

    #[test]
    fn bucket_error_stays_under_one_128th() {
        for us in [128u64, 129, 1_000, 12_345, 499_999, 1_000_000, 59_999_999] {
            let value = bucket_value(bucket_floor(us)) as f64;
            let error = (value - us as f64).abs() / us as f64;
            assert!(error <= 1.0 / 128.0, "{us}: {value} is {error} off");
        }
    }

    #[test]
    fn percentiles_follow_rank() {
        let mut h = Histogram::default();
        for us in 1..=100 {
            h.record(us);
        }
        assert_eq!(h.percentile_us(50.0), 50);
        assert_eq!(h.percentile_us(95.0), 95);
        assert_eq!(h.percentile_us(100.0), 100);
        assert_eq!(h.min_us, 1);
        assert_eq!(h.count, 100);
    }

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let (mut a, mut b, mut all) = (
            Histogram::default(),
            Histogram::default(),
            Histogram::default(),
        );
        for us in (0..5000).map(|i| (i * 7919) % 300_000) {
            if us % 3 == 0 {
                a.record(us)
            } else {
                b.record(us)
            }
            all.record(us);
        }
        a.merge(&b);
        assert_eq!(a, all);
        assert_eq!(a.percentile_us(95.0), all.percentile_us(95.0));
    }
}
