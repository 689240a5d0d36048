//! How a service scales itself: `"autoscale"` in its spec, one flat object whose `policy`
//! says which other fields apply:
//!
//! ```json
//! {"policy": "capacity", "min": 1, "max": 10, "max_in_flight": 8, "idle_timeout": "60s"}
//! {"policy": "threshold", "min": 1, "max": 10, "metric": "cpu", "upper": 0.8, "lower": 0.2, "window": "30s", "step": 1}
//! {"policy": "target", "min": 1, "max": 10, "metric": "cpu", "target": 0.6, "tolerance": 0.1,
//!  "scale_up_stabilization": "0s", "scale_down_stabilization": "300s"}
//! ```
//!
//! Any of them may add `"to_zero": {"idle_timeout": "5m"}`. A field another policy uses is
//! refused, so a typo or a mix-up does not go unnoticed.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::MAX_REPLICAS;
use crate::autoscale::{Autoscaler, Capacity, Metric, ScalingPolicy, Target, Threshold};

/// A service's autoscaling: a policy within `min..=max` replicas, optionally to zero.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawAutoscaleSpec", into = "RawAutoscaleSpec")]
pub struct AutoscaleSpec {
    /// Fewest replicas while the service is not scaled to zero.
    pub min: u32,
    /// Most replicas.
    pub max: u32,
    /// The policy and its settings.
    pub policy: PolicySpec,
    /// No traffic for this long takes the service to zero replicas.
    pub to_zero: Option<Duration>,
}

/// One policy's settings.
#[derive(Clone, Debug, PartialEq)]
pub enum PolicySpec {
    /// Every replica full → one more; one idle → one fewer.
    Capacity {
        /// Requests a replica serves at once before it counts as full.
        max_in_flight: u32,
        /// A replica without a request for this long is surplus.
        idle_timeout: Duration,
    },
    /// A metric beyond a bound for a whole window → a step.
    Threshold {
        /// The metric.
        metric: Metric,
        /// Scale up above this.
        upper: f64,
        /// Scale down below this.
        lower: f64,
        /// How long it must stay beyond.
        window: Duration,
        /// Replicas per change.
        step: u32,
    },
    /// Target tracking, as the Kubernetes HPA.
    Target {
        /// The metric.
        metric: Metric,
        /// Its value per replica to hold.
        target: f64,
        /// Relative band around the target with no change.
        tolerance: f64,
        /// Scale-up stabilisation window.
        scale_up_stabilization: Duration,
        /// Scale-down stabilisation window.
        scale_down_stabilization: Duration,
    },
}

/// The JSON form: every field of every policy, checked against the named policy.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAutoscaleSpec {
    policy: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_in_flight: Option<u32>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde"
    )]
    idle_timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    metric: Option<Metric>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    upper: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lower: Option<f64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde"
    )]
    window: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    step: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tolerance: Option<f64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde"
    )]
    scale_up_stabilization: Option<Duration>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde"
    )]
    scale_down_stabilization: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to_zero: Option<RawToZero>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToZero {
    #[serde(with = "humantime_serde")]
    idle_timeout: Duration,
}

/// Longest window or timeout a policy may use.
const MAX_WINDOW: Duration = Duration::from_secs(3600);

impl TryFrom<RawAutoscaleSpec> for AutoscaleSpec {
    type Error = String;

