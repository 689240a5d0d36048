//! A container's resource use: the engine's one-shot stats (cumulative CPU time, memory in use
//! without its reclaimable page cache, as `docker stats` counts it), and the CPU pressure of
//! its cgroup where cgroup v2 is mounted and readable.

use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerMemoryStats, ContainerStatsResponse};
use bollard::query_parameters::StatsOptionsBuilder;
use futures_util::StreamExt;
use tucano_core::metrics::{cgroup_cpu_pressure, cgroup2_path_of};
use tucano_core::{RuntimeError, UsageSample};

use super::{engine_error, unavailable};
use crate::engine::within;

/// How long one stats call may take (one-shot stats answer without waiting for a second
/// sample).
const STATS_TIMEOUT: Duration = Duration::from_secs(2);

/// Samples `container`, whose main process is `pid` when known.
pub(super) async fn container_usage(
    docker: &Docker,
    container: &str,
    pid: Option<u32>,
) -> Result<UsageSample, RuntimeError> {
    let options = StatsOptionsBuilder::new()
        .stream(false)
        .one_shot(true)
        .build();
    let mut stats = docker.stats(container, Some(options));
    let answer = within(STATS_TIMEOUT, "container stats", stats.next())
        .await
        .map_err(unavailable)?
        .ok_or_else(|| RuntimeError::Other(format!("no stats for container {container}")))?
        .map_err(engine_error)?;
    let (cpu_time, memory_bytes) = usage_of(&answer).ok_or_else(|| {
        RuntimeError::Other(format!(
            "container {container} has no CPU or memory figures (not running?)"
        ))
    })?;
    let id = answer.id.clone().unwrap_or_default();
    let pressure = tokio::task::spawn_blocking(move || container_cpu_pressure(&id, pid));
    let cpu_pressure = within(STATS_TIMEOUT, "cgroup cpu.pressure", pressure)
        .await
        .ok()
        .and_then(Result::ok)
        .flatten();
    Ok(UsageSample {
        cpu_time,
        memory_bytes,
        cpu_pressure,
    })
}

/// Cumulative CPU time and memory in use, if the stats have both.
fn usage_of(stats: &ContainerStatsResponse) -> Option<(Duration, u64)> {
    let nanos = stats.cpu_stats.as_ref()?.cpu_usage.as_ref()?.total_usage?;
    let memory = memory_in_use(stats.memory_stats.as_ref()?)?;
    Some((Duration::from_nanos(nanos), memory))
}

/// Usage minus inactive file pages (`total_inactive_file` on cgroup v1, `inactive_file` on
/// v2), as the `docker stats` command shows it.
fn memory_in_use(memory: &ContainerMemoryStats) -> Option<u64> {
    let usage = memory.usage?;
    let inactive = memory.stats.as_ref().and_then(|stats| {
        stats
            .get("total_inactive_file")
            .or_else(|| stats.get("inactive_file"))
            .copied()
    });
    Some(match inactive {
        Some(inactive) if inactive < usage => usage - inactive,
        _ => usage,
    })
}

/// The CPU pressure of container `id`'s cgroup v2: its main process's cgroup if that names the
/// container (a worker in another pid namespace would read some other process's), else the
/// paths the engine's systemd and cgroupfs drivers use.
fn container_cpu_pressure(id: &str, pid: Option<u32>) -> Option<f64> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let by_pid = pid
        .and_then(|pid| cgroup2_path_of(&pid.to_string()))
        .filter(|path| path.contains(id));
    by_pid
        .into_iter()
        .chain([
            format!("/system.slice/docker-{id}.scope"),
            format!("/docker/{id}"),
        ])
        .find_map(|path| cgroup_cpu_pressure(&path))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bollard::models::{ContainerCpuStats, ContainerCpuUsage};

    use super::*;

    fn memory(usage: u64, stats: &[(&str, u64)]) -> ContainerMemoryStats {
        ContainerMemoryStats {
            usage: Some(usage),
            stats: Some(
                stats
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), *v))
                    .collect::<HashMap<_, _>>(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn memory_leaves_out_inactive_file_pages_as_docker_stats_does() {
        assert_eq!(
            memory_in_use(&memory(1000, &[("inactive_file", 300)])),
            Some(700)
        );
        assert_eq!(
            memory_in_use(&memory(
                1000,
                &[("total_inactive_file", 400), ("inactive_file", 1)]
            )),
            Some(600)
        );
        assert_eq!(
            memory_in_use(&memory(1000, &[("inactive_file", 5000)])),
            Some(1000)
        );
        assert_eq!(memory_in_use(&memory(1000, &[])), Some(1000));
        assert_eq!(memory_in_use(&ContainerMemoryStats::default()), None);
    }

    #[test]
    fn stats_of_a_stopped_container_have_no_usage() {
        let running = ContainerStatsResponse {
            cpu_stats: Some(ContainerCpuStats {
                cpu_usage: Some(ContainerCpuUsage {
                    total_usage: Some(2_500_000_000),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            memory_stats: Some(memory(4096, &[])),
            ..Default::default()
        };
        assert_eq!(
            usage_of(&running),
            Some((Duration::from_millis(2_500), 4096))
        );
        let stopped = ContainerStatsResponse {
            memory_stats: Some(ContainerMemoryStats::default()),
            ..running
        };
        assert_eq!(usage_of(&stopped), None);
    }

    #[test]
    fn container_ids_are_checked_before_they_become_paths() {
        assert_eq!(container_cpu_pressure("../../etc", None), None);
        assert_eq!(container_cpu_pressure("", None), None);
    }
}
