//! The `Store` seam: the controller's durable record of services, instances and workers.
//!
//! The controller writes behind: it batches changes and applies them in the background, so a
//! slow disk never slows an API call. After a crash it reloads the last batch that landed;
//! workers re-report what they run, which fills in anything newer (as the paper does).

mod memory;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use memory::MemoryStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

use std::time::SystemTime;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::model::{InstanceId, RolloutStatus, ServiceName, ServiceSpec, WorkerId, first_revision};
use crate::wire::{InstanceView, ScalingEvent, WorkerView};

/// A service as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredService {
    /// Its spec.
    pub spec: ServiceSpec,
    /// When it was created.
    #[serde(with = "humantime_serde")]
    pub created_at: SystemTime,
    /// True once a delete was asked for.
    pub deleting: bool,
    /// The revision of `spec`.
    #[serde(default = "first_revision")]
    pub revision: u64,
    /// The highest revision ever given to the service (a rollback lowers `revision`, not this).
    #[serde(default = "first_revision")]
    pub latest_revision: u64,
    /// The spec a rolling update started from, kept to roll back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<ServiceSpec>,
    /// Its latest rolling update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,
    /// Instances that ended before this time and were not replaced by the restart policy no
    /// longer hold their replica slot (set when the service is scaled or updated).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde"
    )]
    pub slots_reset_at: Option<SystemTime>,
    /// The latest replica changes the autoscaler made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scaling_events: Vec<ScalingEvent>,
}

impl StoredService {
    /// A service created at `created_at`, at its first revision, never updated.
    pub fn new(spec: ServiceSpec, created_at: SystemTime) -> Self {
        Self {
            spec,
            created_at,
            deleting: false,
            revision: first_revision(),
            latest_revision: first_revision(),
            previous: None,
            rollout: None,
            slots_reset_at: None,
            scaling_events: Vec::new(),
        }
    }
}

/// Everything a store holds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoredState {
    /// Services.
    pub services: Vec<StoredService>,
    /// Instances of those services.
    pub instances: Vec<InstanceView>,
    /// Workers.
    pub workers: Vec<WorkerView>,
}

/// One change to a store.
#[derive(Clone, Debug, PartialEq)]
pub enum StoreOp {
    /// Insert or replace a service.
    PutService(Box<StoredService>),
    /// Remove a service and its instances.
    DeleteService(ServiceName),
    /// Insert or replace an instance.
    PutInstance(InstanceView),
    /// Remove an instance.
    DeleteInstance(InstanceId),
    /// Insert or replace a worker.
    PutWorker(WorkerView),
    /// Remove a worker.
    DeleteWorker(WorkerId),
    /// Replace everything with this state (after a failed write, to resynchronise).
    ReplaceAll(StoredState),
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("store error: {0}")]
pub struct StoreError(pub String);

/// A durable record of the controller's state.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Everything stored, for a controller that starts.
    async fn load(&self) -> Result<StoredState, StoreError>;
    /// Applies a batch of changes atomically: all or none.
    async fn apply(&self, batch: Vec<StoreOp>) -> Result<(), StoreError>;
}
