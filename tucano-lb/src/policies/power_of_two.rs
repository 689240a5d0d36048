//! Power of two choices on requests in flight.

use std::sync::Arc;

use super::sampler::{Cost, Sampler};
use super::snapshot::Candidate;
use super::{connection_load, lighter};
use crate::backend::Backend;
use crate::balancer::{Balancer, PickContext};
use crate::endpoint_set::EndpointSet;

/// Picks two distinct endpoints at random (or the spec's `choice_count`) and sends the request
/// to the less loaded one, load being `(in_flight + 1) / effective_weight` as for
/// [`LeastConnections`](crate::LeastConnections) (ties go to the first drawn, itself random).
///
/// Two random draws and two endpoints' counters per pick, whatever the set's size: close to
/// least connections in effect (the maximum load grows as `log log n` instead of `log n` for a
/// random choice) at constant cost, as Envoy's least-request and tower's `p2c` balancers do.
/// [`rebuild`](Balancer::rebuild) copies each endpoint's state handle and weight into a dense
/// array (16 bytes an endpoint), so that a pick in a large set touches two small entries and
/// two load states rather than two whole endpoint records.
///
/// ```
/// use tucano_lb::{Balancer, EndpointSet, PickContext, PolicyRegistry};
/// use tucano_core::BalancingSpec;
/// let policy = PolicyRegistry::builtin()
///     .create(&BalancingSpec::named("power_of_two"))
///     .unwrap();
/// assert!(policy.pick(&EndpointSet::empty(), &PickContext::none()).is_none());
/// ```
#[derive(Debug)]
pub struct PowerOfTwo {
    sampler: Sampler,
}

impl Default for PowerOfTwo {
    fn default() -> Self {
        Self::new()
    }
}

impl PowerOfTwo {
    /// The name that selects this policy in a [`PolicyRegistry`](crate::PolicyRegistry).
    pub const NAME: &'static str = "power_of_two";
    /// Endpoints compared per pick unless the spec's `choice_count` says otherwise.
    pub const DEFAULT_CHOICES: usize = 2;

    /// A power-of-two-choices policy; [`rebuild`](Balancer::rebuild) prepares it for a set.
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

/// Requests in flight per unit of weight.
struct Load;

impl Cost for Load {
    type Key = (f64, f64);

    #[inline]
    fn key<C: Candidate>(&self, candidate: &C) -> Self::Key {
        connection_load(candidate)
    }

    #[inline]
    fn lower(a: &Self::Key, b: &Self::Key) -> bool {
        lighter(*a, *b)
    }
}

impl Balancer for PowerOfTwo {
    #[inline]
    fn pick<'a>(&self, endpoints: &'a EndpointSet, _: &PickContext<'_>) -> Option<&'a Backend> {
        self.sampler.pick(endpoints, self.sampler.choices(), &Load)
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

    #[test]
    fn spreads_evenly_with_equal_load() {
        crate::rng::seed(4);
        for k in [2, 3, 10, 50] {
            let set = set(k);
            // Nothing held in flight: every comparison is a tie.
            let hits = hits(ready::<PowerOfTwo>(&set).as_ref(), &set, 20_000 * k);
            assert!(relative_std(&hits) <= 0.02, "k={k}: {hits:?}");
        }
    }

    #[test]
    fn spreads_evenly_when_requests_stay_in_flight_for_a_while() {
        crate::rng::seed(8);
        let set = set(10);
        let policy = ready::<PowerOfTwo>(&set);
        let mut hits = vec![0usize; 10];
        // Each request stays in flight for the next 20 picks.
        let mut window = std::collections::VecDeque::new();
        for _ in 0..200_000 {
            let picked = policy.pick(&set, &PickContext::none()).unwrap();
            let index = set
                .iter()
                .position(|b| b.instance() == picked.instance())
                .unwrap();
            hits[index] += 1;
            window.push_back(picked.state().track());
            if window.len() > 20 {
                window.pop_front();
            }
        }
        assert!(relative_std(&hits) <= 0.02, "{hits:?}");
    }

    #[test]
    fn avoids_a_busy_endpoint() {
        crate::rng::seed(6);
        let set = set(4);
        let busy = set.get(3).unwrap();
        let _guards: Vec<_> = (0..3).map(|_| busy.state().track()).collect();
        let hits = hits(ready::<PowerOfTwo>(&set).as_ref(), &set, 4000);
        // It loses every comparison, so it is never picked.
        assert_eq!(hits[3], 0, "{hits:?}");
    }
}
