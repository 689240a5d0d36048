//! The worker's table of its instances, with a generation that counts its changes and the
//! lock-free directory its proxy reads.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::time::Instant;

use crate::model::{BootId, InstanceId, Resources, ServiceName};
use crate::runtime::ExitStatus;
use crate::transport::InstanceDirectory;
use crate::wire::{InstanceReport, LocalState, ReportedInstance};

/// One instance on this worker.
#[derive(Debug, Clone)]
pub(crate) struct LocalInstance {
    pub service: ServiceName,
    /// What it asked for; `None` for an instance adopted from the runtime.
    pub resources: Option<Resources>,
    pub stop_grace: Duration,
    pub state: LocalState,
    pub address: Option<SocketAddr>,
    pub pid: Option<u32>,
    pub exit: Option<ExitStatus>,
    pub reason: Option<String>,
    pub changed_at: Instant,
}

impl LocalInstance {
    pub fn report(&self, id: InstanceId) -> ReportedInstance {
        ReportedInstance {
            id,
            service: self.service.clone(),
            state: self.state,
            address: self.address,
            pid: self.pid,
            exit: self.exit,
            reason: self.reason.clone(),
            usage: None,
        }
    }
}

/// Running instances' addresses, swapped whole on every change so the proxy reads without
/// locking.
#[derive(Debug, Default)]
pub struct LocalDirectory {
    routes: ArcSwap<HashMap<InstanceId, SocketAddr>>,
}

impl InstanceDirectory for LocalDirectory {
    fn address_of(&self, id: &InstanceId) -> Option<SocketAddr> {
        self.routes.load().get(id).copied()
    }
}

/// Every instance the worker knows, and how many changes the table has seen this boot.
#[derive(Debug)]
pub(crate) struct InstanceTable {
    pub boot_id: BootId,
    pub generation: u64,
    pub entries: HashMap<InstanceId, LocalInstance>,
    directory: Arc<LocalDirectory>,
}

impl InstanceTable {
    pub fn new(boot_id: BootId, directory: Arc<LocalDirectory>) -> Self {
        Self {
            boot_id,
            generation: 0,
            entries: HashMap::new(),
            directory,
        }
    }

    /// Records a change: bumps the generation and republishes the directory.
    pub fn changed(&mut self) -> u64 {
        self.generation += 1;
        let routes = self
            .entries
            .iter()
            .filter(|(_, i)| i.state == LocalState::Running)
            .filter_map(|(id, i)| Some((*id, i.address?)))
            .collect();
        self.directory.routes.store(Arc::new(routes));
        self.generation
    }

    pub fn set_state(&mut self, id: InstanceId, state: LocalState) -> Option<&mut LocalInstance> {
        let instance = self.entries.get_mut(&id)?;
        instance.state = state;
        instance.changed_at = Instant::now();
        Some(instance)
    }

    pub fn report(&self) -> InstanceReport {
        InstanceReport {
            boot_id: self.boot_id,
            generation: self.generation,
            instances: self
                .entries
                .iter()
                .map(|(id, instance)| instance.report(*id))
                .collect(),
        }
    }

    /// Forgets exited instances older than `retention`; true if any went.
    pub fn prune_exited(&mut self, now: Instant, retention: Duration) -> bool {
        let before = self.entries.len();
        self.entries.retain(|_, i| {
            i.state != LocalState::Exited || now.saturating_duration_since(i.changed_at) < retention
        });
        before != self.entries.len()
    }
}
