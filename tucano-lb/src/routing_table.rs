//! The balancer's routing table: every service's route, read without locks.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tracing::debug;
use tucano_core::ServiceName;
use tucano_core::transport::{Endpoint, EndpointSink};

use crate::balancer::PickContext;
use crate::endpoint_set::EndpointSet;
use crate::host;
use crate::pick::Pick;
use crate::policies::{DEFAULT_POLICY, RoundRobin};
use crate::policy_registry::{BalancerFactory, PolicyRegistry, UnknownPolicy};
use crate::route::Route;

type Routes = HashMap<String, Arc<Route>>;

/// Why no endpoint could be chosen for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// The Host value is not `host[:port]`.
    #[error("the Host header is not a valid host name")]
    InvalidHost,
    /// No service has that name.
    #[error("no service has that name")]
    UnknownService,
    /// The service has no running instance.
    #[error("the service has no running instance")]
    NoInstance,
}

/// Each service's running endpoints and balancing policy; the load balancer's view of the
/// cluster.
///
/// The controller writes it through [`EndpointSink`] on every change; the proxy reads it on
/// every request. The whole table is an immutable snapshot behind an [`ArcSwap`]: reads take
/// no lock, and a write builds the next snapshot and swaps it in (compare-and-swap, never
/// blocking). Each endpoint's load state and each service's policy state carry over when its
/// endpoints are republished.
///
/// Services get the table's default policy (`round_robin` unless built
/// [`with_policies`](RoutingTable::with_policies)); [`set_policy`](RoutingTable::set_policy)
/// changes one service's.
///
/// ```
/// use tucano_core::transport::{Endpoint, EndpointSink};
/// use tucano_core::{InstanceId, ServiceName, WorkerId};
/// use tucano_lb::{PickContext, RoutingTable, SelectError};
///
/// let table = RoutingTable::new();
/// let hello: ServiceName = "hello".parse().unwrap();
/// let endpoints: Vec<Endpoint> = (0..3)
///     .map(|i| Endpoint {
///         instance: InstanceId::new(),
///         worker: WorkerId::new("w1").unwrap(),
///         proxy: ([127, 0, 0, 1], 8081).into(),
///         address: ([127, 0, 0, 1], 9000 + i).into(),
///     })
///     .collect();
/// table.publish(&hello, endpoints.clone());
///
/// // Round robin over the three instances, found by Host header (port and case ignored).
/// for endpoint in endpoints.iter().cycle().take(6) {
///     let pick = table.select_by_host(b"Hello:8080", &PickContext::none()).unwrap();
///     assert_eq!(pick.instance(), &endpoint.instance);
/// }
///
/// table.publish(&hello, Vec::new());
/// assert_eq!(table.select("hello", &PickContext::none()).unwrap_err(), SelectError::NoInstance);
/// table.remove(&hello);
/// assert_eq!(table.select("hello", &PickContext::none()).unwrap_err(), SelectError::UnknownService);
/// ```
pub struct RoutingTable {
    routes: ArcSwap<Routes>,
    registry: PolicyRegistry,
    default_policy: Arc<str>,
    default_factory: BalancerFactory,
}

impl RoutingTable {
    /// An empty table with the built-in policies; services use round robin.
    pub fn new() -> Self {
        let registry = PolicyRegistry::builtin();
        let default_factory = registry
            .factory(DEFAULT_POLICY)
            .unwrap_or_else(|_| Arc::new(|| Arc::new(RoundRobin::new())));
        Self {
            routes: ArcSwap::default(),
            registry,
            default_policy: Arc::from(DEFAULT_POLICY),
            default_factory,
        }
    }

    /// An empty table choosing policies from `registry`, with `default_policy` for services
    /// that do not ask for one.
    pub fn with_policies(
        registry: PolicyRegistry,
        default_policy: &str,
    ) -> Result<Self, UnknownPolicy> {
        let default_factory = registry.factory(default_policy)?;
        Ok(Self {
            routes: ArcSwap::default(),
            registry,
            default_policy: Arc::from(default_policy),
            default_factory,
        })
    }

    /// The policies this table can use.
    pub fn registry(&self) -> &PolicyRegistry {
        &self.registry
    }

    /// The policy of services that did not ask for one.
    pub fn default_policy(&self) -> &str {
        &self.default_policy
    }

    /// The current route of `service`, if the table knows it.
    pub fn route(&self, service: &str) -> Option<Arc<Route>> {
        self.routes.load().get(service).cloned()
    }

