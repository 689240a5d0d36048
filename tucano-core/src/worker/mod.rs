//! The worker engine: the runner (starts and stops instances through a [`Runtime`]), the
//! monitor (a [`MetricsSource`]) and the heartbeat pusher, around a table of local instances.

mod heartbeat;
mod instance_table;

pub use instance_table::LocalDirectory;

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::metrics::MetricsSource;
use crate::model::{BootId, InstanceId, InstanceSpec, Resources, WorkerId};
use crate::retry::RetryPolicy;
use crate::runtime::{Runtime, RuntimeError, RuntimeEvent};
use crate::transport::{ControllerTransport, TransportError};
use crate::wire::{InstanceReport, LocalState, LogLine, StartReply, StopReply};
use instance_table::{InstanceTable, LocalInstance};

/// Grace period for instances adopted from the runtime, whose spec the worker never saw.
const ADOPTED_STOP_GRACE: Duration = Duration::from_secs(10);
/// The liveness timeout assumed until the controller states its own.
const DEFAULT_LIVENESS_MS: u64 = 5_000;
/// How long a deregistration may take at shutdown.
const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings of a [`Worker`].
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The worker's id (stable across restarts if the runtime can adopt instances).
    pub id: WorkerId,
    /// Base URL the controller reaches this worker's API at.
    pub address: String,
    /// Address the balancer reaches this worker's proxy at.
    pub proxy_address: SocketAddr,
    /// How often to send a heartbeat when nothing changes.
    pub heartbeat_interval: Duration,
    /// Attempts to register at start.
    pub register_retry: RetryPolicy,
    /// What the worker offers to instances; detected from the first metrics sample if `None`.
    pub capacity: Option<Resources>,
    /// How long an exited instance stays listed if the controller never forgets it.
    pub exited_retention: Duration,
}

impl WorkerConfig {
    /// A config with defaults: 1 s heartbeats, ten registration attempts over about 30 s.
    pub fn new(id: WorkerId, address: String, proxy_address: SocketAddr) -> Self {
        Self {
            id,
            address,
            proxy_address,
            heartbeat_interval: Duration::from_secs(1),
            register_retry: RetryPolicy::new(
                10,
                Duration::from_millis(250),
                Duration::from_secs(5),
            ),
            capacity: None,
            exited_retention: Duration::from_secs(600),
        }
    }
}

/// The pluggable parts of a worker.
#[derive(Clone)]
pub struct WorkerParts {
    /// Runs the instances.
    pub runtime: Arc<dyn Runtime>,
    /// Samples the node's load for heartbeats.
    pub metrics: Arc<dyn MetricsSource>,
    /// Reaches the controller.
    pub controller: Arc<dyn ControllerTransport>,
}

/// Why a worker call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkerError {
    /// No such instance on this worker.
    #[error("no instance {0} on this worker")]
    NotFound(InstanceId),
    /// The instance exists in a state that does not allow the call.
    #[error("instance {id} is {state:?}")]
    Conflict {
        /// The instance.
        id: InstanceId,
        /// Its state.
        state: LocalState,
    },
    /// The runtime failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The worker could not register with the controller.
    #[error("could not register with the controller: {0}")]
    Register(TransportError),
    /// The worker is shutting down.
    #[error("worker is shutting down")]
    ShuttingDown,
}

/// A worker node's engine — a cloneable handle to it; what its API serves.
#[derive(Clone)]
pub struct Worker {
    inner: Arc<WorkerInner>,
}

impl Worker {
    /// A worker that has adopted what the runtime already runs and listens to runtime
    /// events. It starts in two steps so that its API can be serving before the controller
    /// learns its address: [`Worker::new`], then [`Worker::join`].
    pub async fn new(config: WorkerConfig, parts: WorkerParts) -> Result<Self, WorkerError> {
        let directory = Arc::new(LocalDirectory::default());
        let mut table = InstanceTable::new(BootId::new(), directory.clone());
        for adopted in parts.runtime.list().await? {
            table.entries.insert(
                adopted.id,
                LocalInstance {
                    service: adopted.service,
                    stop_grace: ADOPTED_STOP_GRACE,
                    state: LocalState::Running,
                    address: Some(adopted.address),
                    pid: adopted.pid,
                    exit: None,
                    reason: None,
                    changed_at: Instant::now(),
                },
            );
        }
        if !table.entries.is_empty() {
            tracing::info!(instances = table.entries.len(), "adopted running instances");
            table.changed();
        }
        let capacity = match config.capacity {
            Some(capacity) => capacity,
            None => detect_capacity(parts.metrics.as_ref()).await,
        };
        let (shutdown, _) = watch::channel(false);
        let events = parts.runtime.subscribe();
        let inner = Arc::new(WorkerInner {
            config,
            parts,
            capacity,
            table: Mutex::new(table),
            directory,
            changed: Notify::new(),
            liveness_ms: AtomicU64::new(DEFAULT_LIVENESS_MS),
            shutdown,
        });
        tokio::spawn(inner.clone().event_loop(events));
        Ok(Self { inner })
    }
}

async fn detect_capacity(metrics: &dyn MetricsSource) -> Resources {
    match metrics.sample().await {
        Ok(sample) => Resources {
            cpus: f64::from(sample.cpu_count.max(1)),
            memory_mb: (sample.memory_total_bytes / (1024 * 1024)).max(1),
        },
        Err(error) => {
            tracing::warn!(%error, "could not detect capacity; advertising the default");
            Resources::default()
        }
    }
}

