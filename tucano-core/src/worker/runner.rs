//! The runner: starts and stops instances through the runtime and keeps the instance table
//! in step with what the runtime reports.

use std::sync::{Arc, MutexGuard};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;

use super::instance_table::{InstanceTable, LocalInstance};
use super::readiness;
use super::{WorkerError, WorkerInner};
use crate::model::{InstanceId, InstanceSpec};
use crate::runtime::{RuntimeError, RuntimeEvent, StartedInstance};
use crate::wire::{InstanceReport, LocalState, StartReply, StopReply};

impl WorkerInner {
    pub(super) fn table(&self) -> MutexGuard<'_, InstanceTable> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn report(&self) -> InstanceReport {
        self.table().report()
    }

    pub(super) fn prune_exited(&self, now: Instant) -> bool {
        let mut table = self.table();
        let pruned = table.prune_exited(now, self.config.exited_retention);
        if pruned {
            table.changed();
        }
        pruned
    }

    pub(super) async fn start_instance(
        &self,
        spec: InstanceSpec,
    ) -> Result<StartReply, WorkerError> {
        if *self.shutdown.borrow() {
            return Err(WorkerError::ShuttingDown);
        }
        let id = spec.id;
        {
            let mut table = self.table();
            if let Some(existing) = table.entries.get(&id) {
                return match existing.state {
                    LocalState::Running => Ok(StartReply {
                        instance: existing.report(id),
                        boot_id: table.boot_id,
                        generation: table.generation,
                    }),
                    state => Err(WorkerError::Conflict { id, state }),
                };
            }
            table.entries.insert(
                id,
                LocalInstance {
                    service: spec.service.clone(),
                    resources: Some(spec.resources),
                    stop_grace: spec.stop_grace_period,
                    state: LocalState::Starting,
                    address: None,
                    pid: None,
                    exit: None,
                    reason: None,
                    changed_at: Instant::now(),
                },
            );
            table.changed();
        }
        self.changed.notify_one();
        let began = Instant::now();
        let mut started = self.parts.runtime.start(&spec).await;
        if let (Ok(instance), Some(path)) = (&started, &spec.ready_path) {
            let deadline = began + spec.startup_timeout;
            let still_starting = || {
                self.table()
                    .entries
                    .get(&id)
                    .is_some_and(|entry| entry.state == LocalState::Starting)
            };
            let ready =
                readiness::wait_until_ready(instance.address, path, deadline, still_starting).await;
            if let Err(reason) = ready {
                if let Err(error) = self.parts.runtime.stop(id, spec.stop_grace_period).await {
                    tracing::debug!(instance = %id, %error, "instance that never became ready was already gone");
                }
                started = Err(RuntimeError::NotReady {
                    path: path.clone(),
                    reason,
                });
            }
        }
        let reply = self.finish_start(&spec, started);
        self.changed.notify_one();
        if matches!(reply, Err(WorkerError::Conflict { .. })) {
            // Stopped while it started: make sure the process the start made is gone too.
            if let Err(error) = self.parts.runtime.stop(id, spec.stop_grace_period).await {
                tracing::debug!(instance = %id, %error, "instance stopped while starting was already gone");
            }
        }
        reply
    }

    /// Records the outcome of a start in the table.
    fn finish_start(
        &self,
        spec: &InstanceSpec,
        started: Result<StartedInstance, RuntimeError>,
    ) -> Result<StartReply, WorkerError> {
        let id = spec.id;
        let mut table = self.table();
        let (still_starting, early_exit) = match table.entries.get(&id) {
            Some(entry) if entry.state == LocalState::Starting => (true, entry.exit),
            _ => (false, None),
        };
        match started {
            Ok(_) if !still_starting => Err(WorkerError::Conflict {
                id,
                state: LocalState::Stopping,
            }),
            Ok(_) if early_exit.is_some() => {
                table.entries.remove(&id);
                table.changed();
                let status = early_exit.unwrap_or_default();
                tracing::warn!(instance = %id, %status, "instance exited right after it became ready");
                Err(WorkerError::Runtime(RuntimeError::ExitedDuringStartup {
                    status,
                    output: Vec::new(),
                }))
            }
            Ok(started) => {
                if let Some(entry) = table.set_state(id, LocalState::Running) {
                    entry.address = Some(started.address);
                    entry.pid = started.pid;
                }
                let generation = table.changed();
                tracing::info!(instance = %id, service = %spec.service, address = %started.address, "instance running");
                table
                    .entries
                    .get(&id)
                    .map(|entry| StartReply {
                        instance: entry.report(id),
                        boot_id: table.boot_id,
                        generation,
                    })
                    .ok_or(WorkerError::NotFound(id))
            }
            Err(error) => {
                tracing::warn!(instance = %id, service = %spec.service, %error, "instance failed to start");
                if still_starting {
                    table.entries.remove(&id);
                    table.changed();
                }
                Err(WorkerError::Runtime(error))
            }
        }
    }

    pub(super) async fn stop_instance(
        &self,
        id: InstanceId,
        grace: Option<Duration>,
    ) -> Result<StopReply, WorkerError> {
        let (grace, exited, was_running) = {
            let mut table = self.table();
            let entry = table.entries.get(&id).ok_or(WorkerError::NotFound(id))?;
            let grace = grace.unwrap_or(entry.stop_grace);
            let was_running = entry.state == LocalState::Running;
            if entry.state == LocalState::Exited {
                let exit = entry.exit;
                table.entries.remove(&id);
                table.changed();
                (grace, Some(exit), false)
            } else {
                // Out of the directory: the proxy sends it nothing new from now on.
                table.set_state(id, LocalState::Stopping);
                table.changed();
                (grace, None, was_running)
            }
        };
        self.changed.notify_one();
        if let Some(exit) = exited {
            // Let the runtime drop what it kept of the exited instance (its output).
            let _ = self.parts.runtime.stop(id, grace).await;
            return Ok(StopReply { exit });
        }
        let grace = if was_running {
            let drain = self.config.stop_drain.min(grace / 2);
            tokio::time::sleep(drain).await;
            grace - drain
        } else {
            grace
        };
        let reply = match self.parts.runtime.stop(id, grace).await {
            Ok(status) => Ok(StopReply { exit: Some(status) }),
            Err(RuntimeError::NotFound(_)) => Ok(StopReply { exit: None }),
            Err(error) => Err(WorkerError::Runtime(error)),
        };
        if reply.is_ok() {
            let mut table = self.table();
            table.entries.remove(&id);
            table.changed();
            tracing::info!(instance = %id, "instance stopped");
        }
        self.changed.notify_one();
        reply
    }

    pub(super) async fn event_loop(self: Arc<Self>, mut events: broadcast::Receiver<RuntimeEvent>) {
        let mut shutdown = self.shutdown.subscribe();
        loop {
            let event = tokio::select! {
                event = events.recv() => event,
                _ = shutdown.changed() => return,
            };
            match event {
                Ok(RuntimeEvent::Exited { instance, status }) => {
                    let mut table = self.table();
                    let state = table.entries.get(&instance).map(|i| i.state);
                    if state == Some(LocalState::Starting) {
                        // The start is still being recorded; it will see this exit.
                        if let Some(entry) = table.entries.get_mut(&instance) {
                            entry.exit = Some(status);
                        }
                    } else if state == Some(LocalState::Running) {
                        tracing::warn!(%instance, %status, "instance exited on its own");
                        if let Some(entry) = table.set_state(instance, LocalState::Exited) {
                            entry.exit = Some(status);
                        }
                        table.changed();
                        drop(table);
                        self.changed.notify_one();
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "missed runtime events; resynchronising");
                    self.resync().await;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Marks running instances the runtime no longer lists as exited.
    async fn resync(&self) {
        let Ok(listed) = self.parts.runtime.list().await else {
            return;
        };
        let mut table = self.table();
        let gone: Vec<InstanceId> = table
            .entries
            .iter()
            .filter(|(id, i)| {
                i.state == LocalState::Running && !listed.iter().any(|l| l.id == **id)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in &gone {
            if let Some(entry) = table.set_state(*id, LocalState::Exited) {
                entry.reason = Some("no longer listed by the runtime".into());
            }
        }
        if !gone.is_empty() {
            table.changed();
            drop(table);
            self.changed.notify_one();
        }
    }
}
