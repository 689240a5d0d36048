//! The autoscaling loop: every interval (or at once when the source asks, as when a request
//! waits for a service scaled to zero), sample the signals (adding the CPU pressure of the
//! workers a service runs on), run each autoscaled service's [`Autoscaler`], and hand the
//! decisions to the controller.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::{Autoscaler, ServiceSignals, node_cpu_pressure};
use crate::controller::ControllerHandle;
use crate::model::{AutoscaleSpec, ServiceName, WorkerId};
use crate::wire::WorkerView;

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
            controller.list_services().await,
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
                signals.cpu_pressure = node_cpu_pressure(&service, &workers);
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
