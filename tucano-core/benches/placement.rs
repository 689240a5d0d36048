//! How long one placement takes, per strategy and cluster size.
//!
//! ```text
//! cargo bench -p tucano-core --bench placement
//! ```
//!
//! - `place/<strategy>/<workers>`: one placement by [`Pipeline`] with `strategy` on a
//!   cluster of `workers` (100, 1000, 10000), sampling about log2(n) feasible workers.
//! - `place_full/<strategy>/10000`: the same ranking every feasible worker.
//!
//! The cluster is varied: 4–16 CPUs and 8–64 GiB per worker, 0–90 % allocated, a `zone`
//! label of three values, reported metrics, a tenth of the workers full and a twentieth dead.
//! Each placement asks for 0.5 CPU and 512 MiB, with the constraint `zone!=c` and a
//! different seed (so it visits workers in a different order). What is timed is `place`
//! alone: the cluster view is built once.

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use tucano_core::scheduler::{
    ClusterView, Constraint, Pipeline, PlacementRequest, Sampling, Scheduler, Strategy,
    WorkerCandidate,
};
use tucano_core::{NodeMetrics, Resources, RuntimeKind, ServiceName};

const SIZES: [usize; 3] = [100, 1000, 10_000];

/// A deterministic, varied cluster of `n` workers.
fn cluster(n: usize) -> ClusterView {
    let mut state = n as u64 | 1;
    let mut random = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let workers = (0..n)
        .map(|i| {
            let cpus = [4.0, 8.0, 16.0][(random() % 3) as usize];
            let memory_mb = [8192, 32768, 65536][(random() % 3) as usize];
            let used = (random() % 91) as f64 / 100.0;
            let mut worker = WorkerCandidate::new(
                format!("w{i}").parse().expect("a worker id"),
                RuntimeKind::Process,
                Resources { cpus, memory_mb },
            );
            let full = i % 10 == 3;
            worker.allocated = Resources {
                cpus: if full { cpus } else { cpus * used },
                memory_mb: (memory_mb as f64 * used) as u64,
            };
            worker.alive = i % 20 != 7;
            worker.labels.insert(
                "zone".into(),
                ["a", "b", "c"][(random() % 3) as usize].into(),
            );
            worker.instances = (random() % 40) as u32;
            worker.metrics = Some(NodeMetrics {
                taken_at: SystemTime::UNIX_EPOCH,
                cpu_usage: (random() % 100) as f64 / 100.0,
                cpu_count: cpus as u32,
                memory_used_bytes: (random() % 100) * (memory_mb << 20) / 100,
                memory_total_bytes: memory_mb << 20,
                network_rx_bytes: 0,
                network_tx_bytes: 0,
                disk_used_bytes: 0,
                disk_total_bytes: 0,
                cpu_pressure: None,
            });
            worker
        })
        .collect();
    ClusterView {
        workers,
        service_instances: (0..n).map(|i| (i % 3) as u32).collect(),
    }
}

fn bench(c: &mut Criterion, group: &str, sizes: &[usize], sampling: Sampling) {
    let service: ServiceName = "web".parse().expect("a name");
    let resources = Resources {
        cpus: 0.5,
        memory_mb: 512,
    };
    let constraints: [Constraint; 1] = ["zone!=c".parse().expect("a constraint")];
    let mut group = c.benchmark_group(group);
    for &n in sizes {
        let view = cluster(n);
        for strategy in Strategy::ALL {
            let scheduler = Pipeline::new(strategy).with_sampling(sampling);
            group.bench_with_input(BenchmarkId::new(strategy.to_string(), n), &n, |b, _| {
                let mut seed = 0u64;
                b.iter(|| {
                    seed = seed.wrapping_add(1);
                    let mut request =
                        PlacementRequest::new(&service, &resources, RuntimeKind::Process);
                    request.constraints = &constraints;
                    request.seed = seed;
                    black_box(scheduler.place(black_box(&request), black_box(&view)))
                });
            });
        }
    }
    group.finish();
}

fn place(c: &mut Criterion) {
    bench(c, "place", &SIZES, Sampling::Sampled);
}

fn place_full(c: &mut Criterion) {
    bench(c, "place_full", &[10_000], Sampling::Full);
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = place, place_full
}
criterion_main!(benches);
