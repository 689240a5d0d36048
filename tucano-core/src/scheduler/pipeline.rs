//! The filter → score scheduler: filters decide which workers can take an instance at all,
//! a strategy's scorer ranks those, the best wins. On large clusters only a sample of the
//! feasible workers is ranked (Nomad's approach), so a placement costs about log2(n) scores.

use super::feasibility::{Rejection, RejectionTally, check};
use super::score::Strategy;
use super::{ClusterView, PlacementError, PlacementRequest, Scheduler};
use crate::model::WorkerId;

/// Fewest feasible workers a sampled placement ranks: clusters up to this size are always
/// scanned whole, so strategies behave exactly on small clusters.
pub const MIN_SAMPLE: usize = 8;

/// How many feasible workers a placement ranks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sampling {
    /// About log2(n) of them (at least [`MIN_SAMPLE`]), visited in a random order: the
    /// first ones found feasible.
    #[default]
    Sampled,
    /// All of them.
    Full,
}

/// Filters, then scores with the request's strategy (or this scheduler's default), over a
/// sample or all of the feasible workers; the highest score wins, ties going to the first
/// visited (the order is random per request, from its seed). When no worker fits, the error
/// counts the workers each filter turned away.
///
/// ```
/// use tucano_core::scheduler::{ClusterView, Pipeline, PlacementRequest, Scheduler, Strategy, WorkerCandidate};
/// use tucano_core::{Resources, RuntimeKind};
/// let worker = |id: &str, allocated_cpus: f64| WorkerCandidate {
///     allocated: Resources { cpus: allocated_cpus, memory_mb: 0 },
///     ..WorkerCandidate::new(id.parse().unwrap(), RuntimeKind::Process, Resources { cpus: 4.0, memory_mb: 4096 })
/// };
/// let cluster = ClusterView { workers: vec![worker("a", 1.0), worker("b", 3.0)], service_instances: vec![0, 0] };
/// let service = "web".parse().unwrap();
/// let resources = Resources::default();
/// let request = PlacementRequest::new(&service, &resources, RuntimeKind::Process);
/// assert_eq!(Pipeline::new(Strategy::Spread).place(&request, &cluster).unwrap().as_str(), "a");
/// assert_eq!(Pipeline::new(Strategy::Binpack).place(&request, &cluster).unwrap().as_str(), "b");
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Pipeline {
    strategy: Strategy,
    sampling: Sampling,
}

impl Pipeline {
    /// A scheduler using `strategy` unless a request names another, sampling on large
    /// clusters.
    pub fn new(strategy: Strategy) -> Self {
        Self {
            strategy,
            sampling: Sampling::Sampled,
        }
    }

    /// The same, ranking feasible workers as `sampling` says.
    pub fn with_sampling(self, sampling: Sampling) -> Self {
        Self { sampling, ..self }
    }

    /// How many feasible workers a placement ranks among `workers`.
    fn sample_size(&self, workers: usize) -> usize {
        match self.sampling {
            Sampling::Full => workers,
            Sampling::Sampled => {
                let log2 = usize::BITS - workers.max(1).leading_zeros();
                (log2 as usize).max(MIN_SAMPLE)
            }
        }
    }
}

impl Scheduler for Pipeline {
    fn place(
        &self,
        request: &PlacementRequest<'_>,
        cluster: &ClusterView,
    ) -> Result<WorkerId, PlacementError> {
        let scorer = request.strategy.unwrap_or(self.strategy).scorer();
        let limit = self.sample_size(cluster.workers.len());
        let mut tally = RejectionTally::default();
        let mut alive = 0usize;
        let mut found = 0usize;
        // Ranked by (not avoided, score): an avoided worker wins only when nothing else fits.
        let mut best: Option<(bool, f64, usize)> = None;
        for index in VisitOrder::new(cluster.workers.len(), request.seed) {
            let Some(worker) = cluster.workers.get(index) else {
                continue;
            };
            let same_service = cluster.service_instances.get(index).copied().unwrap_or(0);
            match check(request, worker, same_service) {
                Ok(()) => {
                    alive += 1;
                    let preferred = !request.avoid.contains(&worker.id);
                    let score = scorer.score(request, worker, same_service);
                    if best.is_none_or(|(top_preferred, top, _)| {
                        (preferred, score) > (top_preferred, top)
                    }) {
                        best = Some((preferred, score, index));
                    }
                    found += 1;
                    if found >= limit {
                        break;
                    }
                }
                Err(rejection) => {
                    alive += usize::from(rejection != Rejection::Dead);
                    tally.add(rejection);
                }
            }
        }
        match best.and_then(|(_, _, index)| cluster.workers.get(index)) {
            Some(worker) => Ok(worker.id.clone()),
            None if alive == 0 => Err(PlacementError::NoLiveWorker),
            None => Err(PlacementError::NoFit(tally.to_string())),
        }
    }
}

