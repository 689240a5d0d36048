//! Per-endpoint load and health state shared by every policy, and the guard that counts a
//! request in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use crate::decay::rtt_keep;
use crate::latency_histogram::LatencyHistogram;

/// Latency estimate of an endpoint nothing was measured on yet.
pub const DEFAULT_RTT_NS: f64 = 30_000_000.0;
/// Time constant of the latency EWMA: an old sample's weight falls to 1/e after this long.
pub const RTT_DECAY_NS: f64 = 10_000_000_000.0;
/// Latency a failed request (5xx, connection failure) counts as, at least, so that fast
/// failures look slow rather than attractive.
pub const FAILURE_PENALTY_NS: u64 = 1_000_000_000;

/// What the balancer knows about one endpoint: requests in flight, a peak-sensitive latency
/// EWMA, the load the instance reports, consecutive failures and ejection, health-check
/// verdict, and the slow-start weight factor.
///
/// One `EndpointState` lives as long as its instance is published: when a service's endpoint
/// set is republished, the state of every instance still there is carried over (see
/// [`EndpointSet::update`](crate::EndpointSet::update)). Every field is an atomic updated with
/// relaxed ordering: policies read a slightly stale but always usable view without locking.
/// Time is passed in (nanoseconds, see [`clock`](crate::clock)), so simulations can run it.
#[derive(Debug)]
pub struct EndpointState {
    in_flight: AtomicUsize,
    started: AtomicU64,
    rtt_ns: AtomicU64,
    rtt_at_ns: AtomicU64,
    load: AtomicU32,
    weight_factor: AtomicU32,
    first_seen_ns: AtomicU64,
    consecutive_failures: AtomicU32,
    ejected: AtomicBool,
    ejected_until_ns: AtomicU64,
    times_ejected: AtomicU32,
    healthy: AtomicBool,
    health_successes: AtomicU32,
    health_failures: AtomicU32,
    latencies: LatencyHistogram,
}

impl Default for EndpointState {
    fn default() -> Self {
        Self::new(0)
    }
}

