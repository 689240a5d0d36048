//! Weighted round robin: each endpoint in turn, as often as its weight says, interleaved.

use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{ADMISSION_TRIES, admitted};
use crate::backend::Backend;
use crate::balancer::{Balancer, PickContext};
use crate::endpoint_set::EndpointSet;

/// The longest schedule built: past it, weights are scaled down to fit (each endpoint keeps at
/// least one turn, so a set with more endpoints than this gets one turn per endpoint).
pub(crate) const MAX_SCHEDULE: u64 = 1 << 20;

/// Sends requests to the endpoints in proportion to their weights, smoothly interleaved.
///
/// [`rebuild`](Balancer::rebuild) precomputes the schedule: the weights are divided by their
/// greatest common divisor, and endpoint `i` of weight `wᵢ` gets its `k`-th turn (`k` in
/// `0..wᵢ`) at the deadline `(k + ½) / wᵢ`; the schedule lists every turn by deadline (earliest
/// deadline first; ties by position in the set). Over one period of `Σwᵢ` picks each endpoint
/// gets exactly `wᵢ` turns, spread evenly through the period (weights 5:3:1:1 give
/// `a b a a b c d a b a`), so shares are exact over any whole number of periods and off by at
/// most a turn or two per endpoint inside one. A schedule longer than 2²⁰ turns is avoided by
/// scaling the weights down (at least one turn each). A pick is one atomic `fetch_add` and an
/// array lookup, the same for any number of endpoints.
///
/// Slow start works as in [`RoundRobin`](crate::RoundRobin): a warming endpoint's turn is
/// taken with probability its weight factor, otherwise the next turn is taken.
///
/// Picking from a set the policy was not rebuilt for (which the routing table never does)
/// falls back to plain round robin over that set.
///
/// ```
/// use tucano_lb::{Balancer, EndpointSet, PickContext, PolicyRegistry};
/// use tucano_core::BalancingSpec;
/// let policy = PolicyRegistry::builtin()
///     .create(&BalancingSpec::named("weighted_round_robin"))
///     .unwrap();
/// let set = EndpointSet::empty();
/// let policy = policy.rebuild(&set).unwrap_or(policy);
/// assert!(policy.pick(&set, &PickContext::none()).is_none());
/// ```
#[derive(Debug, Default)]
pub struct WeightedRoundRobin {
    next: AtomicUsize,
    /// Indices into the set the schedule was built for, in turn order.
    schedule: Box<[u32]>,
    /// The length of that set.
    built_for: usize,
}

impl WeightedRoundRobin {
    /// The name that selects this policy in a [`PolicyRegistry`](crate::PolicyRegistry).
    pub const NAME: &'static str = "weighted_round_robin";

    /// A policy with no schedule yet: [`rebuild`](Balancer::rebuild) makes one.
    pub fn new() -> Self {
        Self::default()
    }

    /// This policy's schedule for `endpoints`.
    fn built(&self, endpoints: &EndpointSet) -> Self {
        let weights: Vec<u64> = endpoints.iter().map(|b| u64::from(b.weight())).collect();
        Self {
            next: AtomicUsize::new(self.next.load(Ordering::Relaxed)),
            schedule: schedule(&weights).into(),
            built_for: endpoints.len(),
        }
    }

    /// The slow path: the turn's endpoint is warming up and refused this request.
    #[cold]
    #[inline(never)]
    fn pick_warming<'a>(
        &self,
        endpoints: &'a EndpointSet,
        refused: &'a Backend,
    ) -> Option<&'a Backend> {
        let mut last = refused;
        for _ in 1..ADMISSION_TRIES {
            let turn = self.next.fetch_add(1, Ordering::Relaxed);
            last = self.at(endpoints, turn)?;
            if admitted(last) {
                break;
            }
        }
        Some(last)
    }

    /// The endpoint whose turn `turn` is.
    #[inline]
    fn at<'a>(&self, endpoints: &'a EndpointSet, turn: usize) -> Option<&'a Backend> {
        let len = endpoints.len();
        if len == self.built_for && !self.schedule.is_empty() {
            let index = *self.schedule.get(turn % self.schedule.len())?;
            endpoints.get(index as usize)
        } else if len == 0 {
            None
        } else {
            endpoints.get(turn % len)
        }
    }
}

impl Balancer for WeightedRoundRobin {
    fn pick<'a>(&self, endpoints: &'a EndpointSet, _: &PickContext<'_>) -> Option<&'a Backend> {
        if endpoints.is_empty() {
            return None;
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        let backend = self.at(endpoints, turn)?;
        if admitted(backend) {
            return Some(backend);
        }
        self.pick_warming(endpoints, backend)
    }

    fn rebuild(&self, endpoints: &EndpointSet) -> Option<Arc<dyn Balancer>> {
        Some(Arc::new(self.built(endpoints)))
    }
}

/// One endpoint's next turn in the schedule being built: deadline `(2·turn + 1) / (2·weight)`.
#[derive(Debug, PartialEq, Eq)]
struct Turn {
    /// `2·turn + 1`.
    odd: u64,
    weight: u64,
    index: u32,
}

impl Ord for Turn {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        // odd / weight against other.odd / other.weight, exactly.
        let mine = u128::from(self.odd) * u128::from(other.weight);
        let theirs = u128::from(other.odd) * u128::from(self.weight);
        mine.cmp(&theirs).then(self.index.cmp(&other.index))
    }
}

