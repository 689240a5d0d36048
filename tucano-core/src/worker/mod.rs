//! The worker engine: the runner (starts and stops instances through a [`Runtime`]), the
//! monitor (a [`MetricsSource`]) and the heartbeat pusher, around a table of local instances.

mod heartbeat;
mod instance_table;
mod readiness;
mod runner;
mod usage_tracker;

pub use instance_table::LocalDirectory;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::metrics::MetricsSource;
use crate::model::{BootId, InstanceId, InstanceSpec, Resources, WorkerId};
use crate::retry::RetryPolicy;
use crate::runtime::{Runtime, RuntimeError};
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
    /// Labels the worker registers with (`zone=a`, ...), which placement constraints match.
    pub labels: BTreeMap<String, String>,
    /// How long an exited instance stays listed if the controller never forgets it.
    pub exited_retention: Duration,
    /// Between taking a running instance out of the proxy's directory and sending it SIGTERM,
    /// this long (at most half its grace period, which it counts against) lets requests
    /// already on their way to it arrive, so its graceful shutdown finishes them instead of
    /// closing connections under them.
    pub stop_drain: Duration,
}

impl WorkerConfig {
    /// A config with defaults: 1 s heartbeats, ten registration attempts over about 30 s, a
    /// 500 ms drain before each stop.
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
            labels: BTreeMap::new(),
            exited_retention: Duration::from_secs(600),
            stop_drain: Duration::from_millis(500),
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
                    resources: None,
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
