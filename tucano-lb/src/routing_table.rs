//! The balancer's routing table: every service's route, read without locks.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::Notify;
use tracing::{debug, error};
use tucano_core::transport::{Endpoint, EndpointSink, RouteSpec};
use tucano_core::{InstanceId, ServiceName};

use crate::balancer::{Balancer, PickContext};
use crate::clock;
use crate::endpoint_set::{BuildOptions, EndpointSet};
use crate::host;
use crate::pick::Pick;
use crate::policies::RoundRobin;
use crate::policy_registry::{PolicyRegistry, UnknownPolicy};
use crate::rng;
use crate::route::Route;
use crate::route_mode::RouteMode;

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
/// The controller writes it through [`EndpointSink`] on every change, with each service's
/// [`RouteSpec`] (policy, options, health checks); the proxy reads it on every request. The
/// whole table is an immutable snapshot behind an [`ArcSwap`]: reads take no lock, and a write
/// builds the next snapshot and swaps it in (compare-and-swap, never blocking). Each endpoint's
/// load state and each service's policy state carry over when its endpoints are republished.
/// [`tick`](RoutingTable::tick) does the periodic upkeep (ejections, slow start); a
/// [`Maintenance`](crate::Maintenance) task calls it and runs health checks.
///
/// ```
/// use tucano_core::transport::{Endpoint, EndpointSink, RouteSpec};
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
///         weight: 1,
///     })
///     .collect();
/// let route = RouteSpec::default(); // round robin
/// table.publish(&hello, &route, endpoints.clone());
///
/// // Round robin over the three instances, found by Host header (port and case ignored).
/// for endpoint in endpoints.iter().cycle().take(6) {
///     let pick = table.select_by_host(b"Hello:8080", &PickContext::none()).unwrap();
///     assert_eq!(pick.instance(), &endpoint.instance);
/// }
///
/// table.publish(&hello, &route, Vec::new());
/// assert_eq!(table.select("hello", &PickContext::none()).unwrap_err(), SelectError::NoInstance);
/// table.remove(&hello);
/// assert_eq!(table.select("hello", &PickContext::none()).unwrap_err(), SelectError::UnknownService);
/// ```
pub struct RoutingTable {
    routes: ArcSwap<Routes>,
    registry: PolicyRegistry,
    mode: RouteMode,
    held: Arc<Notify>,
}

impl RoutingTable {
    /// An empty table with the built-in policies, reaching instances through their workers.
    pub fn new() -> Self {
        Self::with_policies(PolicyRegistry::builtin())
    }

    /// An empty table choosing policies from `registry`.
    pub fn with_policies(registry: PolicyRegistry) -> Self {
        Self {
            routes: ArcSwap::default(),
            registry,
            mode: RouteMode::default(),
            held: Arc::new(Notify::new()),
        }
    }

    /// This table, reaching instances as `mode` says.
    pub fn with_mode(mut self, mode: RouteMode) -> Self {
        self.mode = mode;
        self
    }

    /// The policies this table can use.
    pub fn registry(&self) -> &PolicyRegistry {
        &self.registry
    }

    /// How instances are reached.
    pub fn mode(&self) -> RouteMode {
        self.mode
    }

    /// The current route of `service`, if the table knows it.
    pub fn route(&self, service: &str) -> Option<Arc<Route>> {
        self.routes.load().get(service).cloned()
    }

    /// Every route.
    pub fn routes(&self) -> Vec<Arc<Route>> {
        self.routes.load().values().cloned().collect()
    }

    /// Signalled when a service without instances starts holding requests, so an autoscaler
    /// can wake it at once instead of at its next round.
    pub fn held_requests(&self) -> Arc<Notify> {
        Arc::clone(&self.held)
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
        let backend = route.pick(request).ok_or(SelectError::NoInstance)?;
        route.retry_budget().deposit();
        Ok(Pick::new(backend))
    }

