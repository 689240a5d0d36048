//! The reconciler: compares each service's desired state with its instances and acts —
//! creates, places, stops and forgets instances. Level-triggered and idempotent: a pass with
//! nothing to do changes nothing.

use std::cmp::Reverse;
use std::time::Duration;

use tokio::time::Instant;

use super::engine::Engine;
use super::records::InstanceRecord;
use crate::model::{InstanceEvent, InstanceId, InstanceState, ServiceName, WorkerId};
use crate::scheduler::{ClusterView, PlacementRequest, check};

impl Engine {
    /// One pass over every service.
    pub fn reconcile(&mut self) {
        self.needs_reconcile = false;
        let now = Instant::now();
        let mut cluster = self.cluster_view();
        let names: Vec<ServiceName> = self.services.keys().cloned().collect();
        for name in names {
            self.reconcile_service(&name, now, &mut cluster);
        }
        // Before any caller gets its answer, the balancer sees what the pass changed.
        self.publish_routes();
    }

    /// The workers as the scheduler sees them, with what is placed on each.
    pub(super) fn cluster_view(&self) -> ClusterView {
        ClusterView {
            workers: self
                .workers
                .iter()
                .map(|w| {
                    w.candidate(
                        self.placements.count(&w.id),
                        Some(self.placements.allocated(&w.id)),
                    )
                })
                .collect(),
            service_instances: Vec::new(),
        }
    }

    fn reconcile_service(&mut self, name: &ServiceName, now: Instant, cluster: &mut ClusterView) {
        let Some(service) = self.services.get(name) else {
            return;
        };
        if service.deleting {
            self.stop_instances(name, |_| true);
            self.send_stops(name, now);
            if !self
                .services
                .get(name)
                .is_some_and(|s| s.has_live_instances())
            {
                self.finish_delete(name);
            }
            return;
        }
        self.advance_moves(name);
        if !self.roll(name, now) {
            self.scale(name, now);
        }
        self.place_pending(name, now, cluster);
        self.send_stops(name, now);
        self.prune_history(name);
    }

    /// Creates or stops instances so that exactly `replicas` count as replicas (ended
    /// instances the restart policy keeps ended hold their slot).
    fn scale(&mut self, name: &ServiceName, now: Instant) {
        let Some(service) = self.services.get(name) else {
            return;
        };
        let mut active: Vec<(u8, Reverse<InstanceId>)> = service
            .instances
            .values()
            .filter(|i| i.state().counts_as_replica() && i.moving_to.is_none())
            .map(|i| (stop_preference(i.state()), Reverse(i.id)))
            .collect();
        let retired = service
            .instances
            .values()
            .filter(|i| service.is_retired(i))
            .count();
        let desired = (service.spec.replicas as usize).saturating_sub(retired);
        if active.len() < desired {
            self.add_instances(name, desired - active.len(), now);
        } else if active.len() > desired {
            // Stop what costs least to lose: pending, then deploying, then running; newest first.
            active.sort();
            let victims: Vec<InstanceId> = active[..active.len() - desired]
                .iter()
                .map(|(_, Reverse(id))| *id)
                .collect();
            self.stop_instances(name, |i| victims.contains(&i.id));
        }
    }

    /// Adds `count` pending instances of the service's current revision, held back by the
    /// crash backoff while its instances keep failing.
    pub(super) fn add_instances(&mut self, name: &ServiceName, count: usize, now: Instant) {
        let crash_backoff = self.config.crash_backoff;
        let Some(service) = self.services.get_mut(name) else {
            return;
        };
        let delay = match service.consecutive_failures {
            0 => Duration::ZERO,
            failures => crash_backoff.delay(failures),
        };
        for _ in 0..count {
            let id = InstanceId::new();
            service
                .instances
                .insert(id, InstanceRecord::new(id, service.revision, now + delay));
            self.persistence.dirty.instances.insert((name.clone(), id));
        }
    }

    /// Requests a stop of the service's replicas that `select` picks.
    pub(super) fn stop_instances(
        &mut self,
        name: &ServiceName,
        select: impl Fn(&InstanceRecord) -> bool,
    ) {
        let Some(service) = self.services.get(name) else {
            return;
        };
        let ids: Vec<InstanceId> = service
            .instances
            .values()
            .filter(|i| i.state().counts_as_replica() && select(i))
            .map(|i| i.id)
            .collect();
        for id in ids {
            self.transition(name, id, InstanceEvent::StopRequested, None);
        }
    }

