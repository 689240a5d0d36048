//! `replicas_vs_load`: replicas needed for each constant request rate, round robin against
//! least connections, measured two ways:
//!
//! - where the `capacity` policy settles: each run lasts 300 s from one replica, and a run's
//!   count is the serving replicas at its end (at a constant rate this busy no replica idles for
//!   the 10 s timeout, so the count only rises); the replicas needed are the mean of
//!   [`RUNS`] runs with different seeds, to the nearest replica;
//! - the fewest fixed replicas that hold p95 ≤ [`P95_TARGET_MS`] over 120 s, found by trying
//!   counts upward from the least that could serve the rate at all: a sizing that depends on no
//!   autoscaling policy.
//!
//! Least connections keeps every replica near the same number of requests; round robin lets
//! replicas drift apart (service times vary), so some queue beyond their capacity while others
//! have room. Goal (the course project's finding): least connections needs no more replicas
//! than round robin at any rate, by the capacity policy.

use std::time::Duration;

use super::common::{P95_TARGET_MS, SERVICE_TIME, autoscaled_cluster, capacity};
use super::{Goal, Results};
use crate::config::{Scaling, SimConfig};
use crate::load_profile::LoadProfile;
use crate::plot::{Panel, Series};
use crate::simulation::{SimError, simulate};
use crate::table::{Table, cell};

/// The rates, requests per second.
pub fn rates() -> Vec<f64> {
    (1..=16).map(|i| f64::from(i) * 25.0).collect()
}

/// The balancing policies compared.
pub const POLICIES: [&str; 2] = ["round_robin", "least_connections"];
/// Most replicas: the whole cluster.
pub const MAX: u32 = 32;
/// Length of each autoscaled run.
const RUN: Duration = Duration::from_secs(300);
/// Autoscaled runs per rate and policy, each with its own seed; the count is their mean.
pub const RUNS: u64 = 5;
/// Length of each fixed-replica run of the sizing.
const SIZING_RUN: Duration = Duration::from_secs(120);

/// One rate's results for one balancing policy.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Point {
    rate: f64,
    /// The mean over the runs of the replicas the capacity policy ends with.
    settled: f64,
    /// That mean rounded to a whole replica: the replicas the policy needs.
    needed: u32,
    settled_p95_ms: f64,
    fewest_fixed: Option<u32>,
}

