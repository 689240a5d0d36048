//! A deterministic discrete-event simulator of a Tucano cluster.
//!
//! A run ([`SimConfig`]) is a cluster of workers ([`ClusterSpec`]), one service whose
//! requests take a service time ([`ServiceTime`]) and arrive as a seeded Poisson process
//! ([`LoadProfile`]: constant, step, square wave, burst), a balancing policy, and either a
//! fixed replica count or an autoscaler ([`Scaling`]). [`simulate`] plays it on a simulated
//! clock, with tucano-lb's routing table and policies placing every request and
//! tucano-core's autoscaler and scheduler deciding the replicas: the same code as a live
//! cluster, not copies. The [`Outcome`] holds a time series, the scaling decisions and every
//! request's latency; the [`scenarios`] turn runs into CSV files and PNG plots.
//!
//! ```
//! use std::time::Duration;
//! use tucano_sim::{ClusterSpec, LoadProfile, Scaling, ServiceTime, SimConfig, simulate};
//!
//! let config = SimConfig::new(
//!     7,
//!     ClusterSpec::uniform(2, 2),
//!     ServiceTime::Exponential(Duration::from_millis(20)),
//!     LoadProfile::constant(50.0, Duration::from_secs(10)),
//!     "least_connections",
//!     Scaling::Fixed(2),
//! );
//! let outcome = simulate(&config).unwrap();
//! assert!(outcome.completed() > 400);
//! assert_eq!(outcome, simulate(&config).unwrap()); // same seed, same run
//! ```

mod cluster;
mod config;
mod load_profile;
mod outcome;
pub mod plot;
mod random;
pub mod scenarios;
mod service_time;
mod simulation;
mod table;
mod utilisation;

pub use cluster::{ClusterSpec, WorkerSpec};
pub use config::{Scaling, SimConfig};
pub use load_profile::{Arrivals, LoadProfile, Phase};
pub use outcome::{Outcome, Sample, nearest_rank};
pub use random::SplitMix64;
pub use service_time::ServiceTime;
pub use simulation::{SimError, simulate};
pub use table::{Table, cell};
