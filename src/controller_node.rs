//! `ControllerNode`: a controller with its HTTP API and its load balancer, ready to run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;
use tucano_core::autoscale::{AutoscaleLoopConfig, run_autoscalers};
use tucano_core::controller::{Controller, ControllerConfig, ControllerHandle, ControllerParts};
use tucano_core::scheduler::{Pipeline, Strategy};
use tucano_core::store::{MemoryStore, SqliteStore, Store};
use tucano_http::{ApiServer, ControllerClient, WorkerClient, controller_router};
use tucano_lb::{BalancerSignals, Proxy, ProxyConfig, ProxyServer, RouteMode, RoutingTable};

use crate::node_error::{NodeError, bind};

/// Where the controller keeps its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateStore {
    /// In memory: lost when the controller stops.
    Memory,
    /// A SQLite database file, created if missing; a restarted controller resumes from it.
    Sqlite(PathBuf),
}

/// Settings of a [`ControllerNode`].
#[derive(Clone, Debug)]
pub struct ControllerNodeConfig {
    /// Where the controller API listens.
    pub api: SocketAddr,
    /// Where the load balancer listens.
    pub balancer: SocketAddr,
    /// The controller engine's settings.
    pub controller: ControllerConfig,
    /// Where state is kept.
    pub state: StateStore,
    /// The balancer's timeouts.
    pub proxy: ProxyConfig,
    /// How the balancer reaches instances. [`RouteMode::ViaWorker`] (the default) sends each
    /// request to the worker proxy of the instance's worker, which forwards it to the instance:
    /// two hops, and it works wherever the balancer can reach the workers' proxies.
    ///
    /// [`RouteMode::Direct`] sends each request straight to the instance's own address: one
    /// hop, less latency and one proxy less in the path. Choose it only when every instance
    /// address the workers report is reachable from this node — everything on one host, or a
    /// flat network where the workers' runtimes report routable addresses. The process
    /// runtime reports `127.0.0.1:<port>` by default, which from another host means *this*
    /// host's loopback: wrong, not just unreachable.
    ///
    /// What direct mode gives up is the worker proxy's check that the instance named by
    /// `x-tucano-instance` really runs there: via the worker, a request for an instance that
    /// has just stopped gets `unknown_instance` from the worker proxy, which the balancer
    /// knows was never delivered and retries on another instance; directly, it goes to
    /// whatever now listens on that address (normally nothing, but a port reused by a new
    /// instance would receive it). The balancer's connect-failure retries apply in both
    /// modes: an idempotent request without a body whose connection is refused is retried on
    /// another instance, within the service's retry budget.
    pub route_mode: RouteMode,
    /// The placement strategy of services whose spec names none (`least_loaded` by
    /// default; `spread` or `binpack`).
    pub placement_strategy: Strategy,
    /// How often the autoscalers of services with `autoscale` look at the balancer's signals.
    pub autoscale: AutoscaleLoopConfig,
}

impl ControllerNodeConfig {
    /// Defaults on the given addresses, with state in memory and requests routed through
    /// the workers' proxies.
    pub fn new(api: SocketAddr, balancer: SocketAddr) -> Self {
        Self {
            api,
            balancer,
            controller: ControllerConfig::default(),
            state: StateStore::Memory,
            proxy: ProxyConfig::default(),
            route_mode: RouteMode::default(),
            placement_strategy: Strategy::default(),
            autoscale: AutoscaleLoopConfig::default(),
        }
    }
}

/// A running controller node: the controller engine, its API and the load balancer, wired
/// to the default scheduler (least loaded), HTTP transport to workers, and the balancer's
/// routing table.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use tucano::{ControllerNode, ControllerNodeConfig};
/// let config = ControllerNodeConfig::new("127.0.0.1:0".parse()?, "127.0.0.1:0".parse()?);
/// let node = ControllerNode::start(config).await?;
/// assert!(node.client().list_workers().await?.is_empty());
/// node.shutdown().await;
/// # Ok(()) }
/// ```
pub struct ControllerNode {
    controller: ControllerHandle,
    api: ApiServer,
    balancer: ProxyServer,
    routes: Arc<RoutingTable>,
    client: ControllerClient,
    autoscaling: (watch::Sender<bool>, tokio::task::JoinHandle<()>),
}

impl ControllerNode {
    /// Binds both addresses, loads state and starts serving.
    pub async fn start(config: ControllerNodeConfig) -> Result<Self, NodeError> {
        let api_listener = bind(config.api).await?;
        let balancer_listener = bind(config.balancer).await?;
        let store: Arc<dyn Store> = match &config.state {
            StateStore::Memory => Arc::new(MemoryStore::new()),
            StateStore::Sqlite(path) => Arc::new(SqliteStore::open(path)?),
        };
        let routes = Arc::new(RoutingTable::new().with_mode(config.route_mode));
        let mut controller_config = config.controller;
        controller_config.balancing_policies =
            Some(routes.registry().names().map(str::to_owned).collect());
        let parts = ControllerParts {
            scheduler: Arc::new(Pipeline::new(config.placement_strategy)),
            workers: Arc::new(WorkerClient::new()?),
            store,
            endpoints: routes.clone(),
        };
        let controller = Controller::start(controller_config, parts).await?;
        let api = ApiServer::serve(api_listener, controller_router(controller.clone())).map_err(
            |source| NodeError::Bind {
                addr: config.api,
                source,
            },
        )?;
        let balancer = Proxy::serve(balancer_listener, routes.clone(), config.proxy)?;
        let client = ControllerClient::new(&format!("http://{}", api.local_addr()))?;
        let (stop_autoscaling, stopped) = watch::channel(false);
        let autoscaling = tokio::spawn(run_autoscalers(
            controller.clone(),
            BalancerSignals::new(routes.clone()),
            config.autoscale,
            stopped,
        ));
        tracing::info!(api = %api.local_addr(), balancer = %balancer.local_addr(), route_mode = ?config.route_mode, "controller node started");
        Ok(Self {
            controller,
            api,
            balancer,
            routes,
            client,
            autoscaling: (stop_autoscaling, autoscaling),
        })
    }

    /// Where the API listens.
    pub fn api_addr(&self) -> SocketAddr {
        self.api.local_addr()
    }

    /// The API's base URL, for workers and clients.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.api_addr())
    }

    /// Where the load balancer listens.
    pub fn balancer_addr(&self) -> SocketAddr {
        self.balancer.local_addr()
    }

    /// The controller engine.
    pub fn controller(&self) -> &ControllerHandle {
        &self.controller
    }

    /// The balancer's routing table.
    pub fn routes(&self) -> &Arc<RoutingTable> {
        &self.routes
    }

    /// A typed client of this node's API.
    pub fn client(&self) -> &ControllerClient {
        &self.client
    }

    /// Stops the autoscalers, the balancer and the API (letting open requests finish), then
    /// the controller.
    pub async fn shutdown(self) {
        let (stop_autoscaling, autoscaling) = self.autoscaling;
        let _ = stop_autoscaling.send(true);
        let _ = autoscaling.await;
        self.balancer.shutdown().await;
        self.api.shutdown().await;
        self.controller.shutdown().await;
    }
}
