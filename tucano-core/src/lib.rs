//! # tucano-core
//!
//! The heart of Tucano, an embeddable container orchestrator: the domain model, the seams a
//! program composes its own orchestrator from, and the engines that drive them.
//!
//! - **Model**: [`ServiceSpec`], [`InstanceSpec`], [`ServiceName`], [`InstanceId`] (UUIDv7),
//!   [`WorkerId`], [`NodeMetrics`], and the instance state machine ([`Lifecycle`]).
//! - **Seams**: [`Runtime`] (runs instances), [`scheduler::Scheduler`] (places them),
//!   [`MetricsSource`] (samples load), [`store::Store`] (remembers state), and the transports
//!   between nodes ([`transport`]).
//! - **Engines**: the [`controller`] (registry, reconciler, state machine) and the
//!   [`worker`] (runner, monitor, heartbeat pusher).
//! - **Embedded defaults**: [`ProcessRuntime`], [`SystemMonitor`], [`scheduler::Pipeline`] (filter → score, `least_loaded` by default),
//!   [`store::MemoryStore`] and [`store::SqliteStore`].
//!
//! HTTP lives in `tucano-http` and the load balancer in `tucano-lb`; this crate does no
//! network serving of its own.
//!
//! ```
//! use tucano_core::{InstanceEvent, InstanceState, Lifecycle};
//! let life = Lifecycle::new()
//!     .transition(InstanceEvent::Scheduled, Default::default())
//!     .and_then(|l| l.transition(InstanceEvent::Ready, Default::default()))
//!     .unwrap();
//! assert_eq!(life.state, InstanceState::Running);
//! ```

pub mod autoscale;
pub mod controller;
pub mod metrics;
pub mod model;
pub mod retry;
pub mod runtime;
pub mod scheduler;
pub mod store;
pub mod transport;
pub mod wire;
pub mod worker;

pub use metrics::{MetricsError, MetricsSource, SystemMonitor};
pub use model::*;
pub use retry::RetryPolicy;
pub use runtime::process::{ProcessRuntime, ProcessRuntimeConfig};
pub use runtime::{
    ExitStatus, Runtime, RuntimeError, RuntimeEvent, RuntimeInstance, StartedInstance, UsageSample,
};
