//! Policies by name, so a service can ask for one in its spec.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use tucano_core::BalancingSpec;

use crate::balancer::Balancer;
use crate::policies;

/// Makes a fresh policy instance for one service, configured by its balancing spec.
pub type BalancerFactory = Arc<dyn Fn(&BalancingSpec) -> Arc<dyn Balancer> + Send + Sync>;

/// A policy name no factory is registered for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown balancing policy {name:?}; known policies: {known}")]
pub struct UnknownPolicy {
    /// The name asked for.
    pub name: String,
    /// The registered names, comma-separated.
    pub known: String,
}

/// Balancing policies by name.
///
/// [`PolicyRegistry::builtin`] (also the `Default`) knows every policy Tucano ships; an
/// embedding program can [`register`](PolicyRegistry::register) its own.
///
/// ```
/// use std::sync::Arc;
/// use tucano_core::BalancingSpec;
/// use tucano_lb::{PolicyRegistry, RoundRobin};
///
/// let mut registry = PolicyRegistry::builtin();
/// registry.register("my_round_robin", |_| Arc::new(RoundRobin::new()));
/// assert!(registry.create(&BalancingSpec::named("round_robin")).is_ok());
/// assert!(registry.create(&BalancingSpec::named("my_round_robin")).is_ok());
/// assert!(registry.create(&BalancingSpec::named("random")).is_err());
/// ```
#[derive(Clone)]
pub struct PolicyRegistry {
    factories: BTreeMap<String, BalancerFactory>,
}

impl PolicyRegistry {
    /// A registry with no policy at all.
    pub fn empty() -> Self {
        Self {
            factories: BTreeMap::new(),
        }
    }

    /// A registry with every built-in policy (`round_robin`).
    pub fn builtin() -> Self {
        let mut registry = Self::empty();
        for (name, make) in policies::builtin() {
            registry.register(name, make);
        }
        registry
    }

    /// Registers (or replaces) the policy called `name`.
    pub fn register(
        &mut self,
        name: impl Into<String>,
        factory: impl Fn(&BalancingSpec) -> Arc<dyn Balancer> + Send + Sync + 'static,
    ) -> &mut Self {
        self.factories.insert(name.into(), Arc::new(factory));
        self
    }

    /// True if a policy called `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.factories.contains_key(name)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.factories.keys().map(String::as_str)
    }

    /// A fresh instance of the policy `spec` names, configured by `spec`.
    pub fn create(&self, spec: &BalancingSpec) -> Result<Arc<dyn Balancer>, UnknownPolicy> {
        self.factory(&spec.policy).map(|factory| factory(spec))
    }

    /// The factory of the policy called `name`.
    pub fn factory(&self, name: &str) -> Result<BalancerFactory, UnknownPolicy> {
        self.factories
            .get(name)
            .cloned()
            .ok_or_else(|| UnknownPolicy {
                name: name.to_owned(),
                known: self.names().collect::<Vec<_>>().join(", "),
            })
    }
}

impl Default for PolicyRegistry {
    fn default() -> Self {
        Self::builtin()
    }
}

impl fmt::Debug for PolicyRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policies::DEFAULT_POLICY;

    #[test]
    fn builtin_has_the_default_policy() {
        let registry = PolicyRegistry::builtin();
        assert!(registry.contains(DEFAULT_POLICY));
        assert!(registry.names().any(|n| n == "round_robin"));
    }

    #[test]
    fn unknown_names_are_errors_listing_the_known_ones() {
        let err = PolicyRegistry::builtin()
            .create(&BalancingSpec::named("nope"))
            .unwrap_err();
        assert_eq!(err.name, "nope");
        assert!(err.known.contains("round_robin"));
        assert!(
            PolicyRegistry::empty()
                .create(&BalancingSpec::named(DEFAULT_POLICY))
                .is_err()
        );
    }
}
