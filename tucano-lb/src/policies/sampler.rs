//! What the power-of-d-choices policies share: the dense snapshot of the set they were built
//! for, how many endpoints they compare, and the pick itself.

use super::best_of;
use super::snapshot::{Candidate, Snapshot};
use crate::backend::Backend;
use crate::endpoint_set::EndpointSet;

/// What a policy minimises: a key per endpoint, and which of two keys is lower.
pub(crate) trait Cost {
    /// The key of one endpoint.
    type Key: Copy;
    /// `candidate`'s key.
    fn key<C: Candidate>(&self, candidate: &C) -> Self::Key;
    /// True when `a` is strictly below `b`.
    fn lower(a: &Self::Key, b: &Self::Key) -> bool;
}

/// Picks the endpoint of lowest [`Cost`] among a few random ones, reading them through a
/// [`Snapshot`] of the set it was built for (or the set itself if handed another).
#[derive(Debug, Default)]
pub(crate) struct Sampler {
    snapshot: Snapshot,
    choices: usize,
}

impl Sampler {
    /// A sampler comparing `choices` endpoints per pick, not yet built for a set.
    pub fn new(choices: usize) -> Self {
        Self {
            snapshot: Snapshot::default(),
            choices,
        }
    }

    /// The same sampler, built for `endpoints`.
    pub fn rebuilt(&self, endpoints: &EndpointSet) -> Self {
        Self {
            snapshot: Snapshot::new(endpoints),
            choices: self.choices,
        }
    }

    /// How many endpoints a pick compares.
    pub fn choices(&self) -> usize {
        self.choices
    }

    /// The endpoint of lowest `cost` among `choices` distinct random ones of `endpoints` (all
    /// of them if there are no more), ties broken at random.
    #[inline]
    pub fn pick<'a, F: Cost>(
        &self,
        endpoints: &'a EndpointSet,
        choices: usize,
        cost: &F,
    ) -> Option<&'a Backend> {
        let index = match self.snapshot.slots_for(endpoints) {
            Some(slots) => best_of(slots, choices, |c| cost.key(c), F::lower),
            None => best_of(endpoints.as_slice(), choices, |c| cost.key(c), F::lower),
        }?;
        endpoints.get(index)
    }
}