    fn try_from(raw: RawAutoscaleSpec) -> Result<Self, String> {
        let fields = [
            ("max_in_flight", raw.max_in_flight.is_some()),
            ("idle_timeout", raw.idle_timeout.is_some()),
            ("metric", raw.metric.is_some()),
            ("upper", raw.upper.is_some()),
            ("lower", raw.lower.is_some()),
            ("window", raw.window.is_some()),
            ("step", raw.step.is_some()),
            ("target", raw.target.is_some()),
            ("tolerance", raw.tolerance.is_some()),
            (
                "scale_up_stabilization",
                raw.scale_up_stabilization.is_some(),
            ),
            (
                "scale_down_stabilization",
                raw.scale_down_stabilization.is_some(),
            ),
        ];
        let allowed: &[&str] = match raw.policy.as_str() {
            "capacity" => &["max_in_flight", "idle_timeout"],
            "threshold" => &["metric", "upper", "lower", "window", "step"],
            "target" => &[
                "metric",
                "target",
                "tolerance",
                "scale_up_stabilization",
                "scale_down_stabilization",
            ],
            other => {
                return Err(format!(
                    "unknown autoscale policy {other:?}; known policies: capacity, threshold, target"
                ));
            }
        };
        if let Some((field, _)) = fields
            .iter()
            .find(|(field, set)| *set && !allowed.contains(field))
        {
            return Err(format!(
                "autoscale.{field} does not apply to the {} policy (it takes {})",
                raw.policy,
                allowed.join(", ")
            ));
        }
        let required = |name: &str, value: Option<f64>| {
            value.filter(|v| v.is_finite() && *v >= 0.0).ok_or_else(|| {
                format!(
                    "the {} policy needs autoscale.{name}, a number ≥ 0",
                    raw.policy
                )
            })
        };
        let window = |name: &str, value: Option<Duration>, default: Duration| {
            let value = value.unwrap_or(default);
            if value > MAX_WINDOW {
                return Err(format!("autoscale.{name} may be at most 1h"));
            }
            Ok(value)
        };
        let metric = || {
            raw.metric
                .ok_or_else(|| format!("the {} policy needs autoscale.metric", raw.policy))
        };
        let policy = match raw.policy.as_str() {
            "capacity" => PolicySpec::Capacity {
                max_in_flight: raw.max_in_flight.unwrap_or(10).max(1),
                idle_timeout: window("idle_timeout", raw.idle_timeout, Duration::from_secs(60))?,
            },
            "threshold" => {
                let (lower, upper) = (required("lower", raw.lower)?, required("upper", raw.upper)?);
                if lower >= upper {
                    return Err("autoscale.lower must be below autoscale.upper".into());
                }
                PolicySpec::Threshold {
                    metric: metric()?,
                    upper,
                    lower,
                    window: window("window", raw.window, Duration::from_secs(60))?,
                    step: raw.step.unwrap_or(1).max(1),
                }
            }
            _ => {
                let target = required("target", raw.target)?;
                if target == 0.0 {
                    return Err("autoscale.target must be above 0".into());
                }
                let tolerance = raw.tolerance.unwrap_or(0.1);
                if !(0.0..1.0).contains(&tolerance) {
                    return Err("autoscale.tolerance must be at least 0 and below 1".into());
                }
                PolicySpec::Target {
                    metric: metric()?,
                    target,
                    tolerance,
                    scale_up_stabilization: window(
                        "scale_up_stabilization",
                        raw.scale_up_stabilization,
                        Duration::ZERO,
                    )?,
                    scale_down_stabilization: window(
                        "scale_down_stabilization",
                        raw.scale_down_stabilization,
                        Duration::from_secs(300),
                    )?,
                }
            }
        };
        let min = raw.min.unwrap_or(1);
        let max = raw
            .max
            .ok_or("autoscale.max is required: the most replicas the service may get")?;
        if min > max || max > MAX_REPLICAS {
            return Err(format!(
                "autoscale needs min ≤ max ≤ {MAX_REPLICAS}, got min {min} and max {max}"
            ));
        }
        let to_zero = raw
            .to_zero
            .map(|z| window("to_zero.idle_timeout", Some(z.idle_timeout), Duration::ZERO))
            .transpose()?;
        if to_zero.is_some_and(|t| t.is_zero()) {
            return Err("autoscale.to_zero.idle_timeout must be above 0".into());
        }
        Ok(Self {
            min,
            max,
            policy,
            to_zero,
        })
    }
}