impl EndpointState {
    /// A fresh state for an endpoint first seen at `now_ns`: nothing in flight, the default
    /// latency estimate, no reported load, full weight, healthy.
    pub fn new(now_ns: u64) -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            rtt_ns: AtomicU64::new(DEFAULT_RTT_NS.to_bits()),
            rtt_at_ns: AtomicU64::new(now_ns),
            load: AtomicU32::new(f32::NAN.to_bits()),
            weight_factor: AtomicU32::new(1.0f32.to_bits()),
            first_seen_ns: AtomicU64::new(now_ns),
            consecutive_failures: AtomicU32::new(0),
            ejected: AtomicBool::new(false),
            ejected_until_ns: AtomicU64::new(0),
            times_ejected: AtomicU32::new(0),
            healthy: AtomicBool::new(true),
            health_successes: AtomicU32::new(0),
            health_failures: AtomicU32::new(0),
            latencies: LatencyHistogram::default(),
        }
    }

    /// How many requests sent to this endpoint have not finished yet.
    #[inline]
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The queue a new request would join here, `in_flight + 1`, as a float for cost formulas
    /// (converted through `u32`, one instruction, rather than from `usize`, several).
    #[inline]
    pub fn queue_length(&self) -> f64 {
        let in_flight = u32::try_from(self.in_flight()).unwrap_or(u32::MAX);
        f64::from(in_flight) + 1.0
    }

    /// How many requests were sent to this endpoint since it was first seen.
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// Counts one more request in flight until the returned guard is dropped.
    pub fn track(self: &Arc<Self>) -> InFlightGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.started.fetch_add(1, Ordering::Relaxed);
        InFlightGuard {
            state: Arc::clone(self),
        }
    }

    /// Records how a request went: its latency to the response head, and whether it failed
    /// (a 5xx answer or no answer). Updates the latency estimate — peak-sensitive: a sample
    /// above the estimate replaces it, one below is averaged in with a weight that grows with
    /// the time since the last sample — and the run of consecutive failures.
    pub fn observe(&self, latency_ns: u64, failed: bool, now_ns: u64) {
        self.latencies.record(latency_ns);
        let sample = if failed {
            latency_ns.max(FAILURE_PENALTY_NS)
        } else {
            latency_ns
        } as f64;
        let at = self.rtt_at_ns.swap(now_ns, Ordering::Relaxed);
        let keep = rtt_keep(now_ns.saturating_sub(at));
        let _ = self
            .rtt_ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                let old = f64::from_bits(bits);
                let next = if sample > old {
                    sample
                } else {
                    old * keep + sample * (1.0 - keep)
                };
                Some(next.to_bits())
            });
        if failed {
            self.consecutive_failures.fetch_add(1, Ordering::Relaxed);
        } else {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
    }

    /// Every observed request's latency, counted by bucket since the endpoint was first seen.
    pub fn latencies(&self) -> &LatencyHistogram {
        &self.latencies
    }

    /// When the last request's outcome was observed (the endpoint's first sighting if none
    /// was).
    pub fn last_observed_ns(&self) -> u64 {
        self.rtt_at_ns.load(Ordering::Relaxed)
    }

    /// The latency estimate at `now_ns`, in nanoseconds: the last estimate decayed towards 0
    /// for the time nothing was measured, so an endpoint that has been avoided gets tried again.
    #[inline]
    pub fn rtt_estimate_ns(&self, now_ns: u64) -> f64 {
        let rtt = f64::from_bits(self.rtt_ns.load(Ordering::Relaxed));
        let at = self.rtt_at_ns.load(Ordering::Relaxed);
        rtt * rtt_keep(now_ns.saturating_sub(at))
    }

    /// Records the load the instance reports (`x-tucano-load`), clamped to 0..=1; a
    /// non-finite value is ignored.
    pub fn report_load(&self, load: f32) {
        if load.is_finite() {
            self.load
                .store(load.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
        }
    }

    /// The load the instance last reported, if it ever did.
    #[inline]
    pub fn reported_load(&self) -> Option<f32> {
        let load = f32::from_bits(self.load.load(Ordering::Relaxed));
        (!load.is_nan()).then_some(load)
    }

    /// The share of its weight the endpoint gets now: below 1 while it warms up (slow start).
    #[inline]
    pub fn weight_factor(&self) -> f32 {
        f32::from_bits(self.weight_factor.load(Ordering::Relaxed))
    }

    /// Sets the slow-start weight factor (clamped to 0..=1).
    pub fn set_weight_factor(&self, factor: f32) {
        self.weight_factor
            .store(factor.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
    }

    /// When the endpoint was first published.
    pub fn first_seen_ns(&self) -> u64 {
        self.first_seen_ns.load(Ordering::Relaxed)
    }

    /// Failed requests in a row.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures.load(Ordering::Relaxed)
    }

    /// True while passive outlier detection keeps the endpoint out.
    #[inline]
    pub fn is_ejected(&self) -> bool {
        self.ejected.load(Ordering::Relaxed)
    }

    /// How many times the endpoint was ejected (decays while it behaves).
    pub fn times_ejected(&self) -> u32 {
        self.times_ejected.load(Ordering::Relaxed)
    }

    /// Ejects the endpoint for `base_ns` × the times it has been ejected, this one included.
    pub fn eject(&self, now_ns: u64, base_ns: u64) {
        let times = self.times_ejected.fetch_add(1, Ordering::Relaxed) + 1;
        let until = now_ns.saturating_add(base_ns.saturating_mul(u64::from(times)));
        self.ejected_until_ns.store(until, Ordering::Relaxed);
        self.consecutive_failures.store(0, Ordering::Relaxed);
        self.ejected.store(true, Ordering::Relaxed);
    }

    /// Ends an ejection whose time is up, and forgets one past ejection for every further
    /// `base_ns` without one. True if the endpoint came back.
    pub fn expire_ejection(&self, now_ns: u64, base_ns: u64) -> bool {
        let until = self.ejected_until_ns.load(Ordering::Relaxed);
        if now_ns < until {
            return false;
        }
        if self.is_ejected() {
            self.ejected.store(false, Ordering::Relaxed);
            self.consecutive_failures.store(0, Ordering::Relaxed);
            return true;
        }
        if self.times_ejected() > 0 && now_ns >= until.saturating_add(base_ns) {
            self.times_ejected.fetch_sub(1, Ordering::Relaxed);
            self.ejected_until_ns.store(now_ns, Ordering::Relaxed);
        }
        false
    }

    /// False while active health checks find the endpoint failing.
    #[inline]
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Records one health check; the endpoint turns unhealthy after `unhealthy_after` failures
    /// in a row and healthy again after `healthy_after` successes in a row. True if its health
    /// changed.
    pub fn record_health_check(
        &self,
        passed: bool,
        healthy_after: u32,
        unhealthy_after: u32,
    ) -> bool {
        if passed {
            self.health_failures.store(0, Ordering::Relaxed);
            let streak = self.health_successes.fetch_add(1, Ordering::Relaxed) + 1;
            if !self.is_healthy() && streak >= healthy_after {
                self.healthy.store(true, Ordering::Relaxed);
                return true;
            }
        } else {
            self.health_successes.store(0, Ordering::Relaxed);
            let streak = self.health_failures.fetch_add(1, Ordering::Relaxed) + 1;
            if self.is_healthy() && streak >= unhealthy_after {
                self.healthy.store(false, Ordering::Relaxed);
                return true;
            }
        }
        false
    }

    /// Whether the balancer may send this endpoint new requests (not ejected, not failing
    /// health checks).
    #[inline]
    pub fn is_available(&self) -> bool {
        !self.is_ejected() && self.is_healthy()
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

    const MS: u64 = 1_000_000;

    #[test]
    fn guards_count_requests_in_flight() {
        let state = Arc::new(EndpointState::new(0));
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

    #[test]
    fn latency_estimate_is_peak_sensitive_and_decays() {
        let state = EndpointState::new(0);
        assert_eq!(state.rtt_estimate_ns(0), DEFAULT_RTT_NS);
        // A slow sample takes over at once.
        state.observe(200 * MS, false, 1000 * MS);
        assert_eq!(state.rtt_estimate_ns(1000 * MS), (200 * MS) as f64);
        // Fast samples pull it down gradually.
        state.observe(MS, false, 2000 * MS);
        let after_one = state.rtt_estimate_ns(2000 * MS);
        assert!(
            after_one < (200 * MS) as f64 && after_one > (150 * MS) as f64,
            "{after_one}"
        );
        // Unused for a long time, it decays towards 0 so the endpoint gets tried again.
        assert!(state.rtt_estimate_ns(62_000 * MS) < (MS as f64));
    }

    #[test]
    fn failures_count_as_slow_and_in_a_row() {
        let state = EndpointState::new(0);
        state.observe(MS, true, 10 * MS);
        state.observe(MS, true, 11 * MS);
        assert_eq!(state.consecutive_failures(), 2);
        assert!(state.rtt_estimate_ns(11 * MS) >= FAILURE_PENALTY_NS as f64 * 0.99);
        state.observe(MS, false, 12 * MS);
        assert_eq!(state.consecutive_failures(), 0);
    }

    #[test]
    fn ejection_lasts_longer_each_time_and_decays() {
        let state = EndpointState::new(0);
        let base = 1000 * MS;
        state.eject(0, base);
        assert!(state.is_ejected() && !state.is_available());
        assert!(!state.expire_ejection(999 * MS, base));
        assert!(state.expire_ejection(1000 * MS, base));
        state.eject(2000 * MS, base);
        assert_eq!(state.times_ejected(), 2);
        assert!(!state.expire_ejection(3999 * MS, base));
        assert!(state.expire_ejection(4000 * MS, base));
        // One more base period without trouble forgets one ejection.
        assert!(!state.expire_ejection(5000 * MS, base));
        assert_eq!(state.times_ejected(), 1);
    }

    #[test]
    fn health_turns_with_thresholds() {
        let state = EndpointState::new(0);
        assert!(!state.record_health_check(false, 1, 2));
        assert!(state.is_healthy());
        assert!(state.record_health_check(false, 1, 2));
        assert!(!state.is_healthy() && !state.is_available());
        assert!(state.record_health_check(true, 1, 2));
        assert!(state.is_healthy());
    }

    #[test]
    fn reported_load_is_clamped_and_optional() {
        let state = EndpointState::new(0);
        assert_eq!(state.reported_load(), None);
        state.report_load(0.25);
        assert_eq!(state.reported_load(), Some(0.25));
        state.report_load(7.0);
        assert_eq!(state.reported_load(), Some(1.0));
        state.report_load(f32::NAN);
        assert_eq!(state.reported_load(), Some(1.0));
    }
}
