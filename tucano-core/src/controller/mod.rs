//! The controller engine: worker registry with a liveness timeout, a level-triggered
//! reconciler that keeps each service at its replica count, and the instance state machine
//! driven by worker answers and heartbeats.
//!
//! One task owns all state (actor style); a cloneable [`ControllerHandle`] sends it messages.

mod engine;
mod persistence;
mod placements;
mod rebalance;
mod reconcile;
mod records;
mod reports;
mod rollout;
mod scaling;
mod worker_calls;
mod worker_registry;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::autoscale::ScalingDecision;
use crate::model::{AttemptLimits, ServiceName, ServiceSpec, WorkerId};
use crate::retry::RetryPolicy;
use crate::scheduler::Scheduler;
use crate::store::{Store, StoreError};
use crate::transport::{EndpointSink, WorkerTransport};
use crate::wire::{Heartbeat, Registration, RegistrationReply, ServiceView, WorkerView};
use engine::{Command, Engine};
pub use rebalance::RebalanceConfig;

/// Messages the controller may queue before callers wait.
const INBOX: usize = 1024;

/// Settings of a [`Controller`].
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// A worker silent for this long is declared dead and its instances are replaced.
    pub liveness_timeout: Duration,
    /// How often the controller checks liveness, retries and backoffs.
    pub tick: Duration,
    /// Start and stop attempts per instance.
    pub attempts: AttemptLimits,
    /// Delay between start attempts of one instance.
    pub start_backoff: RetryPolicy,
    /// Delay between stop attempts of one instance.
    pub stop_backoff: RetryPolicy,
    /// Delay before replacing an instance of a service whose instances keep failing
    /// (grows with consecutive failures, jittered, capped).
    pub crash_backoff: RetryPolicy,
    /// An instance that ran this long before it failed starts a new count of consecutive
    /// failures (a crash loop is failures in quick succession).
    pub crash_reset_after: Duration,
    /// Final (terminated, failed, lost) instances kept per service for inspection.
    pub history: usize,
    /// Dead workers are forgotten after this long.
    pub dead_worker_retention: Duration,
    /// How long `DELETE` waits for instances to terminate before answering "in progress".
    pub delete_wait: Duration,
    /// Retries of one store write.
    pub store_retry: RetryPolicy,
    /// Moves instances of unevenly spread services, at a limited rate; off unless set.
    pub rebalance: Option<RebalanceConfig>,
    /// Balancing policies a spec may name; `None` accepts any well-formed name. The node that
    /// runs the balancer fills it from the balancer's policy registry.
    pub balancing_policies: Option<Vec<String>>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            liveness_timeout: Duration::from_secs(5),
            tick: Duration::from_millis(100),
            attempts: AttemptLimits::default(),
            start_backoff: RetryPolicy::new(0, Duration::from_millis(500), Duration::from_secs(10)),
            stop_backoff: RetryPolicy::new(0, Duration::from_millis(500), Duration::from_secs(10)),
            crash_backoff: RetryPolicy::new(0, Duration::from_secs(1), Duration::from_secs(60)),
            crash_reset_after: Duration::from_secs(60),
            history: 10,
            dead_worker_retention: Duration::from_secs(3600),
            delete_wait: Duration::from_secs(60),
            store_retry: RetryPolicy::new(5, Duration::from_millis(100), Duration::from_secs(2)),
            rebalance: None,
            balancing_policies: None,
        }
    }
}

/// The pluggable parts of a controller.
#[derive(Clone)]
pub struct ControllerParts {
    /// Picks a worker for each instance.
    pub scheduler: Arc<dyn Scheduler>,
    /// Reaches workers.
    pub workers: Arc<dyn WorkerTransport>,
    /// Durable record of services, instances and workers.
    pub store: Arc<dyn Store>,
    /// Receives each service's running instances (the balancer's routing table).
    pub endpoints: Arc<dyn EndpointSink>,
}