impl From<AutoscaleSpec> for RawAutoscaleSpec {
    fn from(spec: AutoscaleSpec) -> Self {
        let base = Self {
            min: Some(spec.min),
            max: Some(spec.max),
            to_zero: spec.to_zero.map(|idle_timeout| RawToZero { idle_timeout }),
            ..Self::default()
        };
        match spec.policy {
            PolicySpec::Capacity {
                max_in_flight,
                idle_timeout,
            } => Self {
                policy: "capacity".into(),
                max_in_flight: Some(max_in_flight),
                idle_timeout: Some(idle_timeout),
                ..base
            },
            PolicySpec::Threshold {
                metric,
                upper,
                lower,
                window,
                step,
            } => Self {
                policy: "threshold".into(),
                metric: Some(metric),
                upper: Some(upper),
                lower: Some(lower),
                window: Some(window),
                step: Some(step),
                ..base
            },
            PolicySpec::Target {
                metric,
                target,
                tolerance,
                scale_up_stabilization,
                scale_down_stabilization,
            } => Self {
                policy: "target".into(),
                metric: Some(metric),
                target: Some(target),
                tolerance: Some(tolerance),
                scale_up_stabilization: Some(scale_up_stabilization),
                scale_down_stabilization: Some(scale_down_stabilization),
                ..base
            },
        }
    }
}

/// Metrics the controller node provides: the balancer's (in flight, request rate, p95
/// latency, the load instances report), and from the workers' heartbeats each instance's CPU
/// and memory use and the CPU pressure of its cgroup or its machine.
pub const COLLECTED_METRICS: [Metric; 7] = [
    Metric::InFlight,
    Metric::RequestRate,
    Metric::LatencyP95Ms,
    Metric::Load,
    Metric::CpuPressure,
    Metric::Cpu,
    Metric::Memory,
];

impl AutoscaleSpec {
    /// Checks what the running system can honour: the metric must be one the balancer
    /// collects ([`COLLECTED_METRICS`]); another would be accepted and silently do nothing.
    pub fn check_supported(&self) -> Result<(), String> {
        let metric = match &self.policy {
            PolicySpec::Threshold { metric, .. } | PolicySpec::Target { metric, .. } => {
                Some(*metric)
            }
            PolicySpec::Capacity { .. } => None,
        };
        if let Some(metric) = metric.filter(|m| !COLLECTED_METRICS.contains(m)) {
            let available: Vec<String> = COLLECTED_METRICS.iter().map(Metric::to_string).collect();
            return Err(format!(
                "autoscale.metric {metric} is not collected; available: {}",
                available.join(", ")
            ));
        }
        Ok(())
    }

