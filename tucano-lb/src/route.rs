//! One service's route: all its endpoints, the ones available now, and the policy instance
//! that picks among them.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tucano_core::ServiceName;
use tucano_core::transport::{Endpoint, RouteSpec};

use crate::activator::Activator;
use crate::backend::Backend;
use crate::balancer::{Balancer, PickContext};
use crate::endpoint_set::{BuildOptions, EndpointSet, SLOW_START_FLOOR};
use crate::retry_budget::RetryBudget;

/// What a service's successive routes share: the retry budget, a flag that health checks
/// raise when an endpoint's verdict changes, and the activator holding requests while the
/// service has no instance.
#[derive(Debug)]
pub(crate) struct RouteShared {
    pub retry_budget: RetryBudget,
    pub availability_changed: AtomicBool,
    pub activator: Arc<Activator>,
}

impl RouteShared {
    /// A fresh retry budget for `spec` and no pending health change, holding requests in
    /// `activator`.
    fn new(spec: &RouteSpec, activator: Arc<Activator>) -> Self {
        Self {
            retry_budget: RetryBudget::new(spec.balancing.retry_budget_percent),
            availability_changed: AtomicBool::new(false),
            activator,
        }
    }
}

/// A service's endpoints together with its balancing policy, swapped in as one value so a
/// pick always sees a policy built for the set it picks from.
///
/// The policy picks among the *active* endpoints: those not ejected by outlier detection and
/// not failing health checks — unless fewer than the panic threshold are, in which case all
/// endpoints are active (fail open, as Envoy does).
pub struct Route {
    service: ServiceName,
    spec: Arc<RouteSpec>,
    balancer: Arc<dyn Balancer>,
    all: EndpointSet,
    active: EndpointSet,
    panic: bool,
    shared: Arc<RouteShared>,
}

impl Route {
    /// A route for `service` using `balancer` over `endpoints`.
    pub(crate) fn new(
        service: ServiceName,
        spec: Arc<RouteSpec>,
        balancer: Arc<dyn Balancer>,
        all: EndpointSet,
        shared: Option<Arc<RouteShared>>,
    ) -> Self {
        let shared = shared
            .unwrap_or_else(|| Arc::new(RouteShared::new(&spec, Arc::new(Activator::default()))));
        let (active, panic) = active_endpoints(&all, spec.balancing.panic_threshold_percent);
        let balancer = balancer.rebuild(&active).unwrap_or(balancer);
        Self {
            service,
            spec,
            balancer,
            all,
            active,
            panic,
            shared,
        }
    }

    /// This route with its endpoints replaced (under a possibly changed spec); load state
    /// and policy state carry over. Endpoints new to a route that had some warm up when the
    /// spec asks for slow start.
    pub(crate) fn with_endpoints(
        &self,
        spec: Arc<RouteSpec>,
        endpoints: &[Endpoint],
        options: BuildOptions,
    ) -> Self {
        let options = BuildOptions {
            warm_up: !spec.balancing.slow_start.is_zero() && !self.all.is_empty(),
            ..options
        };
        Self::new(
            self.service.clone(),
            spec,
            Arc::clone(&self.balancer),
            self.all.rebuild(endpoints, &options),
            Some(Arc::clone(&self.shared)),
        )
    }

    /// This route with another spec and policy over the same endpoints (a new retry budget;
    /// the same held requests).
    pub(crate) fn with_policy(&self, spec: Arc<RouteSpec>, balancer: Arc<dyn Balancer>) -> Self {
        let shared = Arc::new(RouteShared::new(&spec, Arc::clone(&self.shared.activator)));
        Self::new(
            self.service.clone(),
            spec,
            balancer,
            self.all.clone(),
            Some(shared),
        )
    }

    /// The requests held while the service has no instance.
    pub(crate) fn activator(&self) -> &Arc<Activator> {
        &self.shared.activator
    }

    /// Requests waiting for the service's first instance.
    pub fn waiting(&self) -> u32 {
        self.shared.activator.waiting()
    }

    /// This route with its active endpoints recomputed from their current state.
    pub(crate) fn refreshed(&self) -> Self {
        Self::new(
            self.service.clone(),
            Arc::clone(&self.spec),
            Arc::clone(&self.balancer),
            self.all.clone(),
            Some(Arc::clone(&self.shared)),
        )
    }

