//! The domain model: names, ids, specs, metrics and the instance state machine.

mod autoscale_spec;
mod balancing_spec;
mod health_spec;
mod ids;
mod instance_spec;
mod instance_state;
mod node_metrics;
mod placement_spec;
mod pull_policy;
mod resources;
mod restart_policy;
mod rollout_status;
mod runtime_kind;
mod service_name;
mod service_spec;
mod update_spec;

pub use autoscale_spec::{AutoscaleSpec, COLLECTED_METRICS, PolicySpec};
pub use balancing_spec::{
    BalancingSpec, DEFAULT_BALANCING_POLICY, HashKey, MAX_CHOICE_COUNT, OutlierSpec,
};
pub use health_spec::HealthSpec;
pub use ids::{BootId, InstanceId, MAX_WORKER_ID_LEN, WorkerId, WorkerIdError};
pub use instance_spec::InstanceSpec;
pub use instance_state::{AttemptLimits, InstanceEvent, InstanceState, Lifecycle, TransitionError};
pub use node_metrics::NodeMetrics;
pub use placement_spec::{MAX_CONSTRAINTS, PlacementSpec};
pub use pull_policy::PullPolicy;
pub use resources::{MAX_CPUS, MAX_MEMORY_MB, Resources};
pub use restart_policy::RestartPolicy;
pub use rollout_status::{FIRST_REVISION, RolloutState, RolloutStatus, first_revision};
pub use runtime_kind::RuntimeKind;
pub use service_name::{MAX_SERVICE_NAME_LEN, ServiceName, ServiceNameError};
pub use service_spec::{
    DEFAULT_CONTAINER_PORT, MAX_IMAGE_LEN, MAX_REPLICAS, MAX_STARTUP_TIMEOUT, MAX_STOP_GRACE,
    RESERVED_ENV, ServiceSpec, SpecError, validate_replicas,
};
pub use update_spec::{MAX_UPDATE_DEADLINE, UpdateSpec};
