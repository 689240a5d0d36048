//! The `MetricsSource` seam: where a worker's load figures come from.

mod cgroup;
mod pressure;
mod system_monitor;

pub use cgroup::{
    cgroup_cpu_pressure, cgroup2_mount, cgroup2_path_of, process_cgroup_cpu_pressure,
};
pub use pressure::{CPU_PRESSURE, read_cpu_pressure};
pub use system_monitor::SystemMonitor;

use async_trait::async_trait;

use crate::model::NodeMetrics;

/// Why a metrics sample could not be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("metrics unavailable: {0}")]
pub struct MetricsError(pub String);

/// Samples a node's load. Each call returns the figures since the previous call where a
/// figure is a rate (CPU).
#[async_trait]
pub trait MetricsSource: Send + Sync + 'static {
    /// Takes one sample.
    async fn sample(&self) -> Result<NodeMetrics, MetricsError>;
}
