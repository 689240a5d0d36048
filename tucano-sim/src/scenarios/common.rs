//! What the autoscaling scenarios share: the cluster, the service, the latency target and
//! the policies they compare.

use std::time::Duration;

use tucano_core::AutoscaleSpec;
use tucano_core::autoscale::Metric;
use tucano_core::model::PolicySpec;

use crate::cluster::ClusterSpec;
use crate::config::Scaling;
use crate::outcome::Outcome;
use crate::plot::Series;
use crate::service_time::ServiceTime;

/// The service: `tucano-demo`'s `/work?ms=50`, with exponentially distributed times.
pub const SERVICE_TIME: ServiceTime = ServiceTime::Exponential(Duration::from_millis(50));
/// The latency the step scenario must hold: p95 at most 6 × the mean service time.
pub const P95_TARGET_MS: f64 = 300.0;
/// Most replicas any policy may have, and what static provisioning runs.
pub const MAX_REPLICAS: u32 = 16;

/// Eight workers of four CPUs; each instance takes one CPU and serves four requests at once
/// (80 requests/s at 50 ms), and serves 2 s after it is placed.
pub fn autoscaled_cluster() -> ClusterSpec {
    ClusterSpec {
        concurrency: 4,
        startup: Duration::from_secs(2),
        ..ClusterSpec::uniform(8, 4)
    }
}

/// The `capacity` policy as the scenarios use it: four requests per replica (its
/// concurrency), a replica idle for 30 s is surplus.
pub fn capacity(min: u32, max: u32, idle_timeout: Duration) -> AutoscaleSpec {
    AutoscaleSpec {
        min,
        max,
        policy: PolicySpec::Capacity {
            max_in_flight: 4,
            idle_timeout,
        },
        to_zero: None,
    }
}

/// Target tracking with the HPA's defaults on `metric` at `target` per replica, in 1..=max.
fn target(metric: Metric, target: f64) -> Scaling {
    Scaling::Autoscale(AutoscaleSpec {
        min: 1,
        max: MAX_REPLICAS,
        policy: PolicySpec::Target {
            metric,
            target,
            tolerance: 0.1,
            scale_up_stabilization: Duration::ZERO,
            scale_down_stabilization: Duration::from_secs(300),
        },
        to_zero: None,
    })
}

/// The policies the step and square-wave scenarios compare: static provisioning at the
/// maximum, then each autoscaling policy within 1..=max.
pub fn contenders() -> Vec<(&'static str, Scaling)> {
    vec![
        ("static_max", Scaling::Fixed(MAX_REPLICAS)),
        (
            "capacity",
            Scaling::Autoscale(capacity(1, MAX_REPLICAS, Duration::from_secs(30))),
        ),
        (
            "threshold",
            Scaling::Autoscale(AutoscaleSpec {
                min: 1,
                max: MAX_REPLICAS,
                policy: PolicySpec::Threshold {
                    metric: Metric::RequestRate,
                    upper: 60.0,
                    lower: 20.0,
                    window: Duration::from_secs(5),
                    step: 4,
                },
                to_zero: None,
            }),
        ),
        ("target", target(Metric::RequestRate, 40.0)),
        ("target_cpu", target(Metric::Cpu, 0.6)),
    ]
}

/// The window within which a policy's reversals are counted: its scale-down stabilisation
/// (target), its window (threshold), its idle timeout (capacity); none for static.
pub fn reversal_window(scaling: &Scaling) -> Option<Duration> {
    match scaling {
        Scaling::Fixed(_) => None,
        Scaling::Autoscale(spec) => Some(match &spec.policy {
            PolicySpec::Capacity { idle_timeout, .. } => *idle_timeout,
            PolicySpec::Threshold { window, .. } => *window,
            PolicySpec::Target {
                scale_down_stabilization,
                ..
            } => *scale_down_stabilization,
        }),
    }
}

/// Whether `scaling` is target tracking, whose recommendations are stabilised.
pub fn is_stabilised(scaling: &Scaling) -> bool {
    matches!(
        scaling,
        Scaling::Autoscale(AutoscaleSpec {
            policy: PolicySpec::Target { .. },
            ..
        })
    )
}

/// The serving replicas of each sample.
pub fn ready_series(name: &str, outcome: &Outcome) -> Series {
    Series::new(
        name,
        outcome
            .samples
            .iter()
            .map(|s| (s.at_s, f64::from(s.ready)))
            .collect(),
    )
}

/// The p95 latency of each sample that completed requests.
pub fn p95_series(name: &str, outcome: &Outcome) -> Series {
    Series::new(
        name,
        outcome
            .samples
            .iter()
            .filter_map(|s| Some((s.at_s, s.p95_ms?)))
            .collect(),
    )
}

/// The offered rate of each sample.
pub fn offered_series(outcome: &Outcome) -> Series {
    Series::new(
        "offered requests/s",
        outcome
            .samples
            .iter()
            .map(|s| (s.at_s, s.offered_rate))
            .collect(),
    )
}
