//! `target`: target tracking as the Kubernetes HPA does it. The raw recommendation is
//! ceil(current × metric / target), ignored within a tolerance around the target; it is then
//! stabilised (the lowest recommendation of the scale-up window, the highest of the scale-down
//! window, so a brief dip does not remove replicas) and rate limited per period.

use std::collections::VecDeque;
use std::time::Duration;

use super::{Metric, Recommendation, ScalingPolicy, ServiceSignals};

/// The target-tracking policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// The metric followed.
    pub metric: Metric,
    /// The value per replica to hold.
    pub target: f64,
    /// Relative distance from the target within which nothing changes (0.1 = ±10 %).
    pub tolerance: f64,
    /// Recommendations this recent bound a scale-up (the lowest wins).
    pub scale_up_window: Duration,
    /// Recommendations this recent bound a scale-down (the highest wins).
    pub scale_down_window: Duration,
    /// Rate limits, per `period`: up by at most max(percent of the replicas, replicas).
    pub scale_up_limit: RateLimit,
    /// Down by at most max(percent of the replicas, replicas) per period.
    pub scale_down_limit: RateLimit,
    recommendations: VecDeque<(Duration, u32)>,
    changes: VecDeque<(Duration, u32)>,
}

/// How much replicas may change per period: by `percent` of the count at the period's start,
/// or by `replicas`, whichever is more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Share of the replicas, in percent.
    pub percent: u32,
    /// A number of replicas.
    pub replicas: u32,
    /// The period.
    pub period: Duration,
}

impl Target {
    /// Target tracking with the HPA's defaults: tolerance 0.1, no scale-up stabilisation,
    /// 300 s scale-down stabilisation, up by max(100 %, 4) and down by 100 % per 15 s.
    pub fn new(metric: Metric, target: f64) -> Self {
        let period = Duration::from_secs(15);
        Self {
            metric,
            target,
            tolerance: 0.1,
            scale_up_window: Duration::ZERO,
            scale_down_window: Duration::from_secs(300),
            scale_up_limit: RateLimit {
                percent: 100,
                replicas: 4,
                period,
            },
            scale_down_limit: RateLimit {
                percent: 100,
                replicas: 0,
                period,
            },
            recommendations: VecDeque::new(),
            changes: VecDeque::new(),
        }
    }

    /// The replica count at `now - period`: before the changes made since.
    fn count_before(&self, now: Duration, period: Duration, current: u32) -> u32 {
        let since = now.saturating_sub(period);
        self.changes
            .iter()
            .find(|(t, _)| *t >= since)
            .map_or(current, |(_, before)| *before)
    }
}

impl RateLimit {
    fn allowance(&self, base: u32) -> u32 {
        let share = (u64::from(base) * u64::from(self.percent)).div_ceil(100);
        (share.min(u64::from(u32::MAX)) as u32).max(self.replicas)
    }
}

