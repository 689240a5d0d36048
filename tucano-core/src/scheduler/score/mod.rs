//! Scorers: how good a feasible worker is for an instance, from 0 (worst) to 1 (best), and the
//! strategies that weigh them together.

mod binpack;
mod least_loaded;
mod spread;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use binpack::Binpack;
pub use least_loaded::{INSTANCE_WEIGHT, LeastLoadedScore, SAME_SERVICE_WEIGHT};
pub use spread::Spread;

use super::{PlacementRequest, WorkerCandidate};
use crate::model::Resources;

/// Rates one feasible worker for an instance: 1 is best.
pub trait Scorer: Send + Sync + 'static {
    /// The rating of `worker`, which already runs `same_service` instances of the service,
    /// for `request`, in `0..=1`.
    fn score(
        &self,
        request: &PlacementRequest<'_>,
        worker: &WorkerCandidate,
        same_service: u32,
    ) -> f64;
}

/// A placement strategy: which scorer decides.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The lowest reported CPU and memory load, spreading a service's instances (the paper's).
    #[default]
    LeastLoaded,
    /// The least allocated worker: instances spread evenly over the cluster.
    Spread,
    /// The most allocated worker that fits: fill one worker before the next.
    Binpack,
}

impl Strategy {
    /// Every strategy.
    pub const ALL: [Strategy; 3] = [Self::LeastLoaded, Self::Spread, Self::Binpack];

    /// The scorer of this strategy.
    pub fn scorer(self) -> &'static dyn Scorer {
        match self {
            Self::LeastLoaded => &LeastLoadedScore,
            Self::Spread => &Spread,
            Self::Binpack => &Binpack,
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::LeastLoaded => "least_loaded",
            Self::Spread => "spread",
            Self::Binpack => "binpack",
        })
    }
}

impl FromStr for Strategy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|s| s.to_string() == text)
            .ok_or_else(|| {
                format!(
                    "unknown placement strategy {text:?}: expected least_loaded, spread or binpack"
                )
            })
    }
}

/// The share of `worker`'s capacity allocated once `wanted` is added: the mean of the CPU and
/// memory shares, each in `0..=1` (a dimension without capacity counts as full).
pub(crate) fn allocated_share(worker: &WorkerCandidate, wanted: &Resources) -> f64 {
    let share = |used: f64, capacity: f64| {
        if capacity > 0.0 {
            (used / capacity).clamp(0.0, 1.0)
        } else {
            1.0
        }
    };
    let cpu = share(worker.allocated.cpus + wanted.cpus, worker.capacity.cpus);
    let memory = share(
        (worker.allocated.memory_mb + wanted.memory_mb) as f64,
        worker.capacity.memory_mb as f64,
    );
    (cpu + memory) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_parse_what_they_print() {
        for strategy in Strategy::ALL {
            assert_eq!(strategy.to_string().parse::<Strategy>(), Ok(strategy));
        }
        assert!("random".parse::<Strategy>().is_err());
    }
}
