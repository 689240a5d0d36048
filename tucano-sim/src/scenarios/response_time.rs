//! `response_time`: the total response time of N requests (the sum of their latencies) sent
//! at 150 requests/s to one server, and to three servers of different speeds (1, 0.8 and 0.5)
//! by round robin and by least connections. Each server handles one request at a time, 10 ms on average at speed 1
//! (100/s), so one server falls behind, round robin overloads the slowest server of three
//! (50/s each, and it serves 50/s), and least connections keeps each within its speed.

use std::time::Duration;

use super::Results;
use crate::cluster::{ClusterSpec, WorkerSpec};
use crate::config::{Scaling, SimConfig};
use crate::load_profile::LoadProfile;
use crate::plot::{Panel, Series};
use crate::service_time::ServiceTime;
use crate::simulation::{SimError, simulate};
use crate::table::{Table, cell};

/// The request counts, one run each per setup.
pub const REQUESTS: [u64; 7] = [100, 250, 500, 1000, 2000, 4000, 8000];
/// Arrivals per second (Poisson).
pub const RATE: f64 = 150.0;
/// The speeds of the three servers.
pub const SPEEDS: [f64; 3] = [1.0, 0.8, 0.5];

/// The three setups: name, worker speeds, balancing policy.
fn setups() -> [(&'static str, Vec<f64>, &'static str); 3] {
    [
        ("single", vec![1.0], "round_robin"),
        ("round_robin", SPEEDS.to_vec(), "round_robin"),
        ("least_connections", SPEEDS.to_vec(), "least_connections"),
    ]
}

/// Runs every setup at every request count.
pub fn compute(seed: u64) -> Result<Results, SimError> {
    let mut table = Table::new(&[
        "requests",
        "setup",
        "total_response_s",
        "last_answer_s",
        "mean_ms",
        "p95_ms",
    ]);
    let mut totals = Vec::new();
    let mut spans = Vec::new();
    let mut summary = String::from(
        "requests  setup              total response s  last answer s   mean ms    p95 ms\n",
    );
    for (name, speeds, balancing) in setups() {
        let mut total = Vec::new();
        let mut span = Vec::new();
        for requests in REQUESTS {
            let cluster = ClusterSpec {
                workers: speeds
                    .iter()
                    .map(|&speed| WorkerSpec { cores: 1, speed })
                    .collect(),
                instance_cpus: 1.0,
                concurrency: 1,
                startup: Duration::ZERO,
            };
            let window = Duration::from_secs_f64(requests as f64 / RATE * 10.0 + 10.0);
            let mut config = SimConfig::new(
                seed,
                cluster,
                ServiceTime::Exponential(Duration::from_millis(10)),
                LoadProfile::burst(requests, RATE, window),
                balancing,
                Scaling::Fixed(speeds.len() as u32),
            );
            config.duration = Duration::ZERO;
            let outcome = simulate(&config)?;
            let x = requests as f64;
            total.push((x, outcome.total_latency_s()));
            span.push((x, outcome.makespan_s()));
            table.push(vec![
                requests.to_string(),
                name.to_owned(),
                cell(outcome.total_latency_s()),
                cell(outcome.makespan_s()),
                cell(outcome.mean_ms()),
                cell(outcome.quantile_ms(0.95)),
            ]);
            summary.push_str(&format!(
                "{requests:>8}  {name:<17} {:>16.1} {:>14.2} {:>9.1} {:>9.1}\n",
                outcome.total_latency_s(),
                outcome.makespan_s(),
                outcome.mean_ms(),
                outcome.quantile_ms(0.95)
            ));
        }
        totals.push(Series::new(name, total));
        spans.push(Series::new(name, span));
    }
    Ok(Results {
        name: "response_time",
        tables: vec![("response_time.csv".into(), table)],
        charts: vec![(
            "response_time.png".into(),
            vec![
                Panel::new(
                    "total response time of N requests (150 requests/s offered)",
                    "requests",
                    "sum of latencies (s)",
                    totals,
                )
                .log_y(),
                Panel::new(
                    "time from the first request to the last answer",
                    "requests",
                    "seconds",
                    spans,
                ),
            ],
        )],
        summary,
        goals: Vec::new(),
    })
}
