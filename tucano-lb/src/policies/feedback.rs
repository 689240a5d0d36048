//! Feedback: the instances say how loaded they are, and the least loaded gets the request.

use std::sync::Arc;

use super::sampler::{Cost, Sampler};
use super::snapshot::Candidate;
use crate::backend::Backend;
use crate::balancer::{Balancer, PickContext};
use crate::endpoint_set::EndpointSet;

/// The load assumed for an instance that has not reported one yet: neither preferred nor
/// avoided.
pub const UNKNOWN_LOAD: f64 = 0.5;
/// What each request in flight adds to an instance's score, per unit of effective weight.
pub const IN_FLIGHT_LOAD: f64 = 0.01;
/// Sets up to this size are scanned in full; larger ones use two random choices.
pub const EXACT_SCAN_MAX: usize = 8;

/// Sends each request to the instance reporting the lowest load, as in the feedback
/// load-balancing paper: each instance reports a load between 0 and 1 (the `x-tucano-load`
/// response header, or pushed through its worker), recorded in its
/// [`EndpointState`](crate::EndpointState); the service's scoreboard is those reports.
///
/// An endpoint's score is
///
/// ```text
/// score = L + 0.01 × (in_flight + 1) / effective_weight
/// ```
///
/// where `L` is the last reported load ([`UNKNOWN_LOAD`] = 0.5 until the instance reports
/// one) and the second term ([`IN_FLIGHT_LOAD`] per request in flight per unit of weight, the
/// request being placed counted) keeps a burst from landing entirely on one instance before
/// it reports again: 10 more requests in flight on an instance of weight 1 count as 0.1 of
/// load. An effective weight of 0 gives an infinite score. The lowest score wins.
///
/// Sets of up to [`EXACT_SCAN_MAX`] (8) endpoints are scanned in full (ties broken by
/// reservoir sampling, unbiased as in [`LeastConnections`](crate::LeastConnections)); larger
/// sets use power of two choices on the score (two distinct random endpoints, or the spec's
/// `choice_count`; the lower score wins, ties to the first drawn), which keeps a pick constant-time and sends most traffic to
/// the less loaded half without herding it all onto the single least loaded instance while
/// its report is stale.
///
/// ```
/// use tucano_lb::{Balancer, EndpointSet, PickContext, PolicyRegistry};
/// use tucano_core::BalancingSpec;
/// let policy = PolicyRegistry::builtin()
///     .create(&BalancingSpec::named("feedback"))
///     .unwrap();
/// assert!(policy.pick(&EndpointSet::empty(), &PickContext::none()).is_none());
/// ```
#[derive(Debug)]
pub struct Feedback {
    sampler: Sampler,
}

impl Default for Feedback {
    fn default() -> Self {
        Self::new()
    }
}

impl Feedback {
    /// The name that selects this policy in a [`PolicyRegistry`](crate::PolicyRegistry).
    pub const NAME: &'static str = "feedback";
    /// Endpoints compared per pick in sets larger than [`EXACT_SCAN_MAX`], unless the spec's
    /// `choice_count` says otherwise.
    pub const DEFAULT_CHOICES: usize = 2;

    /// A feedback policy (the reports live in each endpoint's state);
    /// [`rebuild`](Balancer::rebuild) prepares it for a set.
    pub fn new() -> Self {
        Self::with_choices(Self::DEFAULT_CHOICES)
    }

    /// The same comparing `choices` random endpoints per pick in large sets (2 to 16).
    pub fn with_choices(choices: usize) -> Self {
        Self {
            sampler: Sampler::new(choices),
        }
    }
}

/// The score of [`Feedback`].
struct Score;

impl Cost for Score {
    type Key = f64;

    #[inline]
    fn key<C: Candidate>(&self, candidate: &C) -> f64 {
        score(candidate)
    }

    #[inline]
    fn lower(a: &f64, b: &f64) -> bool {
        a < b
    }
}