impl PartialOrd for Turn {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

/// The turns of endpoints with `weights` (each at least 1), earliest deadline first. Empty
/// when there is no weight or more endpoints than a `u32` can index.
pub(crate) fn schedule(weights: &[u64]) -> Vec<u32> {
    if weights.is_empty() || u32::try_from(weights.len()).is_err() {
        return Vec::new();
    }
    let weights = reduced(weights);
    let total: u64 = weights.iter().sum();
    let mut heap: BinaryHeap<Reverse<Turn>> = weights
        .iter()
        .zip(0u32..)
        .map(|(&weight, index)| {
            Reverse(Turn {
                odd: 1,
                weight,
                index,
            })
        })
        .collect();
    let mut turns = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        let Some(Reverse(mut turn)) = heap.pop() else {
            break;
        };
        turns.push(turn.index);
        turn.odd += 2;
        if turn.odd < 2 * turn.weight {
            heap.push(Reverse(turn));
        }
    }
    turns
}

/// `weights` divided by their greatest common divisor, scaled down (each kept at 1 or more)
/// when they add up to more than [`MAX_SCHEDULE`].
fn reduced(weights: &[u64]) -> Vec<u64> {
    let weights: Vec<u64> = weights.iter().map(|&w| w.max(1)).collect();
    let total: u64 = weights.iter().fold(0u64, |sum, &w| sum.saturating_add(w));
    let weights = if total > MAX_SCHEDULE {
        weights
            .iter()
            .map(|&w| {
                let scaled = u128::from(w) * u128::from(MAX_SCHEDULE) / u128::from(total);
                u64::try_from(scaled).unwrap_or(u64::MAX).max(1)
            })
            .collect()
    } else {
        weights
    };
    let divisor = weights.iter().fold(0, |g, &w| gcd(g, w)).max(1);
    weights.iter().map(|&w| w / divisor).collect()
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn policy_for(set: &EndpointSet) -> Arc<dyn Balancer> {
        built(Arc::new(WeightedRoundRobin::new()), set)
    }

    #[test]
    fn shares_follow_weights_within_one_percent() {
        for weights in [
            vec![5, 3, 1, 1],
            vec![1, 1, 1],
            vec![7, 2],
            vec![10, 20, 30, 40],
            vec![100, 1, 3],
        ] {
            let set = weighted(&weights);
            let policy = policy_for(&set);
            let n = 10_000;
            let hits = hits(policy.as_ref(), &set, n);
            let total: u32 = weights.iter().sum();
            for (weight, got) in weights.iter().zip(&hits) {
                let expected = n as f64 * f64::from(*weight) / f64::from(total);
                assert!(
                    (*got as f64 - expected).abs() <= n as f64 * 0.01,
                    "weights {weights:?}: got {hits:?}"
                );
            }
        }
    }

    #[test]
    fn turns_are_interleaved() {
        assert_eq!(schedule(&[5, 3, 1, 1]), [0, 1, 0, 0, 1, 2, 3, 0, 1, 0]);
        assert_eq!(schedule(&[2, 2, 2]), [0, 1, 2]);
        assert_eq!(schedule(&[]), Vec::<u32>::new());
        // Every window of one period holds each endpoint exactly its weight times.
        let set = weighted(&[5, 3, 1, 1]);
        let policy = policy_for(&set);
        let picks: Vec<_> = (0..100)
            .map(|_| *policy.pick(&set, &PickContext::none()).unwrap().instance())
            .collect();
        for window in picks.windows(10) {
            for (backend, weight) in set.iter().zip([5, 3, 1, 1]) {
                let got = window.iter().filter(|i| *i == backend.instance()).count();
                assert_eq!(got, weight);
            }
        }
    }

    #[test]
    fn huge_weights_are_scaled_to_a_bounded_schedule() {
        let turns = schedule(&[3_000_000_000, 1_000_000_000, 1]);
        assert!(turns.len() as u64 <= MAX_SCHEDULE + 3, "{}", turns.len());
        let count = |i| turns.iter().filter(|&&t| t == i).count() as f64;
        assert!((count(0) / count(1) - 3.0).abs() < 0.001);
        assert_eq!(count(2), 1.0);
        assert_eq!(schedule(&[u64::MAX, u64::MAX]), [0, 1]);
    }

    #[test]
    fn warming_endpoints_get_part_of_their_share() {
        crate::rng::seed(9);
        let set = weighted(&[2, 2]);
        set.get(0).unwrap().state().set_weight_factor(0.5);
        let policy = policy_for(&set);
        let hits = hits(policy.as_ref(), &set, 30_000);
        let share = hits[0] as f64 / 30_000.0;
        // Half a share against a full one: a third.
        assert!((share - 1.0 / 3.0).abs() < 0.02, "{hits:?}");
    }

    #[test]
    fn a_set_it_was_not_built_for_gets_plain_round_robin() {
        let set = weighted(&[5, 1]);
        let policy = policy_for(&weighted(&[1, 1, 1]));
        assert_eq!(hits(policy.as_ref(), &set, 100), [50, 50]);
        let unbuilt = WeightedRoundRobin::new();
        assert_eq!(hits(&unbuilt, &set, 100), [50, 50]);
    }

    #[test]
    fn survives_counter_wraparound() {
        let set = weighted(&[3, 1]);
        let policy = WeightedRoundRobin {
            next: AtomicUsize::new(usize::MAX),
            ..WeightedRoundRobin::new().built(&set)
        };
        assert!(policy.pick(&set, &PickContext::none()).is_some());
        assert!(policy.pick(&set, &PickContext::none()).is_some());
    }
}
