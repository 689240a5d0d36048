//! The `Scheduler` seam: a pure function from a placement request and a view of the cluster
//! to a worker, or a typed reason why none fits; and [`Pipeline`], the filter → score
//! scheduler with the `least_loaded`, `spread` and `binpack` strategies.

mod constraint;
mod feasibility;
mod labels;
mod pipeline;
mod score;

use std::collections::BTreeMap;

pub use constraint::{Constraint, WORKER_KEY};
pub use feasibility::{Rejection, RejectionTally, check};
pub use labels::{MAX_LABELS, parse_label, validate_labels};
pub use pipeline::{MIN_SAMPLE, Pipeline, Sampling};
pub use score::{
    Binpack, INSTANCE_WEIGHT, LeastLoadedScore, SAME_SERVICE_WEIGHT, Scorer, Spread, Strategy,
};

use crate::model::{NodeMetrics, Resources, RuntimeKind, ServiceName, WorkerId};

/// What is to be placed.
#[derive(Clone, Copy, Debug)]
pub struct PlacementRequest<'a> {
    /// The instance's service.
    pub service: &'a ServiceName,
    /// What the instance asks for.
    pub resources: &'a Resources,
    /// The runtime kind it needs.
    pub runtime: RuntimeKind,
    /// Conditions on the worker's labels (or id), all of which must hold.
    pub constraints: &'a [Constraint],
    /// Most instances of the service one worker may run (anti-affinity), if limited.
    pub max_per_worker: Option<u32>,
    /// The strategy for this service, if it overrides the scheduler's.
    pub strategy: Option<Strategy>,
    /// Workers to use only when no other fits (where the service's instances just failed).
    pub avoid: &'a [WorkerId],
    /// Where randomness comes from (the order sampled workers are visited in): the same seed
    /// gives the same placement.
    pub seed: u64,
}

impl<'a> PlacementRequest<'a> {
    /// A request with no constraint, no limit per worker, the scheduler's strategy, no worker
    /// to avoid, seed 0.
    pub fn new(service: &'a ServiceName, resources: &'a Resources, runtime: RuntimeKind) -> Self {
        Self {
            service,
            resources,
            runtime,
            constraints: &[],
            max_per_worker: None,
            strategy: None,
            avoid: &[],
            seed: 0,
        }
    }
}

/// One worker as a scheduler sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerCandidate {
    /// The worker's id.
    pub id: WorkerId,
    /// Heard from within the liveness timeout.
    pub alive: bool,
    /// Its runtime kind.
    pub runtime: RuntimeKind,
    /// Its labels (`zone=a`, ...).
    pub labels: BTreeMap<String, String>,
    /// What it can allocate to instances.
    pub capacity: Resources,
    /// What the instances placed on it (and not final) ask for, together.
    pub allocated: Resources,
    /// Its latest metrics, if any arrived yet.
    pub metrics: Option<NodeMetrics>,
    /// Instances placed on it that are not final.
    pub instances: u32,
}

impl WorkerCandidate {
    /// A live worker with `capacity`, no labels, nothing allocated, no metrics.
    pub fn new(id: WorkerId, runtime: RuntimeKind, capacity: Resources) -> Self {
        Self {
            id,
            alive: true,
            runtime,
            labels: BTreeMap::new(),
            capacity,
            allocated: Resources {
                cpus: 0.0,
                memory_mb: 0,
            },
            metrics: None,
            instances: 0,
        }
    }
}

/// The cluster as a scheduler sees it: every known worker, with how many instances of the
/// service being placed each one already has.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterView {
    /// Every known worker.
    pub workers: Vec<WorkerCandidate>,
    /// For each worker (same index as `workers`), instances of the service being placed.
    pub service_instances: Vec<u32>,
}

impl ClusterView {
    /// Records that an instance of the service being placed, asking for `resources`, went
    /// to `worker`, so the next placement of the same pass sees it.
    pub fn record_placement(&mut self, worker: &WorkerId, resources: &Resources) {
        if let Some(index) = self.workers.iter().position(|w| &w.id == worker) {
            if let Some(candidate) = self.workers.get_mut(index) {
                candidate.instances = candidate.instances.saturating_add(1);
                candidate.allocated.cpus += resources.cpus;
                candidate.allocated.memory_mb = candidate
                    .allocated
                    .memory_mb
                    .saturating_add(resources.memory_mb);
            }
            if let Some(count) = self.service_instances.get_mut(index) {
                *count = count.saturating_add(1);
            }
        }
    }
}

/// Why an instance could not be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// No worker is alive.
    #[error("no live worker")]
    NoLiveWorker,
    /// Workers are alive but none fits; the message counts the workers each filter turned
    /// away ("3 workers lack memory, 2 lack label zone=a").
    #[error("no worker fits: {0}")]
    NoFit(String),
}

/// Picks a worker for one instance. Pure: no I/O, no clock, no shared state.
pub trait Scheduler: Send + Sync + 'static {
    /// The worker the instance should go to.
    fn place(
        &self,
        request: &PlacementRequest<'_>,
        cluster: &ClusterView,
    ) -> Result<WorkerId, PlacementError>;
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Workers and requests for the scheduler's tests.

    use super::*;

    /// A live process worker with 4 CPUs and 4096 MiB, nothing allocated.
    pub fn worker(id: &str) -> WorkerCandidate {
        WorkerCandidate::new(
            id.parse().expect("a worker id"),
            RuntimeKind::Process,
            Resources {
                cpus: 4.0,
                memory_mb: 4096,
            },
        )
    }

    /// A request of service `web` for `resources` on the process runtime.
    pub fn request(resources: &Resources) -> PlacementRequest<'_> {
        static SERVICE: std::sync::OnceLock<ServiceName> = std::sync::OnceLock::new();
        let service = SERVICE.get_or_init(|| "web".parse().expect("a name"));
        PlacementRequest::new(service, resources, RuntimeKind::Process)
    }
}
