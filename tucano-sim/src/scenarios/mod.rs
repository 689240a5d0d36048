//! The experiments of issue 6, each in its own file: what it runs, the CSV tables and PNG
//! charts it writes, and the goals it checks.
//!
//! - [`response_time`]: time to answer N requests, one server vs round robin vs least
//!   connections over three servers of different speeds.
//! - [`burst`]: replicas and completed requests over time for a burst of 1000 requests.
//! - [`replicas_vs_load`]: replicas the `capacity` policy settles at for each request rate,
//!   round robin vs least connections.
//! - [`step`] and [`square_wave`]: p95 latency, replica-seconds and direction reversals of
//!   each autoscaling policy against static provisioning at the maximum.
//!
//! Every scenario is a pure function of its seed: [`compute`] gives the same tables for the
//! same seed, and [`write()`] puts them and the charts in a directory.

pub mod burst;
mod common;
mod comparison;
pub mod replicas_vs_load;
pub mod response_time;
pub mod square_wave;
pub mod step;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::plot::{Panel, PlotError, render};
use crate::simulation::SimError;
use crate::table::Table;

pub use common::{P95_TARGET_MS, SERVICE_TIME, autoscaled_cluster, contenders, reversal_window};

/// Every scenario, in the order `all` runs them.
pub const SCENARIOS: [&str; 5] = [
    "response_time",
    "burst",
    "replicas_vs_load",
    "step",
    "square_wave",
];

/// The seed used unless another is given.
pub const DEFAULT_SEED: u64 = 1;

/// Width of every chart, in pixels.
const CHART_WIDTH: u32 = 1000;

/// Why a scenario could not run or be written.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// No scenario has this name.
    #[error("unknown scenario {0:?}; known: {known}", known = SCENARIOS.join(", "))]
    Unknown(String),
    /// A run could not be simulated.
    #[error(transparent)]
    Sim(#[from] SimError),
    /// A chart could not be drawn.
    #[error(transparent)]
    Plot(#[from] PlotError),
    /// A file could not be written.
    #[error("write {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// A goal of the issue and whether this run met it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Goal {
    /// What was checked, with the numbers.
    pub description: String,
    /// Whether it held.
    pub met: bool,
}

/// What a scenario produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Results {
    /// The scenario's name.
    pub name: &'static str,
    /// CSV tables by file name.
    pub tables: Vec<(String, Table)>,
    /// Charts by file name: the panels of each PNG.
    pub charts: Vec<(String, Vec<Panel>)>,
    /// A short text summary (the lines printed after a run).
    pub summary: String,
    /// The goals checked.
    pub goals: Vec<Goal>,
}

impl Results {
    /// The table written to `file`, if the scenario has one.
    pub fn table(&self, file: &str) -> Option<&Table> {
        self.tables
            .iter()
            .find(|(name, _)| name == file)
            .map(|(_, t)| t)
    }

    /// The summary followed by one line per goal.
    pub fn report(&self) -> String {
        let mut out = self.summary.clone();
        for goal in &self.goals {
            let verdict = if goal.met { "MET" } else { "NOT MET" };
            let _ = writeln!(out, "goal: {} -> {verdict}", goal.description);
        }
        out
    }
}

/// Runs the scenario called `name` with `seed`.
pub fn compute(name: &str, seed: u64) -> Result<Results, ScenarioError> {
    Ok(match name {
        "response_time" => response_time::compute(seed)?,
        "burst" => burst::compute(seed)?,
        "replicas_vs_load" => replicas_vs_load::compute(seed)?,
        "step" => step::compute(seed)?,
        "square_wave" => square_wave::compute(seed)?,
        other => return Err(ScenarioError::Unknown(other.to_owned())),
    })
}

/// Writes `results`' tables and charts into `out` (created if missing); returns the files.
pub fn write(results: &Results, out: &Path) -> Result<Vec<PathBuf>, ScenarioError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| ScenarioError::Io { path, source }
    };
    std::fs::create_dir_all(out).map_err(io(out))?;
    let mut files = Vec::new();
    for (name, table) in &results.tables {
        let path = out.join(name);
        std::fs::write(&path, table.to_csv()).map_err(io(&path))?;
        files.push(path);
    }
    for (name, panels) in &results.charts {
        let path = out.join(name);
        render(&path, CHART_WIDTH, panels)?;
        files.push(path);
    }
    Ok(files)
}