    /// Asks the scheduler for a worker for each pending instance whose backoff has passed.
    fn place_pending(&mut self, name: &ServiceName, now: Instant, cluster: &mut ClusterView) {
        let Some(service) = self.services.get(name) else {
            return;
        };
        let ready: Vec<(InstanceId, Option<WorkerId>)> = service
            .instances
            .values()
            .filter(|i| {
                i.state() == InstanceState::Pending
                    && !i.start_in_flight
                    && i.not_before <= now
                    && i.revision == service.revision
            })
            .map(|i| (i.id, i.pinned.clone()))
            .collect();
        if ready.is_empty() {
            return;
        }
        let on = service.per_worker(|i| !i.state().is_final());
        cluster.service_instances = cluster
            .workers
            .iter()
            .map(|w| on.get(&w.id).copied().unwrap_or(0))
            .collect();
        // Replacements prefer workers where the service's instances did not just fail.
        let mut avoid: Vec<WorkerId> = service
            .instances
            .values()
            .filter(|i| matches!(i.state(), InstanceState::Failed | InstanceState::Lost))
            .filter_map(|i| i.worker.clone())
            .collect();
        avoid.sort();
        avoid.dedup();
        let scheduler = self.parts.scheduler.clone();
        let spec = service.spec.clone();
        for (id, pinned) in ready {
            let request = PlacementRequest {
                constraints: &spec.placement.constraints,
                max_per_worker: spec.placement.max_per_worker,
                strategy: spec.placement.strategy,
                avoid: &avoid,
                seed: placement_seed(id),
                ..PlacementRequest::new(&spec.name, &spec.resources, spec.runtime_kind())
            };
            let placement = match &pinned {
                Some(worker) => place_pinned(&request, cluster, worker),
                None => scheduler
                    .place(&request, cluster)
                    .map_err(|error| format!("waiting for a worker: {error}")),
            };
            let placement = placement.and_then(|worker| {
                self.workers
                    .get(&worker)
                    .map(|w| w.address())
                    .ok_or_else(|| format!("waiting for a worker: {worker} is not registered"))
            });
            match placement {
                Ok(worker) => {
                    self.transition(name, id, InstanceEvent::Scheduled, None);
                    if let Some(instance) = self
                        .services
                        .get_mut(name)
                        .and_then(|s| s.instances.get_mut(&id))
                    {
                        instance.worker = Some(worker.id.clone());
                        instance.start_in_flight = true;
                        instance.unplaced = false;
                    }
                    self.reindex(name, id);
                    cluster.record_placement(&worker.id, &spec.resources);
                    self.spawn_start(spec.instance(id), &worker);
                }
                Err(reason) => {
                    if let Some(instance) = self
                        .services
                        .get_mut(name)
                        .and_then(|s| s.instances.get_mut(&id))
                    {
                        instance.unplaced = true;
                        if instance.reason.as_deref() != Some(reason.as_str()) {
                            instance.reason = Some(reason);
                            self.persistence.dirty.instances.insert((name.clone(), id));
                        }
                    }
                }
            }
        }
    }

    /// Sends a stop for each terminating instance without one in flight whose retry delay passed.
    fn send_stops(&mut self, name: &ServiceName, now: Instant) {
        let Some(service) = self.services.get(name) else {
            return;
        };
        let due: Vec<(InstanceId, Option<WorkerId>)> = service
            .instances
            .values()
            .filter(|i| {
                i.state() == InstanceState::Terminating
                    && !i.stop_in_flight
                    && i.next_stop_at <= now
            })
            .map(|i| (i.id, i.worker.clone()))
            .collect();
        if !due.is_empty() {
            // Drain first: the balancer stops sending new requests before the instance is
            // asked to stop.
            self.publish_routes();
        }
        for (id, worker) in due {
            let address = worker
                .as_ref()
                .and_then(|w| self.workers.get(w))
                .map(|w| w.address());
            let Some(address) = address else {
                self.transition(
                    name,
                    id,
                    InstanceEvent::WorkerLost,
                    Some("its worker is gone".into()),
                );
                continue;
            };
            if let Some(instance) = self
                .services
                .get_mut(name)
                .and_then(|s| s.instances.get_mut(&id))
            {
                instance.stop_in_flight = true;
            }
            self.spawn_stop(name, id, &address);
        }
    }

    /// Forgets the oldest final instances beyond the configured history (ended instances
    /// that hold their replica slot are kept).
    fn prune_history(&mut self, name: &ServiceName) {
        let keep = self.config.history;
        let Some(service) = self.services.get_mut(name) else {
            return;
        };
        let mut finals: Vec<(std::time::SystemTime, InstanceId)> = service
            .instances
            .values()
            .filter(|i| i.state().is_final() && !service.is_retired(i))
            .map(|i| (i.updated_at, i.id))
            .collect();
        if finals.len() <= keep {
            return;
        }
        finals.sort();
        for (_, id) in &finals[..finals.len() - keep] {
            service.instances.remove(id);
            self.placements.set(name, *id, None);
            self.persistence.dirty.instances.insert((name.clone(), *id));
        }
    }

    /// Removes a deleted service whose instances have all ended and answers its waiters.
    fn finish_delete(&mut self, name: &ServiceName) {
        let Some(service) = self.services.remove(name) else {
            return;
        };
        let view = service.view();
        for id in service.instances.keys() {
            self.placements.set(name, *id, None);
        }
        tracing::info!(service = %name, "service deleted");
        self.persistence.dirty.services.insert(name.clone());
        self.dirty_routes.insert(name.clone());
        for waiter in self.delete_waiters.remove(name).unwrap_or_default() {
            let _ = waiter.send(view.clone());
        }
    }
}

/// Places an instance on the one worker it is pinned to, if that worker can take it.
fn place_pinned(
    request: &PlacementRequest<'_>,
    cluster: &ClusterView,
    worker: &WorkerId,
) -> Result<WorkerId, String> {
    let index = cluster
        .workers
        .iter()
        .position(|w| w.id == *worker)
        .ok_or_else(|| format!("waiting for {worker}, which is not registered"))?;
    let same_service = cluster.service_instances.get(index).copied().unwrap_or(0);
    check(request, &cluster.workers[index], same_service)
        .map(|()| worker.clone())
        .map_err(|rejection| {
            format!(
                "waiting for {worker}, the worker it must go to (workers that {rejection} cannot take it)"
            )
        })
}

/// Which replicas to stop first when scaling down: lower goes first.
fn stop_preference(state: InstanceState) -> u8 {
    match state {
        InstanceState::Pending => 0,
        InstanceState::Deploying => 1,
        _ => 2,
    }
}

/// The seed of an instance's placement: from its id, so a placement is random across
/// instances yet the same if computed again.
fn placement_seed(id: InstanceId) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut hasher);
    hasher.finish()
}
