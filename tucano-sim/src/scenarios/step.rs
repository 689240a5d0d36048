//! `step`: 40 requests/s for a minute, then 320/s for five. Each autoscaling policy against
//! static provisioning at the maximum (16 replicas): its p95 latency and its replica-seconds.
//!
//! Goal: the best policy holds p95 ≤ [`P95_TARGET_MS`] with at least 25 % fewer
//! replica-seconds than static provisioning.

use std::time::Duration;

use super::common::P95_TARGET_MS;
use super::comparison::{self, Contender};
use super::{Goal, Results};
use crate::load_profile::LoadProfile;
use crate::simulation::SimError;

/// The least saving of replica-seconds the goal asks for, in percent.
pub const GOAL_SAVING_PCT: f64 = 25.0;

/// The load: 40/s, stepping to 320/s at 60 s, until 360 s.
pub fn load() -> LoadProfile {
    LoadProfile::step(
        40.0,
        320.0,
        Duration::from_secs(60),
        Duration::from_secs(360),
    )
}

/// Runs every policy on the step.
pub fn compute(seed: u64) -> Result<Results, SimError> {
    let contenders = comparison::run(seed, &load())?;
    let goal = goal(&contenders);
    Ok(Results {
        name: "step",
        tables: vec![
            ("step.csv".into(), comparison::series_table(&contenders)),
            (
                "step_summary.csv".into(),
                comparison::summary_table(&contenders),
            ),
        ],
        charts: vec![(
            "step.png".into(),
            comparison::charts("step 40 -> 320 requests/s", &contenders),
        )],
        summary: comparison::summary_lines(&contenders),
        goals: vec![goal],
    })
}

/// The policy with the fewest replica-seconds among those holding the p95 target, and
/// whether it saves enough.
fn goal(contenders: &[Contender]) -> Goal {
    let Some(baseline) = contenders.first() else {
        return Goal {
            description: "no runs".into(),
            met: false,
        };
    };
    let best = contenders
        .iter()
        .skip(1)
        .filter(|c| c.outcome.quantile_ms(0.95) <= P95_TARGET_MS && c.outcome.failed == 0)
        .max_by(|a, b| a.saving_pct(baseline).total_cmp(&b.saving_pct(baseline)));
    match best {
        Some(best) => Goal {
            description: format!(
                "step: {} holds p95 {:.1} ms <= {P95_TARGET_MS} ms with {:.0} replica-seconds, {:.1}% fewer than static max's {:.0} (goal >= {GOAL_SAVING_PCT}%)",
                best.name,
                best.outcome.quantile_ms(0.95),
                best.outcome.replica_seconds,
                best.saving_pct(baseline),
                baseline.outcome.replica_seconds,
            ),
            met: best.saving_pct(baseline) >= GOAL_SAVING_PCT,
        },
        None => Goal {
            description: format!("step: no autoscaling policy held p95 <= {P95_TARGET_MS} ms"),
            met: false,
        },
    }
}
