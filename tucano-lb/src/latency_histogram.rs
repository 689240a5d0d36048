//! Response latencies counted in fixed log-scale buckets, with one relaxed atomic add per
//! request, so an autoscaler can read request counts and percentiles without the request
//! path taking a lock.

use std::sync::atomic::{AtomicU64, Ordering};

/// Buckets per power of two: latencies are told apart to within about 19 %.
const SUB_BUCKETS: u32 = 4;
/// The smallest bucket's lower edge is 2^MIN_POWER ns (about 1 µs); faster counts there.
const MIN_POWER: u32 = 10;
/// The largest bucket starts at 2^MAX_POWER ns (about 69 s); slower counts there.
const MAX_POWER: u32 = 36;
/// How many buckets.
pub const BUCKETS: usize = ((MAX_POWER - MIN_POWER + 1) * SUB_BUCKETS) as usize;

/// Latency counts by bucket; cumulative since creation.
#[derive(Debug)]
pub struct LatencyHistogram {
    counts: [AtomicU64; BUCKETS],
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl LatencyHistogram {
    /// Counts one request that took `latency_ns`.
    #[inline]
    pub fn record(&self, latency_ns: u64) {
        if let Some(count) = self.counts.get(bucket_of(latency_ns)) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Adds this histogram's counts to `totals`.
    pub fn add_to(&self, totals: &mut [u64; BUCKETS]) {
        for (total, count) in totals.iter_mut().zip(&self.counts) {
            *total = total.saturating_add(count.load(Ordering::Relaxed));
        }
    }
}

/// The bucket of a latency: 4 per power of two from 2^10 ns, clamped at both ends.
fn bucket_of(latency_ns: u64) -> usize {
    let value = latency_ns.max(1 << MIN_POWER);
    let power = (63 - value.leading_zeros()).min(MAX_POWER);
    let sub = if power >= MAX_POWER {
        SUB_BUCKETS - 1
    } else {
        ((value >> (power - 2)) & u64::from(SUB_BUCKETS - 1)) as u32
    };
    ((power - MIN_POWER) * SUB_BUCKETS + sub) as usize
}

/// The upper edge of bucket `index`, in nanoseconds.
fn upper_edge(index: usize) -> u64 {
    let power = MIN_POWER + index as u32 / SUB_BUCKETS;
    let sub = u64::from(index as u32 % SUB_BUCKETS);
    (1u64 << power) + ((sub + 1) << (power - 2))
}

/// How many requests `counts` holds, and the latency below which `quantile` (0 to 1) of them
/// fall (a bucket's upper edge, so at most about 19 % above the true value); `None` for no
/// request.
pub fn quantile(counts: &[u64; BUCKETS], quantile: f64) -> Option<u64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * quantile.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
    let mut seen = 0u64;
    for (index, count) in counts.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return Some(upper_edge(index));
        }
    }
    Some(upper_edge(BUCKETS - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_bound_their_latencies() {
        let mut last = 0;
        for ns in [1u64, 1024, 1500, 2048, 3000, 1_000_000, 50_000_000, 1 << 40] {
            let bucket = bucket_of(ns);
            assert!(bucket >= last, "{ns}");
            assert!(bucket < BUCKETS);
            last = bucket;
            if (1 << MIN_POWER..1 << MAX_POWER).contains(&ns) {
                assert!(upper_edge(bucket) >= ns, "{ns} above its bucket");
                assert!(
                    upper_edge(bucket) as f64 <= ns as f64 * 1.26,
                    "{ns} bucket too wide"
                );
            }
        }
    }

    #[test]
    fn quantiles_come_from_the_counts() {
        let histogram = LatencyHistogram::default();
        for _ in 0..90 {
            histogram.record(1_000_000);
        }
        for _ in 0..10 {
            histogram.record(100_000_000);
        }
        let mut counts = [0; BUCKETS];
        histogram.add_to(&mut counts);
        let p50 = quantile(&counts, 0.5).unwrap();
        let p95 = quantile(&counts, 0.95).unwrap();
        assert!((1_000_000..1_260_000).contains(&p50), "{p50}");
        assert!((100_000_000..126_000_000).contains(&p95), "{p95}");
        assert_eq!(quantile(&[0; BUCKETS], 0.95), None);
    }
}