    /// Periodic upkeep at `now_ns`: ends ejections whose time is up, ejects endpoints with too
    /// many failures in a row (never more than the allowed share), ramps slow-start weights,
    /// refills the retry budget. True if the active endpoints must be recomputed.
    pub(crate) fn maintain(&self, now_ns: u64) -> bool {
        let balancing = &self.spec.balancing;
        let outlier = &balancing.outlier;
        let base_ns = duration_ns(outlier.base_ejection_time);
        let mut changed = self
            .shared
            .availability_changed
            .swap(false, Ordering::Relaxed);
        for backend in &self.all {
            changed |= backend.state().expire_ejection(now_ns, base_ns);
        }
        if outlier.consecutive_failures > 0 {
            let total = self.all.len();
            let allowed = if outlier.max_ejection_percent == 0 {
                0
            } else {
                (total * usize::from(outlier.max_ejection_percent) / 100).max(1)
            };
            let mut ejected = self.all.iter().filter(|b| b.state().is_ejected()).count();
            for backend in &self.all {
                let state = backend.state();
                if ejected < allowed
                    && !state.is_ejected()
                    && state.consecutive_failures() >= outlier.consecutive_failures
                {
                    state.eject(now_ns, base_ns);
                    tracing::warn!(service = %self.service, instance = %backend.instance(),
                        times = state.times_ejected(), "ejecting an instance that keeps failing");
                    ejected += 1;
                    changed = true;
                }
            }
        }
        let window_ns = duration_ns(balancing.slow_start);
        for backend in &self.all {
            let state = backend.state();
            if state.weight_factor() < 1.0 {
                let warmed = if window_ns == 0 {
                    1.0
                } else {
                    now_ns.saturating_sub(state.first_seen_ns()) as f64 / window_ns as f64
                };
                state.set_weight_factor((warmed as f32).clamp(SLOW_START_FLOOR, 1.0));
            }
        }
        self.shared.retry_budget.refill();
        changed
    }

    /// The service routed.
    pub fn service(&self) -> &ServiceName {
        &self.service
    }

    /// The balancing policy and options in use.
    pub fn spec(&self) -> &RouteSpec {
        &self.spec
    }

    /// The name of the balancing policy in use.
    pub fn policy(&self) -> &str {
        &self.spec.balancing.policy
    }

    /// Every running endpoint of the service.
    pub fn endpoints(&self) -> &EndpointSet {
        &self.all
    }

    /// The endpoints picks choose from now.
    pub fn active(&self) -> &EndpointSet {
        &self.active
    }

    /// True when too few endpoints are available and all of them take traffic (fail open).
    pub fn in_panic(&self) -> bool {
        self.panic
    }

    /// The endpoint the policy picks for a request, `None` when there is none.
    #[inline]
    pub fn pick(&self, request: &PickContext<'_>) -> Option<&Backend> {
        self.balancer.pick(&self.active, request)
    }

    /// The service's retry budget.
    pub(crate) fn retry_budget(&self) -> &RetryBudget {
        &self.shared.retry_budget
    }

    /// Tells the route an endpoint's health changed, for the next upkeep.
    pub(crate) fn note_availability_change(&self) {
        self.shared
            .availability_changed
            .store(true, Ordering::Relaxed);
    }
}

/// The endpoints to pick from and whether that is all of them because too few are available.
fn active_endpoints(all: &EndpointSet, panic_threshold_percent: u8) -> (EndpointSet, bool) {
    let available = all.iter().filter(|b| b.state().is_available()).count();
    if available == all.len() {
        return (all.clone(), false);
    }
    let enough =
        available > 0 && available * 100 >= all.len() * usize::from(panic_threshold_percent);
    if enough {
        (all.filtered(|b| b.state().is_available()), false)
    } else {
        (all.clone(), true)
    }
}

fn duration_ns(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("service", &self.service)
            .field("policy", &self.spec.balancing.policy)
            .field("balancer", &self.balancer)
            .field("endpoints", &self.all)
            .field("active", &self.active.len())
            .field("panic", &self.panic)
            .finish()
    }
}
