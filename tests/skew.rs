//! The skew experiment of issue 3, simulated briefly: the deterministic simulation of
//! `examples/skew.rs` (its `skew/sim.rs`, included here by path) run on the real policies for
//! 20 simulated seconds per policy. Checks that the simulation repeats exactly for a seed and
//! that the latency-aware policies keep slow backends out of the tail where round robin cannot.
//!
//! `cargo test --test skew`; the full experiment is `cargo run --release --example skew -- sim`.

#[allow(dead_code)]
#[path = "../examples/skew/workload.rs"]
mod workload;

#[allow(dead_code)]
#[path = "../examples/skew/sim.rs"]
mod sim;

use sim::{SimParams, simulate};
use workload::{Case, GOAL_RATIO, Summary};

fn params(seed: u64) -> SimParams {
    SimParams {
        rate: 500.0,
        seconds: 20.0,
        warmup: 2.0,
        jitter: 0.1,
        seed,
    }
}

fn run(case: &Case, policy: &str) -> Summary {
    simulate(case, policy, &params(3)).unwrap()
}

#[test]
fn the_same_seed_gives_the_same_numbers() {
    for policy in ["peak_ewma", "power_of_two", "consistent_hash"] {
        let case = Case::spread();
        let first = simulate(&case, policy, &params(11)).unwrap();
        let second = simulate(&case, policy, &params(11)).unwrap();
        assert_eq!(first, second, "{policy}");
        let other = simulate(&case, policy, &params(12)).unwrap();
        assert_ne!(first, other, "{policy}: another seed changed nothing");
    }
}

#[test]
fn every_request_is_measured_once() {
    let case = Case::one_slow();
    let rows: Vec<Summary> = workload::ALL_POLICIES
        .iter()
        .map(|policy| run(&case, policy))
        .collect();
    // The same arrivals for every policy: about 500/s × 20 s measured.
    for row in &rows {
        assert_eq!(row.requests, rows[0].requests, "{}", row.policy);
        assert_eq!(row.errors, 0, "{}", row.policy);
        assert!((9_000..11_000).contains(&row.requests), "{row:?}");
        let total: f64 = row.shares.iter().sum();
        assert!((total - 1.0).abs() < 1e-9, "{row:?}");
    }
    // Round robin: a tenth each, whatever the latency.
    let rr = &rows[0];
    assert!(rr.shares.iter().all(|s| (s - 0.1).abs() < 0.001), "{rr:?}");
}

#[test]
fn peak_ewma_keeps_one_slow_backend_out_of_the_tail() {
    let case = Case::one_slow();
    let rr = run(&case, "round_robin");
    let ewma = run(&case, "peak_ewma");
    // Round robin's p99 is the slow backend's 205 ms (±10 %).
    assert!(rr.p99_ns >= 180_000_000, "{rr:?}");
    // The goal of issue 3.
    let ratio = ewma.p99_ns as f64 / rr.p99_ns as f64;
    assert!(
        ratio <= GOAL_RATIO,
        "p99 ratio {ratio:.3}: {ewma:?} vs {rr:?}"
    );
    assert!(ewma.shares[0] < 0.002, "{ewma:?}");
    assert!(ewma.mean_ns < rr.mean_ns / 2.0, "{ewma:?} vs {rr:?}");
}

#[test]
fn load_aware_policies_beat_round_robin_on_a_spread() {
    let case = Case::spread();
    let rr = run(&case, "round_robin");
    // Round robin's p99 is the 1 s backend's.
    assert!(rr.p99_ns >= 900_000_000, "{rr:?}");
    for policy in ["least_connections", "peak_ewma"] {
        let row = run(&case, policy);
        assert!(row.p99_ns < rr.p99_ns / 2, "{policy}: {row:?} vs {rr:?}");
        assert!(
            row.mean_ns < rr.mean_ns / 3.0,
            "{policy}: {row:?} vs {rr:?}"
        );
        // The 1 s backend gets less than 1 % of the requests.
        assert!(row.shares[9] < 0.01, "{policy}: {row:?}");
        // And faster backends get more than slower ones.
        assert!(row.shares[0] > row.shares[9] * 10.0, "{policy}: {row:?}");
    }
    // The goal of issue 3, which two choices cannot reach here (the slowest two of ten are
    // both drawn 1 time in 45): peak_ewma compares four.
    let ewma = run(&case, "peak_ewma");
    let ratio = ewma.p99_ns as f64 / rr.p99_ns as f64;
    assert!(
        ratio <= GOAL_RATIO,
        "p99 ratio {ratio:.3}: {ewma:?} vs {rr:?}"
    );
    let p2c = run(&case, "power_of_two");
    assert!(p2c.p99_ns as f64 / rr.p99_ns as f64 > GOAL_RATIO, "{p2c:?}");
}
