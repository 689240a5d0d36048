//! `square_wave`: 40 and 320 requests/s alternating every minute for ten minutes. Each
//! policy's latency, replica-seconds, and how often it reverses direction.
//!
//! Goal: each policy with a stabilisation window (`target` and `target_cpu`, the HPA's, with
//! its 300 s scale-down stabilisation) reverses direction at most once within any window.

use std::time::Duration;

use super::comparison;
use super::{Goal, Results};
use crate::load_profile::LoadProfile;
use crate::simulation::SimError;

/// The load: 40/s and 320/s alternating every 60 s, starting low, for 600 s.
pub fn load() -> LoadProfile {
    LoadProfile::square_wave(
        40.0,
        320.0,
        Duration::from_secs(60),
        Duration::from_secs(600),
    )
}

/// Runs every policy on the square wave.
pub fn compute(seed: u64) -> Result<Results, SimError> {
    let contenders = comparison::run(seed, &load())?;
    let goals = contenders
        .iter()
        .filter(|c| c.stabilised)
        .map(|c| Goal {
            description: format!(
                "square_wave: {} reverses at most {} time(s) within any {} s stabilisation window ({} reversals in all; goal <= 1)",
                c.name,
                c.max_reversals(),
                c.window.map_or(0, |w| w.as_secs()),
                c.outcome.reversals().len(),
            ),
            met: c.max_reversals() <= 1,
        })
        .collect();
    Ok(Results {
        name: "square_wave",
        tables: vec![
            (
                "square_wave.csv".into(),
                comparison::series_table(&contenders),
            ),
            (
                "square_wave_summary.csv".into(),
                comparison::summary_table(&contenders),
            ),
        ],
        charts: vec![(
            "square_wave.png".into(),
            comparison::charts("square wave 40 <-> 320 requests/s", &contenders),
        )],
        summary: comparison::summary_lines(&contenders),
        goals,
    })
}
