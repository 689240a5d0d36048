//! What the controller remembers about each service and instance.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::SystemTime;

use tokio::time::Instant;

use crate::model::{
    AttemptLimits, BootId, FIRST_REVISION, InstanceEvent, InstanceId, InstanceState, Lifecycle,
    RolloutStatus, ServiceSpec, TransitionError, WorkerId,
};
use crate::runtime::ExitStatus;
use crate::store::StoredService;
use crate::wire::{InstanceView, MeasuredUsage, ReplicaCounts, ScalingEvent, ServiceView};

/// One instance, as the controller tracks it.
#[derive(Debug, Clone)]
pub(crate) struct InstanceRecord {
    pub id: InstanceId,
    /// The revision of the service's spec it runs.
    pub revision: u64,
    pub life: Lifecycle,
    pub worker: Option<WorkerId>,
    pub address: Option<SocketAddr>,
    pub reason: Option<String>,
    pub exit: Option<ExitStatus>,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
    /// A pending instance is not placed before this instant (retry and crash backoff).
    pub not_before: Instant,
    /// The worker boot and generation at which the worker confirmed the instance.
    pub confirmed_at: Option<(BootId, u64)>,
    pub start_in_flight: bool,
    pub stop_in_flight: bool,
    /// The last placement attempt found no worker for it.
    pub unplaced: bool,
    /// A terminating instance whose stop failed is retried from this instant.
    pub next_stop_at: Instant,
    /// When it last became running (this controller's clock).
    pub running_since: Option<Instant>,
    /// The worker it must go to (a rebalancing move), if any.
    pub pinned: Option<WorkerId>,
    /// The instance that replaces it on another worker (a rebalancing move in progress).
    pub moving_to: Option<InstanceId>,
    /// Its latest resource use from its worker's heartbeats (not stored: it is only worth
    /// anything fresh).
    pub usage: Option<MeasuredUsage>,
}

impl InstanceRecord {
    pub fn new(id: InstanceId, revision: u64, not_before: Instant) -> Self {
        let now = SystemTime::now();
        Self {
            id,
            revision,
            life: Lifecycle::new(),
            worker: None,
            address: None,
            reason: None,
            exit: None,
            created_at: now,
            updated_at: now,
            not_before,
            confirmed_at: None,
            start_in_flight: false,
            stop_in_flight: false,
            unplaced: false,
            next_stop_at: Instant::now(),
            running_since: None,
            pinned: None,
            moving_to: None,
            usage: None,
        }
    }

    /// Rebuilds a record from its stored view.
    pub fn restore(view: &InstanceView) -> Self {
        let now = Instant::now();
        // A start whose answer was lost with the old controller is started again; the worker
        // answers for the same id without starting it twice.
        let state = match view.state {
            InstanceState::Deploying => InstanceState::Pending,
            state => state,
        };
        Self {
            id: view.id,
            revision: view.revision,
            life: Lifecycle {
                state,
                start_attempts: view.start_attempts,
                stop_failures: 0,
            },
            worker: view
                .worker
                .clone()
                .filter(|_| state != InstanceState::Pending),
            address: view.address,
            reason: view.reason.clone(),
            exit: view.exit,
            created_at: view.created_at,
            updated_at: view.updated_at,
            not_before: now,
            confirmed_at: None,
            start_in_flight: false,
            stop_in_flight: false,
            unplaced: false,
            next_stop_at: now,
            running_since: (state == InstanceState::Running).then_some(now),
            pinned: None,
            moving_to: None,
            usage: None,
        }
    }

    pub fn state(&self) -> InstanceState {
        self.life.state
    }

    /// Running, and for at least `min_ready` at `now`: healthy, as a rolling update counts.
    pub fn is_ready(&self, min_ready: std::time::Duration, now: Instant) -> bool {
        self.state() == InstanceState::Running
            && self
                .running_since
                .is_some_and(|since| since + min_ready <= now)
    }

    /// Applies `event`; on success stamps the change time.
    pub fn apply(
        &mut self,
        event: InstanceEvent,
        limits: AttemptLimits,
    ) -> Result<InstanceState, TransitionError> {
        self.life = self.life.transition(event, limits)?;
        self.updated_at = SystemTime::now();
        match self.life.state {
            InstanceState::Running => self.running_since = Some(Instant::now()),
            InstanceState::Pending => {
                self.worker = None;
                self.address = None;
                self.usage = None;
            }
            state if state.is_final() => {
                self.address = None;
                self.usage = None;
            }
            _ => {}
        }
        Ok(self.life.state)
    }

    /// The instance as the API shows it, with its latest usage.
    pub fn view(&self, service: &ServiceSpec) -> InstanceView {
        InstanceView {
            usage: self.usage,
            ..self.stored_view(service)
        }
    }

    /// The instance as the store keeps it: without its usage, which a restarted controller
    /// would only mistake for fresh.
    pub fn stored_view(&self, service: &ServiceSpec) -> InstanceView {
        InstanceView {
            id: self.id,
            service: service.name.clone(),
            state: self.life.state,
            revision: self.revision,
            worker: self.worker.clone(),
            address: self.address,
            start_attempts: self.life.start_attempts,
            reason: self.reason.clone(),
            exit: self.exit,
            created_at: self.created_at,
            updated_at: self.updated_at,
            usage: None,
        }
    }
}

