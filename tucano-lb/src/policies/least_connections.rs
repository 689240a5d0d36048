//! Least connections: the endpoint with the fewest requests in flight for its weight.

use std::sync::Arc;

use super::snapshot::Snapshot;
use super::{connection_load, least, lighter};
use crate::backend::Backend;
use crate::balancer::{Balancer, PickContext};
use crate::endpoint_set::EndpointSet;

/// Sends each request to the endpoint with the lowest load, `(in_flight + 1) /
/// effective_weight` (the request being placed counted, so that at equal concurrency the
/// heavier endpoint wins and one warming up in slow start looks busier than its peers).
///
/// The scan is exact and reads every endpoint's counters: O(n) per pick, about 2 ns per
/// endpoint while they fit in the CPU's caches, which is fine for the tens of endpoints a
/// service usually has but grows linearly (see the `pick` benchmark: about 2 µs at 1000
/// endpoints). [`PowerOfTwo`](crate::PowerOfTwo) approximates it in constant time for large
/// sets. [`rebuild`](Balancer::rebuild) copies each endpoint's state handle and weight into a
/// dense array (16 bytes an endpoint) so the scan does not walk the whole endpoint records.
///
/// Ties are broken by reservoir sampling, which is unbiased: the scan keeps the `k`-th
/// endpoint found at the lowest load with probability `1/k` (resetting `k` to 1 when a
/// strictly lower load appears), so when the scan ends each of the `m` tied endpoints is the
/// one kept with probability `1/k · k/(k+1) · … · (m-1)/m = 1/m`, whatever their positions in
/// the set. (Starting the scan at a random position and keeping the first minimum would not
/// be: a tied endpoint that follows a long run of busier ones would be chosen more often.)
///
/// ```
/// use tucano_lb::{Balancer, EndpointSet, PickContext, PolicyRegistry};
/// use tucano_core::BalancingSpec;
/// let policy = PolicyRegistry::builtin()
///     .create(&BalancingSpec::named("least_connections"))
///     .unwrap();
/// assert!(policy.pick(&EndpointSet::empty(), &PickContext::none()).is_none());
/// ```
#[derive(Debug, Default)]
pub struct LeastConnections {
    snapshot: Snapshot,
}

impl LeastConnections {
    /// The name that selects this policy in a [`PolicyRegistry`](crate::PolicyRegistry).
    pub const NAME: &'static str = "least_connections";

    /// A least-connections policy; [`rebuild`](Balancer::rebuild) prepares it for a set.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Balancer for LeastConnections {
    fn pick<'a>(&self, endpoints: &'a EndpointSet, _: &PickContext<'_>) -> Option<&'a Backend> {
        let index = match self.snapshot.slots_for(endpoints) {
            Some(slots) => least(slots, connection_load, |a, b| lighter(*a, *b)),
            None => least(endpoints.as_slice(), connection_load, |a, b| {
                lighter(*a, *b)
            }),
        }?;
        endpoints.get(index)
    }

    fn rebuild(&self, endpoints: &EndpointSet) -> Option<Arc<dyn Balancer>> {
        Some(Arc::new(Self {
            snapshot: Snapshot::new(endpoints),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn avoids_a_busy_endpoint() {
        crate::rng::seed(1);
        let set = set(3);
        let busy = set.get(1).unwrap();
        let _guards: Vec<_> = (0..5).map(|_| busy.state().track()).collect();
        let policy = ready::<LeastConnections>(&set);
        // Guards held on every pick: it fills the others up to the busy one first.
        let mut held = Vec::new();
        for _ in 0..10 {
            let picked = policy.pick(&set, &PickContext::none()).unwrap();
            assert_ne!(picked.instance(), busy.instance());
            held.push(picked.state().track());
        }
        assert_eq!(set.get(0).unwrap().state().in_flight(), 5);
        assert_eq!(set.get(2).unwrap().state().in_flight(), 5);
        // Now all are equal: the next picks are spread over all three.
        let hits = hits(policy.as_ref(), &set, 3000);
        assert!(hits.iter().all(|&h| h > 800), "{hits:?}");
    }

    #[test]
    fn follows_weights_and_slow_start() {
        let set = weighted(&[2, 1]);
        let policy = ready::<LeastConnections>(&set);
        let mut held = Vec::new();
        for _ in 0..30 {
            let picked = policy.pick(&set, &PickContext::none()).unwrap();
            held.push(picked.state().track());
        }
        assert_eq!(set.get(0).unwrap().state().in_flight(), 20);
        assert_eq!(set.get(1).unwrap().state().in_flight(), 10);
        drop(held);
        // Warming at a tenth of its weight, the heavy endpoint looks like weight 0.2.
        set.get(0).unwrap().state().set_weight_factor(0.1);
        let mut held = Vec::new();
        for _ in 0..12 {
            let picked = policy.pick(&set, &PickContext::none()).unwrap();
            held.push(picked.state().track());
        }
        assert_eq!(set.get(0).unwrap().state().in_flight(), 2);
        assert_eq!(set.get(1).unwrap().state().in_flight(), 10);
    }

    #[test]
    fn ties_are_broken_without_bias() {
        crate::rng::seed(2);
        // Endpoints 1, 3 and 4 tie; 0 and 2 are busy, so a scan from a random start
        // keeping the first minimum would favour 1 and 3 (each follows a busy one).
        let set = set(5);
        let _busy: Vec<_> = [0, 2]
            .iter()
            .map(|&i| set.get(i).unwrap().state().track())
            .collect();
        let n = 30_000;
        let hits = hits(ready::<LeastConnections>(&set).as_ref(), &set, n);
        assert_eq!(hits[0] + hits[2], 0, "{hits:?}");
        for i in [1, 3, 4] {
            let share = hits[i] as f64 / n as f64;
            assert!((share - 1.0 / 3.0).abs() < 0.02, "{hits:?}");
        }
    }
}
