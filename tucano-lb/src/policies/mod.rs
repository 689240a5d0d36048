//! The balancing policies Tucano ships, one per file.
//!
//! Adding a policy: write it in its own file here, export it, and list it in [`builtin`].
//!
//! Every policy's `pick` returns `None` on an empty set, never divides by the set's length
//! or a weight, allocates nothing and takes no lock: it reads the per-endpoint atomics of
//! [`EndpointState`](crate::EndpointState) and, for the policies that need one, a table built
//! by [`Balancer::rebuild`] off the request path.
//!
//! Load comparisons shared by several policies count the request being placed: an endpoint's
//! load is `(in_flight + 1) / effective_weight`, so that heavier endpoints win at equal
//! concurrency and an endpoint warming up (slow start, a weight factor below 1) looks busier
//! than its peers even when it is idle. Two such loads are compared by cross-multiplying,
//! which needs no division and orders an endpoint of weight 0 after every other.

mod consistent_hash;
mod feedback;
mod least_connections;
mod peak_ewma;
mod power_of_two;
mod round_robin;
mod snapshot;
mod weighted_round_robin;

pub use consistent_hash::ConsistentHash;
pub use feedback::Feedback;
pub use least_connections::LeastConnections;
pub use peak_ewma::PeakEwma;
pub use power_of_two::PowerOfTwo;
pub use round_robin::RoundRobin;
pub use weighted_round_robin::WeightedRoundRobin;

use std::sync::Arc;

use tucano_core::BalancingSpec;

use crate::backend::Backend;
use crate::balancer::Balancer;
use crate::rng;
use snapshot::Candidate;

/// The name of the policy a service gets unless it asks for another.
pub const DEFAULT_POLICY: &str = RoundRobin::NAME;

/// Makes a fresh instance of a built-in policy for a service's balancing spec.
pub(crate) type NewBalancer = fn(&BalancingSpec) -> Arc<dyn Balancer>;

/// Every built-in policy: its name and how to make a fresh instance of it.
pub(crate) fn builtin() -> Vec<(&'static str, NewBalancer)> {
    vec![
        (RoundRobin::NAME, |_| Arc::new(RoundRobin::new())),
        (WeightedRoundRobin::NAME, |_| {
            Arc::new(WeightedRoundRobin::new())
        }),
        (
            LeastConnections::NAME,
            |_| Arc::new(LeastConnections::new()),
        ),
        (PowerOfTwo::NAME, |_| Arc::new(PowerOfTwo::new())),
        (PeakEwma::NAME, |_| Arc::new(PeakEwma::new())),
        (Feedback::NAME, |_| Arc::new(Feedback::new())),
        (ConsistentHash::NAME, |spec| {
            Arc::new(ConsistentHash::new(&spec.hash_key))
        }),
    ]
}

/// How many endpoints a slow-start admission looks at before it takes the last one anyway.
pub(crate) const ADMISSION_TRIES: usize = 8;

/// Slow-start admission: an endpoint whose weight factor is below 1 (warming up) is accepted
/// with that probability. One relaxed load when the endpoint is warm.
#[inline]
pub(crate) fn admitted(backend: &Backend) -> bool {
    let factor = backend.state().weight_factor();
    factor >= 1.0 || admit_warming(factor)
}

#[cold]
fn admit_warming(factor: f32) -> bool {
    rng::unit() < f64::from(factor)
}

/// `(in_flight + 1)` and the effective weight of `candidate`: its load is the first divided
/// by the second (see the module documentation).
#[inline]
pub(crate) fn connection_load<C: Candidate>(candidate: &C) -> (f64, f64) {
    let in_flight = candidate.load_state().in_flight() as f64 + 1.0;
    (in_flight, candidate.effective_weight())
}

/// True when load `a` (`numerator / weight`) is strictly below load `b`, compared without
/// dividing: a weight of 0 (or below, or NaN) counts as an infinite load.
#[inline]
pub(crate) fn lighter((a_num, a_weight): (f64, f64), (b_num, b_weight): (f64, f64)) -> bool {
    let a_weight = positive(a_weight);
    let b_weight = positive(b_weight);
    a_num * b_weight < b_num * a_weight
}

/// `weight` if it is above 0, else 0 (so that NaN counts as 0).
#[inline]
fn positive(weight: f64) -> f64 {
    if weight > 0.0 { weight } else { 0.0 }
}

