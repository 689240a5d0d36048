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
mod sampler;
mod snapshot;
mod weighted_round_robin;

pub use consistent_hash::ConsistentHash;
pub use feedback::Feedback;
pub use least_connections::LeastConnections;
pub use peak_ewma::PeakEwma;
pub use power_of_two::PowerOfTwo;
pub use round_robin::RoundRobin;
pub use weighted_round_robin::WeightedRoundRobin;

use std::hint::select_unpredictable;
use std::sync::Arc;

use tucano_core::{BalancingSpec, MAX_CHOICE_COUNT};

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
        (PowerOfTwo::NAME, |spec| {
            Arc::new(PowerOfTwo::with_choices(choices(
                spec,
                PowerOfTwo::DEFAULT_CHOICES,
            )))
        }),
        (PeakEwma::NAME, |spec| {
            Arc::new(PeakEwma::with_choices(choices(
                spec,
                PeakEwma::DEFAULT_CHOICES,
            )))
        }),
        (Feedback::NAME, |spec| {
            Arc::new(Feedback::with_choices(choices(
                spec,
                Feedback::DEFAULT_CHOICES,
            )))
        }),
        (ConsistentHash::NAME, |spec| {
            Arc::new(ConsistentHash::new(&spec.hash_key))
        }),
    ]
}

/// The spec's `choice_count`, or `default`.
fn choices(spec: &BalancingSpec, default: usize) -> usize {
    spec.choice_count.map_or(default, usize::from)
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
    let in_flight = candidate.load_state().queue_length();
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

/// Power of d choices: the index of the candidate with the lowest `key` among `choices`
/// distinct random `candidates` (all of them when there are no more than `choices`),
/// `lower(x, y)` telling whether key `x` is strictly below key `y`. Ties are broken at random
/// without bias. `choices` is clamped to 2..=[`MAX_CHOICE_COUNT`].
///
/// Two choices is the classic power of two choices (Mitzenmacher): constant cost, close to
/// the least loaded in effect. More choices avoid a slow minority better (with 10 endpoints
/// and two choices, the slowest two still get 1/45 of the picks whatever the cost function),
/// at a few nanoseconds per extra choice.
#[inline]
pub(crate) fn best_of<C, K: Copy>(
    candidates: &[C],
    choices: usize,
    key: impl Fn(&C) -> K,
    lower: impl Fn(&K, &K) -> bool,
) -> Option<usize> {
    let len = candidates.len();
    let choices = choices.clamp(2, usize::from(MAX_CHOICE_COUNT));
    if len <= choices {
        return least(candidates, key, lower);
    }
    if choices == 2 {
        let (i, j) = two_distinct(len);
        let (a, b) = (key(candidates.get(i)?), key(candidates.get(j)?));
        // A tie goes to the first drawn, itself uniformly random.
        return Some(if lower(&b, &a) { j } else { i });
    }
    // Floyd's sampling of `choices` distinct indices, without allocating; then their keys,
    // read independently of each other so that the loads overlap; then the lowest, the
    // running best chosen by conditional move (which of two candidates is lower is a coin
    // toss the branch predictor cannot learn), ties broken by reservoir sampling as in `least`.
    rng::with(|rng| {
        let mut drawn = [0usize; MAX_CHOICE_COUNT as usize];
        for (k, j) in (len - choices..len).enumerate() {
            let t = rng.below(j + 1);
            drawn[k] = if drawn[..k].contains(&t) { j } else { t };
        }
        let drawn = &drawn[..choices];
        let first = key(candidates.get(drawn[0])?);
        let mut keys = [first; MAX_CHOICE_COUNT as usize];
        for (slot, &index) in keys.iter_mut().zip(drawn).skip(1) {
            *slot = key(candidates.get(index)?);
        }
        let mut best = 0;
        let mut ties: usize = 1;
        for k in 1..choices {
            let better = lower(&keys[k], &keys[best]);
            if !better & !lower(&keys[best], &keys[k]) {
                ties += 1;
                if rng.below(ties) == 0 {
                    best = k;
                }
            }
            ties = select_unpredictable(better, 1, ties);
            best = select_unpredictable(better, k, best);
        }
        drawn.get(best).copied()
    })
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
    fn best_of_d_draws_distinct_candidates_uniformly() {
        rng::seed(31);
        // Keys equal to indices: the pick is the lowest index drawn, so index i wins when it
        // is drawn and no lower one is: P = C(n-1-i, d-1) / C(n, d).
        let keys: Vec<usize> = (0..10).collect();
        let n = 200_000;
        for d in [3, 4, 9] {
            let mut hits = [0usize; 10];
            for _ in 0..n {
                hits[best_of(&keys, d, |&k| k, |a, b| a < b).unwrap()] += 1;
            }
            let choose = |n: u64, k: u64| -> f64 {
                (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
            };
            for (i, &got) in hits.iter().enumerate() {
                let expected = if 9 - i >= d - 1 {
                    choose(9 - i as u64, d as u64 - 1) / choose(10, d as u64)
                } else {
                    0.0
                };
                let share = got as f64 / n as f64;
                assert!((share - expected).abs() < 0.005, "d={d}: {hits:?}");
            }
        }
        // No more candidates than choices: the exact minimum.
        assert_eq!(best_of(&keys[..4], 4, |&k| k, |a, b| a < b), Some(0));
        assert_eq!(best_of(&keys[..0], 4, |&k| k, |a, b| a < b), None);
    }

    #[test]
    fn choice_count_reaches_the_policies() {
        rng::seed(32);
        // Ten endpoints, loads 0..9 in flight: with d choices the most loaded d-1 never win.
        let set = set(10);
        let _guards: Vec<_> = set
            .iter()
            .enumerate()
            .flat_map(|(i, b)| (0..i).map(|_| b.state().track()).collect::<Vec<_>>())
            .collect();
        for (policy, d) in [("power_of_two", 2), ("power_of_two", 5), ("peak_ewma", 4)] {
            let spec = BalancingSpec {
                choice_count: Some(d),
                ..BalancingSpec::named(policy)
            };
            let created = PolicyRegistry::builtin().create(&spec).unwrap();
            let hits = hits(built(created, &set).as_ref(), &set, 20_000);
            let top = usize::from(d) - 1;
            assert!(
                hits[10 - top..].iter().all(|&h| h == 0),
                "{policy} d={d}: {hits:?}"
            );
            assert!(hits[9 - top] > 0, "{policy} d={d}: {hits:?}");
        }
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
