//! Spread: the least allocated worker.

use super::{Scorer, allocated_share};
use crate::scheduler::{PlacementRequest, WorkerCandidate};

/// Scores `1 -` the share of the worker's capacity allocated once the instance is added, so
/// that allocations stay even across workers.
#[derive(Clone, Copy, Debug, Default)]
pub struct Spread;

impl Scorer for Spread {
    fn score(&self, request: &PlacementRequest<'_>, worker: &WorkerCandidate, _: u32) -> f64 {
        1.0 - allocated_share(worker, request.resources)
    }
}
