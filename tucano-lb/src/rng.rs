//! A fast per-thread random number generator for picks (xorshift64*), seedable so that a
//! simulation is deterministic. Not for anything secret.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinct seeds for threads that did not choose one.
static NEXT_SEED: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);

thread_local! {
    static STATE: Cell<u64> = Cell::new(initial_seed());
}

fn initial_seed() -> u64 {
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    mix(NEXT_SEED.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) ^ time)
}

/// SplitMix64's finaliser: spreads any seed over all bits (and never yields 0 for 0).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (x ^ (x >> 31)) | 1
}

/// Makes this thread's sequence start from `seed`: the same seed gives the same picks.
pub fn seed(seed: u64) {
    STATE.with(|state| state.set(mix(seed)));
}

/// This thread's generator, borrowed for several draws: `f` draws from a local copy of the
/// state, written back once when it returns (cheaper than a thread-local access per draw).
#[inline]
pub fn with<R>(f: impl FnOnce(&mut Rng) -> R) -> R {
    STATE.with(|state| {
        let mut rng = Rng(state.get());
        let result = f(&mut rng);
        state.set(rng.0);
        result
    })
}

/// A borrowed copy of this thread's generator state (see [`with`]).
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    /// The next random 64-bit number.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A random index below `n` (`n` > 0), without modulo bias worth mentioning (Lemire's
    /// multiply-shift).
    #[inline]
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// The next random 64-bit number of this thread's sequence.
#[inline]
pub fn next_u64() -> u64 {
    with(Rng::next_u64)
}

/// A random index below `n` (`n` > 0), without modulo bias worth mentioning (Lemire's
/// multiply-shift).
#[inline]
pub fn below(n: usize) -> usize {
    with(|rng| rng.below(n))
}

/// A random number in `[0, 1)`.
#[inline]
pub fn unit() -> f64 {
    (next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_sequences_repeat() {
        seed(42);
        let a: Vec<u64> = (0..5).map(|_| next_u64()).collect();
        seed(42);
        let b: Vec<u64> = (0..5).map(|_| next_u64()).collect();
        assert_eq!(a, b);
        seed(43);
        assert_ne!(next_u64(), a[0]);
    }

    #[test]
    fn below_is_in_range_and_roughly_uniform() {
        seed(7);
        let mut hits = [0u32; 10];
        for _ in 0..100_000 {
            hits[below(10)] += 1;
        }
        assert!(
            hits.iter().all(|&h| (9_000..11_000).contains(&h)),
            "{hits:?}"
        );
        assert!((0..1000).all(|_| (0.0..1.0).contains(&unit())));
    }
}
