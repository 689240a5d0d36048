//! # tucano-lb
//!
//! Tucano's load balancer: the [`Balancer`] seam and its policies, the [`RoutingTable`] the
//! controller keeps current, and the two HTTP reverse proxies requests travel through.
//!
//! ```text
//! client ──Host: hello──▶ Proxy ──x-tucano-instance: <id>──▶ WorkerProxy ──▶ instance
//!                           ▲ picks with the service's Balancer      (on the instance's worker)
//!                           │
//!            RoutingTable ◀─┘  ◀── controller publishes running endpoints (EndpointSink)
//! ```
//!
//! - [`RoutingTable`] implements `tucano_core::transport::EndpointSink`: the controller
//!   publishes each service's running endpoints into it on every change, and the proxy reads
//!   it on every request without locking.
//! - A [`Balancer`] policy per service picks the endpoint ([`RoundRobin`] by default; policies
//!   are created by name through a [`PolicyRegistry`]). Each endpoint's [`EndpointState`]
//!   (requests in flight) survives endpoint-set updates.
//! - [`Proxy`] is the balancer's reverse proxy (routing by Host); [`WorkerProxy`] runs on each
//!   worker and forwards by the `x-tucano-instance` header through an
//!   `InstanceDirectory`. Both stream bodies, pool upstream connections, apply the timeouts
//!   of a [`ProxyConfig`], answer errors as JSON ([`ErrorCode`]) and shut down gracefully
//!   ([`ProxyServer::shutdown`]).
//!
//! ```
//! use std::sync::Arc;
//! use tucano_core::transport::{Endpoint, EndpointSink, RouteSpec};
//! use tucano_core::{InstanceId, ServiceName, WorkerId};
//! use tucano_lb::{PickContext, Proxy, ProxyConfig, RoutingTable};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let table = Arc::new(RoutingTable::new());
//!
//! // What the controller does whenever the running instances of `hello` change:
//! let hello: ServiceName = "hello".parse()?;
//! let instance = InstanceId::new();
//! table.publish(&hello, &RouteSpec::default(), vec![Endpoint {
//!     instance,
//!     worker: WorkerId::new("worker-1")?,
//!     proxy: "127.0.0.1:8081".parse()?,   // that worker's WorkerProxy
//!     address: "127.0.0.1:9001".parse()?, // the instance, as its worker reaches it
//!     weight: 1,
//! }]);
//! let pick = table.select_by_host(b"hello:8080", &PickContext::none())?;
//! assert_eq!(pick.instance(), &instance);
//! drop(pick);
//!
//! // The balancer serving clients: `curl -H 'Host: hello' http://<addr>/`.
//! let server = Proxy::bind("127.0.0.1:0".parse()?, table, ProxyConfig::default()).await?;
//! println!("balancer on {}", server.local_addr());
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod activator;
mod backend;
mod balancer;
mod body;
pub mod clock;
mod config;
mod decay;
mod endpoint_set;
mod endpoint_state;
mod error;
mod error_code;
mod failure;
mod forward;
mod headers;
mod health_check;
mod host;
mod latency_histogram;
mod maintenance;
mod pick;
mod policies;
mod policy_registry;
mod proxy;
mod retry_budget;
pub mod rng;
mod route;
mod route_mode;
mod routing_table;
mod server;
mod signal_sampler;
mod worker_proxy;

pub use activator::MAX_HELD;
pub use backend::Backend;
pub use balancer::{Balancer, PickContext};
pub use config::ProxyConfig;
pub use endpoint_set::{EndpointSet, SLOW_START_FLOOR};
pub use endpoint_state::{
    DEFAULT_RTT_NS, EndpointState, FAILURE_PENALTY_NS, InFlightGuard, RTT_DECAY_NS,
};
pub use error::ProxyError;
pub use error_code::{ErrorCode, UnknownErrorCode};
pub use headers::{ERROR_HEADER, INSTANCE_HEADER, LOAD_HEADER, X_FORWARDED_FOR};
pub use latency_histogram::{BUCKETS, LatencyHistogram, quantile};
pub use maintenance::{Maintenance, TICK};
pub use pick::Pick;
pub use policies::{DEFAULT_POLICY, RoundRobin};
pub use policy_registry::{BalancerFactory, PolicyRegistry, UnknownPolicy};
pub use proxy::Proxy;
pub use route::Route;
pub use route_mode::RouteMode;
pub use routing_table::{RoutingTable, SelectError};
pub use server::ProxyServer;
pub use signal_sampler::{BalancerSignals, SignalSampler};
pub use worker_proxy::WorkerProxy;
