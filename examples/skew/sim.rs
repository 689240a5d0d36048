//! The deterministic half of the skew experiment: a discrete-event simulation that runs the
//! real tucano-lb policies on a simulated clock.
//!
//! Each policy is created by name from `PolicyRegistry::builtin()` and rebuilt for an
//! `EndpointSet` of the case's ten endpoints, as the routing table does; each request is
//! placed with `pick(&set, &PickContext::new(client, headers, now))`, counted in flight with
//! `backend.state().track()` until it completes, and on completion its latency is recorded
//! with `state().observe(latency, false, now)` and the backend's load report with
//! `state().report_load(...)` — what the proxy does with each response of a `tucano-demo`
//! backend. Nothing sleeps: completions wait in a binary heap ordered by time.
//!
//! Model (the same as the real run's):
//! - Arrivals are an open Poisson process at a fixed rate, the same for every policy, so a
//!   policy that makes requests slow does not get fewer of them (no coordinated omission),
//!   and requests pile up in flight on slow backends, which is what load-aware policies see.
//! - Backends have unbounded concurrency: a request to backend `i` takes `latency_i × j`
//!   whatever its load, `j` uniform in `[1 - jitter, 1 + jitter]` (seeded), as `tucano-demo`
//!   with `TUCANO_DEMO_DELAY_MS` (a sleep) and as the endpoints of tower's balance demo.
//! - A backend reports load `in flight at the request's arrival / 100`, as `tucano-demo`
//!   does in `x-tucano-load`; only `feedback` reads it.
//! - Requests arriving during the warm-up are served but not measured; every request arriving
//!   after it is measured to its completion, even past the end of the arrivals.
//!
//! Same seed, same numbers: the arrivals and the jitter come from a SplitMix64 seeded from
//! the seed, the policies' random draws from `tucano::lb::rng::seed(seed)` on this thread, and
//! the instance ids are fixed.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::net::{IpAddr, Ipv4Addr};

use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use tucano::lb::{EndpointSet, InFlightGuard, PickContext, PolicyRegistry};

use super::workload::{
    Arrivals, BACKENDS, CAPACITY, Case, HASH_HEADER, Recorder, SplitMix64, Summary, balancing,
    endpoints,
};

/// How a simulation runs.
#[derive(Clone, Debug, PartialEq)]
pub struct SimParams {
    /// Requests per second (Poisson).
    pub rate: f64,
    /// Simulated seconds of measured arrivals, after the warm-up.
    pub seconds: f64,
    /// Simulated seconds of arrivals at the start that are served but not measured.
    pub warmup: f64,
    /// Relative jitter of each request's latency (0.1: ±10 %).
    pub jitter: f64,
    /// Seed of the arrivals, the jitter and the policies' random draws.
    pub seed: u64,
}

/// A request in flight: when it completes and what to record then.
struct Completion {
    done_ns: u64,
    seq: u64,
    backend: usize,
    latency_ns: u64,
    load: f32,
    measured: bool,
    guard: InFlightGuard,
}

impl PartialEq for Completion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Completion {}

impl PartialOrd for Completion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Completion {
    /// By completion time, then arrival order: a total order, so runs repeat exactly.
    fn cmp(&self, other: &Self) -> Ordering {
        (self.done_ns, self.seq).cmp(&(other.done_ns, other.seq))
    }
}

/// Runs `policy` on `case` as `params` say and summarises the measured requests.
pub fn simulate(case: &Case, policy: &str, params: &SimParams) -> Result<Summary, String> {
    // Placeholder addresses: nothing is contacted.
    let addresses: Vec<_> = (0..BACKENDS)
        .map(|i| std::net::SocketAddr::from(([127, 0, 0, 1], 10_000 + i as u16)))
        .collect();
    let set = EndpointSet::new(&endpoints(&addresses)?);
    let balancer = PolicyRegistry::builtin()
        .create(&balancing(policy))
        .map_err(|e| e.to_string())?;
    let balancer = balancer.rebuild(&set).unwrap_or(balancer);
    tucano::lb::rng::seed(params.seed);

    let mut arrivals = Arrivals::new(params.rate, params.seed);
    let mut jitter = SplitMix64::new(params.seed ^ 0x5A5A_5A5A_0000_0002);
    let warmup_ns = (params.warmup * 1e9) as u64;
    let end_ns = ((params.warmup + params.seconds) * 1e9) as u64;
    let client = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let key = HeaderName::from_static(HASH_HEADER);
    let mut headers = HeaderMap::new();
    let mut pending: BinaryHeap<Reverse<Completion>> = BinaryHeap::new();
    let mut recorder = Recorder::new();

    let complete = |completion: Completion, recorder: &mut Recorder| {
        let state = completion.guard.state();
        state.observe(completion.latency_ns, false, completion.done_ns);
        state.report_load(completion.load);
        if completion.measured {
            recorder.record(completion.backend, completion.latency_ns);
        }
        drop(completion.guard);
    };

    let mut seq = 0u64;
    loop {
        let now = arrivals.next_ns();
        // Everything that completes by the arrival completes first, in time order.
        while pending.peek().is_some_and(|next| next.0.done_ns <= now) {
            if let Some(Reverse(completion)) = pending.pop() {
                complete(completion, &mut recorder);
            }
        }
        if now >= end_ns {
            break;
        }
        // A distinct key per request, for consistent hashing (the others ignore it).
        headers.insert(key.clone(), HeaderValue::from(seq));
        let context = PickContext::new(client, &headers, now);
        let picked = balancer
            .pick(&set, &context)
            .ok_or_else(|| format!("{policy} picked no endpoint from a set of {BACKENDS}"))?;
        let backend = set
            .iter()
            .position(|b| std::ptr::eq(b, picked))
            .ok_or_else(|| format!("{policy} picked an endpoint outside the set"))?;
        let guard = picked.state().track();
        let load = guard.state().in_flight() as f32 / CAPACITY as f32;
        let factor = 1.0 + params.jitter * (2.0 * jitter.unit() - 1.0);
        let latency_ns = (case.latencies_ms[backend] as f64 * 1e6 * factor).max(1.0) as u64;
        pending.push(Reverse(Completion {
            done_ns: now + latency_ns,
            seq,
            backend,
            latency_ns,
            load,
            measured: now >= warmup_ns,
            guard,
        }));
        seq += 1;
    }
    while let Some(Reverse(completion)) = pending.pop() {
        complete(completion, &mut recorder);
    }
    Ok(recorder.summary(policy))
}
