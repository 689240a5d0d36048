//! The paper's policy as a scorer: the lowest reported CPU and memory load.

use super::Scorer;
use crate::scheduler::{PlacementRequest, WorkerCandidate};

/// Load added per instance of the same service already on the worker, so that a service's
/// instances spread even when every worker reports the same load.
pub const SAME_SERVICE_WEIGHT: f64 = 0.25;
/// Load added per instance of any service on the worker (reported load lags placements).
pub const INSTANCE_WEIGHT: f64 = 0.02;
/// Load assumed for a worker that has not reported metrics yet.
const UNKNOWN_LOAD: f64 = 0.5;

/// Scores `1 - load`, where load is the mean of the worker's reported CPU and memory usage,
/// plus [`SAME_SERVICE_WEIGHT`] per instance of the service and [`INSTANCE_WEIGHT`] per
/// instance it runs (clamped to `0..=1`).
#[derive(Clone, Copy, Debug, Default)]
pub struct LeastLoadedScore;

impl Scorer for LeastLoadedScore {
    fn score(&self, _: &PlacementRequest<'_>, worker: &WorkerCandidate, same_service: u32) -> f64 {
        let reported = worker
            .metrics
            .as_ref()
            .map(|m| (m.cpu_usage + m.memory_usage()) / 2.0)
            .unwrap_or(UNKNOWN_LOAD);
        let load = reported
            + SAME_SERVICE_WEIGHT * f64::from(same_service)
            + INSTANCE_WEIGHT * f64::from(worker.instances);
        (1.0 - load).clamp(0.0, 1.0)
    }
}