    /// Another endpoint for a request whose pick of `failed` could not connect, if the
    /// service has another one and its retry budget allows a retry. The retry goes to a random
    /// other active endpoint, so retries neither disturb the policy's own rotation nor all land
    /// on one instance.
    pub fn reselect_by_host(&self, host: &[u8], failed: &InstanceId) -> Option<Pick> {
        let service = host::normalize(host).ok()?;
        let routes = self.routes.load();
        let route = routes.get(service.as_ref())?;
        let candidates = if route.active().len() >= 2 {
            route.active()
        } else {
            route.endpoints()
        };
        if candidates.len() < 2 || !route.retry_budget().withdraw() {
            return None;
        }
        let start = rng::below(candidates.len());
        let backend = (0..candidates.len())
            .filter_map(|offset| candidates.get((start + offset) % candidates.len()))
            .find(|b| b.instance() != failed)?;
        Some(Pick::new(backend))
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

    /// Periodic upkeep at `now_ns`: ends and starts ejections, ramps slow start, and
    /// recomputes the endpoints picks choose from where availability changed. Called by
    /// [`Maintenance`](crate::Maintenance) every 100 ms; a simulation calls it on its own clock.
    pub fn tick(&self, now_ns: u64) {
        let changed: Vec<String> = self
            .routes
            .load()
            .iter()
            .filter(|(_, route)| route.maintain(now_ns))
            .map(|(name, _)| name.clone())
            .collect();
        if changed.is_empty() {
            return;
        }
        self.routes.rcu(|routes| {
            let mut next = Routes::clone(routes);
            for name in &changed {
                if let Some(route) = routes.get(name) {
                    next.insert(name.clone(), Arc::new(route.refreshed()));
                }
            }
            next
        });
    }

    /// The policy `spec` asks for, or the default with an error in the log if it is unknown
    /// (the controller refuses specs naming unknown policies, so this is a safety net).
    fn balancer_for(&self, service: &ServiceName, spec: &RouteSpec) -> Arc<dyn Balancer> {
        match self.registry.create(&spec.balancing) {
            Ok(balancer) => balancer,
            Err(UnknownPolicy { name, known }) => {
                error!(%service, policy = %name, %known, "unknown balancing policy; using round robin");
                Arc::new(RoundRobin::new())
            }
        }
    }

    /// Publishes `endpoints` for `service` as [`EndpointSink::publish`] does, with new
    /// endpoints first seen at `now_ns` instead of the [`clock`](crate::clock)'s time: a
    /// simulation publishes on its own clock, so idle times and slow start count in it.
    pub fn publish_at(
        &self,
        service: &ServiceName,
        spec: &RouteSpec,
        endpoints: &[Endpoint],
        now_ns: u64,
    ) {
        let spec = Arc::new(spec.clone());
        let options = BuildOptions {
            now_ns,
            mode: self.mode,
            warm_up: false,
        };
        self.routes.rcu(|routes| {
            let route = match routes.get(service.as_str()) {
                Some(route) if route.spec().balancing == spec.balancing => {
                    route.with_endpoints(Arc::clone(&spec), endpoints, options)
                }
                Some(route) => route
                    .with_policy(Arc::clone(&spec), self.balancer_for(service, &spec))
                    .with_endpoints(Arc::clone(&spec), endpoints, options),
                None => Route::new(
                    service.clone(),
                    Arc::clone(&spec),
                    self.balancer_for(service, &spec),
                    EndpointSet::empty().rebuild(endpoints, &options),
                    None,
                ),
            };
            with_route(routes, service, route)
        });
        if !endpoints.is_empty()
            && let Some(route) = self.routes.load().get(service.as_str())
        {
            route.activator().release();
        }
        debug!(%service, endpoints = endpoints.len(), policy = %spec.balancing.policy, "endpoints published");
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
    fn publish(&self, service: &ServiceName, route: &RouteSpec, endpoints: Vec<Endpoint>) {
        self.publish_at(service, route, &endpoints, clock::now_ns());
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
            .field("mode", &self.mode)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    use tucano_core::{BalancingSpec, InstanceId, WorkerId};

    use crate::backend::Backend;
    use crate::balancer::Balancer;

    const MS: u64 = 1_000_000;

    fn endpoint() -> Endpoint {
        Endpoint {
            instance: InstanceId::new(),
            worker: WorkerId::new("w1").unwrap(),
            proxy: ([127, 0, 0, 1], 8081).into(),
            address: ([127, 0, 0, 1], 9000).into(),
            weight: 1,
        }
    }

    fn name(s: &str) -> ServiceName {
        s.parse().unwrap()
    }

    fn spec(policy: &str) -> RouteSpec {
        RouteSpec {
            balancing: BalancingSpec::named(policy),
            ..RouteSpec::default()
        }
    }

    #[test]
    fn publish_at_stamps_new_endpoints_with_the_given_time_and_keeps_known_ones() {
        let table = RoutingTable::new();
        let web = name("web");
        let (a, b) = (endpoint(), endpoint());
        table.publish_at(&web, &spec("round_robin"), std::slice::from_ref(&a), 7 * MS);
        table.publish_at(&web, &spec("round_robin"), &[a.clone(), b.clone()], 9 * MS);
        let route = table.route("web").unwrap();
        let first_seen = |e: &Endpoint| {
            route
                .endpoints()
                .find(&e.instance)
                .map(|backend| backend.state().first_seen_ns())
        };
        assert_eq!(first_seen(&a), Some(7 * MS));
        assert_eq!(first_seen(&b), Some(9 * MS));
    }

    fn rr() -> RouteSpec {
        RouteSpec::default()
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
        table.publish(&name("web"), &rr(), vec![a.clone()]);
        assert_eq!(table.select("web", &none).unwrap().instance(), &a.instance);

        let b = endpoint();
        table.publish(&name("web"), &rr(), vec![b.clone()]);
        assert_eq!(table.select("web", &none).unwrap().instance(), &b.instance);

        table.publish(&name("web"), &rr(), vec![]);
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
        table.publish(&name("web"), &rr(), vec![a.clone()]);
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
        table.publish(&name("web"), &rr(), vec![a.clone()]);
        let pick = table.select("web", &PickContext::none()).unwrap();
        table.publish(&name("web"), &rr(), vec![endpoint(), a.clone()]);
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
        table.publish(&name("web"), &rr(), vec![a.clone(), b.clone()]);
        let none = PickContext::none();
        assert_eq!(table.select("web", &none).unwrap().instance(), &a.instance);
        table.publish(&name("web"), &rr(), vec![a.clone(), b.clone()]);
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
    fn policies_come_from_the_spec_and_are_rebuilt_on_change() {
        let rebuilds = Arc::new(AtomicUsize::new(0));
        let mut registry = PolicyRegistry::builtin();
        let counter = Arc::clone(&rebuilds);
        registry.register("counting", move |_| {
            Arc::new(Counting(Arc::clone(&counter))) as Arc<dyn Balancer>
        });
        let table = RoutingTable::with_policies(registry);
        table.publish(&name("web"), &spec("counting"), vec![endpoint()]);
        table.publish(&name("web"), &spec("counting"), vec![endpoint()]);
        assert_eq!(rebuilds.load(Ordering::Relaxed), 2);
        assert_eq!(table.route("web").unwrap().policy(), "counting");

        table.publish(&name("web"), &rr(), vec![endpoint()]);
        let route = table.route("web").unwrap();
        assert_eq!(route.policy(), "round_robin");
        assert_eq!(route.endpoints().len(), 1);

        // An unknown policy falls back to round robin rather than dropping traffic.
        table.publish(&name("web"), &spec("nope"), vec![endpoint()]);
        assert!(table.select("web", &PickContext::none()).is_ok());
    }

    fn outlier_spec(failures: u32, max_percent: u8, panic_percent: u8) -> RouteSpec {
        let mut spec = rr();
        spec.balancing.outlier.consecutive_failures = failures;
        spec.balancing.outlier.base_ejection_time = Duration::from_secs(10);
        spec.balancing.outlier.max_ejection_percent = max_percent;
        spec.balancing.panic_threshold_percent = panic_percent;
        spec
    }

    fn fail(table: &RoutingTable, service: &str, instance: &InstanceId, times: u32, now: u64) {
        let route = table.route(service).unwrap();
        let state = route.endpoints().find(instance).unwrap().state();
        for _ in 0..times {
            state.observe(MS, true, now);
        }
    }

    fn picked(
        table: &RoutingTable,
        service: &str,
        n: usize,
    ) -> std::collections::HashSet<InstanceId> {
        (0..n)
            .map(|_| {
                *table
                    .select(service, &PickContext::none())
                    .unwrap()
                    .instance()
            })
            .collect()
    }

    #[test]
    fn failing_endpoints_are_ejected_then_come_back() {
        let table = RoutingTable::new();
        let (a, b, c) = (endpoint(), endpoint(), endpoint());
        table.publish(
            &name("web"),
            &outlier_spec(3, 50, 0),
            vec![a.clone(), b.clone(), c.clone()],
        );
        fail(&table, "web", &a.instance, 2, MS);
        table.tick(2 * MS);
        assert_eq!(
            picked(&table, "web", 30).len(),
            3,
            "two failures do not eject"
        );
        fail(&table, "web", &a.instance, 1, 3 * MS);
        table.tick(4 * MS);
        let seen = picked(&table, "web", 30);
        assert!(!seen.contains(&a.instance) && seen.len() == 2, "ejected");
        // Back after the base ejection time.
        table.tick(4 * MS + 10_000 * MS);
        assert_eq!(picked(&table, "web", 30).len(), 3, "returned");
        // A second ejection lasts twice as long.
        fail(&table, "web", &a.instance, 3, 10_005 * MS);
        table.tick(10_006 * MS);
        table.tick(10_006 * MS + 15_000 * MS);
        assert!(
            !picked(&table, "web", 30).contains(&a.instance),
            "still out after 1.5 bases"
        );
        table.tick(10_006 * MS + 20_000 * MS);
        assert!(picked(&table, "web", 30).contains(&a.instance));
    }

    #[test]
    fn ejection_never_exceeds_its_share_and_fails_open() {
        let table = RoutingTable::new();
        let endpoints: Vec<Endpoint> = (0..4).map(|_| endpoint()).collect();
        table.publish(&name("web"), &outlier_spec(1, 50, 0), endpoints.clone());
        for e in &endpoints {
            fail(&table, "web", &e.instance, 1, MS);
        }
        table.tick(2 * MS);
        let route = table.route("web").unwrap();
        let ejected = route
            .endpoints()
            .iter()
            .filter(|b| b.state().is_ejected())
            .count();
        assert_eq!(ejected, 2, "at most 50 % of 4");
        assert_eq!(route.active().len(), 2);

        // With 100 % allowed, everything may be ejected: then all get traffic (fail open).
        let table = RoutingTable::new();
        table.publish(&name("web"), &outlier_spec(1, 100, 0), endpoints.clone());
        for e in &endpoints {
            fail(&table, "web", &e.instance, 1, MS);
        }
        table.tick(2 * MS);
        let route = table.route("web").unwrap();
        assert!(route.endpoints().iter().all(|b| b.state().is_ejected()));
        assert!(route.in_panic());
        assert_eq!(picked(&table, "web", 40).len(), 4);
    }

    #[test]
    fn the_panic_threshold_routes_to_all_when_too_few_are_healthy() {
        let table = RoutingTable::new();
        let endpoints: Vec<Endpoint> = (0..4).map(|_| endpoint()).collect();
        table.publish(&name("web"), &outlier_spec(0, 50, 50), endpoints.clone());
        let route = table.route("web").unwrap();
        let states: Vec<_> = route
            .endpoints()
            .iter()
            .map(|b| Arc::clone(b.state()))
            .collect();
        // One unhealthy: 75 % available, above the threshold: it is left out.
        assert!(states[0].record_health_check(false, 1, 1));
        route.note_availability_change();
        table.tick(MS);
        assert_eq!(table.route("web").unwrap().active().len(), 3);
        // Three unhealthy: 25 % available, below 50 %: everything takes traffic.
        states[1].record_health_check(false, 1, 1);
        states[2].record_health_check(false, 1, 1);
        table.route("web").unwrap().note_availability_change();
        table.tick(2 * MS);
        let route = table.route("web").unwrap();
        assert!(route.in_panic());
        assert_eq!(route.active().len(), 4);
    }

    #[test]
    fn new_endpoints_warm_up_when_slow_start_is_on() {
        let table = RoutingTable::new();
        let mut spec = rr();
        spec.balancing.slow_start = Duration::from_secs(10);
        let (a, b) = (endpoint(), endpoint());
        // The first endpoints of a service take full traffic at once.
        table.publish(&name("web"), &spec, vec![a.clone()]);
        let route = table.route("web").unwrap();
        assert_eq!(
            route.endpoints().get(0).unwrap().state().weight_factor(),
            1.0
        );
        // One added later starts at the floor and ramps with time.
        table.publish(&name("web"), &spec, vec![a.clone(), b.clone()]);
        let route = table.route("web").unwrap();
        let state = Arc::clone(route.endpoints().find(&b.instance).unwrap().state());
        assert_eq!(state.weight_factor(), crate::SLOW_START_FLOOR);
        let first_seen = state.first_seen_ns();
        table.tick(first_seen + 5_000 * MS);
        assert!(
            (state.weight_factor() - 0.5).abs() < 0.01,
            "{}",
            state.weight_factor()
        );
        table.tick(first_seen + 11_000 * MS);
        assert_eq!(state.weight_factor(), 1.0);
    }

    #[test]
    fn a_removed_endpoint_drains_its_requests() {
        let table = RoutingTable::new();
        let (a, b) = (endpoint(), endpoint());
        table.publish(&name("web"), &rr(), vec![a.clone(), b.clone()]);
        let on_a = table.select("web", &PickContext::none()).unwrap();
        assert_eq!(on_a.instance(), &a.instance);
        // The instance is being stopped: the controller publishes the set without it.
        table.publish(&name("web"), &rr(), vec![b.clone()]);
        assert!(
            !picked(&table, "web", 10).contains(&a.instance),
            "no new requests"
        );
        assert_eq!(
            on_a.guard().state().in_flight(),
            1,
            "the request in flight goes on"
        );
        drop(on_a);
    }

    #[test]
    fn reselect_avoids_the_failed_endpoint_within_the_budget() {
        let table = RoutingTable::new();
        let (a, b) = (endpoint(), endpoint());
        table.publish(&name("web"), &rr(), vec![a.clone(), b.clone()]);
        for _ in 0..3 {
            let next = table.reselect_by_host(b"web", &a.instance).unwrap();
            assert_eq!(next.instance(), &b.instance);
        }
        // The reserve is spent and no request deposited more.
        assert!(table.reselect_by_host(b"web", &a.instance).is_none());
        table.publish(&name("one"), &rr(), vec![a.clone()]);
        assert!(
            table.reselect_by_host(b"one", &a.instance).is_none(),
            "nothing else to try"
        );
    }
}