/// Why a controller call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ControllerError {
    /// The spec or request is invalid.
    #[error("{0}")]
    Invalid(String),
    /// A service with this name exists.
    #[error("service {0} already exists")]
    ServiceExists(ServiceName),
    /// The service is being deleted and accepts no change.
    #[error("service {0} is being deleted")]
    ServiceDeleting(ServiceName),
    /// No service with this name.
    #[error("no service named {0}")]
    ServiceNotFound(String),
    /// No worker with this id (or it must register again).
    #[error("no registered worker {0}")]
    WorkerNotFound(WorkerId),
    /// The change was recorded, but some instances wait for a live worker that can take them.
    #[error("{message}")]
    NoCapacity {
        /// What is waiting and why.
        message: String,
        /// The service as recorded.
        service: Box<ServiceView>,
    },
    /// The controller is not running.
    #[error("controller is shutting down")]
    Unavailable,
}

/// How a delete ended within the wait.
#[derive(Debug, Clone, PartialEq)]
pub enum DeleteOutcome {
    /// Every instance terminated and the service is forgotten.
    Deleted(ServiceView),
    /// Instances are still terminating; the service goes when they are done.
    InProgress(ServiceView),
}

/// Starts controllers.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use tucano_core::controller::{Controller, ControllerConfig, ControllerParts};
/// use tucano_core::scheduler::Pipeline;
/// use tucano_core::store::MemoryStore;
/// use tucano_core::transport::{Endpoint, EndpointSink, WorkerAddress, WorkerTransport, TransportError};
/// use tucano_core::{InstanceId, InstanceSpec, ServiceName, ServiceSpec};
/// # struct NoWorkers;
/// # #[async_trait::async_trait]
/// # impl WorkerTransport for NoWorkers {
/// #     async fn start_instance(&self, _: &WorkerAddress, _: &InstanceSpec) -> Result<tucano_core::wire::StartReply, TransportError> { Err(TransportError::Unreachable("none".into())) }
/// #     async fn stop_instance(&self, _: &WorkerAddress, _: InstanceId, _: std::time::Duration) -> Result<tucano_core::wire::StopReply, TransportError> { Err(TransportError::Unreachable("none".into())) }
/// # }
/// # struct NoBalancer;
/// # impl EndpointSink for NoBalancer { fn publish(&self, _: &ServiceName, _: &tucano_core::transport::RouteSpec, _: Vec<Endpoint>) {} fn remove(&self, _: &ServiceName) {} }
/// let parts = ControllerParts {
///     scheduler: Arc::new(Pipeline::default()),
///     workers: Arc::new(NoWorkers),
///     store: Arc::new(MemoryStore::new()),
///     endpoints: Arc::new(NoBalancer),
/// };
/// let controller = Controller::start(ControllerConfig::default(), parts).await?;
/// let spec = ServiceSpec::new("hello".parse()?, vec!["/bin/demo".into()]);
/// // No worker has registered: the service is kept and waits for one.
/// let error = controller.create_service(spec).await.unwrap_err();
/// assert!(error.to_string().contains("live worker"));
/// assert_eq!(controller.list_services().await?.len(), 1);
/// controller.shutdown().await;
/// # Ok(()) }
/// ```
pub struct Controller;

impl Controller {
    /// Loads state from the store and starts the controller's task.
    pub async fn start(
        config: ControllerConfig,
        parts: ControllerParts,
    ) -> Result<ControllerHandle, StoreError> {
        let stored = parts.store.load().await?;
        let (inbox, queue) = mpsc::channel(INBOX);
        let delete_wait = config.delete_wait;
        let engine = Engine::new(config, parts, stored, inbox.clone());
        tokio::spawn(engine.run(queue));
        Ok(ControllerHandle { inbox, delete_wait })
    }
}

/// A cloneable handle to a running controller.
#[derive(Clone)]
pub struct ControllerHandle {
    inbox: mpsc::Sender<Command>,
    delete_wait: Duration,
}

impl ControllerHandle {
    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, ControllerError> {
        let (reply, answer) = oneshot::channel();
        self.inbox
            .send(command(reply))
            .await
            .map_err(|_| ControllerError::Unavailable)?;
        answer.await.map_err(|_| ControllerError::Unavailable)
    }