impl ScalingPolicy for Target {
    fn recommend(&mut self, current: u32, signals: &ServiceSignals) -> Option<Recommendation> {
        let value = self.metric.value(signals)?;
        if current == 0 || !self.target.is_finite() || self.target <= 0.0 || !value.is_finite() {
            return None;
        }
        let now = signals.at;
        let ratio = value / self.target;
        let raw = if (ratio - 1.0).abs() <= self.tolerance {
            current
        } else {
            let wanted = (f64::from(current) * ratio).ceil();
            wanted.clamp(0.0, f64::from(u32::MAX)) as u32
        };
        self.recommendations.push_back((now, raw));
        let keep = self.scale_up_window.max(self.scale_down_window);
        while self
            .recommendations
            .front()
            .is_some_and(|(t, _)| now.saturating_sub(*t) > keep)
        {
            self.recommendations.pop_front();
        }
        let within = |window: Duration| {
            self.recommendations
                .iter()
                .filter(move |(t, _)| now.saturating_sub(*t) <= window)
                .map(|(_, r)| *r)
        };
        let up = within(self.scale_up_window).min().unwrap_or(raw);
        let down = within(self.scale_down_window).max().unwrap_or(raw);
        let mut desired = current;
        if desired < up {
            desired = up;
        }
        if desired > down {
            desired = down;
        }
        let limit = self.scale_up_limit.period.max(self.scale_down_limit.period);
        while self
            .changes
            .front()
            .is_some_and(|(t, _)| now.saturating_sub(*t) > limit)
        {
            self.changes.pop_front();
        }
        let (rate, limited) = if desired > current {
            let base = self.count_before(now, self.scale_up_limit.period, current);
            let most = base.saturating_add(self.scale_up_limit.allowance(base));
            (desired.min(most), desired > most)
        } else {
            let base = self.count_before(now, self.scale_down_limit.period, current);
            let least = base.saturating_sub(self.scale_down_limit.allowance(base));
            (desired.max(least), desired < least)
        };
        if rate == current {
            return None;
        }
        self.changes.push_back((now, current));
        let mut reason = format!(
            "{} is {value:.3} against a target of {} per replica: ceil({current} × {ratio:.3}) = {raw}",
            self.metric, self.target
        );
        if raw != desired {
            reason.push_str(&format!(", {desired} after stabilisation"));
        }
        if limited {
            reason.push_str(&format!(", {rate} after the rate limit"));
        }
        Some(Recommendation::new(rate, reason))
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

    /// No stabilisation, generous limits: the raw formula.
    fn plain() -> Target {
        Target {
            scale_down_window: Duration::ZERO,
            scale_up_limit: RateLimit {
                percent: 1000,
                replicas: 100,
                period: Duration::from_secs(15),
            },
            ..Target::new(Metric::Cpu, 0.5)
        }
    }

    #[test]
    fn follows_the_formula_outside_the_tolerance() {
        let mut p = plain();
        assert_eq!(p.recommend(4, &at(0, 1.0)).map(|r| r.replicas), Some(8));
        // 0.54 is within 10 % of 0.5: nothing.
        assert_eq!(p.recommend(8, &at(20, 0.54)), None);
        // 0.56 is 12 % above: ceil(8 × 1.12) = 9.
        assert_eq!(p.recommend(8, &at(40, 0.56)).map(|r| r.replicas), Some(9));
        assert_eq!(p.recommend(9, &at(60, 0.1)).map(|r| r.replicas), Some(2));
    }

    #[test]
    fn scale_down_waits_for_the_highest_recommendation_of_its_window() {
        let mut p = Target::new(Metric::Cpu, 0.5);
        // High load recommends 8, then load drops: the 300 s window remembers the 8.
        assert_eq!(p.recommend(4, &at(0, 1.0)).map(|r| r.replicas), Some(8));
        for second in [30, 120, 299] {
            assert_eq!(p.recommend(8, &at(second, 0.1)), None, "at {second}s");
        }
        // Once the 8 is older than 300 s, the highest recommendation left is 2.
        let down = p.recommend(8, &at(301, 0.1)).unwrap();
        assert_eq!(down.replicas, 2);
        assert!(down.reason.contains("ceil(8"), "{}", down.reason);
    }

    #[test]
    fn scale_up_is_rate_limited_per_period() {
        let mut p = Target {
            scale_up_limit: RateLimit {
                percent: 100,
                replicas: 4,
                period: Duration::from_secs(15),
            },
            ..plain()
        };
        // Wants 40 from 2: at most max(100 % of 2, 4) = +4 per 15 s.
        let first = p.recommend(2, &at(0, 10.0)).unwrap();
        assert_eq!(first.replicas, 6);
        assert!(first.reason.contains("rate limit"), "{}", first.reason);
        // Still within the period that started from 2: no more.
        assert_eq!(p.recommend(6, &at(10, 10.0)), None);
        // A new period from 6: up to 12.
        assert_eq!(p.recommend(6, &at(16, 10.0)).map(|r| r.replicas), Some(12));
    }

    #[test]
    fn a_scale_up_window_takes_the_lowest_recent_recommendation() {
        let mut p = Target {
            scale_up_window: Duration::from_secs(60),
            ..plain()
        };
        assert_eq!(p.recommend(4, &at(0, 0.5)), None);
        // A spike alone does not scale up while a calmer recommendation is in the window.
        assert_eq!(p.recommend(4, &at(30, 1.0)), None);
        assert_eq!(p.recommend(4, &at(61, 1.0)).map(|r| r.replicas), Some(8));
    }

    #[test]
    fn missing_metric_or_no_replicas_has_no_opinion() {
        let mut p = plain();
        assert_eq!(p.recommend(3, &ServiceSignals::default()), None);
        assert_eq!(p.recommend(0, &at(0, 1.0)), None);
    }
}