    /// The services the table knows, sorted.
    pub fn services(&self) -> Vec<ServiceName> {
        let mut names: Vec<ServiceName> = self
            .routes
            .load()
            .values()
            .map(|route| route.service().clone())
            .collect();
        names.sort();
        names
    }

    /// Picks an endpoint of the service named exactly `service` and counts the request in
    /// flight on it. Lock-free and allocation-free.
    pub fn select(&self, service: &str, request: &PickContext<'_>) -> Result<Pick, SelectError> {
        let routes = self.routes.load();
        let route = routes.get(service).ok_or(SelectError::UnknownService)?;
        route
            .pick(request)
            .map(Pick::new)
            .ok_or(SelectError::NoInstance)
    }

    /// Like [`select`](RoutingTable::select), for the service a Host header value names: the
    /// port and one trailing dot are ignored, and letters compare case-insensitively.
    pub fn select_by_host(
        &self,
        host: &[u8],
        request: &PickContext<'_>,
    ) -> Result<Pick, SelectError> {
        let service = host::normalize(host).map_err(|_| SelectError::InvalidHost)?;
        self.select(&service, request)
    }

    /// Makes `service` use the policy registered as `policy`, keeping its endpoints (and
    /// their load state). A service the table does not know yet is added with no endpoint,
    /// so its requests get "no instance" until endpoints are published.
    pub fn set_policy(&self, service: &ServiceName, policy: &str) -> Result<(), UnknownPolicy> {
        let factory = self.registry.factory(policy)?;
        let policy: Arc<str> = Arc::from(policy);
        self.routes.rcu(|routes| {
            let route = match routes.get(service.as_str()) {
                Some(route) => route.with_policy(Arc::clone(&policy), factory()),
                None => Route::new(
                    service.clone(),
                    Arc::clone(&policy),
                    factory(),
                    EndpointSet::empty(),
                ),
            };
            with_route(routes, service, route)
        });
        debug!(%service, %policy, "balancing policy set");
        Ok(())
    }

    fn publish_endpoints(&self, service: &ServiceName, endpoints: &[Endpoint]) {
        self.routes.rcu(|routes| {
            let route = match routes.get(service.as_str()) {
                Some(route) => route.with_endpoints(endpoints),
                None => Route::new(
                    service.clone(),
                    Arc::clone(&self.default_policy),
                    (self.default_factory)(),
                    EndpointSet::new(endpoints),
                ),
            };
            with_route(routes, service, route)
        });
        debug!(%service, endpoints = endpoints.len(), "endpoints published");
    }

    fn remove_service(&self, service: &ServiceName) {
        if !self.routes.load().contains_key(service.as_str()) {
            return;
        }
        self.routes.rcu(|routes| {
            let mut next = Routes::clone(routes);
            next.remove(service.as_str());
            next
        });
        debug!(%service, "service removed from routing");
    }
}

/// A copy of `routes` where `service` routes by `route`.
fn with_route(routes: &Arc<Routes>, service: &ServiceName, route: Route) -> Routes {
    let mut next = Routes::clone(routes);
    next.insert(service.as_str().to_owned(), Arc::new(route));
    next
}

impl Default for RoutingTable {
    fn default() -> Self {
        Self::new()
    }
}

impl EndpointSink for RoutingTable {
    fn publish(&self, service: &ServiceName, endpoints: Vec<Endpoint>) {
        self.publish_endpoints(service, &endpoints);
    }

    fn remove(&self, service: &ServiceName) {
        self.remove_service(service);
    }
}

