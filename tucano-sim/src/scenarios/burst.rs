//! `burst`: 1000 requests arriving at 150/s (about 7 s; one replica serves 80/s) to a service scaled by the
//! `capacity` policy (4 requests per replica, 10 s idle timeout, 1..=16 replicas) behind
//! least connections. Replicas rise while the burst lasts, then fall back to the minimum.

use std::time::Duration;

use super::common::{MAX_REPLICAS, SERVICE_TIME, autoscaled_cluster, capacity};
use super::{Goal, Results};
use crate::config::{Scaling, SimConfig};
use crate::load_profile::LoadProfile;
use crate::plot::{Panel, Series};
use crate::simulation::{SimError, simulate};
use crate::table::{Table, cell};

/// Requests in the burst.
pub const REQUESTS: u64 = 1000;

/// Runs the burst.
pub fn compute(seed: u64) -> Result<Results, SimError> {
    let spec = capacity(1, MAX_REPLICAS, Duration::from_secs(10));
    let config = SimConfig::new(
        seed,
        autoscaled_cluster(),
        SERVICE_TIME,
        LoadProfile::burst(REQUESTS, 150.0, Duration::from_secs(60)),
        "least_connections",
        Scaling::Autoscale(spec),
    );
    let outcome = simulate(&config)?;
    let mut table = Table::new(&[
        "t_s",
        "arrivals",
        "completed",
        "completed_total",
        "desired",
        "ready",
        "in_flight",
        "p95_ms",
    ]);
    for s in &outcome.samples {
        table.push(vec![
            cell(s.at_s),
            s.arrivals.to_string(),
            s.completed.to_string(),
            s.completed_total.to_string(),
            s.desired.to_string(),
            s.ready.to_string(),
            s.in_flight.to_string(),
            s.p95_ms.map_or_else(String::new, cell),
        ]);
    }
    let points = |f: &dyn Fn(&crate::outcome::Sample) -> f64| {
        outcome
            .samples
            .iter()
            .map(|s| (s.at_s, f(s)))
            .collect::<Vec<_>>()
    };
    let peak = outcome.samples.iter().map(|s| s.ready).max().unwrap_or(0);
    let last = outcome.samples.last().map_or(0, |s| s.ready);
    let goal = Goal {
        description: format!(
            "burst: replicas rise from 1 to {peak} and end at {last} (min 1); {} of {REQUESTS} requests answered, {} failed",
            outcome.completed(),
            outcome.failed
        ),
        met: peak > 1 && last == 1 && outcome.completed() as u64 == REQUESTS,
    };
    let summary = format!(
        "burst of {REQUESTS}: peak {peak} replicas, {last} at the end; p95 {:.1} ms; {} decisions\n",
        outcome.quantile_ms(0.95),
        outcome.decisions.len()
    );
    Ok(Results {
        name: "burst",
        tables: vec![("burst.csv".into(), table)],
        charts: vec![(
            "burst.png".into(),
            vec![
                Panel::new(
                    "burst of 1000 requests: replicas (capacity policy)",
                    "time (s)",
                    "replicas",
                    vec![
                        Series::new("desired", points(&|s| f64::from(s.desired))),
                        Series::new("serving", points(&|s| f64::from(s.ready))),
                    ],
                ),
                Panel::new(
                    "completed requests",
                    "time (s)",
                    "requests",
                    vec![
                        Series::new("completed (total)", points(&|s| s.completed_total as f64)),
                        Series::new("in flight", points(&|s| s.in_flight as f64)),
                    ],
                ),
            ],
        )],
        summary,
        goals: vec![goal],
    })
}