    /// Creates a service and starts placing its instances.
    pub async fn create_service(&self, spec: ServiceSpec) -> Result<ServiceView, ControllerError> {
        self.ask(|reply| Command::CreateService(spec, reply))
            .await?
    }

    /// Every service.
    pub async fn list_services(&self) -> Result<Vec<ServiceView>, ControllerError> {
        self.ask(Command::ListServices).await
    }

    /// The services an autoscaler looks after: those with `autoscale` in their spec, not being
    /// deleted (what the autoscaling loop lists each round, so its cost follows them, not the
    /// cluster).
    pub async fn autoscaled_services(&self) -> Result<Vec<ServiceView>, ControllerError> {
        self.ask(Command::ListAutoscaled).await
    }

    /// One service.
    pub async fn service(&self, name: &str) -> Result<ServiceView, ControllerError> {
        let name = name.to_owned();
        self.ask(|reply| Command::GetService(name, reply)).await?
    }

    /// Changes a service's spec. A change to what its instances run (program, image,
    /// environment, resources, placement) is rolled out as a new revision, as the spec's
    /// `update` says; any other change applies at once.
    pub async fn update_service(&self, spec: ServiceSpec) -> Result<ServiceView, ControllerError> {
        self.ask(|reply| Command::UpdateService(spec, reply))
            .await?
    }

    /// Applies an autoscaler's decision: the replicas become `decision.to` if they still are
    /// `decision.from`, and the change is recorded with its reason on the service.
    pub async fn apply_scaling(
        &self,
        name: &str,
        decision: ScalingDecision,
    ) -> Result<ServiceView, ControllerError> {
        let name = name.to_owned();
        self.ask(|reply| Command::ApplyScaling(name, decision, reply))
            .await?
    }

    /// Changes a service's replica count.
    pub async fn scale_service(
        &self,
        name: &str,
        replicas: u32,
    ) -> Result<ServiceView, ControllerError> {
        let name = name.to_owned();
        self.ask(|reply| Command::ScaleService(name, replicas, reply))
            .await?
    }

    /// Terminates every instance of a service, then forgets it. Waits up to
    /// [`ControllerConfig::delete_wait`] for the instances to terminate. Deleting a service
    /// that is being deleted joins that wait.
    pub async fn delete_service(&self, name: &str) -> Result<DeleteOutcome, ControllerError> {
        let name = name.to_owned();
        let (view, done) = self
            .ask(|reply| Command::DeleteService(name, reply))
            .await??;
        let Some(done) = done else {
            return Ok(DeleteOutcome::Deleted(view));
        };
        match tokio::time::timeout(self.delete_wait, done).await {
            Ok(Ok(view)) => Ok(DeleteOutcome::Deleted(view)),
            Ok(Err(_)) => Err(ControllerError::Unavailable),
            Err(_) => Ok(DeleteOutcome::InProgress(view)),
        }
    }

    /// Every known worker.
    pub async fn list_workers(&self) -> Result<Vec<WorkerView>, ControllerError> {
        self.ask(Command::ListWorkers).await
    }

    /// Registers (or re-registers) a worker.
    pub async fn register_worker(
        &self,
        registration: Registration,
    ) -> Result<RegistrationReply, ControllerError> {
        self.ask(|reply| Command::Register(Box::new(registration), reply))
            .await?
    }

    /// Takes a worker's heartbeat.
    pub async fn heartbeat(&self, heartbeat: Heartbeat) -> Result<(), ControllerError> {
        self.ask(|reply| Command::Heartbeat(Box::new(heartbeat), reply))
            .await?
    }

    /// Removes a worker; its instances are replaced on others.
    pub async fn deregister_worker(&self, id: WorkerId) -> Result<(), ControllerError> {
        self.ask(|reply| Command::Deregister(id, reply)).await?
    }

    /// Stops the controller after writing its state to the store.
    pub async fn shutdown(&self) {
        let _ = self.ask(Command::Shutdown).await;
    }
}
