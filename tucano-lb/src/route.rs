//! One service's route: its endpoints and the policy instance that picks among them.

use std::fmt;
use std::sync::Arc;

use tucano_core::ServiceName;
use tucano_core::transport::Endpoint;

use crate::backend::Backend;
use crate::balancer::{Balancer, PickContext};
use crate::endpoint_set::EndpointSet;

/// A service's endpoints together with its balancing policy, swapped in as one value so a
/// pick always sees a policy built for the set it picks from.
pub struct Route {
    service: ServiceName,
    policy: Arc<str>,
    balancer: Arc<dyn Balancer>,
    endpoints: EndpointSet,
}

impl Route {
    /// A route for `service` using `balancer` (registered as `policy`) over `endpoints`.
    pub(crate) fn new(
        service: ServiceName,
        policy: Arc<str>,
        balancer: Arc<dyn Balancer>,
        endpoints: EndpointSet,
    ) -> Self {
        let balancer = balancer.rebuild(&endpoints).unwrap_or(balancer);
        Self {
            service,
            policy,
            balancer,
            endpoints,
        }
    }

    /// This route with its endpoints replaced; load state and policy state carry over.
    pub(crate) fn with_endpoints(&self, endpoints: &[Endpoint]) -> Self {
        Self::new(
            self.service.clone(),
            Arc::clone(&self.policy),
            Arc::clone(&self.balancer),
            self.endpoints.update(endpoints),
        )
    }

    /// This route with another policy over the same endpoints.
    pub(crate) fn with_policy(&self, policy: Arc<str>, balancer: Arc<dyn Balancer>) -> Self {
        Self::new(
            self.service.clone(),
            policy,
            balancer,
            self.endpoints.clone(),
        )
    }

    /// The service routed.
    pub fn service(&self) -> &ServiceName {
        &self.service
    }

    /// The name of the balancing policy in use.
    pub fn policy(&self) -> &str {
        &self.policy
    }

    /// The service's running endpoints.
    pub fn endpoints(&self) -> &EndpointSet {
        &self.endpoints
    }

    /// The endpoint the policy picks for a request, `None` when there is none.
    pub fn pick(&self, request: &PickContext<'_>) -> Option<&Backend> {
        self.balancer.pick(&self.endpoints, request)
    }
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("service", &self.service)
            .field("policy", &self.policy)
            .field("balancer", &self.balancer)
            .field("endpoints", &self.endpoints)
            .finish()
    }
}
