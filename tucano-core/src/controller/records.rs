//! What the controller remembers about each service and instance.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::SystemTime;

use tokio::time::Instant;

use crate::model::{
    AttemptLimits, BootId, InstanceEvent, InstanceId, InstanceState, Lifecycle, ServiceSpec,
    TransitionError, WorkerId,
};
use crate::runtime::ExitStatus;
use crate::store::StoredService;
use crate::wire::{InstanceView, ReplicaCounts, ServiceView};

/// One instance, as the controller tracks it.
#[derive(Debug, Clone)]
pub(crate) struct InstanceRecord {
    pub id: InstanceId,
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
}

impl InstanceRecord {
    pub fn new(id: InstanceId, not_before: Instant) -> Self {
        let now = SystemTime::now();
        Self {
            id,
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
        }
    }

    pub fn state(&self) -> InstanceState {
        self.life.state
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
            InstanceState::Pending => {
                self.worker = None;
                self.address = None;
            }
            state if state.is_final() => self.address = None,
            _ => {}
        }
        Ok(self.life.state)
    }

    pub fn view(&self, service: &ServiceSpec) -> InstanceView {
        InstanceView {
            id: self.id,
            service: service.name.clone(),
            state: self.life.state,
            worker: self.worker.clone(),
            address: self.address,
            start_attempts: self.life.start_attempts,
            reason: self.reason.clone(),
            exit: self.exit,
            created_at: self.created_at,
            updated_at: self.updated_at,
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
    /// Instances that failed in a row without one reaching `running`; drives crash backoff.
    pub consecutive_failures: u32,
}

impl ServiceRecord {
    pub fn new(spec: ServiceSpec) -> Self {
        Self {
            spec,
            created_at: SystemTime::now(),
            deleting: false,
            instances: BTreeMap::new(),
            consecutive_failures: 0,
        }
    }

    pub fn stored(&self) -> StoredService {
        StoredService {
            spec: self.spec.clone(),
            created_at: self.created_at,
            deleting: self.deleting,
        }
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
            replicas: self.counts(),
            deleting: self.deleting,
            created_at: self.created_at,
            instances,
        }
    }
}
