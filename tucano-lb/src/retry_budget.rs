//! A retry budget: retries may add at most a share of a service's requests, plus a small
//! reserve, so retries cannot multiply load on a struggling service.

use std::sync::atomic::{AtomicI64, Ordering};

/// One retry, in the budget's fixed-point unit.
const RETRY: i64 = 1000;
/// Retries always allowed per refill period (see [`RetryBudget::refill`]).
const RESERVE: i64 = 3 * RETRY;
/// Most retries the budget saves up.
const CAP: i64 = 100 * RETRY;

/// Each request deposits `percent`/100 of a retry; each retry withdraws one.
#[derive(Debug)]
pub struct RetryBudget {
    percent: i64,
    balance: AtomicI64,
}

impl RetryBudget {
    /// A budget where retries may add `percent` % to the requests.
    pub fn new(percent: u8) -> Self {
        Self {
            percent: i64::from(percent.min(100)),
            balance: AtomicI64::new(RESERVE),
        }
    }

    /// Counts a request.
    #[inline]
    pub fn deposit(&self) {
        if self.percent > 0 && self.balance.load(Ordering::Relaxed) < CAP {
            self.balance
                .fetch_add(self.percent * RETRY / 100, Ordering::Relaxed);
        }
    }

    /// Takes one retry if the budget has it.
    pub fn withdraw(&self) -> bool {
        self.balance
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |balance| {
                (balance >= RETRY).then_some(balance - RETRY)
            })
            .is_ok()
    }

    /// Tops the balance up to the reserve (called periodically).
    pub fn refill(&self) {
        self.balance.fetch_max(RESERVE, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_a_share_of_requests_plus_a_reserve() {
        let budget = RetryBudget::new(20);
        for _ in 0..100 {
            budget.deposit();
        }
        // 3 in reserve + 20 % of 100 requests.
        let allowed = (0..100).filter(|_| budget.withdraw()).count();
        assert_eq!(allowed, 23);
        budget.refill();
        assert_eq!((0..10).filter(|_| budget.withdraw()).count(), 3);
        let none = RetryBudget::new(0);
        none.deposit();
        assert_eq!((0..10).filter(|_| none.withdraw()).count(), 3);
    }
}