/// Runs both policies at every rate.
pub fn compute(seed: u64) -> Result<Results, SimError> {
    let mut table = Table::new(&[
        "rate_rps",
        "policy",
        "capacity_mean_replicas",
        "capacity_replicas",
        "capacity_p95_ms",
        "fewest_fixed_for_p95",
    ]);
    let mut points: Vec<Vec<Point>> = Vec::new();
    for policy in POLICIES {
        let mut line = Vec::new();
        for rate in rates() {
            let point = measure(seed, policy, rate)?;
            table.push(vec![
                cell(rate),
                policy.to_owned(),
                cell(point.settled),
                point.needed.to_string(),
                cell(point.settled_p95_ms),
                point
                    .fewest_fixed
                    .map_or_else(String::new, |n| n.to_string()),
            ]);
            line.push(point);
        }
        points.push(line);
    }
    let series = |value: fn(&Point) -> Option<f64>| -> Vec<Series> {
        POLICIES
            .iter()
            .zip(&points)
            .map(|(policy, line)| {
                let xy = line.iter().filter_map(|p| Some((p.rate, value(p)?)));
                Series::new(*policy, xy.collect())
            })
            .collect()
    };
    let (rr, lc) = (&points[0], &points[1]);
    let mut summary = String::from(
        "rate/s   capacity: round_robin least_connections   fewest fixed for p95: round_robin least_connections\n",
    );
    for (rr, lc) in rr.iter().zip(lc) {
        let fixed = |p: &Point| p.fewest_fixed.map_or("-".to_owned(), |n| n.to_string());
        summary.push_str(&format!(
            "{:>6} {:>22.1} {:>17.1} {:>34} {:>17}\n",
            rr.rate,
            rr.settled,
            lc.settled,
            fixed(rr),
            fixed(lc)
        ));
    }
    let worse = |name: &str, get: fn(&Point) -> Option<u32>| -> Vec<String> {
        rr.iter()
            .zip(lc)
            .filter_map(|(r, l)| {
                let (r_n, l_n) = (get(r).unwrap_or(u32::MAX), get(l).unwrap_or(u32::MAX));
                (l_n > r_n).then(|| format!("{name} at {}/s: lc {l_n} > rr {r_n}", r.rate))
            })
            .collect()
    };
    let settled_worse = worse("capacity", |p| Some(p.needed));
    let sizing_worse = worse("sizing", |p| p.fewest_fixed);
    let total = |line: &[Point]| line.iter().map(|p| p.needed).sum::<u32>();
    let goals = vec![
        Goal {
            description: if settled_worse.is_empty() {
                format!(
                    "replicas_vs_load: with the capacity policy least connections needs no more replicas than round robin at any of {} rates (the mean of {RUNS} runs each, to the nearest replica; total {} vs {})",
                    rr.len(),
                    total(lc),
                    total(rr)
                )
            } else {
                format!("replicas_vs_load: {}", settled_worse.join(", "))
            },
            met: settled_worse.is_empty(),
        },
        Goal {
            description: if sizing_worse.is_empty() {
                format!(
                    "replicas_vs_load: the fewest fixed replicas holding p95 <= {P95_TARGET_MS} ms are no more with least connections than with round robin at any rate"
                )
            } else {
                format!("replicas_vs_load: {}", sizing_worse.join(", "))
            },
            met: sizing_worse.is_empty(),
        },
    ];
    Ok(Results {
        name: "replicas_vs_load",
        tables: vec![("replicas_vs_load.csv".into(), table)],
        charts: vec![(
            "replicas_vs_load.png".into(),
            vec![
                Panel::new(
                    "replicas the capacity policy settles at",
                    "offered requests/s",
                    "serving replicas at the end",
                    series(|p| Some(p.settled)),
                ),
                Panel::new(
                    "capacity policy: p95 latency",
                    "offered requests/s",
                    "p95 (ms)",
                    series(|p| Some(p.settled_p95_ms)),
                )
                .log_y(),
                Panel::new(
                    &format!("fewest fixed replicas holding p95 <= {P95_TARGET_MS} ms"),
                    "offered requests/s",
                    "replicas",
                    series(|p| p.fewest_fixed.map(f64::from)),
                ),
            ],
        )],
        summary,
        goals,
    })
}

/// Both measures at one rate for one balancing policy.
fn measure(seed: u64, policy: &str, rate: f64) -> Result<Point, SimError> {
    let mut ended = 0u32;
    let mut p95 = 0.0;
    for run in 0..RUNS {
        let config = SimConfig::new(
            seed.wrapping_mul(RUNS).wrapping_add(run),
            autoscaled_cluster(),
            SERVICE_TIME,
            LoadProfile::constant(rate, RUN),
            policy,
            Scaling::Autoscale(capacity(1, MAX, Duration::from_secs(10))),
        );
        let outcome = simulate(&config)?;
        ended += outcome.samples.last().map_or(0, |s| s.ready);
        p95 += outcome.quantile_ms(0.95) / RUNS as f64;
    }
    let cluster = autoscaled_cluster();
    let per_replica = f64::from(cluster.concurrency) / SERVICE_TIME.mean().as_secs_f64();
    let least = ((rate / per_replica).ceil() as u32).max(1);
    let mut fewest_fixed = None;
    for replicas in least..=MAX {
        let sizing = SimConfig::new(
            seed,
            autoscaled_cluster(),
            SERVICE_TIME,
            LoadProfile::constant(rate, SIZING_RUN),
            policy,
            Scaling::Fixed(replicas),
        );
        if simulate(&sizing)?.quantile_ms(0.95) <= P95_TARGET_MS {
            fewest_fixed = Some(replicas);
            break;
        }
    }
    Ok(Point {
        rate,
        settled: f64::from(ended) / RUNS as f64,
        needed: (ended + RUNS as u32 / 2) / RUNS as u32,
        settled_p95_ms: p95,
        fewest_fixed,
    })
}
