//! The activator of a service scaled to zero: requests that arrive while it has no running
//! instance wait here (a bounded number, for a bounded time) instead of failing at once, and
//! are released as soon as an instance is published. How many wait is the signal that wakes
//! the service up.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// Most requests one service's activator holds at once; more get 503 at once.
pub const MAX_HELD: u32 = 1000;
/// How often a held request looks again even without a wake-up (a missed one, or a route
/// rebuilt meanwhile).
const RECHECK: Duration = Duration::from_millis(50);

/// Held requests of one service.
#[derive(Debug, Default)]
pub(crate) struct Activator {
    waiting: AtomicU32,
    published: Notify,
}

/// A held request's place; gives it back when dropped.
pub(crate) struct Held<'a> {
    activator: &'a Activator,
}

impl Activator {
    /// Requests waiting now.
    pub fn waiting(&self) -> u32 {
        self.waiting.load(Ordering::Relaxed)
    }

    /// A place for one more request, unless [`MAX_HELD`] already wait; and whether it is the
    /// first one waiting.
    pub fn hold(&self) -> Option<(Held<'_>, bool)> {
        self.waiting
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < MAX_HELD).then_some(n + 1)
            })
            .ok()
            .map(|before| (Held { activator: self }, before == 0))
    }

    /// Waits until instances are published or a short recheck interval passes.
    pub async fn wait(&self) {
        let _ = tokio::time::timeout(RECHECK, self.published.notified()).await;
    }

    /// Wakes every held request: the service has instances.
    pub fn release(&self) {
        self.published.notify_waiters();
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.activator.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn holds_at_most_the_bound_and_gives_places_back() {
        let activator = Activator::default();
        let held: Vec<_> = (0..MAX_HELD).map_while(|_| activator.hold()).collect();
        assert_eq!(held.len(), MAX_HELD as usize);
        assert_eq!(held.iter().filter(|(_, first)| *first).count(), 1);
        assert!(activator.hold().is_none());
        drop(held);
        assert_eq!(activator.waiting(), 0);
        assert!(activator.hold().is_some());
    }

    #[tokio::test]
    async fn release_wakes_a_waiter_before_the_recheck() {
        let activator = Arc::new(Activator::default());
        let waiter = {
            let activator = activator.clone();
            tokio::spawn(async move {
                let began = tokio::time::Instant::now();
                activator.wait().await;
                began.elapsed()
            })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        activator.release();
        let waited = waiter.await.unwrap();
        assert!(waited < RECHECK, "{waited:?}");
    }
}
