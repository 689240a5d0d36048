//! `threshold`: when the average of a metric stays above `upper` for a whole `window`, add
//! `step` replicas; below `lower` for a whole window, remove `step` (the feedback paper's
//! policy). After a change the window starts again, so one change is judged before the next.

use std::collections::VecDeque;
use std::time::Duration;

use super::{Metric, Recommendation, ScalingPolicy, ServiceSignals};

/// The threshold policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    /// The metric followed.
    pub metric: Metric,
    /// Above this for a window: scale up.
    pub upper: f64,
    /// Below this for a window: scale down.
    pub lower: f64,
    /// How long the metric must stay beyond a bound.
    pub window: Duration,
    /// Replicas added or removed at once.
    pub step: u32,
    samples: VecDeque<(Duration, f64)>,
    /// Samples before this time belong to a window that already caused a change.
    since: Duration,
}

impl Threshold {
    /// A threshold policy with no samples yet.
    pub fn new(metric: Metric, lower: f64, upper: f64, window: Duration, step: u32) -> Self {
        Self {
            metric,
            upper,
            lower,
            window,
            step: step.max(1),
            samples: VecDeque::new(),
            since: Duration::ZERO,
        }
    }
}

impl ScalingPolicy for Threshold {
    fn recommend(&mut self, current: u32, signals: &ServiceSignals) -> Option<Recommendation> {
        let value = self.metric.value(signals)?;
        let now = signals.at;
        self.samples.push_back((now, value));
        // Keep one sample at or before the window's start, so coverage can be judged.
        while self.samples.len() > 1
            && self
                .samples
                .get(1)
                .is_some_and(|(t, _)| now.saturating_sub(*t) >= self.window)
        {
            self.samples.pop_front();
        }
        let start = self.samples.front().map(|(t, _)| *t)?;
        let covered = now.saturating_sub(start) >= self.window && start >= self.since;
        if !covered {
            return None;
        }
        let mean = self.samples.iter().map(|(_, v)| v).sum::<f64>() / self.samples.len() as f64;
        let all_above = self.samples.iter().all(|(_, v)| *v > self.upper);
        let all_below = self.samples.iter().all(|(_, v)| *v < self.lower);
        let window = humantime::format_duration(self.window);
        let recommendation = if all_above {
            Recommendation::new(
                current.saturating_add(self.step),
                format!(
                    "{} above {} for {window} (mean {mean:.3})",
                    self.metric, self.upper
                ),
            )
        } else if all_below {
            Recommendation::new(
                current.saturating_sub(self.step),
                format!(
                    "{} below {} for {window} (mean {mean:.3})",
                    self.metric, self.lower
                ),
            )
        } else {
            return None;
        };
        self.since = now;
        self.samples.clear();
        self.samples.push_back((now, value));
        Some(recommendation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64, cpu: f64) -> ServiceSignals {
        ServiceSignals {
            at: Duration::from_secs(seconds),
            cpu: Some(cpu),
            ..ServiceSignals::default()
        }
    }

    fn policy() -> Threshold {
        Threshold::new(Metric::Cpu, 0.2, 0.8, Duration::from_secs(30), 2)
    }

    #[test]
    fn acts_only_after_a_whole_window_beyond_a_bound_then_waits_a_new_window() {
        let mut p = policy();
        let mut decisions = Vec::new();
        for second in (0..=70).step_by(10) {
            decisions.push(p.recommend(3, &at(second, 0.9)).map(|r| r.replicas));
        }
        // 0..30 s covers the first window: +2 at 30 s, then again only at 60 s.
        assert_eq!(
            decisions,
            [None, None, None, Some(5), None, None, Some(5), None]
        );
    }

    #[test]
    fn a_dip_inside_the_window_resets_nothing_but_blocks_the_change() {
        let mut p = policy();
        for (second, cpu) in [(0, 0.1), (10, 0.1), (20, 0.5), (30, 0.1)] {
            assert_eq!(p.recommend(4, &at(second, cpu)), None, "at {second}s");
        }
        // The sample at 20 s stands for 20..30 s: the window holds it until 60 s.
        assert_eq!(p.recommend(4, &at(40, 0.1)), None);
        assert_eq!(p.recommend(4, &at(50, 0.1)), None);
        assert_eq!(p.recommend(4, &at(60, 0.1)).map(|r| r.replicas), Some(2));
    }

    #[test]
    fn missing_metric_has_no_opinion() {
        let mut p = policy();
        assert_eq!(p.recommend(3, &ServiceSignals::default()), None);
    }
}
