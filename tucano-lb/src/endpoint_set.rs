//! A service's endpoints at one moment: an immutable list the balancer picks from.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tracing::{error, warn};
use tucano_core::InstanceId;
use tucano_core::transport::Endpoint;

use crate::backend::Backend;
use crate::endpoint_state::EndpointState;
use crate::route_mode::RouteMode;

/// The weight factor a new endpoint starts slow start with.
pub const SLOW_START_FLOOR: f32 = 0.1;

/// How [`EndpointSet::rebuild`] makes backends.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct BuildOptions {
    /// The time new endpoints are first seen.
    pub now_ns: u64,
    /// How they are reached.
    pub mode: RouteMode,
    /// New endpoints start slow start.
    pub warm_up: bool,
}

/// The endpoints of one service, in the order the controller published them.
///
/// A set is never modified: a change builds a new set with [`EndpointSet::update`], which
/// carries the [`EndpointState`] of every instance that is still present over to the new set.
/// Cloning a set is cheap (it is shared).
///
/// ```
/// use tucano_lb::EndpointSet;
/// # use tucano_core::{InstanceId, WorkerId};
/// # use tucano_core::transport::Endpoint;
/// # let endpoint = |port| Endpoint {
/// #     instance: InstanceId::new(),
/// #     worker: WorkerId::new("w1").unwrap(),
/// #     proxy: ([127, 0, 0, 1], 8081).into(),
/// #     address: ([127, 0, 0, 1], port).into(),
/// #     weight: 1,
/// # };
/// let (a, b) = (endpoint(9001), endpoint(9002));
/// let first = EndpointSet::new(&[a.clone()]);
/// let _busy = first.get(0).unwrap().state().track();
///
/// let second = first.update(&[a, b]);
/// assert_eq!(second.len(), 2);
/// assert_eq!(second.get(0).unwrap().state().in_flight(), 1); // a's state survived
/// ```
#[derive(Clone, Debug, Default)]
pub struct EndpointSet {
    backends: Arc<[Backend]>,
}

impl EndpointSet {
    /// An empty set: every pick returns `None`.
    pub fn empty() -> Self {
        Self::default()
    }

    /// A set of `endpoints`, each with fresh load state, reached through their worker proxy.
    pub fn new(endpoints: &[Endpoint]) -> Self {
        Self::empty().update(endpoints)
    }

    /// The set that replaces this one: `endpoints`, where each instance already in this set
    /// keeps its load state. A repeated instance id is kept once.
    pub fn update(&self, endpoints: &[Endpoint]) -> Self {
        self.rebuild(endpoints, &BuildOptions::default())
    }

    /// Like [`update`](EndpointSet::update), with the time, route mode and slow-start
    /// behaviour of the routing table.
    pub(crate) fn rebuild(&self, endpoints: &[Endpoint], options: &BuildOptions) -> Self {
        let previous: HashMap<&InstanceId, &Arc<EndpointState>> = self
            .backends
            .iter()
            .map(|backend| (backend.instance(), backend.state()))
            .collect();
        let mut seen = HashSet::with_capacity(endpoints.len());
        let mut backends = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            if !seen.insert(endpoint.instance) {
                warn!(instance = %endpoint.instance, "endpoint published twice; keeping the first");
                continue;
            }
            let state = match previous.get(&endpoint.instance) {
                Some(state) => Arc::clone(state),
                None => {
                    let state = EndpointState::new(options.now_ns);
                    if options.warm_up {
                        state.set_weight_factor(SLOW_START_FLOOR);
                    }
                    Arc::new(state)
                }
            };
            match Backend::new(endpoint.clone(), state, options.mode) {
                Some(backend) => backends.push(backend),
                None => error!(
                    instance = %endpoint.instance,
                    proxy = %endpoint.proxy,
                    "endpoint cannot be addressed over HTTP; leaving it out"
                ),
            }
        }
        Self {
            backends: backends.into(),
        }
    }

    /// The endpoints `keep` selects, sharing their state with this set.
    pub(crate) fn filtered(&self, keep: impl Fn(&Backend) -> bool) -> Self {
        Self {
            backends: self.backends.iter().filter(|b| keep(b)).cloned().collect(),
        }
    }

    /// How many endpoints the set has.
    pub fn len(&self) -> usize {
        self.backends.len()
    }

    /// True when the set has no endpoint.
    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }

    /// The endpoint at `index`, if there is one.
    pub fn get(&self, index: usize) -> Option<&Backend> {
        self.backends.get(index)
    }

    /// The endpoint serving `instance`, if it is in the set.
    pub fn find(&self, instance: &InstanceId) -> Option<&Backend> {
        self.backends
            .iter()
            .find(|backend| backend.instance() == instance)
    }

    /// The endpoints in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Backend> {
        self.backends.iter()
    }

    /// The endpoints as a slice.
    pub fn as_slice(&self) -> &[Backend] {
        &self.backends
    }
}

impl<'a> IntoIterator for &'a EndpointSet {
    type Item = &'a Backend;
    type IntoIter = std::slice::Iter<'a, Backend>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tucano_core::WorkerId;

    fn endpoint(port: u16) -> Endpoint {
        Endpoint {
            instance: InstanceId::new(),
            worker: WorkerId::new("w1").unwrap(),
            proxy: ([127, 0, 0, 1], 8081).into(),
            address: ([127, 0, 0, 1], port).into(),
            weight: 1,
        }
    }

    #[test]
    fn update_keeps_state_of_remaining_instances() {
        let (a, b, c) = (endpoint(1), endpoint(2), endpoint(3));
        let first = EndpointSet::new(&[a.clone(), b.clone()]);
        let a_state = Arc::clone(first.find(&a.instance).unwrap().state());
        let b_state = Arc::clone(first.find(&b.instance).unwrap().state());

        let second = first.update(&[c.clone(), a.clone()]);
        assert_eq!(second.len(), 2);
        assert!(Arc::ptr_eq(
            second.find(&a.instance).unwrap().state(),
            &a_state
        ));
        assert!(second.find(&b.instance).is_none());
        let c_state = second.find(&c.instance).unwrap().state();
        assert!(!Arc::ptr_eq(c_state, &a_state) && !Arc::ptr_eq(c_state, &b_state));
        assert_eq!(second.get(0).unwrap().instance(), &c.instance);
    }

    #[test]
    fn duplicates_are_kept_once() {
        let a = endpoint(1);
        let set = EndpointSet::new(&[a.clone(), a.clone()]);
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn empty_set() {
        let set = EndpointSet::empty();
        assert!(set.is_empty());
        assert!(set.get(0).is_none());
        assert_eq!(set.iter().count(), 0);
    }

    #[test]
    fn backends_are_prepared_for_forwarding() {
        let a = endpoint(1);
        let set = EndpointSet::new(std::slice::from_ref(&a));
        let backend = set.get(0).unwrap();
        assert_eq!(backend.upstream().as_str(), "127.0.0.1:8081");
        assert_eq!(
            backend.instance_header().to_str().unwrap(),
            a.instance.to_string()
        );
    }
}
