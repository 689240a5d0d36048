//! Signals the controller knows from its workers' heartbeats, added to a service's: the CPU
//! pressure (PSI) of the machines its running instances are on.

use std::collections::HashMap;

use crate::model::{InstanceState, WorkerId};
use crate::wire::{ServiceView, WorkerState, WorkerView};

/// The mean CPU pressure of the live workers running `service`'s instances (each worker
/// counted once per instance it runs), if any of them reports it.
pub fn node_cpu_pressure(
    service: &ServiceView,
    workers: &HashMap<&WorkerId, &WorkerView>,
) -> Option<f64> {
    let pressures: Vec<f64> = service
        .instances
        .iter()
        .filter(|i| i.state == InstanceState::Running)
        .filter_map(|i| workers.get(i.worker.as_ref()?))
        .filter(|w| w.state == WorkerState::Alive)
        .filter_map(|w| w.metrics.as_ref()?.cpu_pressure)
        .collect();
    (!pressures.is_empty()).then(|| pressures.iter().sum::<f64>() / pressures.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    use crate::model::{
        BootId, InstanceId, NodeMetrics, Resources, RuntimeKind, ServiceSpec, first_revision,
    };
    use crate::wire::{InstanceView, ReplicaCounts};

    fn worker(id: &str, state: WorkerState, pressure: Option<f64>) -> WorkerView {
        WorkerView {
            id: id.parse().unwrap(),
            address: format!("http://{id}"),
            proxy_address: ([127, 0, 0, 1], 1).into(),
            runtime: RuntimeKind::Process,
            capacity: Resources::default(),
            labels: Default::default(),
            boot_id: BootId::new(),
            state,
            registered_at: SystemTime::now(),
            last_heartbeat_at: SystemTime::now(),
            metrics: Some(NodeMetrics {
                taken_at: SystemTime::now(),
                cpu_usage: 0.5,
                cpu_count: 2,
                memory_used_bytes: 0,
                memory_total_bytes: 0,
                network_rx_bytes: 0,
                network_tx_bytes: 0,
                disk_used_bytes: 0,
                disk_total_bytes: 0,
                cpu_pressure: pressure,
            }),
            instances: 1,
        }
    }

    fn on(worker: &str, state: InstanceState) -> InstanceView {
        InstanceView {
            id: InstanceId::new(),
            service: "web".parse().unwrap(),
            state,
            revision: first_revision(),
            worker: Some(worker.parse().unwrap()),
            address: None,
            start_attempts: 1,
            reason: None,
            exit: None,
            created_at: SystemTime::now(),
            updated_at: SystemTime::now(),
            usage: None,
        }
    }

    #[test]
    fn averages_the_live_workers_of_running_instances() {
        let spec = ServiceSpec::new("web".parse().unwrap(), vec!["x".into()]);
        let service = ServiceView {
            name: spec.name.clone(),
            spec,
            revision: first_revision(),
            rollout: None,
            replicas: ReplicaCounts::default(),
            deleting: false,
            created_at: SystemTime::now(),
            instances: vec![
                on("a", InstanceState::Running),
                on("a", InstanceState::Running),
                on("b", InstanceState::Running),
                on("c", InstanceState::Running),
                on("d", InstanceState::Terminated),
            ],
            scaling_events: Vec::new(),
        };
        let views = [
            worker("a", WorkerState::Alive, Some(0.3)),
            worker("b", WorkerState::Alive, Some(0.6)),
            worker("c", WorkerState::Dead, Some(0.9)),
            worker("d", WorkerState::Alive, Some(1.0)),
        ];
        let workers: HashMap<&WorkerId, &WorkerView> = views.iter().map(|w| (&w.id, w)).collect();
        let pressure = node_cpu_pressure(&service, &workers).unwrap();
        assert!((pressure - 0.4).abs() < 1e-9, "{pressure}");
        let quiet = [
            worker("a", WorkerState::Alive, None),
            worker("b", WorkerState::Alive, None),
        ];
        let workers: HashMap<&WorkerId, &WorkerView> = quiet.iter().map(|w| (&w.id, w)).collect();
        assert_eq!(node_cpu_pressure(&service, &workers), None);
    }
}