pub(crate) struct WorkerInner {
    config: WorkerConfig,
    parts: WorkerParts,
    capacity: Resources,
    table: Mutex<InstanceTable>,
    directory: Arc<LocalDirectory>,
    /// Signalled when an instance changes, for an immediate heartbeat.
    changed: Notify,
    /// The controller's liveness timeout, from the last registration (milliseconds).
    liveness_ms: AtomicU64,
    shutdown: watch::Sender<bool>,
}

impl WorkerInner {
    fn table(&self) -> MutexGuard<'_, InstanceTable> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn report(&self) -> InstanceReport {
        self.table().report()
    }

    fn prune_exited(&self, now: Instant) -> bool {
        let mut table = self.table();
        let pruned = table.prune_exited(now, self.config.exited_retention);
        if pruned {
            table.changed();
        }
        pruned
    }

    async fn start_instance(&self, spec: InstanceSpec) -> Result<StartReply, WorkerError> {
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
        let started = self.parts.runtime.start(&spec).await;
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
        started: Result<crate::runtime::StartedInstance, RuntimeError>,
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

    async fn stop_instance(
        &self,
        id: InstanceId,
        grace: Option<Duration>,
    ) -> Result<StopReply, WorkerError> {
        let (grace, exited) = {
            let mut table = self.table();
            let entry = table.entries.get(&id).ok_or(WorkerError::NotFound(id))?;
            let grace = grace.unwrap_or(entry.stop_grace);
            if entry.state == LocalState::Exited {
                let exit = entry.exit;
                table.entries.remove(&id);
                table.changed();
                (grace, Some(exit))
            } else {
                table.set_state(id, LocalState::Stopping);
                table.changed();
                (grace, None)
            }
        };
        self.changed.notify_one();
        if let Some(exit) = exited {
            // Let the runtime drop what it kept of the exited instance (its output).
            let _ = self.parts.runtime.stop(id, grace).await;
            return Ok(StopReply { exit });
        }
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

    async fn event_loop(self: Arc<Self>, mut events: broadcast::Receiver<RuntimeEvent>) {
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

impl Worker {
    /// The worker's id.
    pub fn id(&self) -> &WorkerId {
        &self.inner.config.id
    }

    /// Registers with the controller (bounded retries with backoff) and starts the heartbeat
    /// pusher. Call once the worker's API serves.
    pub async fn join(&self) -> Result<(), WorkerError> {
        self.inner.register().await.map_err(WorkerError::Register)?;
        tracing::info!(worker = %self.inner.config.id, "worker registered with the controller");
        tokio::spawn(self.inner.clone().heartbeat_loop());
        Ok(())
    }

    /// Where the worker's running instances listen, for its proxy.
    pub fn directory(&self) -> Arc<LocalDirectory> {
        self.inner.directory.clone()
    }

    /// Every instance this worker knows, with the table's generation.
    pub fn report(&self) -> InstanceReport {
        self.inner.report()
    }

    /// Starts an instance and returns once it accepts connections. Starting an id that
    /// already runs answers with it instead of starting it twice. The start runs in its own
    /// task: a caller that goes away (a closed connection) cannot cancel it halfway.
    pub async fn start_instance(&self, spec: InstanceSpec) -> Result<StartReply, WorkerError> {
        let inner = self.inner.clone();
        tokio::spawn(async move { inner.start_instance(spec).await })
            .await
            .map_err(|e| {
                WorkerError::Runtime(RuntimeError::Other(format!("start task failed: {e}")))
            })?
    }

    /// Stops an instance (SIGTERM, then SIGKILL after `grace`, by default its spec's grace
    /// period) and forgets it; forgets an exited one at once. Like a start, it runs in its
    /// own task.
    pub async fn stop_instance(
        &self,
        id: InstanceId,
        grace: Option<Duration>,
    ) -> Result<StopReply, WorkerError> {
        let inner = self.inner.clone();
        tokio::spawn(async move { inner.stop_instance(id, grace).await })
            .await
            .map_err(|e| {
                WorkerError::Runtime(RuntimeError::Other(format!("stop task failed: {e}")))
            })?
    }

    /// The last `tail` output lines of an instance.
    pub async fn logs(&self, id: InstanceId, tail: usize) -> Result<Vec<LogLine>, WorkerError> {
        match self.inner.parts.runtime.logs(id, tail).await {
            Err(RuntimeError::NotFound(_)) => Err(WorkerError::NotFound(id)),
            other => Ok(other?),
        }
    }

    /// Graceful shutdown: stops heartbeats, stops every instance within its grace period,
    /// then deregisters so the controller replaces them at once.
    pub async fn shutdown(&self) {
        if self.inner.shutdown.send_replace(true) {
            return;
        }
        let ids: Vec<InstanceId> = self.inner.table().entries.keys().copied().collect();
        let mut stops = JoinSet::new();
        for id in ids {
            let handle = self.clone();
            stops.spawn(async move { handle.stop_instance(id, None).await });
        }
        while stops.join_next().await.is_some() {}
        let deregister = self
            .inner
            .parts
            .controller
            .deregister(&self.inner.config.id);
        match tokio::time::timeout(DEREGISTER_TIMEOUT, deregister).await {
            Ok(Ok(())) => tracing::info!(worker = %self.inner.config.id, "worker deregistered"),
            Ok(Err(error)) => tracing::warn!(%error, "could not deregister"),
            Err(_) => tracing::warn!("deregistration timed out"),
        }
    }
}
