//! `MemoryStore`: a `Store` that keeps everything in memory (tests, throwaway clusters).

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{Store, StoreError, StoreOp, StoredService, StoredState};
use crate::model::{InstanceId, ServiceName, WorkerId};
use crate::wire::{InstanceView, WorkerView};

/// Keeps the controller's state in memory; it is gone when the process ends.
#[derive(Debug, Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
}

#[derive(Debug, Default)]
struct Tables {
    services: BTreeMap<ServiceName, StoredService>,
    instances: BTreeMap<InstanceId, InstanceView>,
    workers: BTreeMap<WorkerId, WorkerView>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn load(&self) -> Result<StoredState, StoreError> {
        let tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        Ok(StoredState {
            services: tables.services.values().cloned().collect(),
            instances: tables.instances.values().cloned().collect(),
            workers: tables.workers.values().cloned().collect(),
        })
    }

    async fn apply(&self, batch: Vec<StoreOp>) -> Result<(), StoreError> {
        let mut tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        for op in batch {
            match op {
                StoreOp::PutService(service) => {
                    tables.services.insert(service.spec.name.clone(), *service);
                }
                StoreOp::DeleteService(name) => {
                    tables.services.remove(&name);
                    tables.instances.retain(|_, i| i.service != name);
                }
                StoreOp::PutInstance(instance) => {
                    tables.instances.insert(instance.id, instance);
                }
                StoreOp::DeleteInstance(id) => {
                    tables.instances.remove(&id);
                }
                StoreOp::PutWorker(worker) => {
                    tables.workers.insert(worker.id.clone(), worker);
                }
                StoreOp::DeleteWorker(id) => {
                    tables.workers.remove(&id);
                }
                StoreOp::ReplaceAll(state) => {
                    *tables = Tables {
                        services: state
                            .services
                            .into_iter()
                            .map(|s| (s.spec.name.clone(), s))
                            .collect(),
                        instances: state.instances.into_iter().map(|i| (i.id, i)).collect(),
                        workers: state
                            .workers
                            .into_iter()
                            .map(|w| (w.id.clone(), w))
                            .collect(),
                    };
                }
            }
        }
        Ok(())
    }
}
