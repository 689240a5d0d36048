//! Binpack: the most allocated worker that fits.

use super::{Scorer, allocated_share};
use crate::scheduler::{PlacementRequest, WorkerCandidate};

/// Scores the share of the worker's capacity allocated once the instance is added, so that
/// one worker fills before the next (and whole workers stay free for large instances).
#[derive(Clone, Copy, Debug, Default)]
pub struct Binpack;

impl Scorer for Binpack {
    fn score(&self, request: &PlacementRequest<'_>, worker: &WorkerCandidate, _: u32) -> f64 {
        allocated_share(worker, request.resources)
    }
}
