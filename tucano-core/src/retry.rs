//! Bounded retries with capped exponential backoff and jitter.

use std::future::Future;
use std::time::Duration;

use rand::Rng;

/// How often and how patiently to retry an operation.
///
/// ```
/// use std::time::Duration;
/// use tucano_core::RetryPolicy;
/// let policy = RetryPolicy::new(4, Duration::from_millis(100), Duration::from_secs(1));
/// assert!(policy.delay(1) <= Duration::from_millis(100));
/// assert!(policy.delay(10) <= Duration::from_secs(1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// Delay before the second attempt.
    pub initial_delay: Duration,
    /// Longest delay between two attempts.
    pub max_delay: Duration,
    /// Randomise each delay to between half and all of its nominal value, so that many
    /// retriers do not move in lockstep.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::new(5, Duration::from_millis(200), Duration::from_secs(5))
    }
}

impl RetryPolicy {
    /// A jittered policy.
    pub const fn new(max_attempts: u32, initial_delay: Duration, max_delay: Duration) -> Self {
        Self {
            max_attempts,
            initial_delay,
            max_delay,
            jitter: true,
        }
    }

    /// The nominal (un-jittered) delay after failed attempt number `attempt` (1-based):
    /// `initial_delay × 2^(attempt-1)`, capped at `max_delay`.
    pub fn nominal_delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(31);
        self.initial_delay
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay)
    }

    /// The delay to wait after failed attempt number `attempt`, jittered if asked.
    pub fn delay(&self, attempt: u32) -> Duration {
        let nominal = self.nominal_delay(attempt);
        if !self.jitter || nominal.is_zero() {
            return nominal;
        }
        let half = nominal / 2;
        let extra_nanos =
            rand::rng().random_range(0..=half.as_nanos().min(u64::MAX as u128) as u64);
        half + Duration::from_nanos(extra_nanos)
    }

    /// Runs `op` until it succeeds, `retryable` says an error is final, or the attempts are
    /// spent; returns the last result.
    pub async fn retry<T, E, F, Fut>(
        &self,
        mut op: F,
        retryable: impl Fn(&E) -> bool,
    ) -> Result<T, E>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let attempts = self.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            match op(attempt).await {
                Ok(value) => return Ok(value),
                Err(error) if attempt >= attempts || !retryable(&error) => return Err(error),
                Err(_) => {
                    tokio::time::sleep(self.delay(attempt)).await;
                    attempt += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn delays_grow_and_cap() {
        let policy = RetryPolicy {
            jitter: false,
            ..RetryPolicy::new(10, Duration::from_millis(100), Duration::from_millis(700))
        };
        let delays: Vec<_> = (1..=6).map(|a| policy.delay(a).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 700, 700, 700]);
        assert_eq!(policy.delay(u32::MAX), Duration::from_millis(700));
    }

    #[test]
    fn jitter_stays_within_half_and_full() {
        let policy = RetryPolicy::new(10, Duration::from_millis(100), Duration::from_secs(10));
        for attempt in 1..8 {
            let nominal = policy.nominal_delay(attempt);
            for _ in 0..50 {
                let d = policy.delay(attempt);
                assert!(d >= nominal / 2 && d <= nominal, "{d:?} vs {nominal:?}");
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retry_stops_at_the_bound() {
        let calls = AtomicU32::new(0);
        let policy = RetryPolicy::new(4, Duration::from_millis(10), Duration::from_millis(50));
        let result: Result<(), &str> = policy
            .retry(
                |_| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async { Err("down") }
                },
                |_| true,
            )
            .await;
        assert_eq!(result, Err("down"));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_stops_on_final_error_and_on_success() {
        let calls = AtomicU32::new(0);
        let policy = RetryPolicy::new(5, Duration::from_millis(10), Duration::from_millis(50));
        let result: Result<u32, &str> = policy
            .retry(
                |attempt| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if attempt < 3 {
                            Err("busy")
                        } else {
                            Ok(attempt)
                        }
                    }
                },
                |_| true,
            )
            .await;
        assert_eq!(result, Ok(3));
        let final_calls = AtomicU32::new(0);
        let result: Result<(), &str> = policy
            .retry(
                |_| {
                    final_calls.fetch_add(1, Ordering::SeqCst);
                    async { Err("bad request") }
                },
                |e| *e != "bad request",
            )
            .await;
        assert!(result.is_err());
        assert_eq!(final_calls.load(Ordering::SeqCst), 1);
    }
}