/// One service and its instances.
#[derive(Debug)]
pub(crate) struct ServiceRecord {
    pub spec: ServiceSpec,
    pub created_at: SystemTime,
    pub deleting: bool,
    pub instances: BTreeMap<InstanceId, InstanceRecord>,
    /// Instances that failed in a row, none having run stably in between; drives crash
    /// backoff.
    pub consecutive_failures: u32,
    /// The revision of `spec`.
    pub revision: u64,
    /// The highest revision ever given (a rollback lowers `revision`, not this).
    pub latest_revision: u64,
    /// The spec the current rolling update started from, to roll back to.
    pub previous: Option<ServiceSpec>,
    /// The latest rolling update.
    pub rollout: Option<RolloutStatus>,
    /// When the current rolling update last made progress (a new instance became healthy).
    pub rollout_progress_at: Instant,
    /// Instances that ended before this and that the restart policy did not replace no longer
    /// hold their replica slot.
    pub slots_reset_at: Option<SystemTime>,
    /// The latest autoscaler changes, oldest first, at most [`SCALING_EVENTS`].
    pub scaling_events: VecDeque<ScalingEvent>,
}

/// Autoscaler changes kept per service.
pub(crate) const SCALING_EVENTS: usize = 20;

impl ServiceRecord {
    pub fn new(spec: ServiceSpec) -> Self {
        Self {
            spec,
            created_at: SystemTime::now(),
            deleting: false,
            instances: BTreeMap::new(),
            consecutive_failures: 0,
            revision: FIRST_REVISION,
            latest_revision: FIRST_REVISION,
            previous: None,
            rollout: None,
            rollout_progress_at: Instant::now(),
            slots_reset_at: None,
            scaling_events: VecDeque::new(),
        }
    }

    /// Rebuilds a record (without its instances) from its stored form.
    pub fn restore(stored: StoredService) -> Self {
        Self {
            created_at: stored.created_at,
            deleting: stored.deleting,
            revision: stored.revision,
            latest_revision: stored.latest_revision.max(stored.revision),
            previous: stored.previous,
            rollout: stored.rollout,
            slots_reset_at: stored.slots_reset_at,
            scaling_events: stored.scaling_events.into(),
            ..Self::new(stored.spec)
        }
    }

    pub fn stored(&self) -> StoredService {
        StoredService {
            spec: self.spec.clone(),
            created_at: self.created_at,
            deleting: self.deleting,
            revision: self.revision,
            latest_revision: self.latest_revision,
            previous: self.previous.clone(),
            rollout: self.rollout.clone(),
            slots_reset_at: self.slots_reset_at,
            scaling_events: self.scaling_events.iter().cloned().collect(),
        }
    }

    /// Whether `instance` ended, is of the current revision, and was not replaced by the
    /// restart policy since the last reset: it keeps its replica slot, ended.
    pub fn is_retired(&self, instance: &InstanceRecord) -> bool {
        instance.state() == InstanceState::Failed
            && instance.revision == self.revision
            && !self.spec.restart.replaces(instance.exit.as_ref())
            && self
                .slots_reset_at
                .is_none_or(|reset| instance.updated_at > reset)
    }

    pub fn counts(&self) -> ReplicaCounts {
        let mut counts = ReplicaCounts {
            desired: self.spec.replicas,
            ..ReplicaCounts::default()
        };
        for instance in self.instances.values() {
            match instance.state() {
                InstanceState::Running => counts.running += 1,
                InstanceState::Pending | InstanceState::Deploying => counts.starting += 1,
                InstanceState::Terminating => counts.terminating += 1,
                _ => {}
            }
        }
        counts
    }

    /// How many of the instances `select` picks each worker holds.
    pub fn per_worker(&self, select: impl Fn(&InstanceRecord) -> bool) -> HashMap<&WorkerId, u32> {
        let mut on: HashMap<&WorkerId, u32> = HashMap::new();
        for instance in self.instances.values().filter(|i| select(i)) {
            if let Some(worker) = &instance.worker {
                *on.entry(worker).or_default() += 1;
            }
        }
        on
    }

    /// Instances that are not final.
    pub fn has_live_instances(&self) -> bool {
        self.instances.values().any(|i| !i.state().is_final())
    }

    pub fn view(&self) -> ServiceView {
        let mut instances: Vec<InstanceView> = self
            .instances
            .values()
            .map(|i| i.view(&self.spec))
            .collect();
        instances.sort_by_key(|i| (i.state.is_final(), i.id));
        ServiceView {
            name: self.spec.name.clone(),
            spec: self.spec.clone(),
            revision: self.revision,
            rollout: self.rollout.clone(),
            replicas: self.counts(),
            deleting: self.deleting,
            created_at: self.created_at,
            instances,
            scaling_events: self.scaling_events.iter().cloned().collect(),
        }
    }
}