/// Two distinct random indices below `len` (`len` ≥ 2), uniformly over ordered pairs.
#[inline]
pub(crate) fn two_distinct(len: usize) -> (usize, usize) {
    let first = rng::below(len);
    let mut second = rng::below(len.saturating_sub(1));
    if second >= first {
        second += 1;
    }
    (first, second)
}

/// Power of two choices: the index of the better of two distinct random `candidates` (at
/// least two), `beats(b, a)` telling whether `b` is strictly better than `a`; a tie goes to
/// the first drawn, itself uniformly random, so ties are broken without bias.
#[inline]
pub(crate) fn best_of_two<C>(candidates: &[C], beats: impl Fn(&C, &C) -> bool) -> Option<usize> {
    let (i, j) = two_distinct(candidates.len());
    let (a, b) = (candidates.get(i)?, candidates.get(j)?);
    Some(if beats(b, a) { j } else { i })
}

/// The index of the candidate with the lowest `key`, `lower(x, y)` telling whether key `x` is
/// strictly below key `y`; `None` for no candidate.
///
/// Ties are broken by reservoir sampling, which is unbiased: the scan keeps the `k`-th
/// candidate found at the lowest key with probability `1/k` (starting again from 1 when a
/// strictly lower key appears), so when it ends each of the `m` tied candidates is the one
/// kept with probability `1/k · k/(k+1) · … · (m-1)/m = 1/m`, wherever they are in the set.
/// (Scanning from a random start and keeping the first minimum would not be: a tied candidate
/// following a long run of worse ones would be chosen more often.)
#[inline]
pub(crate) fn least<C, K>(
    candidates: &[C],
    key: impl Fn(&C) -> K,
    lower: impl Fn(&K, &K) -> bool,
) -> Option<usize> {
    let mut candidates = candidates.iter().enumerate();
    let (mut best, first) = candidates.next()?;
    let mut best_key = key(first);
    let mut ties: usize = 1;
    for (index, candidate) in candidates {
        let key = key(candidate);
        if lower(&key, &best_key) {
            (best, best_key, ties) = (index, key, 1);
        } else if !lower(&best_key, &key) {
            ties += 1;
            if rng::below(ties) == 0 {
                best = index;
            }
        }
    }
    Some(best)
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Endpoint sets for the policies' tests.

    use std::collections::HashMap;

    use tucano_core::transport::Endpoint;
    use tucano_core::{InstanceId, WorkerId};

    use crate::balancer::{Balancer, PickContext};
    use crate::endpoint_set::EndpointSet;

    /// An endpoint of weight `weight`.
    pub fn endpoint(weight: u32) -> Endpoint {
        Endpoint {
            instance: InstanceId::new(),
            worker: WorkerId::new("w1").unwrap(),
            proxy: ([127, 0, 0, 1], 8081).into(),
            address: ([127, 0, 0, 1], 9000).into(),
            weight,
        }
    }

    /// A set of `k` endpoints of weight 1.
    pub fn set(k: usize) -> EndpointSet {
        weighted(&vec![1; k])
    }

    /// A set with one endpoint per weight.
    pub fn weighted(weights: &[u32]) -> EndpointSet {
        let endpoints: Vec<Endpoint> = weights.iter().map(|&w| endpoint(w)).collect();
        EndpointSet::new(&endpoints)
    }

    /// How many of `n` picks (with no request in flight) each endpoint of `set` gets, in
    /// the set's order.
    pub fn hits(policy: &dyn Balancer, set: &EndpointSet, n: usize) -> Vec<usize> {
        let index: HashMap<InstanceId, usize> = set
            .iter()
            .enumerate()
            .map(|(i, b)| (*b.instance(), i))
            .collect();
        let mut hits = vec![0; set.len()];
        for _ in 0..n {
            let picked = policy.pick(set, &PickContext::none()).unwrap();
            hits[index[picked.instance()]] += 1;
        }
        hits
    }

    /// `policy` rebuilt for `set`, as the routing table does.
    pub fn built(
        policy: std::sync::Arc<dyn Balancer>,
        set: &EndpointSet,
    ) -> std::sync::Arc<dyn Balancer> {
        policy.rebuild(set).unwrap_or(policy)
    }

    /// A fresh `B` rebuilt for `set`.
    pub fn ready<B: Balancer + Default>(set: &EndpointSet) -> std::sync::Arc<dyn Balancer> {
        built(std::sync::Arc::new(B::default()), set)
    }

    /// Relative standard deviation of `hits`.
    pub fn relative_std(hits: &[usize]) -> f64 {
        let n = hits.len() as f64;
        let mean = hits.iter().sum::<usize>() as f64 / n;
        let var = hits.iter().map(|&h| (h as f64 - mean).powi(2)).sum::<f64>() / n;
        var.sqrt() / mean
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use crate::balancer::PickContext;
    use crate::endpoint_set::EndpointSet;
    use crate::policy_registry::PolicyRegistry;

    #[test]
    fn every_builtin_is_registered_and_handles_empty_and_single_sets() {
        let registry = PolicyRegistry::builtin();
        let one = set(1);
        for (name, _) in builtin() {
            assert!(registry.contains(name), "{name}");
            let policy = registry.create(&BalancingSpec::named(name)).unwrap();
            // Before any rebuild, and after a rebuild for the empty set.
            assert!(
                policy
                    .pick(&EndpointSet::empty(), &PickContext::none())
                    .is_none(),
                "{name}"
            );
            let empty = built(Arc::clone(&policy), &EndpointSet::empty());
            assert!(
                empty
                    .pick(&EndpointSet::empty(), &PickContext::none())
                    .is_none(),
                "{name}"
            );
            // A policy built for the empty set still picks from a set it was not built for.
            assert!(empty.pick(&one, &PickContext::none()).is_some(), "{name}");
            let policy = built(policy, &one);
            for _ in 0..3 {
                let picked = policy.pick(&one, &PickContext::none()).unwrap();
                assert_eq!(picked.instance(), one.get(0).unwrap().instance(), "{name}");
            }
            assert!(
                policy
                    .pick(&EndpointSet::empty(), &PickContext::none())
                    .is_none(),
                "{name}"
            );
        }
    }

    #[test]
    fn built_and_unbuilt_policies_decide_alike() {
        // A varied set: weights, requests in flight, latencies, reported loads, slow start.
        let set = weighted(&[1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3]);
        let mut guards = Vec::new();
        for (i, backend) in set.iter().enumerate() {
            let state = backend.state();
            for _ in 0..i % 4 {
                guards.push(state.track());
            }
            state.observe(1_000_000 * (1 + i as u64 % 5), false, 1_000);
            state.report_load(i as f32 / 12.0);
        }
        set.get(4).unwrap().state().set_weight_factor(0.3);
        let registry = PolicyRegistry::builtin();
        for (name, _) in builtin() {
            let unbuilt = registry.create(&BalancingSpec::named(name)).unwrap();
            let rebuilt = built(registry.create(&BalancingSpec::named(name)).unwrap(), &set);
            let picks = |policy: &dyn Balancer| {
                rng::seed(77);
                (0..500)
                    .map(|_| {
                        *policy
                            .pick(&set, &PickContext::at(2_000))
                            .unwrap()
                            .instance()
                    })
                    .collect::<Vec<_>>()
            };
            let (a, b) = (picks(unbuilt.as_ref()), picks(rebuilt.as_ref()));
            // Weighted round robin follows weights only once built; the others decide alike.
            if name != WeightedRoundRobin::NAME {
                assert_eq!(a, b, "{name}");
            }
        }
        drop(guards);
    }

    #[test]
    fn weight_zero_and_nan_count_as_infinite_load() {
        assert!(lighter((5.0, 1.0), (1.0, 0.0)));
        assert!(!lighter((1.0, 0.0), (5.0, 1.0)));
        assert!(!lighter((1.0, 0.0), (1.0, 0.0)));
        assert!(lighter((5.0, 1.0), (1.0, f64::NAN)));
        assert!(lighter((1.0, 2.0), (1.0, 1.0)));
    }

    #[test]
    fn two_distinct_are_distinct_and_cover_all_pairs() {
        rng::seed(3);
        let mut seen = [[0u32; 3]; 3];
        for _ in 0..3000 {
            let (a, b) = two_distinct(3);
            assert_ne!(a, b);
            seen[a][b] += 1;
        }
        for (a, row) in seen.iter().enumerate() {
            for (b, &count) in row.iter().enumerate() {
                assert_eq!(count == 0, a == b, "{seen:?}");
            }
        }
    }
}
