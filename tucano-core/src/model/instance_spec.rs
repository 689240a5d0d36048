//! What a worker is asked to run: one instance of a service.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{HealthSpec, InstanceId, PullPolicy, Resources, ServiceName, ServiceSpec, SpecError};

/// One instance to start, derived from a [`ServiceSpec`](super::ServiceSpec) by the controller.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceSpec {
    /// The instance's id, chosen by the controller.
    pub id: InstanceId,
    /// The service it belongs to.
    pub service: ServiceName,
    /// Program and arguments; with an `image`, the arguments to its entrypoint.
    pub command: Vec<String>,
    /// Container image to run, for the Docker runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The port the instance listens on inside its container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Whether the runtime may pull the image.
    #[serde(default)]
    pub pull: PullPolicy,
    /// Extra environment variables (the runtime adds `PORT`, `TUCANO_INSTANCE_ID`, `TUCANO_SERVICE`).
    pub env: BTreeMap<String, String>,
    /// What the instance asks for.
    pub resources: Resources,
    /// Time between SIGTERM and SIGKILL when stopping.
    #[serde(with = "humantime_serde")]
    pub stop_grace_period: Duration,
    /// How long the instance may take to accept connections.
    #[serde(with = "humantime_serde")]
    pub startup_timeout: Duration,
    /// A path that must answer `GET` with 2xx before the instance counts as started (the
    /// service's health check path), within the startup timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_path: Option<String>,
}

impl InstanceSpec {
    /// Checks the same rules as [`ServiceSpec::validate`], for workers that receive specs
    /// from the network.
    pub fn validate(&self) -> Result<(), SpecError> {
        ServiceSpec {
            name: self.service.clone(),
            command: self.command.clone(),
            image: self.image.clone(),
            port: self.port,
            pull: self.pull,
            env: self.env.clone(),
            replicas: 1,
            resources: self.resources,
            stop_grace_period: self.stop_grace_period,
            startup_timeout: self.startup_timeout,
            balancing: Default::default(),
            health: self.ready_path.clone().map(HealthSpec::path),
            placement: Default::default(),
            restart: Default::default(),
            update: Default::default(),
            autoscale: None,
        }
        .validate()
    }
}
