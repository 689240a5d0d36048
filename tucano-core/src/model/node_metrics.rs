//! What a worker reports about its machine.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// One sample of a node's load, taken by a [`MetricsSource`](crate::MetricsSource).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeMetrics {
    /// When the sample was taken (RFC 3339 on the wire).
    #[serde(with = "humantime_serde")]
    pub taken_at: SystemTime,
    /// Share of all CPU time that was busy between the previous sample and this one, 0 to 1
    /// (the paper's U = UT / TT).
    pub cpu_usage: f64,
    /// Logical CPUs.
    pub cpu_count: u32,
    /// Memory in use, bytes.
    pub memory_used_bytes: u64,
    /// Memory installed, bytes.
    pub memory_total_bytes: u64,
    /// Bytes received on all network interfaces since boot.
    pub network_rx_bytes: u64,
    /// Bytes sent on all network interfaces since boot.
    pub network_tx_bytes: u64,
    /// Bytes used on the node's disks.
    pub disk_used_bytes: u64,
    /// Size of the node's disks, bytes.
    pub disk_total_bytes: u64,
    /// CPU pressure: share of the last 10 s some task waited for a CPU (PSI `some avg10`),
    /// where the kernel publishes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_pressure: Option<f64>,
}

impl NodeMetrics {
    /// Share of memory in use, 0 to 1 (0 when the total is unknown).
    pub fn memory_usage(&self) -> f64 {
        if self.memory_total_bytes == 0 {
            0.0
        } else {
            self.memory_used_bytes as f64 / self.memory_total_bytes as f64
        }
    }
}
