//! What workers tell the controller: registrations and heartbeats, each carrying a full
//! report of the worker's instances, compared against what the controller expects.

use std::collections::HashSet;
use std::time::SystemTime;

use tokio::time::Instant;

use super::ControllerError;
use super::engine::Engine;
use super::worker_registry::WorkerRecord;
use crate::model::{InstanceEvent, InstanceId, InstanceState, WorkerId};
use crate::wire::{
    Heartbeat, InstanceReport, LocalState, MeasuredUsage, Registration, RegistrationReply,
    ReportedInstance, WorkerState,
};

impl Engine {
    pub fn register(
        &mut self,
        registration: Registration,
    ) -> Result<RegistrationReply, ControllerError> {
        let url = registration.address.as_str();
        if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() > 2048 {
            return Err(ControllerError::Invalid(format!(
                "worker address {url:?} must be an http:// or https:// URL"
            )));
        }
        crate::scheduler::validate_labels(&registration.labels)
            .map_err(|e| ControllerError::Invalid(format!("worker labels: {e}")))?;
        let id = registration.id.clone();
        let restarted = self
            .workers
            .get(&id)
            .is_some_and(|previous| previous.boot_id != registration.report.boot_id);
        tracing::info!(worker = %id, address = %registration.address, proxy = %registration.proxy_address,
            runtime = %registration.runtime, instances = registration.report.instances.len(), restarted, "worker registered");
        self.workers
            .insert(WorkerRecord::from_registration(&registration));
        self.persistence.dirty.workers.insert(id.clone());

        // A registration lists everything the worker runs: what it lacks is gone from it,
        // except instances whose start may still be on its way.
        let reported: HashSet<InstanceId> =
            registration.report.instances.iter().map(|r| r.id).collect();
        let reason = if restarted {
            "its worker restarted without it"
        } else {
            "missing from its worker's registration"
        };
        let (boot, generation) = (registration.report.boot_id, registration.report.generation);
        let gone = self.instances_on(&id, |i| {
            // Within one boot, only what the worker had confirmed by the report's generation
            // (a retried registration may predate a start that has since succeeded).
            let covered = restarted
                || i.confirmed_at
                    .is_none_or(|(b, g)| b != boot || g <= generation);
            !reported.contains(&i.id)
                && matches!(
                    i.state(),
                    InstanceState::Running | InstanceState::Terminating
                )
                && covered
        });
        for (service, instance, state) in gone {
            let event = if state == InstanceState::Terminating {
                InstanceEvent::Stopped
            } else {
                InstanceEvent::WorkerLost
            };
            self.transition(&service, instance, event, Some(reason.to_owned()));
        }
        self.apply_report(&id, &registration.report);
        self.routes_of_worker_changed(&id);
        self.needs_reconcile = true;
        Ok(RegistrationReply {
            liveness_timeout: self.config.liveness_timeout,
        })
    }

    pub fn heartbeat(&mut self, heartbeat: Heartbeat) -> Result<(), ControllerError> {
        let Some(worker) = self
            .workers
            .get_mut(&heartbeat.id)
            .filter(|w| !w.needs_registration && w.boot_id == heartbeat.report.boot_id)
        else {
            return Err(ControllerError::WorkerNotFound(heartbeat.id));
        };
        worker.last_seen = Instant::now();
        worker.last_heartbeat_at = SystemTime::now();
        if heartbeat.metrics.is_some() {
            worker.metrics = heartbeat.metrics;
        }
        if worker.state == WorkerState::Dead {
            tracing::info!(worker = %heartbeat.id, "worker is heard from again");
            worker.state = WorkerState::Alive;
            self.persistence.dirty.workers.insert(heartbeat.id.clone());
            self.needs_reconcile = true;
        }
        self.apply_report(&heartbeat.id, &heartbeat.report);
        Ok(())
    }

    /// Compares a worker's full instance report with what the controller expects there.
    fn apply_report(&mut self, worker: &WorkerId, report: &InstanceReport) {
        for reported in &report.instances {
            self.apply_reported(worker, report, reported);
        }
        // Running instances the worker confirmed at or before this report's generation of the
        // same boot, and that the report lacks, have vanished.
        let reported: HashSet<InstanceId> = report.instances.iter().map(|r| r.id).collect();
        let vanished = self.instances_on(worker, |i| {
            i.state() == InstanceState::Running
                && !reported.contains(&i.id)
                && i.confirmed_at.is_some_and(|(boot, generation)| {
                    boot == report.boot_id && generation <= report.generation
                })
        });
        for (service, id, _) in vanished {
            tracing::warn!(service = %service, instance = %id, worker = %worker, "instance vanished from its worker");
            self.transition(
                &service,
                id,
                InstanceEvent::Exited,
                Some("vanished from its worker".into()),
            );
        }
    }

    fn apply_reported(
        &mut self,
        worker: &WorkerId,
        report: &InstanceReport,
        reported: &ReportedInstance,
    ) {
        let service = &reported.service;
        let Some(instance) = self
            .services
            .get_mut(service)
            .and_then(|s| s.instances.get_mut(&reported.id))
        else {
            self.stop_orphan(worker, reported.id);
            return;
        };
        let here = instance.worker.as_ref() == Some(worker);
        match (instance.state(), reported.state, here) {
            (InstanceState::Running, LocalState::Exited, true) => {
                let exit = reported.exit.unwrap_or_default();
                tracing::warn!(service = %service, instance = %reported.id, worker = %worker, %exit, "instance exited on its own");
                instance.exit = reported.exit;
                let reason = match &reported.reason {
                    Some(reason) => format!("{exit}: {reason}"),
                    None => exit.to_string(),
                };
                self.transition(service, reported.id, InstanceEvent::Exited, Some(reason));
                self.stop_orphan(worker, reported.id);
            }
            (InstanceState::Terminating, LocalState::Exited, true) if !instance.stop_in_flight => {
                instance.exit = reported.exit;
                self.transition(service, reported.id, InstanceEvent::Exited, None);
            }
            (InstanceState::Running | InstanceState::Terminating, _, true) => {
                instance.confirmed_at = Some((report.boot_id, report.generation));
                // A report without usage (its sample failed) clears the old one: usage only
                // goes stale when the worker stops reporting.
                instance.usage = reported.usage.map(|usage| MeasuredUsage {
                    received_at: SystemTime::now(),
                    usage,
                });
            }
            (InstanceState::Deploying, _, true) => {}
            (InstanceState::Pending, LocalState::Running, _) if !instance.start_in_flight => {
                // Recovery after a controller restart: the instance runs; adopt it.
                tracing::info!(service = %service, instance = %reported.id, worker = %worker, "adopting a running instance");
                instance.address = reported.address;
                instance.confirmed_at = Some((report.boot_id, report.generation));
                self.transition(service, reported.id, InstanceEvent::Scheduled, None);
                if let Some(instance) = self
                    .services
                    .get_mut(service)
                    .and_then(|s| s.instances.get_mut(&reported.id))
                {
                    instance.worker = Some(worker.clone());
                }
                self.transition(service, reported.id, InstanceEvent::Ready, None);
            }
            _ => self.stop_orphan(worker, reported.id),
        }
    }

    /// Marks the routes of every service with a running instance on `worker` as changed.
    fn routes_of_worker_changed(&mut self, worker: &WorkerId) {
        for (name, _, _) in self.instances_on(worker, |i| i.state() == InstanceState::Running) {
            self.dirty_routes.insert(name);
        }
    }
}
