//! Signals the controller knows from its workers' heartbeats about each instance: CPU and
//! memory use as shares of what the instances asked for, and the CPU pressure of their own
//! cgroups.

use std::time::{Duration, SystemTime};

use crate::model::InstanceState;
use crate::wire::{InstanceUsage, ServiceView};

/// A service's instance usage signals: each the mean over its running instances that have that
/// figure, all fresh; `None` where none has it or any is stale.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct UsageSignals {
    /// Mean CPU use as a share of each instance's request ([`InstanceUsage::cpu`]).
    pub cpu: Option<f64>,
    /// Mean memory use as a share of each instance's request ([`InstanceUsage::memory`]).
    pub memory: Option<f64>,
    /// Mean CPU pressure of the instances' own cgroups ([`InstanceUsage::cpu_pressure`]).
    pub cpu_pressure: Option<f64>,
}

/// The usage signals of `service` at `now`. Usage received more than `max_age` before `now`
/// is stale (the controller replaces an instance's usage with every report of it, so only a
/// worker that stopped reporting leaves it stale), and one running instance with stale usage
/// makes every figure missing: that worker may be running the busiest instances, and a mean of
/// the others could scale the service down (missing never does). Instances without the figure
/// are left out of its mean: memory comes with a worker's first sample, CPU with its second,
/// and a sample that failed reports neither.
pub fn usage_signals(service: &ServiceView, now: SystemTime, max_age: Duration) -> UsageSignals {
    let running = || {
        service
            .instances
            .iter()
            .filter(|i| i.state == InstanceState::Running)
            .filter_map(|i| i.usage)
    };
    let is_fresh = |u: &crate::wire::MeasuredUsage| {
        now.duration_since(u.received_at)
            .map_or(true, |age| age <= max_age)
    };
    if !running().all(|u| is_fresh(&u)) {
        return UsageSignals::default();
    }
    let fresh: Vec<InstanceUsage> = running().map(|u| u.usage).collect();
    UsageSignals {
        cpu: mean(fresh.iter().filter_map(|u| u.cpu)),
        memory: mean(fresh.iter().filter_map(|u| u.memory)),
        cpu_pressure: mean(fresh.iter().filter_map(|u| u.cpu_pressure)),
    }
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, count) = values
        .filter(|v| v.is_finite())
        .fold((0.0, 0u32), |(sum, count), v| (sum + v, count + 1));
    (count > 0).then(|| sum / f64::from(count))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::model::{InstanceId, ServiceSpec, first_revision};
    use crate::wire::{InstanceView, MeasuredUsage, ReplicaCounts};

    fn instance(state: InstanceState, usage: Option<(u64, InstanceUsage)>) -> InstanceView {
        let epoch = SystemTime::UNIX_EPOCH;
        InstanceView {
            id: InstanceId::new(),
            service: "web".parse().unwrap(),
            state,
            revision: first_revision(),
            worker: Some("a".parse().unwrap()),
            address: None,
            start_attempts: 1,
            reason: None,
            exit: None,
            created_at: epoch,
            updated_at: epoch,
            usage: usage.map(|(at, usage)| MeasuredUsage {
                received_at: epoch + Duration::from_secs(at),
                usage,
            }),
        }
    }

    fn usage(cpu: Option<f64>, memory: Option<f64>, pressure: Option<f64>) -> InstanceUsage {
        InstanceUsage {
            cpu,
            cpu_cores: cpu,
            memory,
            memory_bytes: 0,
            cpu_pressure: pressure,
        }
    }

    fn service(instances: Vec<InstanceView>) -> ServiceView {
        let spec = ServiceSpec::new("web".parse().unwrap(), vec!["x".into()]);
        ServiceView {
            name: spec.name.clone(),
            spec,
            revision: first_revision(),
            rollout: None,
            replicas: ReplicaCounts::default(),
            deleting: false,
            created_at: SystemTime::UNIX_EPOCH,
            instances,
            scaling_events: Vec::new(),
        }
    }

    const MAX_AGE: Duration = Duration::from_secs(10);

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn averages_the_running_instances_that_report_each_figure() {
        let web = service(vec![
            instance(
                InstanceState::Running,
                Some((100, usage(Some(0.2), Some(0.5), None))),
            ),
            instance(
                InstanceState::Running,
                Some((100, usage(Some(0.8), None, Some(0.1)))),
            ),
            instance(InstanceState::Running, Some((100, usage(None, None, None)))),
            instance(InstanceState::Running, None),
            instance(
                InstanceState::Terminating,
                Some((100, usage(Some(9.0), Some(9.0), Some(0.9)))),
            ),
        ]);
        let signals = usage_signals(&web, at(105), MAX_AGE);
        assert!((signals.cpu.unwrap() - 0.5).abs() < 1e-9, "{signals:?}");
        assert_eq!(signals.memory, Some(0.5));
        assert_eq!(signals.cpu_pressure, Some(0.1));
    }

    #[test]
    fn stale_usage_is_missing_not_idle() {
        let web = service(vec![
            instance(
                InstanceState::Running,
                Some((100, usage(Some(0.1), Some(0.1), None))),
            ),
            instance(
                InstanceState::Running,
                Some((120, usage(Some(0.9), None, None))),
            ),
        ]);
        let both = usage_signals(&web, at(110), MAX_AGE);
        assert!((both.cpu.unwrap() - 0.5).abs() < 1e-9, "{both:?}");
        // At 115 the first is 15 s old: the mean of the second alone could scale down a
        // service whose quiet instance is the busy one, so every figure is missing.
        assert_eq!(
            usage_signals(&web, at(115), MAX_AGE),
            UsageSignals::default()
        );
        // Both stale: nothing, which never scales down.
        assert_eq!(
            usage_signals(&web, at(200), MAX_AGE),
            UsageSignals::default()
        );
        // Usage stamped after `now` (a clock step back) is not stale.
        assert_eq!(usage_signals(&web, at(50), MAX_AGE).cpu, both.cpu);
    }
}
