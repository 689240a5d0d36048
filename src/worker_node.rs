//! `WorkerNode`: a worker with its HTTP API and its proxy, running instances as processes or
//! as Docker containers.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tucano_core::transport::ControllerTransport;
use tucano_core::worker::{Worker, WorkerConfig, WorkerParts};
use tucano_core::{
    ProcessRuntime, ProcessRuntimeConfig, Resources, Runtime, RuntimeKind, SystemMonitor, WorkerId,
};
use tucano_docker::{DockerRuntime, DockerRuntimeConfig};
use tucano_http::{ApiServer, ControllerClient, worker_router};
use tucano_lb::{ProxyConfig, ProxyServer, WorkerProxy};

use crate::node_error::{NodeError, bind, local_addr};

/// Settings of a [`WorkerNode`].
#[derive(Clone, Debug)]
pub struct WorkerNodeConfig {
    /// Base URL of the controller API.
    pub controller_url: String,
    /// Where the worker API listens.
    pub listen: SocketAddr,
    /// Where the worker proxy listens.
    pub proxy: SocketAddr,
    /// The address the controller and balancer reach this worker at, when the listen
    /// addresses are unspecified (`0.0.0.0`).
    pub advertise: Option<IpAddr>,
    /// The worker's id; random if `None`.
    pub id: Option<WorkerId>,
    /// How often to send a heartbeat.
    pub heartbeat_interval: Duration,
    /// Which runtime runs the instances: processes (the default) or Docker containers.
    pub runtime_kind: RuntimeKind,
    /// The process runtime's settings; with Docker, `runtime.host` is where published ports
    /// are bound and reached.
    pub runtime: ProcessRuntimeConfig,
    /// With Docker: a network to attach instances to (reached at their address on it) rather
    /// than publishing their ports.
    pub docker_network: Option<String>,
    /// Labels the worker registers with (`zone=a`), which placement constraints match.
    pub labels: BTreeMap<String, String>,
    /// What the worker offers to instances; detected (CPUs and memory of the host) if `None`.
    pub capacity: Option<Resources>,
    /// The worker proxy's timeouts.
    pub proxy_config: ProxyConfig,
}

impl WorkerNodeConfig {
    /// Defaults: random id, 1 s heartbeats.
    pub fn new(controller_url: impl Into<String>, listen: SocketAddr, proxy: SocketAddr) -> Self {
        Self {
            controller_url: controller_url.into(),
            listen,
            proxy,
            advertise: None,
            id: None,
            heartbeat_interval: Duration::from_secs(1),
            runtime_kind: RuntimeKind::Process,
            runtime: ProcessRuntimeConfig::default(),
            docker_network: None,
            labels: BTreeMap::new(),
            capacity: None,
            proxy_config: ProxyConfig::default(),
        }
    }
}

/// The runtime `config` asks for, for worker `id`. A Docker engine that cannot be reached is
/// an error here, at start, with its cause.
async fn runtime(config: &WorkerNodeConfig, id: &WorkerId) -> Result<Arc<dyn Runtime>, NodeError> {
    match config.runtime_kind {
        RuntimeKind::Process => Ok(Arc::new(ProcessRuntime::new(config.runtime.clone())?)),
        RuntimeKind::Docker => {
            let docker = tucano_docker::connect().await?;
            let mut docker_config = DockerRuntimeConfig::new(id.clone());
            docker_config.network = config.docker_network.clone();
            docker_config.publish_ip = config.runtime.host;
            docker_config.host = config.runtime.host;
            Ok(Arc::new(DockerRuntime::new(docker, docker_config).await?))
        }
    }
}

/// A running worker node: the worker engine on its runtime, its API and its proxy.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use tucano::{ControllerNode, ControllerNodeConfig, WorkerNode, WorkerNodeConfig};
/// let any = "127.0.0.1:0".parse()?;
/// let controller = ControllerNode::start(ControllerNodeConfig::new(any, any)).await?;
/// let worker = WorkerNode::start(WorkerNodeConfig::new(controller.api_url(), any, any)).await?;
/// assert_eq!(controller.client().list_workers().await?.len(), 1);
/// worker.shutdown().await;
/// controller.shutdown().await;
/// # Ok(()) }
/// ```
pub struct WorkerNode {
    worker: Worker,
    api: ApiServer,
    proxy: ProxyServer,
}

impl WorkerNode {
    /// Starts a worker that reaches its controller over HTTP.
    pub async fn start(config: WorkerNodeConfig) -> Result<Self, NodeError> {
        let controller = Arc::new(ControllerClient::new(&config.controller_url)?);
        Self::start_with_transport(config, controller).await
    }

    /// Starts a worker that reaches its controller through `controller`.
    pub async fn start_with_transport(
        config: WorkerNodeConfig,
        controller: Arc<dyn ControllerTransport>,
    ) -> Result<Self, NodeError> {
        let api_listener = bind(config.listen).await?;
        let proxy_listener = bind(config.proxy).await?;
        let api_addr = advertised(local_addr(&api_listener, config.listen)?, config.advertise)?;
        let proxy_addr = advertised(local_addr(&proxy_listener, config.proxy)?, config.advertise)?;
        let id = config.id.clone().unwrap_or_else(WorkerId::random);
        let parts = WorkerParts {
            runtime: runtime(&config, &id).await?,
            metrics: Arc::new(SystemMonitor::new()?),
            controller,
        };
        let mut worker_config = WorkerConfig::new(id, format!("http://{api_addr}"), proxy_addr);
        worker_config.heartbeat_interval = config.heartbeat_interval;
        worker_config.labels = config.labels.clone();
        worker_config.capacity = config.capacity;
        let worker = Worker::new(worker_config, parts).await?;
        let api =
            ApiServer::serve(api_listener, worker_router(worker.clone())).map_err(|source| {
                NodeError::Bind {
                    addr: config.listen,
                    source,
                }
            })?;
        let proxy = WorkerProxy::serve(proxy_listener, worker.directory(), config.proxy_config)?;
        if let Err(error) = worker.join().await {
            proxy.shutdown().await;
            api.shutdown().await;
            return Err(error.into());
        }
        tracing::info!(worker = %worker.id(), api = %api_addr, proxy = %proxy_addr, "worker node started");
        Ok(Self { worker, api, proxy })
    }

    /// The worker engine.
    pub fn worker(&self) -> &Worker {
        &self.worker
    }

    /// Where the worker API listens.
    pub fn api_addr(&self) -> SocketAddr {
        self.api.local_addr()
    }

    /// Where the worker proxy listens.
    pub fn proxy_addr(&self) -> SocketAddr {
        self.proxy.local_addr()
    }

    /// Graceful stop: stops every instance within its grace period, deregisters (so the
    /// controller replaces them at once), then closes the proxy and the API.
    pub async fn shutdown(self) {
        self.worker.shutdown().await;
        self.proxy.shutdown().await;
        self.api.shutdown().await;
    }
}

/// The address others reach a listener at: its own, unless unspecified, then `advertise`.
fn advertised(bound: SocketAddr, advertise: Option<IpAddr>) -> Result<SocketAddr, NodeError> {
    match (bound.ip().is_unspecified(), advertise) {
        (_, Some(ip)) => Ok(SocketAddr::new(ip, bound.port())),
        (false, None) => Ok(bound),
        (true, None) => Err(NodeError::Config(format!(
            "listening on {bound} needs an address to advertise to the controller (--advertise)"
        ))),
    }
}
