//! The controller's registry of workers, with the liveness timeout.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::model::{BootId, NodeMetrics, Resources, RuntimeKind, WorkerId};
use crate::scheduler::WorkerCandidate;
use crate::transport::WorkerAddress;
use crate::wire::{Registration, WorkerState, WorkerView};

/// One worker as the controller knows it.
#[derive(Debug, Clone)]
pub(crate) struct WorkerRecord {
    pub id: WorkerId,
    pub address: String,
    pub proxy_address: SocketAddr,
    pub runtime: RuntimeKind,
    pub capacity: Resources,
    pub labels: BTreeMap<String, String>,
    pub boot_id: BootId,
    pub state: WorkerState,
    pub registered_at: SystemTime,
    pub last_heartbeat_at: SystemTime,
    pub last_seen: Instant,
    pub metrics: Option<NodeMetrics>,
    /// Restored from the store: must register again before its heartbeats count.
    pub needs_registration: bool,
}

impl WorkerRecord {
    pub fn from_registration(registration: &Registration) -> Self {
        let now = SystemTime::now();
        Self {
            id: registration.id.clone(),
            address: registration.address.clone(),
            proxy_address: registration.proxy_address,
            runtime: registration.runtime,
            capacity: registration.capacity,
            labels: registration.labels.clone(),
            boot_id: registration.report.boot_id,
            state: WorkerState::Alive,
            registered_at: now,
            last_heartbeat_at: now,
            last_seen: Instant::now(),
            metrics: None,
            needs_registration: false,
        }
    }

    /// Rebuilds a record from its stored view; a worker stored alive counts as alive for one
    /// liveness timeout, within which it must register again.
    pub fn restore(view: &WorkerView) -> Self {
        Self {
            id: view.id.clone(),
            address: view.address.clone(),
            proxy_address: view.proxy_address,
            runtime: view.runtime,
            capacity: view.capacity,
            labels: view.labels.clone(),
            boot_id: view.boot_id,
            state: view.state,
            registered_at: view.registered_at,
            last_heartbeat_at: view.last_heartbeat_at,
            last_seen: Instant::now(),
            metrics: view.metrics.clone(),
            needs_registration: true,
        }
    }

    pub fn is_alive(&self) -> bool {
        self.state == WorkerState::Alive
    }

    pub fn address(&self) -> WorkerAddress {
        WorkerAddress {
            id: self.id.clone(),
            url: self.address.clone(),
        }
    }

    pub fn view(&self, instances: u32) -> WorkerView {
        WorkerView {
            id: self.id.clone(),
            address: self.address.clone(),
            proxy_address: self.proxy_address,
            runtime: self.runtime,
            capacity: self.capacity,
            labels: self.labels.clone(),
            boot_id: self.boot_id,
            state: self.state,
            registered_at: self.registered_at,
            last_heartbeat_at: self.last_heartbeat_at,
            metrics: self.metrics.clone(),
            instances,
        }
    }

    /// This worker for the scheduler, with its `instances` and what they `allocated`.
    pub fn candidate(&self, instances: u32, allocated: Option<Resources>) -> WorkerCandidate {
        let mut candidate = WorkerCandidate::new(self.id.clone(), self.runtime, self.capacity);
        candidate.alive = self.is_alive() && !self.needs_registration;
        candidate.metrics = self.metrics.clone();
        candidate.instances = instances;
        candidate.labels = self.labels.clone();
        if let Some(allocated) = allocated {
            candidate.allocated = allocated;
        }
        candidate
    }
}

/// Every known worker, by id.
#[derive(Debug, Default)]
pub(crate) struct WorkerRegistry {
    workers: BTreeMap<WorkerId, WorkerRecord>,
}

impl WorkerRegistry {
    pub fn get(&self, id: &WorkerId) -> Option<&WorkerRecord> {
        self.workers.get(id)
    }

    pub fn get_mut(&mut self, id: &WorkerId) -> Option<&mut WorkerRecord> {
        self.workers.get_mut(id)
    }

    pub fn insert(&mut self, record: WorkerRecord) {
        self.workers.insert(record.id.clone(), record);
    }

    pub fn remove(&mut self, id: &WorkerId) -> Option<WorkerRecord> {
        self.workers.remove(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &WorkerRecord> {
        self.workers.values()
    }

    /// Marks alive workers silent for longer than `timeout` as dead; returns their ids.
    pub fn expire(&mut self, now: Instant, timeout: Duration) -> Vec<WorkerId> {
        let mut expired = Vec::new();
        for worker in self.workers.values_mut() {
            if worker.is_alive() && now.saturating_duration_since(worker.last_seen) > timeout {
                worker.state = WorkerState::Dead;
                expired.push(worker.id.clone());
            }
        }
        expired
    }

    /// Forgets workers dead for longer than `retention`; returns their ids.
    pub fn prune_dead(&mut self, now: Instant, retention: Duration) -> Vec<WorkerId> {
        let gone: Vec<WorkerId> = self
            .workers
            .values()
            .filter(|w| !w.is_alive() && now.saturating_duration_since(w.last_seen) > retention)
            .map(|w| w.id.clone())
            .collect();
        for id in &gone {
            self.workers.remove(id);
        }
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::InstanceReport;

    fn registration(id: &str) -> Registration {
        Registration {
            id: id.parse().unwrap(),
            address: "http://127.0.0.1:1".into(),
            proxy_address: "127.0.0.1:2".parse().unwrap(),
            runtime: RuntimeKind::Process,
            capacity: Resources::default(),
            labels: BTreeMap::new(),
            report: InstanceReport {
                boot_id: BootId::new(),
                generation: 0,
                instances: vec![],
            },
        }
    }

    #[tokio::test(start_paused = true)]
    async fn silent_workers_expire_after_the_timeout() {
        let mut registry = WorkerRegistry::default();
        registry.insert(WorkerRecord::from_registration(&registration("a")));
        registry.insert(WorkerRecord::from_registration(&registration("b")));
        let timeout = Duration::from_secs(3);
        tokio::time::advance(Duration::from_secs(2)).await;
        if let Some(b) = registry.get_mut(&"b".parse().unwrap()) {
            b.last_seen = Instant::now();
        }
        assert!(registry.expire(Instant::now(), timeout).is_empty());
        tokio::time::advance(Duration::from_millis(1500)).await;
        let expired = registry.expire(Instant::now(), timeout);
        assert_eq!(expired, vec!["a".parse().unwrap()]);
        assert!(!registry.get(&"a".parse().unwrap()).unwrap().is_alive());
        assert!(registry.get(&"b".parse().unwrap()).unwrap().is_alive());
        // Expiry is reported once.
        assert!(registry.expire(Instant::now(), timeout).is_empty());
        tokio::time::advance(Duration::from_secs(60)).await;
        let pruned = registry.prune_dead(Instant::now(), Duration::from_secs(30));
        assert_eq!(pruned, vec!["a".parse().unwrap()]);
    }
}