impl fmt::Debug for RoutingTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoutingTable")
            .field("routes", &self.routes.load())
            .field("registry", &self.registry)
            .field("default_policy", &self.default_policy)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tucano_core::{InstanceId, WorkerId};

    use crate::backend::Backend;
    use crate::balancer::Balancer;

    fn endpoint() -> Endpoint {
        Endpoint {
            instance: InstanceId::new(),
            worker: WorkerId::new("w1").unwrap(),
            proxy: ([127, 0, 0, 1], 8081).into(),
            address: ([127, 0, 0, 1], 9000).into(),
        }
    }

    fn name(s: &str) -> ServiceName {
        s.parse().unwrap()
    }

    #[test]
    fn follows_publish_and_remove() {
        let table = RoutingTable::new();
        let none = PickContext::none();
        assert_eq!(
            table.select("web", &none).unwrap_err(),
            SelectError::UnknownService
        );

        let a = endpoint();
        table.publish(&name("web"), vec![a.clone()]);
        assert_eq!(table.select("web", &none).unwrap().instance(), &a.instance);

        let b = endpoint();
        table.publish(&name("web"), vec![b.clone()]);
        assert_eq!(table.select("web", &none).unwrap().instance(), &b.instance);

        table.publish(&name("web"), vec![]);
        assert_eq!(
            table.select("web", &none).unwrap_err(),
            SelectError::NoInstance
        );

        table.remove(&name("web"));
        assert_eq!(
            table.select("web", &none).unwrap_err(),
            SelectError::UnknownService
        );
        assert!(table.services().is_empty());
        table.remove(&name("web"));
    }

    #[test]
    fn selects_by_normalised_host() {
        let table = RoutingTable::new();
        let a = endpoint();
        table.publish(&name("web"), vec![a.clone()]);
        let none = PickContext::none();
        for host in ["web", "WEB", "web.", "web:80", "Web.:8080"] {
            let pick = table.select_by_host(host.as_bytes(), &none).unwrap();
            assert_eq!(pick.instance(), &a.instance, "{host}");
        }
        assert_eq!(
            table.select_by_host(b"web:x", &none).unwrap_err(),
            SelectError::InvalidHost
        );
        assert_eq!(
            table.select_by_host(b"other", &none).unwrap_err(),
            SelectError::UnknownService
        );
    }

    #[test]
    fn picks_count_in_flight_and_state_survives_republish() {
        let table = RoutingTable::new();
        let a = endpoint();
        table.publish(&name("web"), vec![a.clone()]);
        let pick = table.select("web", &PickContext::none()).unwrap();
        table.publish(&name("web"), vec![endpoint(), a.clone()]);
        let route = table.route("web").unwrap();
        let state = route.endpoints().find(&a.instance).unwrap().state();
        assert_eq!(state.in_flight(), 1);
        drop(pick);
        assert_eq!(state.in_flight(), 0);
    }

    #[test]
    fn round_robin_continues_across_republish() {
        let table = RoutingTable::new();
        let (a, b) = (endpoint(), endpoint());
        table.publish(&name("web"), vec![a.clone(), b.clone()]);
        let none = PickContext::none();
        assert_eq!(table.select("web", &none).unwrap().instance(), &a.instance);
        table.publish(&name("web"), vec![a.clone(), b.clone()]);
        assert_eq!(table.select("web", &none).unwrap().instance(), &b.instance);
    }

    /// Counts its rebuilds, to check the table hands each new set to the policy.
    #[derive(Debug, Default)]
    struct Counting(Arc<AtomicUsize>);

    impl Balancer for Counting {
        fn pick<'a>(&self, set: &'a EndpointSet, _: &PickContext<'_>) -> Option<&'a Backend> {
            set.get(0)
        }
        fn rebuild(&self, _: &EndpointSet) -> Option<Arc<dyn Balancer>> {
            self.0.fetch_add(1, Ordering::Relaxed);
            None
        }
    }

    #[test]
    fn policies_are_chosen_by_name_and_rebuilt_on_change() {
        let rebuilds = Arc::new(AtomicUsize::new(0));
        let mut registry = PolicyRegistry::builtin();
        let counter = Arc::clone(&rebuilds);
        registry.register("counting", move || {
            Arc::new(Counting(Arc::clone(&counter))) as Arc<dyn Balancer>
        });
        let table = RoutingTable::with_policies(registry, "counting").unwrap();
        assert_eq!(table.default_policy(), "counting");

        table.publish(&name("web"), vec![endpoint()]);
        table.publish(&name("web"), vec![endpoint()]);
        assert_eq!(rebuilds.load(Ordering::Relaxed), 2);
        assert_eq!(table.route("web").unwrap().policy(), "counting");

        table.set_policy(&name("web"), "round_robin").unwrap();
        let route = table.route("web").unwrap();
        assert_eq!(route.policy(), "round_robin");
        assert_eq!(route.endpoints().len(), 1);

        let err = table.set_policy(&name("web"), "nope").unwrap_err();
        assert_eq!(err.name, "nope");
        assert!(RoutingTable::with_policies(PolicyRegistry::empty(), "round_robin").is_err());
    }

    #[test]
    fn set_policy_on_unknown_service_adds_it_without_endpoints() {
        let table = RoutingTable::new();
        table.set_policy(&name("web"), "round_robin").unwrap();
        assert_eq!(
            table.select("web", &PickContext::none()).unwrap_err(),
            SelectError::NoInstance
        );
        let a = endpoint();
        table.publish(&name("web"), vec![a.clone()]);
        assert_eq!(
            table
                .select("web", &PickContext::none())
                .unwrap()
                .instance(),
            &a.instance
        );
        assert_eq!(table.services(), vec![name("web")]);
    }
}
