//! Calls from the controller to workers — start, stop, and stopping what it does not want —
//! and what their answers do to instances.

use tokio::time::Instant;

use super::engine::{Command, Engine, ORPHAN_GRACE};
use super::worker_registry::WorkerRecord;
use crate::model::{InstanceEvent, InstanceId, InstanceSpec, InstanceState, ServiceName, WorkerId};
use crate::transport::{TransportError, WorkerAddress};
use crate::wire::{StartReply, StopReply};

impl Engine {
    pub(super) fn start_done(
        &mut self,
        service: &ServiceName,
        id: InstanceId,
        worker: &WorkerId,
        result: Result<StartReply, TransportError>,
    ) {
        let wanted = self
            .services
            .get_mut(service)
            .and_then(|s| s.instances.get_mut(&id))
            .map(|instance| {
                instance.start_in_flight = false;
                instance.state() == InstanceState::Deploying
                    && instance.worker.as_ref() == Some(worker)
            })
            .unwrap_or(false);
        match result {
            Ok(reply) if wanted => {
                if let Some(instance) = self
                    .services
                    .get_mut(service)
                    .and_then(|s| s.instances.get_mut(&id))
                {
                    instance.address = reply.instance.address;
                    instance.confirmed_at = Some((reply.boot_id, reply.generation));
                }
                tracing::info!(service = %service, instance = %id, worker = %worker, address = ?reply.instance.address, "instance running");
                self.transition(service, id, InstanceEvent::Ready, None);
            }
            Ok(_) => {
                // Started, but no longer wanted there (stopped, or its worker was lost meanwhile).
                self.stop_orphan(worker, id);
            }
            Err(error) if wanted => {
                tracing::warn!(service = %service, instance = %id, worker = %worker, %error, "instance failed to start");
                let after = self.transition(
                    service,
                    id,
                    InstanceEvent::StartFailed,
                    Some(format!("start on {worker} failed: {error}")),
                );
                if let Some(instance) = self
                    .services
                    .get_mut(service)
                    .and_then(|s| s.instances.get_mut(&id))
                    .filter(|_| after == Some(InstanceState::Pending))
                {
                    let delay = self
                        .config
                        .start_backoff
                        .delay(instance.life.start_attempts);
                    instance.not_before = Instant::now() + delay;
                }
            }
            Err(_) => {}
        }
    }

    pub(super) fn stop_done(
        &mut self,
        service: &ServiceName,
        id: InstanceId,
        result: Result<StopReply, TransportError>,
    ) {
        let Some(instance) = self
            .services
            .get_mut(service)
            .and_then(|s| s.instances.get_mut(&id))
        else {
            return;
        };
        instance.stop_in_flight = false;
        if instance.state() != InstanceState::Terminating {
            return;
        }
        match result {
            Ok(reply) => {
                instance.exit = reply.exit;
                self.transition(service, id, InstanceEvent::Stopped, None);
            }
            Err(TransportError::NotFound(_)) => {
                self.transition(service, id, InstanceEvent::Stopped, None);
            }
            Err(error) => {
                tracing::warn!(service = %service, instance = %id, %error, "stop failed");
                let after = self.transition(
                    service,
                    id,
                    InstanceEvent::StopFailed,
                    Some(format!("stop failed: {error}")),
                );
                if let Some(instance) = self
                    .services
                    .get_mut(service)
                    .and_then(|s| s.instances.get_mut(&id))
                    .filter(|_| after == Some(InstanceState::Terminating))
                {
                    let delay = self.config.stop_backoff.delay(instance.life.stop_failures);
                    instance.next_stop_at = Instant::now() + delay;
                }
            }
        }
    }

    /// Asks `worker` to stop (or forget) an instance the controller does not want there.
    pub fn stop_orphan(&mut self, worker: &WorkerId, id: InstanceId) {
        let Some(address) = self.workers.get(worker).map(WorkerRecord::address) else {
            return;
        };
        if !self.orphan_stops.insert(id) {
            return;
        }
        tracing::info!(instance = %id, worker = %worker, "stopping an instance the controller does not want on this worker");
        let transport = self.parts.workers.clone();
        let inbox = self.inbox.clone();
        tokio::spawn(async move {
            if let Err(error) = transport.stop_instance(&address, id, ORPHAN_GRACE).await {
                tracing::debug!(instance = %id, %error, "orphan stop failed; the next report retries it");
            }
            let _ = inbox.send(Command::OrphanStopDone(id)).await;
        });
    }

    pub fn spawn_start(&self, spec: InstanceSpec, worker: &WorkerAddress) {
        let id = spec.id;
        let transport = self.parts.workers.clone();
        let inbox = self.inbox.clone();
        let worker = worker.clone();
        tokio::spawn(async move {
            let result = transport.start_instance(&worker, &spec).await;
            let _ = inbox
                .send(Command::StartDone {
                    service: spec.service,
                    instance: id,
                    worker: worker.id,
                    result,
                })
                .await;
        });
    }

    pub fn spawn_stop(&self, service: &ServiceName, id: InstanceId, worker: &WorkerAddress) {
        let grace = self
            .services
            .get(service)
            .map_or(ORPHAN_GRACE, |s| s.spec.stop_grace_period);
        let transport = self.parts.workers.clone();
        let inbox = self.inbox.clone();
        let worker = worker.clone();
        let service = service.clone();
        tokio::spawn(async move {
            let result = transport.stop_instance(&worker, id, grace).await;
            let _ = inbox
                .send(Command::StopDone {
                    service,
                    instance: id,
                    result,
                })
                .await;
        });
    }
}