/// Every index below `n` once, in an order drawn from `seed`: a random start and a random
/// stride coprime with `n` (no allocation, unlike a shuffle).
struct VisitOrder {
    n: usize,
    next: usize,
    stride: usize,
    left: usize,
}

impl VisitOrder {
    fn new(n: usize, seed: u64) -> Self {
        let mixed = splitmix(seed);
        let start = if n == 0 {
            0
        } else {
            (mixed % n as u64) as usize
        };
        let mut stride = if n <= 1 {
            1
        } else {
            1 + ((mixed >> 32) % (n as u64 - 1)) as usize
        };
        while gcd(stride, n) != 1 {
            stride += 1;
        }
        Self {
            n,
            next: start,
            stride,
            left: n,
        }
    }
}

impl Iterator for VisitOrder {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let index = self.next;
        self.next = (self.next + self.stride) % self.n;
        Some(index)
    }
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// SplitMix64's finaliser: spreads any seed over all bits.
fn splitmix(seed: u64) -> u64 {
    let mut x = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::model::{Resources, RuntimeKind};
    use crate::scheduler::test_support::worker;

    fn cluster(n: usize) -> ClusterView {
        ClusterView {
            workers: (0..n).map(|i| worker(&format!("w{i}"))).collect(),
            service_instances: vec![0; n],
        }
    }

    /// Places `count` instances one after the other, recording each; returns the workers'
    /// instance counts.
    fn place_all(
        scheduler: &Pipeline,
        cluster: &mut ClusterView,
        resources: &Resources,
        count: u64,
    ) -> Vec<u32> {
        let service = "web".parse().unwrap();
        for seed in 0..count {
            let mut req = PlacementRequest::new(&service, resources, RuntimeKind::Process);
            req.seed = seed;
            let id = scheduler.place(&req, cluster).unwrap();
            cluster.record_placement(&id, resources);
        }
        cluster.service_instances.clone()
    }

    #[test]
    fn visit_order_covers_every_index_once() {
        for n in [0, 1, 2, 7, 12, 100] {
            for seed in 0..20 {
                let seen: Vec<usize> = VisitOrder::new(n, seed).collect();
                assert_eq!(seen.len(), n);
                assert_eq!(seen.iter().copied().collect::<HashSet<_>>().len(), n);
            }
        }
    }

    #[test]
    fn a_worker_to_avoid_wins_only_when_no_other_fits() {
        let service = "web".parse().unwrap();
        let resources = Resources::default();
        let mut c = cluster(3);
        // Binpack would pick w0, the fullest.
        c.workers[0].allocated.cpus = 3.0;
        let avoid: Vec<WorkerId> = vec!["w0".parse().unwrap()];
        for seed in 0..20 {
            let request = PlacementRequest {
                avoid: &avoid,
                seed,
                ..PlacementRequest::new(&service, &resources, RuntimeKind::Process)
            };
            let chosen = Pipeline::new(Strategy::Binpack)
                .place(&request, &c)
                .unwrap();
            assert_ne!(chosen.as_str(), "w0");
        }
        let mut alone = cluster(1);
        alone.workers[0].allocated.cpus = 3.0;
        let request = PlacementRequest {
            avoid: &avoid,
            ..PlacementRequest::new(&service, &resources, RuntimeKind::Process)
        };
        let chosen = Pipeline::new(Strategy::Binpack).place(&request, &alone);
        assert_eq!(chosen.unwrap().as_str(), "w0");
    }

    #[test]
    fn binpack_fills_one_worker_before_the_next() {
        let resources = Resources {
            cpus: 1.0,
            memory_mb: 256,
        };
        let mut c = cluster(4);
        let counts = place_all(&Pipeline::new(Strategy::Binpack), &mut c, &resources, 6);
        let mut sorted = counts.clone();
        sorted.sort();
        assert_eq!(sorted, vec![0, 0, 2, 4], "{counts:?}");
    }

    #[test]
    fn spread_keeps_skew_within_one() {
        let resources = Resources {
            cpus: 0.5,
            memory_mb: 256,
        };
        let mut c = cluster(5);
        for placed in 1..=13u64 {
            let counts = place_all(&Pipeline::new(Strategy::Spread), &mut c, &resources, 1);
            let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            assert!(max - min <= 1, "after {placed}: {counts:?}");
        }
    }

    #[test]
    fn resource_fit_never_overcommits_and_says_why_it_stops() {
        let resources = Resources {
            cpus: 1.5,
            memory_mb: 1024,
        };
        for strategy in Strategy::ALL {
            let mut c = cluster(3);
            let scheduler = Pipeline::new(strategy);
            let service = "web".parse().unwrap();
            let req = PlacementRequest::new(&service, &resources, RuntimeKind::Process);
            let mut placed = 0;
            while let Ok(id) = scheduler.place(&req, &c) {
                c.record_placement(&id, &resources);
                placed += 1;
                assert!(placed <= 6, "{strategy}: overcommitted");
            }
            // 4 CPUs each: two instances of 1.5 fit, a third does not.
            assert_eq!(placed, 6, "{strategy}");
            for w in &c.workers {
                assert!(w.allocated.cpus <= w.capacity.cpus, "{strategy}: {w:?}");
            }
            assert_eq!(
                scheduler.place(&req, &c),
                Err(PlacementError::NoFit("3 workers lack CPU".into()))
            );
        }
    }

    #[test]
    fn constraints_are_never_violated_and_failures_name_each_filter() {
        let resources = Resources::default();
        let mut c = cluster(6);
        for (i, w) in c.workers.iter_mut().enumerate() {
            w.labels
                .insert("zone".into(), if i < 2 { "a" } else { "b" }.into());
        }
        c.workers[5].alive = false;
        c.workers[4].runtime = RuntimeKind::Docker;
        let constraints = ["zone=a".parse().unwrap()];
        let service = "web".parse().unwrap();
        for strategy in Strategy::ALL {
            for seed in 0..50 {
                let mut req = PlacementRequest::new(&service, &resources, RuntimeKind::Process);
                req.constraints = &constraints;
                req.strategy = Some(strategy);
                req.seed = seed;
                let id = Pipeline::default().place(&req, &c).unwrap();
                assert!(["w0", "w1"].contains(&id.as_str()), "{strategy}: {id}");
            }
        }
        c.workers[0].allocated.memory_mb = 4096;
        c.workers[1].allocated.memory_mb = 4096;
        let mut req = PlacementRequest::new(&service, &resources, RuntimeKind::Process);
        req.constraints = &constraints;
        assert_eq!(
            Pipeline::default().place(&req, &c),
            Err(PlacementError::NoFit(
                "2 workers lack memory, 2 lack label zone=a, 1 are not alive, 1 lack the process runtime"
                    .into()
            ))
        );
        let mut dead = cluster(2);
        dead.workers.iter_mut().for_each(|w| w.alive = false);
        let req = PlacementRequest::new(&service, &resources, RuntimeKind::Process);
        assert_eq!(
            Pipeline::default().place(&req, &dead),
            Err(PlacementError::NoLiveWorker)
        );
    }

    #[test]
    fn max_per_worker_is_anti_affinity() {
        let resources = Resources::default();
        let mut c = cluster(3);
        let service = "web".parse().unwrap();
        let mut req = PlacementRequest::new(&service, &resources, RuntimeKind::Process);
        req.max_per_worker = Some(1);
        req.strategy = Some(Strategy::Binpack);
        for _ in 0..3 {
            let id = Pipeline::default().place(&req, &c).unwrap();
            c.record_placement(&id, &resources);
        }
        assert_eq!(c.service_instances, vec![1, 1, 1]);
        assert_eq!(
            Pipeline::default().place(&req, &c),
            Err(PlacementError::NoFit(
                "3 workers already run 1 of its instances".into()
            ))
        );
    }

    #[test]
    fn sampling_ranks_about_log2_n_workers_and_full_scan_finds_the_best() {
        assert_eq!(Pipeline::default().sample_size(4), MIN_SAMPLE);
        assert_eq!(Pipeline::default().sample_size(10_000), 14);
        assert_eq!(
            Pipeline::default()
                .with_sampling(Sampling::Full)
                .sample_size(10_000),
            10_000
        );
        // One worker much emptier than 9999 others: a full scan always finds it.
        let mut c = cluster(10_000);
        for w in &mut c.workers {
            w.allocated.cpus = 3.0;
        }
        c.workers[1234].allocated.cpus = 0.0;
        let resources = Resources::default();
        let service = "web".parse().unwrap();
        let full = Pipeline::new(Strategy::Spread).with_sampling(Sampling::Full);
        let sampled = Pipeline::new(Strategy::Spread);
        let mut sampled_found = 0;
        for seed in 0..100 {
            let mut req = PlacementRequest::new(&service, &resources, RuntimeKind::Process);
            req.seed = seed;
            assert_eq!(full.place(&req, &c).unwrap().as_str(), "w1234");
            sampled_found += usize::from(sampled.place(&req, &c).unwrap().as_str() == "w1234");
        }
        assert!(
            sampled_found < 10,
            "a sample of 14 rarely includes it: {sampled_found}"
        );
    }
}
