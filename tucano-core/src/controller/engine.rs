//! The controller's task: owns every service, instance and worker record and handles one
//! message at a time.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

use super::persistence::Persistence;
use super::placements::Placements;
use super::records::{InstanceRecord, ServiceRecord};
use super::worker_registry::{WorkerRecord, WorkerRegistry};
use super::{ControllerConfig, ControllerError, ControllerParts};
use crate::autoscale::ScalingDecision;
use crate::model::{
    InstanceEvent, InstanceId, InstanceState, ServiceName, ServiceSpec, WorkerId, validate_replicas,
};
use crate::store::StoredState;
use crate::transport::{Endpoint, RouteSpec, TransportError};
use crate::wire::{
    Heartbeat, Registration, RegistrationReply, ServiceView, StartReply, StopReply, WorkerView,
};

/// Most queued messages handled before one reconcile pass.
const BATCH: usize = 64;

/// Grace period for stopping instances the controller has no spec for.
pub(super) const ORPHAN_GRACE: Duration = Duration::from_secs(10);

/// A reply channel.
pub(crate) type Reply<T> = oneshot::Sender<T>;

/// What a delete answers at once: the service, and a receiver for its final view when
/// instances still have to terminate.
pub(crate) type DeleteStarted = (ServiceView, Option<oneshot::Receiver<ServiceView>>);

/// Messages to the controller's task.
pub(crate) enum Command {
    CreateService(ServiceSpec, Reply<Result<ServiceView, ControllerError>>),
    ListServices(Reply<Vec<ServiceView>>),
    ListAutoscaled(Reply<Vec<ServiceView>>),
    GetService(String, Reply<Result<ServiceView, ControllerError>>),
    ScaleService(String, u32, Reply<Result<ServiceView, ControllerError>>),
    UpdateService(ServiceSpec, Reply<Result<ServiceView, ControllerError>>),
    ApplyScaling(
        String,
        ScalingDecision,
        Reply<Result<ServiceView, ControllerError>>,
    ),
    DeleteService(String, Reply<Result<DeleteStarted, ControllerError>>),
    ListWorkers(Reply<Vec<WorkerView>>),
    Register(
        Box<Registration>,
        Reply<Result<RegistrationReply, ControllerError>>,
    ),
    Heartbeat(Box<Heartbeat>, Reply<Result<(), ControllerError>>),
    Deregister(WorkerId, Reply<Result<(), ControllerError>>),
    StartDone {
        service: ServiceName,
        instance: InstanceId,
        worker: WorkerId,
        result: Result<StartReply, TransportError>,
    },
    StopDone {
        service: ServiceName,
        instance: InstanceId,
        result: Result<StopReply, TransportError>,
    },
    OrphanStopDone(InstanceId),
    Shutdown(Reply<()>),
}

pub(crate) struct Engine {
    pub config: ControllerConfig,
    pub parts: ControllerParts,
    pub services: BTreeMap<ServiceName, ServiceRecord>,
    pub workers: WorkerRegistry,
    /// Our own inbox, for tasks that report call outcomes.
    pub inbox: mpsc::Sender<Command>,
    pub persistence: Persistence,
    persist_failed: mpsc::Receiver<()>,
    pub delete_waiters: HashMap<ServiceName, Vec<oneshot::Sender<ServiceView>>>,
    /// Services whose routable endpoints may have changed.
    pub dirty_routes: HashSet<ServiceName>,
    /// Instances on workers the controller does not want, with a stop in flight.
    pub orphan_stops: HashSet<InstanceId>,
    /// Something changed that a reconcile pass should look at.
    pub needs_reconcile: bool,
    /// When the last rebalancing pass ran.
    pub last_rebalance: Instant,
    /// Live instances by worker.
    pub placements: Placements,
}

impl Engine {
    pub fn new(
        config: ControllerConfig,
        parts: ControllerParts,
        stored: StoredState,
        inbox: mpsc::Sender<Command>,
    ) -> Self {
        let (failed, persist_failed) = mpsc::channel(1);
        let persistence = Persistence::start(parts.store.clone(), config.store_retry, failed);
        let mut engine = Self {
            config,
            parts,
            services: BTreeMap::new(),
            workers: WorkerRegistry::default(),
            inbox,
            persistence,
            persist_failed,
            delete_waiters: HashMap::new(),
            dirty_routes: HashSet::new(),
            orphan_stops: HashSet::new(),
            needs_reconcile: true,
            last_rebalance: Instant::now(),
            placements: Placements::default(),
        };
        engine.restore(stored);
        engine
    }

