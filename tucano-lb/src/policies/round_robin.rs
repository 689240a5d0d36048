//! Round robin: each endpoint in turn.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{ADMISSION_TRIES, admitted};
use crate::backend::Backend;
use crate::balancer::{Balancer, PickContext};
use crate::endpoint_set::EndpointSet;

/// Sends each request to the next endpoint in turn, as the Tucano paper's balancer does.
///
/// One shared counter per service, advanced with a single atomic `fetch_add`; the pick is
/// the counter modulo the set's length, so over `n` picks every endpoint of a stable set gets
/// `n / len` rounded up or down. The counter is kept when the set changes.
///
/// Slow start: an endpoint whose weight factor is below 1 (it is warming up) is accepted with
/// that probability; a refused turn is given up and the next turn taken from the counter, so
/// the share it refuses is spread over the whole rotation rather than given to its neighbour.
/// After a few refusals in a row the last endpoint looked at is taken anyway. A warm endpoint
/// costs one extra relaxed load.
///
/// ```
/// use tucano_lb::{Balancer, EndpointSet, PickContext, RoundRobin};
/// let policy = RoundRobin::new();
/// assert!(policy.pick(&EndpointSet::empty(), &PickContext::none()).is_none());
/// ```
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl RoundRobin {
    /// The name that selects this policy in a [`PolicyRegistry`](crate::PolicyRegistry).
    pub const NAME: &'static str = "round_robin";

    /// A round robin starting at the first endpoint.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Balancer for RoundRobin {
    fn pick<'a>(&self, endpoints: &'a EndpointSet, _: &PickContext<'_>) -> Option<&'a Backend> {
        let len = endpoints.len();
        if len == 0 {
            return None;
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        let backend = endpoints.get(turn % len)?;
        if admitted(backend) {
            return Some(backend);
        }
        self.pick_warming(endpoints, backend)
    }
}

impl RoundRobin {
    /// The slow path: the turn's endpoint is warming up and refused this request.
    #[cold]
    #[inline(never)]
    fn pick_warming<'a>(
        &self,
        endpoints: &'a EndpointSet,
        refused: &'a Backend,
    ) -> Option<&'a Backend> {
        let len = endpoints.len();
        let mut last = refused;
        for _ in 1..ADMISSION_TRIES {
            let turn = self.next.fetch_add(1, Ordering::Relaxed);
            last = endpoints.get(turn % len.max(1))?;
            if admitted(last) {
                break;
            }
        }
        Some(last)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::set;
    use super::*;
    use std::collections::HashMap;
    use tucano_core::InstanceId;

    #[test]
    fn spreads_evenly_within_one() {
        for k in 1..=7 {
            for n in [0, 1, k - 1, k, 10 * k + 3, 1000] {
                let endpoints = set(k);
                let policy = RoundRobin::new();
                let mut hits: HashMap<InstanceId, usize> = HashMap::new();
                for _ in 0..n {
                    let picked = policy.pick(&endpoints, &PickContext::none()).unwrap();
                    *hits.entry(*picked.instance()).or_default() += 1;
                }
                let floor = n / k;
                for backend in &endpoints {
                    let got = hits.get(backend.instance()).copied().unwrap_or(0);
                    assert!(
                        got == floor || got == floor + 1,
                        "k={k} n={n}: endpoint got {got}, expected {floor} or {}",
                        floor + 1
                    );
                }
            }
        }
    }

    #[test]
    fn empty_set_picks_nothing() {
        let policy = RoundRobin::new();
        for _ in 0..3 {
            assert!(
                policy
                    .pick(&EndpointSet::empty(), &PickContext::none())
                    .is_none()
            );
        }
    }

    #[test]
    fn warming_endpoints_get_their_share_and_the_rest_stays_even() {
        crate::rng::seed(11);
        let endpoints = set(4);
        endpoints.get(0).unwrap().state().set_weight_factor(0.25);
        let policy = RoundRobin::new();
        let n = 40_000;
        let hits = super::super::test_support::hits(&policy, &endpoints, n);
        // The warming endpoint gets about a quarter of a full share: 1/13 of the picks.
        let expected = n as f64 * 0.25 / 3.25;
        assert!(
            (hits[0] as f64 - expected).abs() < expected * 0.1,
            "{hits:?}, expected about {expected}"
        );
        let (lo, hi) = (
            hits[1..].iter().min().unwrap(),
            hits[1..].iter().max().unwrap(),
        );
        assert!(hi - lo <= n / 100, "{hits:?}");
    }

    #[test]
    fn a_warming_only_set_still_picks() {
        crate::rng::seed(5);
        let endpoints = set(3);
        for backend in &endpoints {
            backend.state().set_weight_factor(0.0);
        }
        let policy = RoundRobin::new();
        for _ in 0..10 {
            assert!(policy.pick(&endpoints, &PickContext::none()).is_some());
        }
    }

    #[test]
    fn survives_counter_wraparound() {
        let endpoints = set(3);
        let policy = RoundRobin {
            next: AtomicUsize::new(usize::MAX),
        };
        assert!(policy.pick(&endpoints, &PickContext::none()).is_some());
        assert!(policy.pick(&endpoints, &PickContext::none()).is_some());
    }
}
