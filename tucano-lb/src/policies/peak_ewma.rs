//! Peak EWMA: power of two choices on expected latency.

use std::sync::Arc;

use super::lighter;
use super::sampler::{Cost, Sampler};
use super::snapshot::Candidate;
use crate::backend::Backend;
use crate::balancer::{Balancer, PickContext};
use crate::endpoint_set::EndpointSet;

/// Picks [`DEFAULT_CHOICES`](Self::DEFAULT_CHOICES) (4, or the spec's `choice_count`)
/// distinct endpoints at random and sends the request to the one with the lowest cost
///
/// ```text
/// cost = rtt_estimate_ns(now) × (in_flight + 1) / effective_weight
/// ```
///
/// as tower's and Finagle's peak-EWMA balancers do: the latency the request can expect there,
/// scaled by the queue it would join. The latency estimate is
/// [`EndpointState::rtt_estimate_ns`](crate::EndpointState::rtt_estimate_ns): peak-sensitive
/// (a sample above it replaces it at once), averaged down by faster samples, and decaying
/// towards 0 while the endpoint gets no traffic, so that an avoided endpoint is tried again.
/// Failures (5xx, connection failures) are recorded by
/// [`EndpointState::observe`](crate::EndpointState::observe) as a penalty latency of at least
/// [`FAILURE_PENALTY_NS`](crate::FAILURE_PENALTY_NS), so an endpoint that fails fast looks
/// slow, not attractive. Costs are compared by cross-multiplying (no division); ties are
/// broken at random.
///
/// Why four choices rather than tower's two: whatever the cost, a pick can only choose among
/// the endpoints it drew, and with two draws out of 10 endpoints whose latencies span 1 ms to
/// 1 s the slowest two are both drawn 1 time in 45, which alone puts the 99th percentile at
/// the second slowest endpoint's latency (the skew experiment in docs/benchmarks.md). With four
/// draws the slowest three are all drawn 1 time in 210. `choice_count: 2` gives classic P2C.
///
/// Constant cost per pick whatever the set's size: a few random draws and as many endpoints'
/// counters and estimates, read through a dense array of state handles and weights that
/// [`rebuild`](Balancer::rebuild) prepares (as for [`PowerOfTwo`](crate::PowerOfTwo)).
///
/// ```
/// use tucano_lb::{Balancer, EndpointSet, PickContext, PolicyRegistry};
/// use tucano_core::BalancingSpec;
/// let policy = PolicyRegistry::builtin()
///     .create(&BalancingSpec::named("peak_ewma"))
///     .unwrap();
/// assert!(policy.pick(&EndpointSet::empty(), &PickContext::at(1_000)).is_none());
/// ```
#[derive(Debug)]
pub struct PeakEwma {
    sampler: Sampler,
}

impl Default for PeakEwma {
    fn default() -> Self {
        Self::new()
    }
}

impl PeakEwma {
    /// The name that selects this policy in a [`PolicyRegistry`](crate::PolicyRegistry).
    pub const NAME: &'static str = "peak_ewma";
    /// Endpoints compared per pick unless the spec's `choice_count` says otherwise.
    pub const DEFAULT_CHOICES: usize = 4;

    /// A peak-EWMA policy comparing [`DEFAULT_CHOICES`](Self::DEFAULT_CHOICES) endpoints (the
    /// estimates live in each endpoint's state); [`rebuild`](Balancer::rebuild) prepares it
    /// for a set.
    pub fn new() -> Self {
        Self::with_choices(Self::DEFAULT_CHOICES)
    }

    /// The same comparing `choices` random endpoints per pick (2 to 16).
    pub fn with_choices(choices: usize) -> Self {
        Self {
            sampler: Sampler::new(choices),
        }
    }
}

/// Expected latency at a time: `rtt × (in_flight + 1)` over the effective weight.
struct Latency {
    now_ns: u64,
}

impl Cost for Latency {
    type Key = (f64, f64);

    #[inline]
    fn key<C: Candidate>(&self, candidate: &C) -> Self::Key {
        let state = candidate.load_state();
        let queue = state.queue_length();
        (
            state.rtt_estimate_ns(self.now_ns) * queue,
            candidate.effective_weight(),
        )
    }

    #[inline]
    fn lower(a: &Self::Key, b: &Self::Key) -> bool {
        lighter(*a, *b)
    }
}

