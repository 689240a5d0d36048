//! `SystemMonitor`: the node's CPU, memory, network and disk from the OS (sysinfo), and its
//! CPU pressure (PSI).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use sysinfo::{Disks, Networks, System};

use super::pressure::{CPU_PRESSURE, read_cpu_pressure};
use super::{MetricsError, MetricsSource};
use crate::model::NodeMetrics;

/// Samples the whole machine with sysinfo.
///
/// CPU usage is the delta of busy CPU time over the delta of total CPU time between two
/// samples (the paper's U = UT / TT), so the first sample after creation covers the time
/// since [`SystemMonitor::new`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tucano_core::{MetricsSource, SystemMonitor};
/// let monitor = SystemMonitor::new().unwrap();
/// let sample = monitor.sample().await.unwrap();
/// assert!(sample.memory_total_bytes > 0);
/// assert!((0.0..=1.0).contains(&sample.cpu_usage));
/// # }
/// ```
#[derive(Clone)]
pub struct SystemMonitor {
    state: Arc<Mutex<Probes>>,
}

struct Probes {
    system: System,
    networks: Networks,
    disks: Disks,
}

impl SystemMonitor {
    /// A monitor whose first CPU sample is taken now.
    pub fn new() -> Result<Self, MetricsError> {
        let unavailable = |e: sysinfo::Error| MetricsError(e.to_string());
        let mut system = System::new().map_err(unavailable)?;
        system.refresh_cpu_usage();
        Ok(Self {
            state: Arc::new(Mutex::new(Probes {
                system,
                networks: Networks::new_with_refreshed_list().map_err(unavailable)?,
                disks: Disks::new_with_refreshed_list().map_err(unavailable)?,
            })),
        })
    }

    fn sample_now(probes: &mut Probes) -> NodeMetrics {
        let system = &mut probes.system;
        system.refresh_cpu_usage();
        system.refresh_memory();
        probes.networks.refresh(true);
        probes.disks.refresh(true);
        let (network_rx_bytes, network_tx_bytes) =
            probes
                .networks
                .iter()
                .fold((0u64, 0u64), |(rx, tx), (_, data)| {
                    (
                        rx.saturating_add(data.total_received()),
                        tx.saturating_add(data.total_transmitted()),
                    )
                });
        let (disk_total_bytes, disk_available) =
            probes
                .disks
                .iter()
                .fold((0u64, 0u64), |(total, free), disk| {
                    (
                        total.saturating_add(disk.total_space()),
                        free.saturating_add(disk.available_space()),
                    )
                });
        NodeMetrics {
            taken_at: SystemTime::now(),
            cpu_usage: round4(f64::from(system.global_cpu_usage()) / 100.0).clamp(0.0, 1.0),
            cpu_count: u32::try_from(system.cpus().len()).unwrap_or(u32::MAX),
            memory_used_bytes: system.used_memory(),
            memory_total_bytes: system.total_memory(),
            network_rx_bytes,
            network_tx_bytes,
            disk_used_bytes: disk_total_bytes.saturating_sub(disk_available),
            disk_total_bytes,
            cpu_pressure: read_cpu_pressure(Path::new(CPU_PRESSURE)),
        }
    }
}

/// Rounds to 4 decimals, dropping the noise of sysinfo's single-precision figures.
fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

#[async_trait]
impl MetricsSource for SystemMonitor {
    async fn sample(&self) -> Result<NodeMetrics, MetricsError> {
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || {
            let mut probes = state.lock().unwrap_or_else(|poison| poison.into_inner());
            Self::sample_now(&mut probes)
        })
        .await
        .map_err(|e| MetricsError(format!("sampling task failed: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn cpu_usage_reflects_busy_time_between_samples() {
        let monitor = SystemMonitor::new().unwrap();
        let idle = monitor.sample().await.unwrap();
        assert!(idle.cpu_count >= 1);
        assert!(idle.memory_used_bytes <= idle.memory_total_bytes);
        assert!(idle.disk_used_bytes <= idle.disk_total_bytes);
        // Keep every core busy for a while; the next sample must see more CPU in use.
        let cores = idle.cpu_count as usize;
        let until = std::time::Instant::now() + Duration::from_millis(600);
        let spinners: Vec<_> = (0..cores)
            .map(|_| {
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while std::time::Instant::now() < until {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    }
                    x
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let busy = monitor.sample().await.unwrap();
        for spinner in spinners {
            let _ = spinner.join();
        }
        assert!(busy.cpu_usage > 0.5, "busy sample saw {}", busy.cpu_usage);
        assert!(busy.taken_at > idle.taken_at);
    }
}