    fn restore(&mut self, stored: StoredState) {
        for service in stored.services {
            let name = service.spec.name.clone();
            self.services
                .insert(name.clone(), ServiceRecord::restore(service));
            self.dirty_routes.insert(name);
        }
        for view in &stored.instances {
            if let Some(service) = self.services.get_mut(&view.service) {
                service
                    .instances
                    .insert(view.id, InstanceRecord::restore(view));
                self.reindex(&view.service, view.id);
            }
        }
        for view in &stored.workers {
            self.workers.insert(WorkerRecord::restore(view));
        }
        if !self.services.is_empty() || !stored.workers.is_empty() {
            tracing::info!(
                services = self.services.len(),
                instances = stored.instances.len(),
                workers = stored.workers.len(),
                "restored controller state from the store"
            );
        }
    }

    pub async fn run(mut self, mut queue: mpsc::Receiver<Command>) {
        let mut tick = tokio::time::interval(self.config.tick);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = queue.recv() => {
                    let Some(command) = command else { break };
                    // What is queued behind it is handled too before one reconcile pass.
                    let mut next = Some(command);
                    let mut handled = 0;
                    while let Some(command) = next.take() {
                        if let Command::Shutdown(reply) = command {
                            self.flush_and_finish().await;
                            let _ = reply.send(());
                            return;
                        }
                        self.handle(command);
                        handled += 1;
                        if handled < BATCH {
                            next = queue.try_recv().ok();
                        }
                    }
                }
                _ = tick.tick() => self.on_tick(),
                Some(()) = self.persist_failed.recv() => self.persistence.resync = true,
            }
            if self.needs_reconcile {
                self.reconcile();
            }
            self.publish_routes();
        }
        self.flush_and_finish().await;
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        for id in self.workers.expire(now, self.config.liveness_timeout) {
            tracing::warn!(worker = %id, timeout = ?self.config.liveness_timeout, "worker stopped sending heartbeats; declaring it dead");
            self.persistence.dirty.workers.insert(id.clone());
            self.lose_worker_instances(&id, "its worker stopped sending heartbeats", |_| true);
        }
        for id in self
            .workers
            .prune_dead(now, self.config.dead_worker_retention)
        {
            self.persistence.dirty.workers.insert(id);
        }
        self.rebalance_if_due(now);
        self.needs_reconcile = true;
        self.flush();
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::CreateService(spec, reply) => {
                let _ = reply.send(self.create_service(spec));
            }
            Command::ListServices(reply) => {
                let _ = reply.send(self.services.values().map(ServiceRecord::view).collect());
            }
            Command::ListAutoscaled(reply) => {
                let views = self
                    .services
                    .values()
                    .filter(|s| s.spec.autoscale.is_some() && !s.deleting)
                    .map(ServiceRecord::view)
                    .collect();
                let _ = reply.send(views);
            }
            Command::GetService(name, reply) => {
                let _ = reply.send(self.service(&name).map(ServiceRecord::view));
            }
            Command::ScaleService(name, replicas, reply) => {
                let _ = reply.send(self.scale_service(&name, replicas));
            }
            Command::UpdateService(spec, reply) => {
                let _ = reply.send(self.update_service(spec));
            }
            Command::ApplyScaling(name, decision, reply) => {
                let _ = reply.send(self.apply_scaling(&name, decision));
            }
            Command::DeleteService(name, reply) => {
                let _ = reply.send(self.delete_service(&name));
            }
            Command::ListWorkers(reply) => {
                let _ = reply.send(self.worker_views());
            }
            Command::Register(registration, reply) => {
                let _ = reply.send(self.register(*registration));
            }
            Command::Heartbeat(heartbeat, reply) => {
                let _ = reply.send(self.heartbeat(*heartbeat));
            }
            Command::Deregister(id, reply) => {
                let _ = reply.send(self.deregister(&id));
            }
            Command::StartDone {
                service,
                instance,
                worker,
                result,
            } => self.start_done(&service, instance, &worker, result),
            Command::StopDone {
                service,
                instance,
                result,
            } => self.stop_done(&service, instance, result),
            Command::OrphanStopDone(id) => {
                self.orphan_stops.remove(&id);
            }
            Command::Shutdown(reply) => {
                let _ = reply.send(());
            }
        }
    }

    fn service(&self, name: &str) -> Result<&ServiceRecord, ControllerError> {
        name.parse::<ServiceName>()
            .ok()
            .and_then(|name| self.services.get(&name))
            .ok_or_else(|| ControllerError::ServiceNotFound(name.to_owned()))
    }

    pub fn live_service_mut(&mut self, name: &str) -> Result<&mut ServiceRecord, ControllerError> {
        let service = name
            .parse::<ServiceName>()
            .ok()
            .and_then(|name| self.services.get_mut(&name))
            .ok_or_else(|| ControllerError::ServiceNotFound(name.to_owned()))?;
        if service.deleting {
            return Err(ControllerError::ServiceDeleting(service.spec.name.clone()));
        }
        Ok(service)
    }

    /// Checks a spec a caller sent: valid, and naming a balancing policy the balancer has.
    pub fn check_spec(&self, spec: &ServiceSpec) -> Result<(), ControllerError> {
        spec.validate()
            .map_err(|e| ControllerError::Invalid(e.to_string()))?;
        if let Some(known) = &self.config.balancing_policies
            && !known.contains(&spec.balancing.policy)
        {
            return Err(ControllerError::Invalid(format!(
                "unknown balancing policy {:?}; known policies: {}",
                spec.balancing.policy,
                known.join(", ")
            )));
        }
        Ok(())
    }

    fn create_service(&mut self, spec: ServiceSpec) -> Result<ServiceView, ControllerError> {
        self.check_spec(&spec)?;
        if let Some(existing) = self.services.get(&spec.name) {
            return Err(if existing.deleting {
                ControllerError::ServiceDeleting(spec.name)
            } else {
                ControllerError::ServiceExists(spec.name)
            });
        }
        let name = spec.name.clone();
        tracing::info!(service = %name, replicas = spec.replicas, "service created");
        self.services.insert(name.clone(), ServiceRecord::new(spec));
        self.persistence.dirty.services.insert(name.clone());
        // Known to the balancer at once: requests get 503 until an instance runs, not 404.
        self.dirty_routes.insert(name.clone());
        self.reconcile();
        self.placement_outcome(&name)
    }

    fn scale_service(&mut self, name: &str, replicas: u32) -> Result<ServiceView, ControllerError> {
        validate_replicas(replicas).map_err(|e| ControllerError::Invalid(e.to_string()))?;
        let service = self.live_service_mut(name)?;
        let name = service.spec.name.clone();
        if service.spec.replicas != replicas {
            tracing::info!(service = %name, from = service.spec.replicas, to = replicas, "service scaled");
            service.spec.replicas = replicas;
        }
        // Asking for a count means that many running: ended slots the restart policy kept
        // are given back, even at the same count.
        service.slots_reset_at = Some(std::time::SystemTime::now());
        self.persistence.dirty.services.insert(name.clone());
        self.reconcile();
        self.placement_outcome(&name)
    }

    /// The service's view, or `NoCapacity` when some of its instances could not be placed.
    pub fn placement_outcome(&self, name: &ServiceName) -> Result<ServiceView, ControllerError> {
        let service = self
            .services
            .get(name)
            .ok_or_else(|| ControllerError::ServiceNotFound(name.to_string()))?;
        let waiting: Vec<&InstanceRecord> = service
            .instances
            .values()
            .filter(|i| i.state() == InstanceState::Pending && i.unplaced)
            .collect();
        match waiting.first() {
            None => Ok(service.view()),
            Some(first) => Err(ControllerError::NoCapacity {
                message: format!(
                    "service {name} is recorded, but {} of its instances wait for a worker: {}",
                    waiting.len(),
                    first.reason.as_deref().unwrap_or("no live worker")
                ),
                service: Box::new(service.view()),
            }),
        }
    }

    fn delete_service(&mut self, name: &str) -> Result<DeleteStarted, ControllerError> {
        let service = match self.live_service_mut(name) {
            Err(ControllerError::ServiceDeleting(name)) => {
                let (done, receiver) = oneshot::channel();
                self.delete_waiters
                    .entry(name.clone())
                    .or_default()
                    .push(done);
                let view = self.service(name.as_str())?.view();
                return Ok((view, Some(receiver)));
            }
            other => other?,
        };
        let name = service.spec.name.clone();
        tracing::info!(service = %name, "service deletion requested");
        service.deleting = true;
        self.persistence.dirty.services.insert(name.clone());
        let (done, mut receiver) = oneshot::channel();
        self.delete_waiters
            .entry(name.clone())
            .or_default()
            .push(done);
        self.reconcile();
        match self.services.get(&name) {
            Some(service) => Ok((service.view(), Some(receiver))),
            // Nothing had to terminate: the service is gone already.
            None => receiver
                .try_recv()
                .map(|view| (view, None))
                .map_err(|_| ControllerError::ServiceNotFound(name.to_string())),
        }
    }

    fn worker_views(&self) -> Vec<WorkerView> {
        self.workers
            .iter()
            .map(|w| w.view(self.placements.count(&w.id)))
            .collect()
    }

    /// (service, instance, state) of the non-final instances on `worker` that `filter` selects.
    pub fn instances_on(
        &self,
        worker: &WorkerId,
        filter: impl Fn(&InstanceRecord) -> bool,
    ) -> Vec<(ServiceName, InstanceId, InstanceState)> {
        self.placements
            .on(worker)
            .filter_map(|(name, id)| {
                let instance = self.services.get(name)?.instances.get(id)?;
                (instance.worker.as_ref() == Some(worker)
                    && !instance.state().is_final()
                    && filter(instance))
                .then(|| (name.clone(), *id, instance.state()))
            })
            .collect()
    }

    /// Brings the placement index up to date with instance `id` of `service`: counted on its
    /// worker while it is placed and not final.
    pub fn reindex(&mut self, service: &ServiceName, id: InstanceId) {
        let placement = self.services.get(service).and_then(|s| {
            let instance = s.instances.get(&id)?;
            let worker = instance.worker.as_ref()?;
            (!instance.state().is_final()).then_some((worker, s.spec.resources))
        });
        self.placements.set(service, id, placement);
    }

    fn deregister(&mut self, id: &WorkerId) -> Result<(), ControllerError> {
        if self.workers.remove(id).is_none() {
            return Err(ControllerError::WorkerNotFound(id.clone()));
        }
        tracing::info!(worker = %id, "worker deregistered");
        self.persistence.dirty.workers.insert(id.clone());
        self.lose_worker_instances(id, "its worker deregistered", |_| true);
        Ok(())
    }

    /// Applies `event` to an instance and records the consequences (persistence, routes,
    /// crash counting). Refused events are logged and ignored.
    pub fn transition(
        &mut self,
        service: &ServiceName,
        id: InstanceId,
        event: InstanceEvent,
        reason: Option<String>,
    ) -> Option<InstanceState> {
        let limits = self.config.attempts;
        let record = self.services.get_mut(service)?;
        let instance = record.instances.get_mut(&id)?;
        let before = instance.state();
        match instance.apply(event, limits) {
            Ok(after) => {
                instance.reason = reason;
                if after == InstanceState::Failed {
                    let stable = instance
                        .running_since
                        .is_some_and(|since| since.elapsed() >= self.config.crash_reset_after);
                    record.consecutive_failures = if stable {
                        1
                    } else {
                        record.consecutive_failures.saturating_add(1)
                    };
                }
                tracing::debug!(service = %service, instance = %id, from = %before, to = %after, ?event, "instance transition");
                self.reindex(service, id);
                if before == InstanceState::Running || after == InstanceState::Running {
                    self.dirty_routes.insert(service.clone());
                }
                self.persistence
                    .dirty
                    .instances
                    .insert((service.clone(), id));
                self.needs_reconcile = true;
                Some(after)
            }
            Err(error) => {
                tracing::debug!(service = %service, instance = %id, %error, "ignored instance event");
                None
            }
        }
    }

    /// Marks the non-final instances of `worker` that `filter` selects as lost.
    pub fn lose_worker_instances(
        &mut self,
        worker: &WorkerId,
        reason: &str,
        filter: impl Fn(&InstanceRecord) -> bool,
    ) {
        let lost: Vec<(ServiceName, InstanceId)> = self
            .instances_on(worker, |i| i.state() != InstanceState::Pending && filter(i))
            .into_iter()
            .map(|(service, id, _)| (service, id))
            .collect();
        for (service, id) in lost {
            tracing::warn!(service = %service, instance = %id, worker = %worker, reason, "instance lost");
            self.transition(
                &service,
                id,
                InstanceEvent::WorkerLost,
                Some(reason.to_owned()),
            );
        }
    }

    /// Publishes the running instances of every service whose endpoints may have changed.
    pub fn publish_routes(&mut self) {
        for name in std::mem::take(&mut self.dirty_routes) {
            let Some(service) = self.services.get(&name) else {
                self.parts.endpoints.remove(&name);
                continue;
            };
            let endpoints = service
                .instances
                .values()
                .filter(|i| i.state() == InstanceState::Running)
                .filter_map(|i| {
                    let worker = self.workers.get(i.worker.as_ref()?)?;
                    Some(Endpoint {
                        instance: i.id,
                        worker: worker.id.clone(),
                        proxy: worker.proxy_address,
                        address: i.address?,
                        weight: 1,
                    })
                })
                .collect();
            self.parts
                .endpoints
                .publish(&name, &RouteSpec::of(&service.spec), endpoints);
        }
    }
}
