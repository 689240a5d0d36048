//! Per-endpoint load state shared by every policy, and the guard that counts a request in
//! flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What the balancer knows about one endpoint's load.
///
/// One `EndpointState` lives as long as its instance is published: when a service's endpoint
/// set is republished, the state of every instance that is still there is carried over (see
/// [`EndpointSet::update`](crate::EndpointSet::update)), so counters and, later, latency
/// estimates survive routing changes.
///
/// Updates use relaxed atomics: policies read an approximate, always-consistent-enough view
/// without locking.
#[derive(Debug, Default)]
pub struct EndpointState {
    in_flight: AtomicUsize,
}

impl EndpointState {
    /// A fresh state: nothing in flight.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many requests sent to this endpoint have not finished yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts one more request in flight until the returned guard is dropped.
    pub fn track(self: &Arc<Self>) -> InFlightGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlightGuard {
            state: Arc::clone(self),
        }
    }
}

/// Counts one request in flight on an endpoint; dropping it ends the request.
///
/// The proxy keeps the guard inside the response body, so a request stays counted until its
/// response has been sent in full, has failed, or the client has gone away.
#[derive(Debug)]
#[must_use = "the request stops being counted as soon as the guard is dropped"]
pub struct InFlightGuard {
    state: Arc<EndpointState>,
}

impl InFlightGuard {
    /// The state this guard counts on.
    pub fn state(&self) -> &Arc<EndpointState> {
        &self.state
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.state.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_count_requests_in_flight() {
        let state = Arc::new(EndpointState::new());
        assert_eq!(state.in_flight(), 0);
        let first = state.track();
        let second = state.track();
        assert_eq!(state.in_flight(), 2);
        drop(first);
        assert_eq!(state.in_flight(), 1);
        assert!(Arc::ptr_eq(second.state(), &state));
        drop(second);
        assert_eq!(state.in_flight(), 0);
    }
}
