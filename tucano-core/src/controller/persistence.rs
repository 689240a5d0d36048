//! Write-behind persistence: the controller marks what changed, and a background writer
//! applies coalesced batches to the [`Store`], so no API call waits for the disk.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::engine::Engine;
use super::records::ServiceRecord;
use crate::model::{InstanceId, ServiceName, WorkerId};
use crate::retry::RetryPolicy;
use crate::store::{Store, StoreOp, StoredState};

/// Batches the writer may hold before the controller keeps changes for a later flush.
const QUEUED_BATCHES: usize = 4;

/// What changed since the last flush.
#[derive(Debug, Default)]
pub(crate) struct DirtySet {
    pub services: BTreeSet<ServiceName>,
    pub instances: BTreeSet<(ServiceName, InstanceId)>,
    pub workers: BTreeSet<WorkerId>,
}

impl DirtySet {
    pub fn is_empty(&self) -> bool {
        self.services.is_empty() && self.instances.is_empty() && self.workers.is_empty()
    }
}

/// The controller's side of the writer: a queue of batches.
pub(crate) struct Persistence {
    pub dirty: DirtySet,
    /// A batch was given up: the next flush rewrites the whole state.
    pub resync: bool,
    batches: mpsc::Sender<Vec<StoreOp>>,
    writer: tokio::task::JoinHandle<()>,
}

/// What the writer tells the controller when a batch could not be written.
pub(crate) type FailureSignal = mpsc::Sender<()>;

impl Persistence {
    /// Starts the writer; `failed` is signalled when a batch is given up, so the controller
    /// can mark everything dirty and write it again.
    pub fn start(store: Arc<dyn Store>, retry: RetryPolicy, failed: FailureSignal) -> Self {
        let (batches, mut queue) = mpsc::channel::<Vec<StoreOp>>(QUEUED_BATCHES);
        let writer = tokio::spawn(async move {
            while let Some(batch) = queue.recv().await {
                let result = retry.retry(|_| store.apply(batch.clone()), |_| true).await;
                if let Err(error) = result {
                    tracing::error!(%error, ops = batch.len(), "could not persist controller state; will rewrite it");
                    let _ = failed.try_send(());
                }
            }
        });
        Self {
            dirty: DirtySet::default(),
            resync: false,
            batches,
            writer,
        }
    }

    /// Hands `batch` to the writer; returns false (nothing lost: the caller keeps its dirty
    /// marks) when the writer is busy.
    pub fn offer(&self, batch: Vec<StoreOp>) -> bool {
        batch.is_empty() || self.batches.try_send(batch).is_ok()
    }

    /// Forgets the dirty marks once their batch was handed over.
    pub fn clear(&mut self) {
        self.dirty = DirtySet::default();
        self.resync = false;
    }

    /// Hands over a last batch (waiting for room), then waits until everything is written.
    pub async fn finish(self, last: Option<Vec<StoreOp>>) {
        if let Some(batch) = last {
            let _ = self.batches.send(batch).await;
        }
        drop(self.batches);
        let _ = self.writer.await;
    }
}

impl Engine {
    /// Hands what changed to the store writer.
    pub fn flush(&mut self) {
        if let Some(batch) = self.pending_batch()
            && self.persistence.offer(batch)
        {
            self.persistence.clear();
        }
    }

    /// Writes what is pending and waits for the store (at shutdown).
    pub(super) async fn flush_and_finish(self) {
        let batch = self.pending_batch();
        self.persistence.finish(batch).await;
    }

    /// The store operations that bring the store up to date, if any.
    fn pending_batch(&self) -> Option<Vec<StoreOp>> {
        if self.persistence.resync {
            return Some(vec![StoreOp::ReplaceAll(self.snapshot())]);
        }
        let dirty = &self.persistence.dirty;
        if dirty.is_empty() {
            return None;
        }
        let mut batch = Vec::new();
        for name in &dirty.services {
            batch.push(match self.services.get(name) {
                Some(service) => StoreOp::PutService(Box::new(service.stored())),
                None => StoreOp::DeleteService(name.clone()),
            });
        }
        for (name, id) in &dirty.instances {
            let Some(service) = self.services.get(name) else {
                continue;
            };
            batch.push(match service.instances.get(id) {
                Some(instance) => StoreOp::PutInstance(instance.stored_view(&service.spec)),
                None => StoreOp::DeleteInstance(*id),
            });
        }
        for id in &dirty.workers {
            batch.push(match self.workers.get(id) {
                Some(worker) => StoreOp::PutWorker(worker.view(self.placements.count(id))),
                None => StoreOp::DeleteWorker(id.clone()),
            });
        }
        Some(batch)
    }

    /// Everything the controller knows, as stored.
    fn snapshot(&self) -> StoredState {
        StoredState {
            services: self.services.values().map(ServiceRecord::stored).collect(),
            instances: self
                .services
                .values()
                .flat_map(|s| s.instances.values().map(|i| i.stored_view(&s.spec)))
                .collect(),
            workers: self
                .workers
                .iter()
                .map(|w| w.view(self.placements.count(&w.id)))
                .collect(),
        }
    }
}
