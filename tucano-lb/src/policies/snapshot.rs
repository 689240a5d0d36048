//! A dense copy of what the load-aware policies read about each endpoint, built off the
//! request path, so that a pick touches 16 bytes per candidate plus its load state instead
//! of the whole [`Backend`].

use std::sync::Arc;

use crate::backend::Backend;
use crate::endpoint_set::EndpointSet;
use crate::endpoint_state::EndpointState;

/// What a load comparison needs of one endpoint: its load state and its weight.
pub(crate) trait Candidate {
    /// The endpoint's load state.
    fn load_state(&self) -> &EndpointState;
    /// The endpoint's weight before slow start.
    fn base_weight(&self) -> f64;

    /// The weight the endpoint gets now: its weight times its slow-start factor.
    #[inline]
    fn effective_weight(&self) -> f64 {
        self.base_weight() * f64::from(self.load_state().weight_factor())
    }
}

impl Candidate for Backend {
    #[inline]
    fn load_state(&self) -> &EndpointState {
        self.state()
    }

    #[inline]
    fn base_weight(&self) -> f64 {
        f64::from(self.weight())
    }
}

/// One endpoint of a [`Snapshot`].
#[derive(Debug)]
pub(crate) struct Slot {
    state: Arc<EndpointState>,
    weight: f64,
}

impl Candidate for Slot {
    #[inline]
    fn load_state(&self) -> &EndpointState {
        &self.state
    }

    #[inline]
    fn base_weight(&self) -> f64 {
        self.weight
    }
}

/// The states and weights of one endpoint set, in the set's order, and the set itself.
///
/// Holding the set keeps its allocation alive, so a set handed to a pick is the one the
/// snapshot was built for exactly when it has the same address and length (no reuse of a
/// freed address can fool the check).
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    set: EndpointSet,
    slots: Box<[Slot]>,
}

impl Snapshot {
    /// The snapshot of `set`.
    pub(crate) fn new(set: &EndpointSet) -> Self {
        Self {
            set: set.clone(),
            slots: set
                .iter()
                .map(|backend| Slot {
                    state: Arc::clone(backend.state()),
                    weight: backend.base_weight(),
                })
                .collect(),
        }
    }

    /// The slots, if this snapshot was built for `endpoints`.
    #[inline]
    pub(crate) fn slots_for(&self, endpoints: &EndpointSet) -> Option<&[Slot]> {
        std::ptr::eq(self.set.as_slice(), endpoints.as_slice()).then_some(&self.slots[..])
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn matches_only_the_set_it_was_built_for() {
        let set = weighted(&[1, 2]);
        let snapshot = Snapshot::new(&set);
        let slots = snapshot.slots_for(&set.clone()).unwrap();
        assert_eq!(slots.len(), 2);
        assert_eq!(slots[1].effective_weight(), 2.0);
        assert!(Arc::ptr_eq(&slots[0].state, set.get(0).unwrap().state()));
        assert!(snapshot.slots_for(&weighted(&[1, 2])).is_none());
        assert!(snapshot.slots_for(&EndpointSet::empty()).is_none());
        // Two empty sets may share a dangling address: the empty slice matches, harmlessly.
        let empty = Snapshot::new(&EndpointSet::empty());
        assert!(empty.slots_for(&set).is_none());
    }
}
