//! The balancing policies Tucano ships, one per file.
//!
//! Adding a policy: write it in its own file here, export it, and list it in [`builtin`].

mod round_robin;

pub use round_robin::RoundRobin;

use std::sync::Arc;

use tucano_core::BalancingSpec;

use crate::balancer::Balancer;

/// The name of the policy a service gets unless it asks for another.
pub const DEFAULT_POLICY: &str = RoundRobin::NAME;

/// Makes a fresh instance of a built-in policy for a service's balancing spec.
pub(crate) type NewBalancer = fn(&BalancingSpec) -> Arc<dyn Balancer>;

/// Every built-in policy: its name and how to make a fresh instance of it.
pub(crate) fn builtin() -> Vec<(&'static str, NewBalancer)> {
    vec![(RoundRobin::NAME, |_| Arc::new(RoundRobin::new()))]
}