/// `candidate`'s score (see [`Feedback`]).
#[inline]
pub(crate) fn score<C: Candidate>(candidate: &C) -> f64 {
    let state = candidate.load_state();
    let load = state.reported_load().map_or(UNKNOWN_LOAD, f64::from);
    let weight = candidate.effective_weight();
    if weight > 0.0 {
        load + IN_FLIGHT_LOAD * state.queue_length() / weight
    } else {
        f64::INFINITY
    }
}

impl Balancer for Feedback {
    fn pick<'a>(&self, endpoints: &'a EndpointSet, _: &PickContext<'_>) -> Option<&'a Backend> {
        // Small sets are scanned in full: as many choices as endpoints.
        let choices = if endpoints.len() > EXACT_SCAN_MAX {
            self.sampler.choices()
        } else {
            EXACT_SCAN_MAX
        };
        self.sampler.pick(endpoints, choices, &Score)
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
    fn prefers_the_least_loaded() {
        crate::rng::seed(21);
        let set = set(3);
        for (backend, load) in set.iter().zip([0.9, 0.2, 0.5]) {
            backend.state().report_load(load);
        }
        assert_eq!(
            hits(ready::<Feedback>(&set).as_ref(), &set, 100),
            [0, 100, 0]
        );
    }

    #[test]
    fn a_burst_spreads_before_the_next_report() {
        crate::rng::seed(22);
        let set = set(3);
        for (backend, load) in set.iter().zip([0.9, 0.2, 0.4]) {
            backend.state().report_load(load);
        }
        let policy = ready::<Feedback>(&set);
        let mut held = Vec::new();
        for _ in 0..60 {
            let picked = policy.pick(&set, &PickContext::none()).unwrap();
            held.push(picked.state().track());
        }
        let in_flight: Vec<_> = set.iter().map(|b| b.state().in_flight()).collect();
        // 0.2 + 0.01·(k+1) climbs to 0.4 + 0.01: the least loaded takes the first 20, then
        // it and the next share the rest; the most loaded gets none.
        assert_eq!(in_flight[0], 0, "{in_flight:?}");
        assert!((39..=41).contains(&in_flight[1]), "{in_flight:?}");
        assert!((19..=21).contains(&in_flight[2]), "{in_flight:?}");
    }

    #[test]
    fn unknown_load_counts_as_half() {
        let set = set(3);
        set.get(0).unwrap().state().report_load(0.7);
        set.get(2).unwrap().state().report_load(0.6);
        assert_eq!(hits(ready::<Feedback>(&set).as_ref(), &set, 50), [0, 50, 0]);
        set.get(1).unwrap().state().report_load(0.8);
        assert_eq!(hits(ready::<Feedback>(&set).as_ref(), &set, 50), [0, 0, 50]);
    }

    #[test]
    fn ties_are_spread_evenly() {
        crate::rng::seed(23);
        let set = set(4);
        let hits = hits(ready::<Feedback>(&set).as_ref(), &set, 40_000);
        assert!(relative_std(&hits) <= 0.02, "{hits:?}");
    }

    #[test]
    fn large_sets_favour_the_less_loaded() {
        crate::rng::seed(24);
        let k = 20;
        let set = set(k);
        // Endpoint i reports load i / k.
        for (i, backend) in set.iter().enumerate() {
            backend.state().report_load(i as f32 / k as f32);
        }
        let n = 100_000;
        let hits = hits(ready::<Feedback>(&set).as_ref(), &set, n);
        // Two choices: endpoint i wins when drawn against a more loaded one, with
        // probability 2 (k - 1 - i) / (k (k - 1)).
        assert_eq!(hits[k - 1], 0, "{hits:?}");
        for (i, &got) in hits.iter().enumerate() {
            let expected = n as f64 * 2.0 * (k - 1 - i) as f64 / (k * (k - 1)) as f64;
            assert!((got as f64 - expected).abs() <= n as f64 * 0.01, "{hits:?}");
        }
        let less_loaded_half: usize = hits[..k / 2].iter().sum();
        assert!(less_loaded_half as f64 > 0.7 * n as f64, "{hits:?}");
    }
}
