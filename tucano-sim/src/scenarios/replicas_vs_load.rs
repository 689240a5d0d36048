//! `replicas_vs_load`: the replicas the `capacity` policy settles at for each constant
//! request rate, round robin against least connections. Each run lasts 300 s from one
//! replica; the count is the serving replicas at its end (the policy only adds replicas at a
//! constant rate this busy: no replica idles for its 10 s timeout).
//!
//! Least connections keeps every replica near the same number of requests, so a replica is
//! added only when the service as a whole is full. Round robin leaves some replicas queueing
//! beyond their capacity while others have room; the requests beyond capacity count, and
//! replicas are added sooner. Goal (the course project's finding): least connections needs
//! no more replicas than round robin at any rate.

use std::time::Duration;

use super::common::{SERVICE_TIME, autoscaled_cluster, capacity};
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
/// Length of each run.
const RUN: Duration = Duration::from_secs(300);

/// Runs both policies at every rate.
pub fn compute(seed: u64) -> Result<Results, SimError> {
    let mut table = Table::new(&["rate_rps", "policy", "replicas", "max_replicas", "p95_ms"]);
    let mut replicas: Vec<Series> = Vec::new();
    let mut p95: Vec<Series> = Vec::new();
    let mut settled: Vec<Vec<f64>> = Vec::new();
    for policy in POLICIES {
        let mut line = Vec::new();
        let mut latency = Vec::new();
        let mut settled_of_policy = Vec::new();
        for rate in rates() {
            let config = SimConfig::new(
                seed,
                autoscaled_cluster(),
                SERVICE_TIME,
                LoadProfile::constant(rate, RUN),
                policy,
                Scaling::Autoscale(capacity(1, MAX, Duration::from_secs(10))),
            );
            let outcome = simulate(&config)?;
            let settled = outcome.samples.last().map_or(0.0, |s| f64::from(s.ready));
            let max = outcome.samples.iter().map(|s| s.ready).max().unwrap_or(0);
            table.push(vec![
                cell(rate),
                policy.to_owned(),
                cell(settled),
                max.to_string(),
                cell(outcome.quantile_ms(0.95)),
            ]);
            line.push((rate, settled));
            latency.push((rate, outcome.quantile_ms(0.95)));
            settled_of_policy.push(settled);
        }
        replicas.push(Series::new(policy, line));
        p95.push(Series::new(policy, latency));
        settled.push(settled_of_policy);
    }
    let (rr, lc) = (&settled[0], &settled[1]);
    let worse: Vec<String> = rates()
        .iter()
        .zip(rr.iter().zip(lc))
        .filter(|(_, (rr, lc))| lc > rr)
        .map(|(rate, (rr, lc))| format!("{rate}/s: lc {lc:.2} > rr {rr:.2}"))
        .collect();
    let mut summary = String::from("rate/s  round_robin  least_connections\n");
    for (rate, (rr, lc)) in rates().iter().zip(rr.iter().zip(lc)) {
        summary.push_str(&format!("{rate:>6} {rr:>12.2} {lc:>18.2}\n"));
    }
    let goal = Goal {
        description: if worse.is_empty() {
            format!(
                "replicas_vs_load: least connections needs no more replicas than round robin at any of {} rates (total {:.1} vs {:.1})",
                rr.len(),
                lc.iter().sum::<f64>(),
                rr.iter().sum::<f64>()
            )
        } else {
            format!(
                "replicas_vs_load: least connections needs more at {}",
                worse.join(", ")
            )
        },
        met: worse.is_empty(),
    };
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
                    replicas,
                ),
                Panel::new("p95 latency", "offered requests/s", "p95 (ms)", p95).log_y(),
            ],
        )],
        summary,
        goals: vec![goal],
    })
}
