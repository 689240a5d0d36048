//! How long one balancing decision takes, per policy and set size.
//!
//! ```text
//! cargo bench -p tucano-lb --bench pick
//! cargo bench -p tucano-lb --bench pick -- --warm-up-time 1 --measurement-time 2   # quicker
//! ```
//!
//! - `pick/<policy>/<n>`: one thread picking from a service of `n` endpoints, for every
//!   built-in policy and n ∈ {10, 1000, 100000}.
//! - `pick_contended/<policy>/1000`: two threads picking from the same route at once; the time
//!   is per pick on each thread (the slower thread's time for its picks, divided by them).
//!
//! What is measured is the policy's `pick` alone, called through `Arc<dyn Balancer>` as the
//! routing table calls it, on a set the policy was `rebuild`-ed for as the routing table does.
//! The in-flight guard the routing table takes afterwards for the request (an `Arc` clone and
//! an atomic increment, then a decrement when the response ends) is not included: it is the
//! same for every policy. Each pick's context carries a different client address (so that
//! `consistent_hash` looks up varying keys), no headers, and a time 1 ms after the
//! endpoints' last latency samples (so that `peak_ewma` pays for decaying its estimates).
//!
//! The endpoints are in a realistic, varied state: weights 1 to 3, 0 to 3 requests held in
//! flight, latency estimates between 1 and 10 ms, reported loads between 0 and 1.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::HeaderMap;
use tucano_core::transport::Endpoint;
use tucano_core::{BalancingSpec, InstanceId, WorkerId};
use tucano_lb::{Balancer, EndpointSet, InFlightGuard, PickContext, PolicyRegistry, rng};

const POLICIES: [&str; 7] = [
    "round_robin",
    "weighted_round_robin",
    "least_connections",
    "power_of_two",
    "peak_ewma",
    "feedback",
    "consistent_hash",
];
const SIZES: [usize; 3] = [10, 1000, 100_000];
/// When the endpoints' latency estimates were last updated.
const SAMPLED_AT: u64 = 1_000_000_000;
/// The time of every pick.
const NOW: u64 = SAMPLED_AT + 1_000_000;

/// A set of `n` endpoints in a varied state, and the guards that keep its requests in flight.
fn endpoints(n: usize) -> (EndpointSet, Vec<InFlightGuard>) {
    rng::seed(n as u64);
    let endpoints: Vec<Endpoint> = (0..n)
        .map(|i| Endpoint {
            instance: InstanceId::new(),
            worker: WorkerId::new("w1").expect("a valid worker id"),
            proxy: ([127, 0, 0, 1], 8081).into(),
            address: ([127, 0, 0, 1], 9000 + (i % 1000) as u16).into(),
            weight: 1 + (i % 3) as u32,
        })
        .collect();
    let set = EndpointSet::new(&endpoints);
    let mut guards = Vec::new();
    for backend in &set {
        let state = backend.state();
        state.observe(1_000_000 + rng::below(9_000_000) as u64, false, SAMPLED_AT);
        state.report_load(rng::unit() as f32);
        for _ in 0..rng::below(4) {
            guards.push(state.track());
        }
    }
    (set, guards)
}

/// The policy `name`, built for `set` as the routing table builds it.
fn policy(name: &str, set: &EndpointSet) -> Arc<dyn Balancer> {
    let policy = PolicyRegistry::builtin()
        .create(&BalancingSpec::named(name))
        .expect("a built-in policy");
    policy.rebuild(set).unwrap_or(policy)
}

/// `iters` picks, each for another client address.
#[inline]
fn picks(policy: &dyn Balancer, set: &EndpointSet, headers: &HeaderMap, iters: u64, seed: u32) {
    let mut client = seed;
    for _ in 0..iters {
        client = client.wrapping_add(0x9E37_79B9);
        let request = PickContext::new(IpAddr::V4(Ipv4Addr::from(client)), headers, NOW);
        black_box(policy.pick(black_box(set), &request));
    }
}

fn pick(c: &mut Criterion) {
    let headers = HeaderMap::new();
    let mut group = c.benchmark_group("pick");
    for n in SIZES {
        let (set, _guards) = endpoints(n);
        for name in POLICIES {
            let policy = policy(name, &set);
            // The exact scan is O(n): fewer samples keep its largest case short.
            let scan = name == "least_connections" && n > 1000;
            group.sample_size(if scan { 10 } else { 100 });
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    picks(policy.as_ref(), &set, &headers, iters, 1);
                    start.elapsed()
                });
            });
        }
    }
    group.finish();
}

fn pick_contended(c: &mut Criterion) {
    let headers = HeaderMap::new();
    let mut group = c.benchmark_group("pick_contended");
    let n = 1000;
    let (set, _guards) = endpoints(n);
    for name in POLICIES {
        let policy = policy(name, &set);
        group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
            b.iter_custom(|iters| {
                let barrier = Barrier::new(2);
                let run = |seed: u32| {
                    rng::next_u64(); // this thread's generator, seeded before the clock starts
                    barrier.wait();
                    let start = Instant::now();
                    picks(policy.as_ref(), &set, &headers, iters, seed);
                    start.elapsed()
                };
                std::thread::scope(|scope| {
                    let other = scope.spawn(|| run(2));
                    let mine = run(1);
                    let theirs = other.join().unwrap_or(Duration::MAX);
                    mine.max(theirs)
                })
            });
        });
    }
    group.finish();
}

criterion_group!(benches, pick, pick_contended);
criterion_main!(benches);