impl Balancer for PeakEwma {
    #[inline]
    fn pick<'a>(
        &self,
        endpoints: &'a EndpointSet,
        request: &PickContext<'_>,
    ) -> Option<&'a Backend> {
        let cost = Latency {
            now_ns: request.now_ns(),
        };
        self.sampler.pick(endpoints, self.sampler.choices(), &cost)
    }

    fn rebuild(&self, endpoints: &EndpointSet) -> Option<Arc<dyn Balancer>> {
        Some(Arc::new(Self {
            sampler: self.sampler.rebuilt(endpoints),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::endpoint_state::InFlightGuard;

    const MS: u64 = 1_000_000;

    /// Runs `policy` over `set` for 1 s of simulated time, a request every 0.5 ms; the request
    /// sent to endpoint `i` takes `latency(i)` and fails if it says so, and is observed when it
    /// completes. Returns the time and endpoint of every pick.
    fn simulate(
        policy: &dyn Balancer,
        set: &EndpointSet,
        latency: impl Fn(usize, u64) -> (u64, bool),
    ) -> Vec<(u64, usize)> {
        crate::rng::seed(12);
        let mut picks = Vec::new();
        let mut pending: Vec<(u64, u64, bool, usize, InFlightGuard)> = Vec::new();
        let step = MS / 2;
        for tick in 0..2000u64 {
            let now = tick * step;
            // Complete what finished by now, in time order.
            pending.sort_by_key(|p| std::cmp::Reverse(p.0));
            while pending.last().is_some_and(|p| p.0 <= now) {
                let (done, took, failed, index, guard) = pending.pop().unwrap();
                set.get(index).unwrap().state().observe(took, failed, done);
                drop(guard);
            }
            let picked = policy.pick(set, &PickContext::at(now)).unwrap();
            let index = set
                .iter()
                .position(|b| b.instance() == picked.instance())
                .unwrap();
            let (took, failed) = latency(index, tick);
            pending.push((now + took, took, failed, index, picked.state().track()));
            picks.push((now, index));
        }
        picks
    }

    /// Share of the picks from `from_ns` on that went to endpoint `index`.
    fn share_after(picks: &[(u64, usize)], from_ns: u64, index: usize) -> f64 {
        let late: Vec<_> = picks.iter().filter(|(t, _)| *t >= from_ns).collect();
        late.iter().filter(|(_, i)| *i == index).count() as f64 / late.len() as f64
    }

    /// A healthy endpoint's latency: 2 to 8 ms.
    fn healthy(tick: u64) -> u64 {
        2 * MS + (tick * 7919 % 7) * MS
    }

    #[test]
    fn moves_traffic_off_a_slow_endpoint_within_a_second() {
        let set = set(10);
        let picks = simulate(ready::<PeakEwma>(&set).as_ref(), &set, |i, tick| {
            (if i == 0 { 200 * MS } else { healthy(tick) }, false)
        });
        let late = share_after(&picks, 500 * MS, 0);
        assert!(
            late < 0.01,
            "slow endpoint still got {late:.3} of the picks"
        );
        // Round robin, for comparison, keeps sending it a tenth.
        let rr = simulate(&crate::RoundRobin::new(), &set, |_, _| (MS, false));
        assert!((share_after(&rr, 500 * MS, 0) - 0.1).abs() < 0.01);
    }

    #[test]
    fn moves_traffic_off_an_endpoint_failing_fast_within_a_second() {
        let set = set(10);
        // Endpoint 0 answers 503 in 0.2 ms: fast, but failures count as a penalty latency.
        let picks = simulate(ready::<PeakEwma>(&set).as_ref(), &set, |i, tick| {
            if i == 0 {
                (MS / 5, true)
            } else {
                (healthy(tick), false)
            }
        });
        let late = share_after(&picks, 500 * MS, 0);
        assert!(
            late < 0.01,
            "failing endpoint still got {late:.3} of the picks"
        );
        // Power of two on in-flight alone is attracted by the fast failures.
        let p2c = simulate(
            ready::<crate::policies::PowerOfTwo>(&set).as_ref(),
            &set,
            |i, tick| {
                if i == 0 {
                    (MS / 5, true)
                } else {
                    (healthy(tick), false)
                }
            },
        );
        assert!(share_after(&p2c, 500 * MS, 0) > 0.1);
    }

    #[test]
    fn spreads_evenly_over_equal_endpoints() {
        crate::rng::seed(13);
        let set = set(10);
        let hits = hits(ready::<PeakEwma>(&set).as_ref(), &set, 200_000);
        assert!(relative_std(&hits) <= 0.02, "{hits:?}");
    }

    #[test]
    fn prefers_the_faster_endpoint_and_honours_weights() {
        crate::rng::seed(14);
        let set = weighted(&[1, 1, 4]);
        set.get(0).unwrap().state().observe(100 * MS, false, 0);
        set.get(1).unwrap().state().observe(400 * MS, false, 0);
        set.get(2).unwrap().state().observe(400 * MS, false, 0);
        let policy = ready::<PeakEwma>(&set);
        let mut hits = [0usize; 3];
        for _ in 0..3000 {
            let picked = policy.pick(&set, &PickContext::at(MS)).unwrap();
            hits[set
                .iter()
                .position(|b| b.instance() == picked.instance())
                .unwrap()] += 1;
        }
        // 400 ms at weight 4 costs 100, as does the 100 ms endpoint at weight 1: they tie,
        // and the 400 ms one at weight 1 loses every comparison.
        assert_eq!(hits[1], 0, "{hits:?}");
        assert!(hits[0] > 1000 && hits[2] > 1000, "{hits:?}");
    }
}
