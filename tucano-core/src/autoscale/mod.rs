//! Autoscaling: policies that turn a service's signals into a replica count, and the
//! [`Autoscaler`] that bounds them, keeps stale or missing signals from scaling anything
//! down, takes idle services to zero when asked, and explains every change.
//!
//! Policies are pure: they get the time with the signals (real or simulated), so the
//! simulator and the controller run the same code. The autoscaler only decides a desired
//! replica count; the reconciler does the rest.

mod capacity;
mod driver;
mod node_signals;
mod signals;
mod target;
mod threshold;
mod to_zero;
mod usage_signals;

use std::time::Duration;

pub use capacity::Capacity;
pub use driver::{AutoscaleLoopConfig, SignalSource, run_autoscalers};
pub use node_signals::node_cpu_pressure;
pub use signals::{Metric, ReplicaLoad, ServiceSignals};
pub use target::{RateLimit, Target};
pub use threshold::Threshold;
pub use to_zero::ToZero;
pub use usage_signals::{UsageSignals, usage_signals};

/// A policy's wish: a replica count and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recommendation {
    /// Replicas wanted.
    pub replicas: u32,
    /// The inputs that led there, in words.
    pub reason: String,
}

impl Recommendation {
    /// `replicas`, because of `reason`.
    pub fn new(replicas: u32, reason: String) -> Self {
        Self { replicas, reason }
    }
}

/// Turns signals into a replica count. `None`: no opinion (keep the count), for instance when
/// a signal it needs is missing.
pub trait ScalingPolicy: Send {
    /// What the policy wants, given `current` replicas and the service's `signals`.
    fn recommend(&mut self, current: u32, signals: &ServiceSignals) -> Option<Recommendation>;
}

/// A change of replica count the autoscaler decided, with its cause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScalingDecision {
    /// When (the autoscaler's clock).
    pub at: Duration,
    /// Replicas before.
    pub from: u32,
    /// Replicas after.
    pub to: u32,
    /// Why, with the inputs.
    pub reason: String,
}

/// One service's autoscaler: a policy, replica bounds, and optionally scale to zero.
pub struct Autoscaler {
    policy: Box<dyn ScalingPolicy>,
    min: u32,
    max: u32,
    /// Signals older than this are stale.
    max_signal_age: Duration,
    to_zero: Option<ToZero>,
}

impl Autoscaler {
    /// `policy` within `min..=max` replicas (`max` at least `min`), trusting signals up to
    /// `max_signal_age` old.
    pub fn new(
        policy: Box<dyn ScalingPolicy>,
        min: u32,
        max: u32,
        max_signal_age: Duration,
    ) -> Self {
        Self {
            policy,
            min,
            max: max.max(min),
            max_signal_age,
            to_zero: None,
        }
    }

    /// The same, also going to zero replicas after `idle_timeout` without traffic and back to
    /// one when a request waits.
    pub fn with_to_zero(self, idle_timeout: Duration) -> Self {
        Self {
            to_zero: Some(ToZero::new(idle_timeout)),
            ..self
        }
    }

    /// The replica count for `current` replicas at time `now`, given the latest `signals`
    /// (if any), or `None` to keep it. Missing or stale signals never lower the count; the
    /// bounds always apply (a count outside them is brought back).
    pub fn decide(
        &mut self,
        now: Duration,
        current: u32,
        signals: Option<&ServiceSignals>,
    ) -> Option<ScalingDecision> {
        let fresh = signals.filter(|s| now.saturating_sub(s.at) <= self.max_signal_age);
        let decision = |to: u32, reason: String| {
            (to != current).then_some(ScalingDecision {
                at: now,
                from: current,
                to,
                reason,
            })
        };
        if let (Some(to_zero), Some(signals)) = (self.to_zero.as_mut(), fresh) {
            if let Some(wake) = to_zero.wake(current, signals) {
                return decision(self.min.max(1).min(self.max.max(1)), wake);
            }
            if current == 0 {
                return None;
            }
            if let Some(idle) = to_zero.idle(signals) {
                return decision(0, idle);
            }
        }
        let floor = if self.to_zero.is_some() && current == 0 {
            0
        } else {
            self.min
        };
        let bounded = |replicas: u32| replicas.clamp(floor, self.max);
        let Some(signals) = fresh else {
            return match bounded(current) {
                to if to > current => decision(to, format!("below min {}", self.min)),
                to if to < current => decision(to, format!("above max {}", self.max)),
                _ => None,
            };
        };
        let recommendation = self.policy.recommend(current, signals);
        match recommendation {
            Some(r) => {
                let to = bounded(r.replicas);
                let mut reason = r.reason;
                if to != r.replicas {
                    reason.push_str(&format!(
                        "; {} wanted, bounded to {}..={}",
                        r.replicas, floor, self.max
                    ));
                }
                decision(to, reason)
            }
            None => decision(
                bounded(current),
                format!("outside the bounds {}..={}", floor, self.max),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Always wants `n`.
    struct Wants(u32);
    impl ScalingPolicy for Wants {
        fn recommend(&mut self, _: u32, _: &ServiceSignals) -> Option<Recommendation> {
            Some(Recommendation::new(self.0, format!("wants {}", self.0)))
        }
    }

    fn signals_at(seconds: u64) -> ServiceSignals {
        ServiceSignals {
            at: Duration::from_secs(seconds),
            ..ServiceSignals::default()
        }
    }

    #[test]
    fn recommendations_are_clamped_to_the_bounds_with_the_reason_saying_so() {
        let mut up = Autoscaler::new(Box::new(Wants(50)), 2, 10, Duration::from_secs(30));
        let decision = up
            .decide(Duration::from_secs(1), 4, Some(&signals_at(1)))
            .unwrap();
        assert_eq!((decision.from, decision.to), (4, 10));
        assert!(
            decision.reason.contains("bounded to 2..=10"),
            "{}",
            decision.reason
        );
        let mut down = Autoscaler::new(Box::new(Wants(0)), 2, 10, Duration::from_secs(30));
        assert_eq!(
            down.decide(Duration::from_secs(1), 4, Some(&signals_at(1)))
                .map(|d| d.to),
            Some(2)
        );
        // Already at what it wants: no decision.
        assert_eq!(
            down.decide(Duration::from_secs(1), 2, Some(&signals_at(1))),
            None
        );
    }

    #[test]
    fn missing_or_stale_signals_never_scale_down_but_bounds_still_hold() {
        let mut a = Autoscaler::new(Box::new(Wants(1)), 2, 10, Duration::from_secs(30));
        assert_eq!(a.decide(Duration::from_secs(100), 6, None), None);
        let stale = signals_at(10);
        assert_eq!(a.decide(Duration::from_secs(100), 6, Some(&stale)), None);
        assert_eq!(
            a.decide(Duration::from_secs(100), 1, None).map(|d| d.to),
            Some(2)
        );
        assert_eq!(
            a.decide(Duration::from_secs(100), 12, Some(&stale))
                .map(|d| d.to),
            Some(10)
        );
    }
}
