//! The paper's policy: the live worker with the lowest reported CPU and memory load.

use super::{ClusterView, PlacementError, PlacementRequest, Scheduler};
use crate::model::WorkerId;

/// Load added per instance of the same service already on a worker, so that one deploy
/// spreads across workers whose reported load has not caught up yet.
pub const SAME_SERVICE_PENALTY: f64 = 0.25;
/// Load added per instance of any service on a worker.
pub const INSTANCE_PENALTY: f64 = 0.02;

/// Places on the live worker of the right runtime with the least load, where load is the
/// mean of reported CPU and memory usage plus a penalty per instance already placed
/// ([`SAME_SERVICE_PENALTY`] for the same service, [`INSTANCE_PENALTY`] for any).
/// Ties go to the worker listed first.
///
/// ```
/// use tucano_core::scheduler::{ClusterView, LeastLoaded, PlacementRequest, Scheduler, WorkerCandidate};
/// use tucano_core::{Resources, RuntimeKind};
/// let worker = |id: &str| WorkerCandidate {
///     id: id.parse().unwrap(), alive: true, runtime: RuntimeKind::Process, metrics: None, instances: 0,
/// };
/// let mut cluster = ClusterView { workers: vec![worker("a"), worker("b")], service_instances: vec![0, 0] };
/// let service = "web".parse().unwrap();
/// let request = PlacementRequest { service: &service, resources: &Resources::default(), runtime: RuntimeKind::Process };
/// let first = LeastLoaded.place(&request, &cluster).unwrap();
/// cluster.record_placement(&first);
/// let second = LeastLoaded.place(&request, &cluster).unwrap();
/// assert_ne!(first, second);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct LeastLoaded;

impl Scheduler for LeastLoaded {
    fn place(
        &self,
        request: &PlacementRequest<'_>,
        cluster: &ClusterView,
    ) -> Result<WorkerId, PlacementError> {
        let mut alive = 0usize;
        let mut wrong_runtime = 0usize;
        let mut best: Option<(f64, &WorkerId)> = None;
        for (index, worker) in cluster.workers.iter().enumerate() {
            if !worker.alive {
                continue;
            }
            alive += 1;
            if worker.runtime != request.runtime {
                wrong_runtime += 1;
                continue;
            }
            let reported = worker
                .metrics
                .as_ref()
                .map(|m| (m.cpu_usage + m.memory_usage()) / 2.0)
                .unwrap_or(0.0);
            let same_service = cluster.service_instances.get(index).copied().unwrap_or(0);
            let load = reported
                + SAME_SERVICE_PENALTY * f64::from(same_service)
                + INSTANCE_PENALTY * f64::from(worker.instances);
            if best.is_none_or(|(best_load, _)| load < best_load) {
                best = Some((load, &worker.id));
            }
        }
        match best {
            Some((_, id)) => Ok(id.clone()),
            None if alive == 0 => Err(PlacementError::NoLiveWorker),
            None => Err(PlacementError::NoFit(format!(
                "{wrong_runtime} live workers lack the {} runtime",
                request.runtime
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NodeMetrics, Resources, RuntimeKind, ServiceName};
    use crate::scheduler::WorkerCandidate;
    use std::time::SystemTime;

    fn metrics(cpu: f64, memory: f64) -> NodeMetrics {
        NodeMetrics {
            taken_at: SystemTime::now(),
            cpu_usage: cpu,
            cpu_count: 2,
            memory_used_bytes: (memory * 1000.0) as u64,
            memory_total_bytes: 1000,
            network_rx_bytes: 0,
            network_tx_bytes: 0,
            disk_used_bytes: 0,
            disk_total_bytes: 0,
        }
    }

    fn worker(id: &str, alive: bool, load: Option<(f64, f64)>) -> WorkerCandidate {
        WorkerCandidate {
            id: id.parse().unwrap(),
            alive,
            runtime: RuntimeKind::Process,
            metrics: load.map(|(c, m)| metrics(c, m)),
            instances: 0,
        }
    }

    fn place(cluster: &ClusterView) -> Result<WorkerId, PlacementError> {
        let service: ServiceName = "web".parse().unwrap();
        let request = PlacementRequest {
            service: &service,
            resources: &Resources::default(),
            runtime: RuntimeKind::Process,
        };
        LeastLoaded.place(&request, cluster)
    }

    fn view(workers: Vec<WorkerCandidate>) -> ClusterView {
        let n = workers.len();
        ClusterView {
            workers,
            service_instances: vec![0; n],
        }
    }

    #[test]
    fn picks_the_least_loaded_live_worker() {
        let cluster = view(vec![
            worker("busy", true, Some((0.9, 0.8))),
            worker("idle", true, Some((0.1, 0.2))),
            worker("dead", false, Some((0.0, 0.0))),
        ]);
        assert_eq!(place(&cluster).unwrap().as_str(), "idle");
    }

    #[test]
    fn one_deploy_spreads_over_equal_workers() {
        let mut cluster = view(vec![
            worker("a", true, Some((0.2, 0.2))),
            worker("b", true, Some((0.2, 0.2))),
        ]);
        let mut counts = std::collections::HashMap::new();
        for _ in 0..6 {
            let id = place(&cluster).unwrap();
            cluster.record_placement(&id);
            *counts.entry(id.as_str().to_owned()).or_insert(0) += 1;
        }
        assert_eq!(counts.get("a"), Some(&3));
        assert_eq!(counts.get("b"), Some(&3));
    }

    #[test]
    fn explains_why_nothing_fits() {
        assert_eq!(place(&view(vec![])), Err(PlacementError::NoLiveWorker));
        assert_eq!(
            place(&view(vec![worker("dead", false, None)])),
            Err(PlacementError::NoLiveWorker)
        );
        let mut docker = worker("d", true, None);
        docker.runtime = RuntimeKind::Docker;
        assert!(matches!(
            place(&view(vec![docker])),
            Err(PlacementError::NoFit(m)) if m.contains("process runtime")
        ));
    }
}
