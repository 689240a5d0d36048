//! What a runtime measures of an instance's resource use.

use std::time::Duration;

/// One instance's resource use at one moment, as its runtime measures it. CPU time is
/// cumulative: a rate (cores used) comes from two samples.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct UsageSample {
    /// CPU time the instance has used since it started (user and system).
    pub cpu_time: Duration,
    /// Memory it holds now, in bytes (resident set, or a container's usage without its
    /// reclaimable page cache).
    pub memory_bytes: u64,
    /// The CPU pressure of the instance's own cgroup v2 (PSI `some avg10`, 0 to 1), when it
    /// has a cgroup of its own that can be read.
    pub cpu_pressure: Option<f64>,
}
