//! # tucano
//!
//! Tucano is an embeddable container orchestrator: a controller schedules services onto
//! worker nodes, workers run the instances and report metrics, and a load balancer routes
//! each request by its Host header to one of the service's running instances.
//!
//! This umbrella crate re-exports the parts and composes them into ready nodes:
//!
//! - [`core`] (`tucano-core`): model, seams (Runtime, Scheduler, MetricsSource, Store),
//!   controller and worker engines, the process runtime;
//! - [`lb`] (`tucano-lb`): balancer policies, routing table, reverse proxies;
//! - [`http`] (`tucano-http`): the controller and worker APIs and their clients;
//! - [`ControllerNode`] and [`WorkerNode`]: the default composition the example binaries
//!   run; [`demo`]: the demo service they deploy.
//!
//! ```
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use tucano::{ControllerNode, ControllerNodeConfig, WorkerNode, WorkerNodeConfig};
//! let any = "127.0.0.1:0".parse()?;
//! let controller = ControllerNode::start(ControllerNodeConfig::new(any, any)).await?;
//! let worker = WorkerNode::start(WorkerNodeConfig::new(controller.api_url(), any, any)).await?;
//! // `sh -c 'exit 1'` never listens: the service is accepted, its instances fail to start.
//! let spec = serde_json::from_str(r#"{"name":"hello","command":["sh","-c","exit 1"]}"#)?;
//! let service = controller.client().create_service(&spec).await?;
//! assert_eq!(service.name.as_str(), "hello");
//! worker.shutdown().await;
//! controller.shutdown().await;
//! # Ok(()) }
//! ```

mod controller_node;
pub mod demo;
mod logging;
mod node_error;
mod shutdown_signals;
mod worker_node;

pub use controller_node::{ControllerNode, ControllerNodeConfig, StateStore};
pub use logging::init_logging;
pub use node_error::NodeError;
pub use shutdown_signals::ShutdownSignals;
pub use worker_node::{WorkerNode, WorkerNodeConfig};

pub use tucano_core as core;
pub use tucano_docker as docker;
pub use tucano_http as http;
pub use tucano_lb as lb;