    /// The autoscaler this spec describes, trusting signals up to `max_signal_age` old.
    pub fn autoscaler(&self, max_signal_age: Duration) -> Autoscaler {
        let policy: Box<dyn ScalingPolicy> = match &self.policy {
            PolicySpec::Capacity {
                max_in_flight,
                idle_timeout,
            } => Box::new(Capacity::new(*max_in_flight, *idle_timeout)),
            PolicySpec::Threshold {
                metric,
                upper,
                lower,
                window,
                step,
            } => Box::new(Threshold::new(*metric, *lower, *upper, *window, *step)),
            PolicySpec::Target {
                metric,
                target,
                tolerance,
                scale_up_stabilization,
                scale_down_stabilization,
            } => {
                let mut policy = Target::new(*metric, *target);
                policy.tolerance = *tolerance;
                policy.scale_up_window = *scale_up_stabilization;
                policy.scale_down_window = *scale_down_stabilization;
                Box::new(policy)
            }
        };
        let autoscaler = Autoscaler::new(policy, self.min, self.max, max_signal_age);
        match self.to_zero {
            Some(idle_timeout) => autoscaler.with_to_zero(idle_timeout),
            None => autoscaler,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<AutoscaleSpec, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn each_policy_parses_with_defaults_and_round_trips() {
        for json in [
            r#"{"policy": "capacity", "max": 10, "max_in_flight": 8}"#,
            r#"{"policy": "threshold", "min": 2, "max": 10, "metric": "cpu", "upper": 0.8, "lower": 0.2, "window": "30s"}"#,
            r#"{"policy": "target", "max": 20, "metric": "latency_p95_ms", "target": 250, "to_zero": {"idle_timeout": "5m"}}"#,
        ] {
            let spec = parse(json).unwrap();
            let again: AutoscaleSpec =
                serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
            assert_eq!(again, spec, "{json}");
        }
        let capacity = parse(r#"{"policy": "capacity", "max": 4}"#).unwrap();
        assert_eq!(capacity.min, 1);
        assert_eq!(
            capacity.policy,
            PolicySpec::Capacity {
                max_in_flight: 10,
                idle_timeout: Duration::from_secs(60)
            }
        );
        let target =
            parse(r#"{"policy": "target", "max": 4, "metric": "cpu", "target": 0.5}"#).unwrap();
        assert!(matches!(
            target.policy,
            PolicySpec::Target { tolerance, scale_down_stabilization, .. }
                if tolerance == 0.1 && scale_down_stabilization == Duration::from_secs(300)
        ));
        assert_eq!(parse(r#"{"policy": "target", "max": 4, "metric": "cpu", "target": 0.5, "to_zero": {"idle_timeout": "90s"}}"#).unwrap().to_zero, Some(Duration::from_secs(90)));
    }

    #[test]
    fn mistakes_are_refused_with_what_to_fix() {
        for (json, says) in [
            (
                r#"{"policy": "magic", "max": 3}"#,
                "unknown autoscale policy",
            ),
            (r#"{"policy": "capacity"}"#, "autoscale.max is required"),
            (
                r#"{"policy": "capacity", "max": 3, "metric": "cpu"}"#,
                "does not apply to the capacity policy",
            ),
            (
                r#"{"policy": "threshold", "max": 3, "metric": "cpu", "upper": 0.2, "lower": 0.8}"#,
                "lower must be below",
            ),
            (
                r#"{"policy": "threshold", "max": 3, "upper": 0.8, "lower": 0.2}"#,
                "needs autoscale.metric",
            ),
            (
                r#"{"policy": "target", "max": 3, "metric": "cpu"}"#,
                "needs autoscale.target",
            ),
            (
                r#"{"policy": "target", "max": 3, "metric": "cpu", "target": 0}"#,
                "above 0",
            ),
            (
                r#"{"policy": "target", "max": 3, "metric": "gpu", "target": 1}"#,
                "unknown variant",
            ),
            (r#"{"policy": "capacity", "min": 5, "max": 3}"#, "min ≤ max"),
            (
                r#"{"policy": "capacity", "max": 3, "idle_timeout": "2h"}"#,
                "at most 1h",
            ),
            (
                r#"{"policy": "capacity", "max": 3, "to_zero": {"idle_timeout": "0s"}}"#,
                "above 0",
            ),
            (
                r#"{"policy": "capacity", "max": 3, "maximum": 4}"#,
                "unknown field",
            ),
        ] {
            let error = parse(json).unwrap_err();
            assert!(error.contains(says), "{json}: {error}");
        }
    }

    #[test]
    fn every_metric_is_collected_including_cpu_and_memory() {
        for metric in [
            "cpu",
            "memory",
            "cpu_pressure",
            "load",
            "in_flight",
            "request_rate",
            "latency_p95_ms",
        ] {
            for json in [
                format!(r#"{{"policy": "target", "max": 3, "metric": "{metric}", "target": 0.6}}"#),
                format!(
                    r#"{{"policy": "threshold", "max": 3, "metric": "{metric}", "upper": 0.8, "lower": 0.2}}"#
                ),
            ] {
                let spec = parse(&json).unwrap();
                assert_eq!(spec.check_supported(), Ok(()), "{json}");
            }
        }
    }

    #[test]
    fn the_autoscaler_it_builds_follows_the_spec() {
        use crate::autoscale::{ReplicaLoad, ServiceSignals};
        let spec =
            parse(r#"{"policy": "capacity", "min": 1, "max": 3, "max_in_flight": 2}"#).unwrap();
        let mut autoscaler = spec.autoscaler(Duration::from_secs(10));
        let full = ServiceSignals {
            at: Duration::from_secs(1),
            replicas: Some(vec![ReplicaLoad {
                in_flight: 2,
                last_request: Some(Duration::from_secs(1)),
                running_since: Duration::ZERO,
            }]),
            ..ServiceSignals::default()
        };
        // Full at two rounds in a row: one more.
        assert_eq!(
            autoscaler.decide(Duration::from_secs(1), 1, Some(&full)),
            None
        );
        let decision = autoscaler
            .decide(Duration::from_secs(1), 1, Some(&full))
            .unwrap();
        assert_eq!((decision.from, decision.to), (1, 2));
        // At max: no more.
        assert_eq!(
            autoscaler.decide(Duration::from_secs(1), 3, Some(&full)),
            None
        );
    }
}
