//! The autoscaling loop: every interval (or at once when the source asks, as when a request
//! waits for a service scaled to zero), sample the signals (adding what the workers' heartbeats
//! tell: the instances' CPU and memory use and CPU pressure, else the CPU pressure of the
//! workers a service runs on), run each autoscaled service's [`Autoscaler`], and hand the
//! decisions to the controller.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, watch};

use super::{Autoscaler, ServiceSignals, node_cpu_pressure, usage_signals};
use crate::controller::ControllerHandle;
use crate::model::{AutoscaleSpec, ServiceName, WorkerId};
use crate::wire::{ServiceView, WorkerView};

/// Where an autoscaler's signals come from (the balancer, a simulator, ...).
pub trait SignalSource: Send {
    /// The source's clock: the time its signals are stamped with.
    fn now(&self) -> Duration;
    /// Every service's signals, now.
    fn sample(&mut self) -> Vec<(ServiceName, ServiceSignals)>;
    /// Signalled when a round should not wait for the interval (a request waits for a
    /// service scaled to zero); `None` if the source never asks.
    fn wake_up(&self) -> Option<Arc<Notify>> {
        None
    }
}

/// Settings of the autoscaling loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AutoscaleLoopConfig {
    /// Time between two rounds.
    pub interval: Duration,
    /// Signals older than this are stale (they never cause a scale-down).
    pub max_signal_age: Duration,
}

impl Default for AutoscaleLoopConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            max_signal_age: Duration::from_secs(10),
        }
    }
}

/// Runs the autoscalers of every service whose spec has `autoscale` until `shutdown` turns
/// true (or its sender is gone). An autoscaler is rebuilt when its spec changes, so a policy
/// edited with `PUT` starts afresh.
pub async fn run_autoscalers(
    controller: ControllerHandle,
    mut source: impl SignalSource,
    config: AutoscaleLoopConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut autoscalers: HashMap<ServiceName, (AutoscaleSpec, Autoscaler)> = HashMap::new();
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let wake_up = source.wake_up();
    loop {
        let woken = async {
            match &wake_up {
                Some(notify) => notify.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tick.tick() => {}
            () = woken => {}
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
                continue;
            }
        }
        let (Ok(services), Ok(workers)) = (
            controller.autoscaled_services().await,
            controller.list_workers().await,
        ) else {
            return;
        };
        let workers: HashMap<&WorkerId, &WorkerView> = workers.iter().map(|w| (&w.id, w)).collect();
        let mut signals: HashMap<ServiceName, ServiceSignals> =
            source.sample().into_iter().collect();
        let now = source.now();
        let mut live = HashMap::with_capacity(autoscalers.len());
        for service in services {
            let Some(spec) = service.spec.autoscale.clone().filter(|_| !service.deleting) else {
                continue;
            };
            let (_, autoscaler) = match autoscalers.remove(&service.name) {
                Some((known, autoscaler)) if known == spec => live
                    .entry(service.name.clone())
                    .or_insert((known, autoscaler)),
                _ => {
                    let autoscaler = spec.autoscaler(config.max_signal_age);
                    live.entry(service.name.clone())
                        .or_insert((spec, autoscaler))
                }
            };
            if let Some(signals) = signals.get_mut(&service.name) {
                add_heartbeat_signals(signals, &service, &workers, config.max_signal_age);
            }
            let current = service.spec.replicas;
            let Some(decision) = autoscaler.decide(now, current, signals.get(&service.name)) else {
                continue;
            };
            if let Err(error) = controller
                .apply_scaling(service.name.as_str(), decision)
                .await
            {
                tracing::warn!(service = %service.name, %error, "autoscaling decision not applied");
            }
        }
        autoscalers = live;
    }
}

/// Adds to `signals` what the controller knows of `service` from its workers' heartbeats: the
/// mean CPU and memory use of its running instances (fresh usage only), and their cgroups' mean
/// CPU pressure, or where no instance has one, that of the machines they run on. A figure the
/// heartbeats lack keeps the source's own, if it had one.
fn add_heartbeat_signals(
    signals: &mut ServiceSignals,
    service: &ServiceView,
    workers: &HashMap<&WorkerId, &WorkerView>,
    max_signal_age: Duration,
) {
    let usage = usage_signals(service, SystemTime::now(), max_signal_age);
    signals.cpu = usage.cpu.or(signals.cpu);
    signals.memory = usage.memory.or(signals.memory);
    signals.cpu_pressure = usage
        .cpu_pressure
        .or_else(|| node_cpu_pressure(service, workers))
        .or(signals.cpu_pressure);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{InstanceId, InstanceState, ServiceSpec, first_revision};
    use crate::wire::{InstanceUsage, InstanceView, MeasuredUsage, ReplicaCounts};

    fn web(usage: &[(Duration, InstanceUsage)]) -> ServiceView {
        let spec = ServiceSpec::new("web".parse().unwrap(), vec!["x".into()]);
        let now = SystemTime::now();
        let instances = usage
            .iter()
            .map(|(age, usage)| InstanceView {
                id: InstanceId::new(),
                service: spec.name.clone(),
                state: InstanceState::Running,
                revision: first_revision(),
                worker: Some("a".parse().unwrap()),
                address: None,
                start_attempts: 1,
                reason: None,
                exit: None,
                created_at: now,
                updated_at: now,
                usage: Some(MeasuredUsage {
                    received_at: now - *age,
                    usage: *usage,
                }),
            })
            .collect();
        ServiceView {
            name: spec.name.clone(),
            spec,
            revision: first_revision(),
            rollout: None,
            replicas: ReplicaCounts::default(),
            deleting: false,
            created_at: now,
            instances,
            scaling_events: Vec::new(),
        }
    }

    #[test]
    fn heartbeat_signals_average_fresh_usage_and_leave_stale_usage_missing() {
        let busy = InstanceUsage {
            cpu: Some(0.9),
            memory: Some(0.4),
            cpu_pressure: Some(0.2),
            ..InstanceUsage::default()
        };
        let idle = InstanceUsage {
            cpu: Some(0.1),
            memory: Some(0.2),
            ..InstanceUsage::default()
        };
        let max_age = Duration::from_secs(10);
        let workers = HashMap::new();
        let mut signals = ServiceSignals::default();
        let fresh = web(&[(Duration::ZERO, busy), (Duration::from_secs(1), idle)]);
        add_heartbeat_signals(&mut signals, &fresh, &workers, max_age);
        assert!((signals.cpu.unwrap() - 0.5).abs() < 1e-9, "{signals:?}");
        assert!((signals.memory.unwrap() - 0.3).abs() < 1e-9, "{signals:?}");
        assert_eq!(signals.cpu_pressure, Some(0.2));

        // The idle instance's usage is 60 s old: missing, not the busy one's alone.
        let mut signals = ServiceSignals::default();
        let one_stale = web(&[(Duration::ZERO, busy), (Duration::from_secs(60), idle)]);
        add_heartbeat_signals(&mut signals, &one_stale, &workers, max_age);
        assert_eq!((signals.cpu, signals.memory), (None, None));

        // All stale: missing, which never scales down.
        let mut signals = ServiceSignals::default();
        let stale = web(&[
            (Duration::from_secs(60), busy),
            (Duration::from_secs(60), idle),
        ]);
        add_heartbeat_signals(&mut signals, &stale, &workers, max_age);
        assert_eq!(
            (signals.cpu, signals.memory, signals.cpu_pressure),
            (None, None, None)
        );
    }
}
