//! The `Scheduler` seam: a pure function from a placement request and a view of the cluster
//! to a worker, or a typed reason why none fits.

mod least_loaded;

pub use least_loaded::{INSTANCE_PENALTY, LeastLoaded, SAME_SERVICE_PENALTY};

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
    /// Its latest metrics, if any arrived yet.
    pub metrics: Option<NodeMetrics>,
    /// Instances placed on it that are not final.
    pub instances: u32,
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
    /// Records that an instance of the service being placed went to `worker`, so the next
    /// placement of the same pass sees it.
    pub fn record_placement(&mut self, worker: &WorkerId) {
        if let Some(index) = self.workers.iter().position(|w| &w.id == worker) {
            if let Some(candidate) = self.workers.get_mut(index) {
                candidate.instances = candidate.instances.saturating_add(1);
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
    /// Workers are alive but none fits; the message says why per reason.
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
