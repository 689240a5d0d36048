//! Running every contender of [`contenders`] on one load, and the tables and charts that
//! compare them (shared by the step and square-wave scenarios).

use std::time::Duration;

use super::common::{
    P95_TARGET_MS, SERVICE_TIME, autoscaled_cluster, contenders, is_stabilised, offered_series,
    p95_series, ready_series, reversal_window,
};
use crate::config::SimConfig;
use crate::load_profile::LoadProfile;
use crate::outcome::Outcome;
use crate::plot::Panel;
use crate::simulation::{SimError, simulate};
use crate::table::{Table, cell};

/// The balancing policy of every contender.
pub const BALANCING: &str = "least_connections";

/// One policy's run.
#[derive(Clone, Debug, PartialEq)]
pub struct Contender {
    /// The policy (`static_max`, `capacity`, ...).
    pub name: &'static str,
    /// The window within which its reversals are counted.
    pub window: Option<Duration>,
    /// Whether the policy stabilises its recommendations (target tracking).
    pub stabilised: bool,
    /// What happened.
    pub outcome: Outcome,
}

impl Contender {
    /// Its replica-seconds saved against `baseline`'s, in percent.
    pub fn saving_pct(&self, baseline: &Contender) -> f64 {
        if baseline.outcome.replica_seconds <= 0.0 {
            return 0.0;
        }
        100.0 * (1.0 - self.outcome.replica_seconds / baseline.outcome.replica_seconds)
    }

    /// Seconds whose p95 latency was above the target.
    pub fn seconds_over_target(&self) -> usize {
        self.outcome
            .samples
            .iter()
            .filter(|s| s.p95_ms.is_some_and(|p95| p95 > P95_TARGET_MS))
            .count()
    }

    /// The most direction reversals within its window (0 for static provisioning).
    pub fn max_reversals(&self) -> usize {
        self.window
            .map_or(0, |window| self.outcome.max_reversals_within(window))
    }
}

/// Runs every contender on `load` with `seed`.
pub fn run(seed: u64, load: &LoadProfile) -> Result<Vec<Contender>, SimError> {
    contenders()
        .into_iter()
        .map(|(name, scaling)| {
            let window = reversal_window(&scaling);
            let stabilised = is_stabilised(&scaling);
            let config = SimConfig::new(
                seed,
                autoscaled_cluster(),
                SERVICE_TIME,
                load.clone(),
                BALANCING,
                scaling,
            );
            Ok(Contender {
                name,
                window,
                stabilised,
                outcome: simulate(&config)?,
            })
        })
        .collect()
}

/// Each contender's time series, one row per policy and second.
pub fn series_table(contenders: &[Contender]) -> Table {
    let mut table = Table::new(&[
        "policy",
        "t_s",
        "offered_rps",
        "completed",
        "desired",
        "ready",
        "provisioned",
        "in_flight",
        "p95_ms",
    ]);
    for contender in contenders {
        for s in &contender.outcome.samples {
            table.push(vec![
                contender.name.to_owned(),
                cell(s.at_s),
                cell(s.offered_rate),
                s.completed.to_string(),
                s.desired.to_string(),
                s.ready.to_string(),
                s.provisioned.to_string(),
                s.in_flight.to_string(),
                s.p95_ms.map_or_else(String::new, cell),
            ]);
        }
    }
    table
}

/// One row per contender: latency, cost against the first contender (static provisioning)
/// and reversals.
pub fn summary_table(contenders: &[Contender]) -> Table {
    let mut table = Table::new(&[
        "policy",
        "requests",
        "failed",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "seconds_p95_over_target",
        "replica_seconds",
        "saving_vs_static_pct",
        "scaling_decisions",
        "reversals",
        "window_s",
        "max_reversals_in_window",
    ]);
    let Some(baseline) = contenders.first() else {
        return table;
    };
    for c in contenders {
        let o = &c.outcome;
        table.push(vec![
            c.name.to_owned(),
            o.completed().to_string(),
            o.failed.to_string(),
            cell(o.quantile_ms(0.5)),
            cell(o.quantile_ms(0.95)),
            cell(o.quantile_ms(0.99)),
            c.seconds_over_target().to_string(),
            cell(o.replica_seconds),
            cell(c.saving_pct(baseline)),
            o.decisions.len().to_string(),
            o.reversals().len().to_string(),
            c.window
                .map_or_else(String::new, |w| w.as_secs().to_string()),
            c.max_reversals().to_string(),
        ]);
    }
    table
}

/// Three panels: the offered load, each policy's serving replicas, and each policy's p95
/// latency per second (log scale).
pub fn charts(title: &str, contenders: &[Contender]) -> Vec<Panel> {
    let offered = contenders
        .first()
        .map(|c| vec![offered_series(&c.outcome)])
        .unwrap_or_default();
    vec![
        Panel::new(
            &format!("{title}: offered load"),
            "time (s)",
            "requests/s",
            offered,
        ),
        Panel::new(
            &format!("{title}: serving replicas"),
            "time (s)",
            "replicas",
            contenders
                .iter()
                .map(|c| ready_series(c.name, &c.outcome))
                .collect(),
        ),
        Panel::new(
            &format!("{title}: p95 latency per second"),
            "time (s)",
            "p95 (ms)",
            contenders
                .iter()
                .map(|c| p95_series(c.name, &c.outcome))
                .collect(),
        )
        .log_y(),
    ]
}

/// One line per contender for the printed summary.
pub fn summary_lines(contenders: &[Contender]) -> String {
    let mut out = format!(
        "{:<12} {:>8} {:>7} {:>9} {:>9} {:>7} {:>12} {:>8} {:>10}\n",
        "policy",
        "requests",
        "failed",
        "p95 ms",
        "p99 ms",
        "s over",
        "replica-s",
        "saving",
        "reversals"
    );
    let Some(baseline) = contenders.first() else {
        return out;
    };
    for c in contenders {
        let o = &c.outcome;
        let reversals = match c.window {
            Some(w) => format!(
                "{} (max {} in {}s)",
                o.reversals().len(),
                c.max_reversals(),
                w.as_secs()
            ),
            None => "-".to_owned(),
        };
        out.push_str(&format!(
            "{:<12} {:>8} {:>7} {:>9.1} {:>9.1} {:>7} {:>12.0} {:>7.1}% {:>10}\n",
            c.name,
            o.completed(),
            o.failed,
            o.quantile_ms(0.95),
            o.quantile_ms(0.99),
            c.seconds_over_target(),
            o.replica_seconds,
            c.saving_pct(baseline),
            reversals
        ));
    }
    out
}
