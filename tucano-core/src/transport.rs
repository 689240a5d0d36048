//! Transport seams between controller, workers and the balancer, so an embedding program can
//! swap HTTP for anything else (or a fake in a unit test).

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;

use crate::model::{
    BalancingSpec, HealthSpec, InstanceId, InstanceSpec, ServiceName, ServiceSpec, WorkerId,
};
use crate::wire::{Heartbeat, Registration, RegistrationReply, StartReply, StopReply};

/// Why a call to another node failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The peer could not be reached or did not answer in time.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The peer does not know the thing asked about (instance, worker).
    #[error("not found: {0}")]
    NotFound(String),
    /// The peer refused the request.
    #[error("rejected ({code}): {message}")]
    Rejected {
        /// The peer's error code.
        code: String,
        /// The peer's message.
        message: String,
    },
    /// The peer answered something that could not be understood.
    #[error("bad answer: {0}")]
    BadAnswer(String),
}

impl TransportError {
    /// True for failures another attempt may cure (the peer was unreachable).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unreachable(_))
    }
}

/// How the controller reaches a worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerAddress {
    /// The worker's id.
    pub id: WorkerId,
    /// Base URL of its API.
    pub url: String,
}

/// Controller → worker calls.
#[async_trait]
pub trait WorkerTransport: Send + Sync + 'static {
    /// Starts an instance; returns once it accepts connections.
    async fn start_instance(
        &self,
        worker: &WorkerAddress,
        spec: &InstanceSpec,
    ) -> Result<StartReply, TransportError>;

    /// Stops an instance (SIGTERM, then SIGKILL once `grace` has passed), or forgets one
    /// that exited. The call may take `grace` plus a margin. `NotFound` means the worker does
    /// not have it.
    async fn stop_instance(
        &self,
        worker: &WorkerAddress,
        id: InstanceId,
        grace: Duration,
    ) -> Result<StopReply, TransportError>;
}

/// Worker → controller calls.
#[async_trait]
pub trait ControllerTransport: Send + Sync + 'static {
    /// Introduces the worker.
    async fn register(
        &self,
        registration: &Registration,
    ) -> Result<RegistrationReply, TransportError>;

    /// Reports metrics and instances. `NotFound` means the controller does not know the
    /// worker (it restarted, or declared the worker gone): register again.
    async fn heartbeat(&self, heartbeat: &Heartbeat) -> Result<(), TransportError>;

    /// Says goodbye; the controller replaces the worker's instances elsewhere.
    async fn deregister(&self, id: &WorkerId) -> Result<(), TransportError>;
}

/// A running instance the balancer may send requests to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The instance.
    pub instance: InstanceId,
    /// Its worker.
    pub worker: WorkerId,
    /// The worker's proxy, which forwards to the instance by its id.
    pub proxy: SocketAddr,
    /// The instance's own address, as its worker reaches it.
    pub address: SocketAddr,
    /// Its share of traffic relative to the others, for policies that weigh (at least 1).
    pub weight: u32,
}

/// How the balancer treats one service: its balancing policy and options, and its health
/// checks. Comes from the service's spec.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteSpec {
    /// Policy and options.
    pub balancing: BalancingSpec,
    /// Active health checks, if any.
    pub health: Option<HealthSpec>,
    /// When set, a request arriving while the service has no running instance waits up to
    /// this long for one instead of failing at once (the activator of scale to zero).
    pub hold_while_empty: Option<Duration>,
}

impl RouteSpec {
    /// The route of a service spec: a service that scales to zero holds requests while its
    /// first instance starts, up to its startup timeout.
    pub fn of(spec: &ServiceSpec) -> Self {
        Self {
            balancing: spec.balancing.clone(),
            health: spec.health.clone(),
            hold_while_empty: spec
                .autoscale
                .as_ref()
                .and_then(|a| a.to_zero)
                .map(|_| spec.startup_timeout),
        }
    }
}

/// Where the controller publishes each service's running instances (the balancer's routing
/// table). Called on every change, from the controller's loop: implementations must not block.
pub trait EndpointSink: Send + Sync + 'static {
    /// The service's running instances are now exactly `endpoints`, balanced as `route` says.
    fn publish(&self, service: &ServiceName, route: &RouteSpec, endpoints: Vec<Endpoint>);
    /// The service is gone.
    fn remove(&self, service: &ServiceName);
}

/// A worker's local view for its proxy: which instance listens where.
pub trait InstanceDirectory: Send + Sync + 'static {
    /// Where the running instance `id` listens on this worker.
    fn address_of(&self, id: &InstanceId) -> Option<SocketAddr>;
}
