//! What one simulation run is: a cluster, a service and its load, a balancing policy and
//! how the replica count is chosen.

use std::time::Duration;

use tucano_core::AutoscaleSpec;

use crate::cluster::ClusterSpec;
use crate::load_profile::LoadProfile;
use crate::service_time::ServiceTime;

/// How many replicas the service has.
#[derive(Clone, Debug, PartialEq)]
pub enum Scaling {
    /// Always this many (static provisioning).
    Fixed(u32),
    /// Chosen by Tucano's autoscaler with this spec, starting from its `min`.
    Autoscale(AutoscaleSpec),
}

impl Scaling {
    /// The replicas the run starts with, already serving at time 0.
    pub fn initial(&self) -> u32 {
        match self {
            Self::Fixed(replicas) => *replicas,
            Self::Autoscale(spec) => spec.min.max(u32::from(spec.to_zero.is_none())),
        }
    }
}

/// One simulation run.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Seed of every random draw: the same config gives the same outcome.
    pub seed: u64,
    /// Workers and instance behaviour.
    pub cluster: ClusterSpec,
    /// Service time of a request on a worker of speed 1.
    pub service_time: ServiceTime,
    /// Arrivals.
    pub load: LoadProfile,
    /// The balancing policy, by its tucano-lb name (`round_robin`, `least_connections`, ...).
    pub balancing: String,
    /// Fixed replicas or an autoscaler.
    pub scaling: Scaling,
    /// Time between two rounds of the autoscaling loop, which is also the sampling period of
    /// the recorded time series.
    pub interval: Duration,
    /// Signals older than this are stale (as the controller's `max_signal_age`).
    pub max_signal_age: Duration,
    /// How long the run lasts (the loop runs and replicas are counted until then); requests
    /// still in flight at the end are completed and counted.
    pub duration: Duration,
}

impl SimConfig {
    /// A run of `load` for its whole duration with the controller's defaults: a 1 s loop and
    /// signals stale after 10 s.
    pub fn new(
        seed: u64,
        cluster: ClusterSpec,
        service_time: ServiceTime,
        load: LoadProfile,
        balancing: &str,
        scaling: Scaling,
    ) -> Self {
        let duration = load.duration();
        Self {
            seed,
            cluster,
            service_time,
            load,
            balancing: balancing.to_owned(),
            scaling,
            interval: Duration::from_secs(1),
            max_signal_age: Duration::from_secs(10),
            duration,
        }
    }
}
