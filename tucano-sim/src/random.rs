//! The simulator's seeded random numbers (SplitMix64): arrivals, service times and start-up
//! delays each draw from their own stream, so changing one does not shift the others.

/// SplitMix64: small, fast, and the same sequence for the same seed on every machine.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A generator for the stream called `stream` of the run seeded with `seed`.
    pub fn stream(seed: u64, stream: u64) -> Self {
        Self(seed ^ stream.wrapping_mul(0xD6E8_FEB8_6659_FD93))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    }

    /// A number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// An exponentially distributed number of mean `mean`.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -(1.0 - self.unit()).ln() * mean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_streams_differ() {
        let draw = |mut rng: SplitMix64| (0..4).map(|_| rng.next_u64()).collect::<Vec<_>>();
        assert_eq!(draw(SplitMix64::new(7)), draw(SplitMix64::new(7)));
        assert_ne!(draw(SplitMix64::new(7)), draw(SplitMix64::new(8)));
        assert_ne!(
            draw(SplitMix64::stream(7, 1)),
            draw(SplitMix64::stream(7, 2))
        );
    }

    #[test]
    fn exponential_has_the_mean_asked_for() {
        let mut rng = SplitMix64::new(1);
        let n = 200_000;
        let mean = (0..n).map(|_| rng.exponential(0.05)).sum::<f64>() / f64::from(n);
        assert!((mean - 0.05).abs() < 0.001, "{mean}");
        let unit = (0..n).map(|_| rng.unit()).fold(0.0f64, f64::max);
        assert!(unit < 1.0);
    }
}
