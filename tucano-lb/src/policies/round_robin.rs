//! Round robin: each endpoint in turn.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::backend::Backend;
use crate::balancer::{Balancer, PickContext};
use crate::endpoint_set::EndpointSet;

/// Sends each request to the next endpoint in turn, as the Tucano paper's balancer does.
///
/// One shared counter per service, advanced with a single atomic `fetch_add`; the pick is
/// the counter modulo the set's length, so over `n` picks every endpoint of a stable set gets
/// `n / len` rounded up or down. The counter is kept when the set changes.
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
        endpoints.get(turn % len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use tucano_core::transport::Endpoint;
    use tucano_core::{InstanceId, WorkerId};

    fn set(k: usize) -> EndpointSet {
        let endpoints: Vec<Endpoint> = (0..k)
            .map(|i| Endpoint {
                instance: InstanceId::new(),
                worker: WorkerId::new("w1").unwrap(),
                proxy: ([127, 0, 0, 1], 8081).into(),
                address: ([127, 0, 0, 1], 9000 + i as u16).into(),
                weight: 1,
            })
            .collect();
        EndpointSet::new(&endpoints)
    }

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
    fn survives_counter_wraparound() {
        let endpoints = set(3);
        let policy = RoundRobin {
            next: AtomicUsize::new(usize::MAX),
        };
        assert!(policy.pick(&endpoints, &PickContext::none()).is_some());
        assert!(policy.pick(&endpoints, &PickContext::none()).is_some());
    }
}
