//! The filters: whether a worker can take an instance at all, and if not, why. A placement
//! that fails says so per filter: "3 workers lack memory, 2 lack label zone=a".

use std::fmt;

use super::constraint::{Constraint, WORKER_KEY};
use super::{PlacementRequest, WorkerCandidate};
use crate::model::RuntimeKind;

/// Slack on CPU comparisons, so that 0.1 + 0.2 still fits in 0.3.
const CPU_EPSILON: f64 = 1e-9;

/// Why a worker cannot take the instance: the first filter it fails, in the order they run
/// (liveness, runtime, CPU, memory, constraints, instances per worker).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// Not heard from within the liveness timeout (or re-registering).
    Dead,
    /// Runs another kind of runtime than the instance needs.
    Runtime(RuntimeKind),
    /// Not enough unallocated CPU.
    Cpu,
    /// Not enough unallocated memory.
    Memory,
    /// Fails a constraint.
    Constraint(Constraint),
    /// Already runs the most instances of the service one worker may.
    ServiceLimit(u32),
}

impl Rejection {
    /// The position of the filter that rejects so, in the order filters run.
    fn filter_order(&self) -> u8 {
        match self {
            Self::Dead => 0,
            Self::Runtime(_) => 1,
            Self::Cpu => 2,
            Self::Memory => 3,
            Self::Constraint(_) => 4,
            Self::ServiceLimit(_) => 5,
        }
    }
}

impl fmt::Display for Rejection {
    /// What the rejected workers do or lack, to follow "N workers".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dead => f.write_str("are not alive"),
            Self::Runtime(kind) => write!(f, "lack the {kind} runtime"),
            Self::Cpu => f.write_str("lack CPU"),
            Self::Memory => f.write_str("lack memory"),
            Self::Constraint(c) if !c.negated && c.key != WORKER_KEY => {
                write!(f, "lack label {c}")
            }
            Self::Constraint(c) => write!(f, "fail {c}"),
            Self::ServiceLimit(max) => write!(f, "already run {max} of its instances"),
        }
    }
}

/// Whether `worker`, which already runs `same_service` instances of the service, can take
/// the instance `request` describes.
pub fn check(
    request: &PlacementRequest<'_>,
    worker: &WorkerCandidate,
    same_service: u32,
) -> Result<(), Rejection> {
    if !worker.alive {
        return Err(Rejection::Dead);
    }
    if worker.runtime != request.runtime {
        return Err(Rejection::Runtime(request.runtime));
    }
    let wanted = request.resources;
    if worker.allocated.cpus + wanted.cpus > worker.capacity.cpus + CPU_EPSILON {
        return Err(Rejection::Cpu);
    }
    if worker.allocated.memory_mb.saturating_add(wanted.memory_mb) > worker.capacity.memory_mb {
        return Err(Rejection::Memory);
    }
    if let Some(failed) = request.constraints.iter().find(|c| !c.holds(worker)) {
        return Err(Rejection::Constraint(failed.clone()));
    }
    match request.max_per_worker {
        Some(max) if same_service >= max => Err(Rejection::ServiceLimit(max)),
        _ => Ok(()),
    }
}

/// How many workers each filter turned away, for the reason a placement failed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RejectionTally {
    counts: Vec<(Rejection, usize)>,
}

impl RejectionTally {
    /// Counts one worker turned away for `rejection`.
    pub fn add(&mut self, rejection: Rejection) {
        match self.counts.iter_mut().find(|(r, _)| *r == rejection) {
            Some((_, count)) => *count += 1,
            None => self.counts.push((rejection, 1)),
        }
    }

    /// True when no worker was turned away.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

impl fmt::Display for RejectionTally {
    /// `"3 workers lack memory, 2 lack label zone=a"`: most frequent first, then in the
    /// order the filters run, then by text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut counts = self.counts.clone();
        counts.sort_by(|(a, a_count), (b, b_count)| {
            b_count
                .cmp(a_count)
                .then(a.filter_order().cmp(&b.filter_order()))
                .then_with(|| a.to_string().cmp(&b.to_string()))
        });
        for (i, (rejection, count)) in counts.iter().enumerate() {
            let noun = match (i, count) {
                (0, 1) => " worker",
                (0, _) => " workers",
                _ => "",
            };
            let separator = if i == 0 { "" } else { ", " };
            write!(f, "{separator}{count}{noun} {rejection}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Resources;
    use crate::scheduler::test_support::{request, worker};

    #[test]
    fn each_filter_turns_away_what_it_should() {
        let resources = Resources {
            cpus: 1.0,
            memory_mb: 512,
        };
        let constraints = ["zone=a".parse().unwrap()];
        let mut request = request(&resources);
        request.constraints = &constraints;
        request.max_per_worker = Some(2);
        let mut fits = worker("w");
        fits.labels.insert("zone".into(), "a".into());
        assert_eq!(check(&request, &fits, 1), Ok(()));

        type Breaks = fn(&mut WorkerCandidate);
        let cases: [(Breaks, Rejection); 5] = [
            (|w| w.alive = false, Rejection::Dead),
            (
                |w| w.runtime = RuntimeKind::Docker,
                Rejection::Runtime(RuntimeKind::Process),
            ),
            (|w| w.allocated.cpus = 3.5, Rejection::Cpu),
            (|w| w.allocated.memory_mb = 3800, Rejection::Memory),
            (
                |w| {
                    w.labels.insert("zone".into(), "b".into());
                },
                Rejection::Constraint("zone=a".parse().unwrap()),
            ),
        ];
        for (break_it, expected) in cases {
            let mut w = fits.clone();
            break_it(&mut w);
            assert_eq!(check(&request, &w, 0), Err(expected));
        }
        assert_eq!(check(&request, &fits, 2), Err(Rejection::ServiceLimit(2)));
        // Exactly full still fits: capacity 4 CPUs, 3 allocated, 1 asked.
        let mut full = fits.clone();
        full.allocated.cpus = 3.0;
        assert_eq!(check(&request, &full, 0), Ok(()));
    }

    #[test]
    fn the_tally_names_each_reason_with_its_count() {
        let mut tally = RejectionTally::default();
        assert!(tally.is_empty());
        tally.add(Rejection::Constraint("zone=a".parse().unwrap()));
        for _ in 0..3 {
            tally.add(Rejection::Memory);
        }
        tally.add(Rejection::Constraint("zone=a".parse().unwrap()));
        assert_eq!(
            tally.to_string(),
            "3 workers lack memory, 2 lack label zone=a"
        );
        let mut one = RejectionTally::default();
        one.add(Rejection::Constraint("disk!=hdd".parse().unwrap()));
        assert_eq!(one.to_string(), "1 worker fail disk!=hdd");
    }
}
