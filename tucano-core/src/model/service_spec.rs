//! What an operator asks for: a service and how many instances of it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    AutoscaleSpec, BalancingSpec, HealthSpec, InstanceId, InstanceSpec, PlacementSpec, PullPolicy,
    Resources, RestartPolicy, RuntimeKind, ServiceName, UpdateSpec,
};

/// Most replicas one service may ask for.
pub const MAX_REPLICAS: u32 = 1000;
/// Longest allowed stop grace period.
pub const MAX_STOP_GRACE: Duration = Duration::from_secs(3600);
/// Longest allowed startup timeout.
pub const MAX_STARTUP_TIMEOUT: Duration = Duration::from_secs(600);
/// Environment variables the runtime sets itself; a spec may not set them.
pub const RESERVED_ENV: [&str; 3] = ["PORT", "TUCANO_INSTANCE_ID", "TUCANO_SERVICE"];
/// Most arguments plus environment entries a spec may carry.
pub const MAX_COMMAND_AND_ENV_ENTRIES: usize = 4096;
/// Longest image reference accepted.
pub const MAX_IMAGE_LEN: usize = 512;
/// The port an image-based instance listens on inside its container unless the spec says.
pub const DEFAULT_CONTAINER_PORT: u16 = 8080;

/// A service: the program or image to run, how many replicas, and what each needs.
///
/// A service runs either a program (`command`, on workers with the process runtime) or a
/// container image (`image`, on workers with the Docker runtime, `command` then replacing the
/// image's default arguments). Only `name` and one of the two are required; every other field
/// has a default:
///
/// ```
/// use tucano_core::ServiceSpec;
/// let spec: ServiceSpec = serde_json::from_str(
///     r#"{"name":"hello","command":["/usr/local/bin/tucano-demo"],"replicas":3}"#,
/// ).unwrap();
/// spec.validate().unwrap();
/// assert_eq!(spec.resources.memory_mb, 128);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// The service's name; also the Host the balancer routes by.
    pub name: ServiceName,
    /// Program and arguments. The program is looked up in `PATH` unless it has a `/`. With an
    /// `image`, the arguments given to the image's entrypoint (none: the image's own).
    #[serde(default)]
    pub command: Vec<String>,
    /// Container image to run (`"tucano-demo:latest"`), for workers with the Docker runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The port an image-based instance listens on inside its container (the runtime also
    /// sets it as `PORT`); [`DEFAULT_CONTAINER_PORT`] if omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Whether the runtime may pull the image (`"never"`, the default, `"missing"`, `"always"`).
    #[serde(default)]
    pub pull: PullPolicy,
    /// Extra environment variables for each instance.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// How many instances to keep running (0 to [`MAX_REPLICAS`]).
    #[serde(default = "default_replicas")]
    pub replicas: u32,
    /// What each instance asks for.
    #[serde(default)]
    pub resources: Resources,
    /// How long an instance may take to exit after SIGTERM before it gets SIGKILL (`"10s"`).
    #[serde(default = "default_stop_grace", with = "humantime_serde")]
    pub stop_grace_period: Duration,
    /// How long an instance may take to accept connections on its port (`"30s"`).
    #[serde(default = "default_startup_timeout", with = "humantime_serde")]
    pub startup_timeout: Duration,
    /// How the balancer spreads requests over the instances (`"round_robin"` by default).
    #[serde(default)]
    pub balancing: BalancingSpec,
    /// Active health checks of the instances, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthSpec>,
    /// Where the instances may go and how they spread (strategy, constraints, instances per
    /// worker).
    #[serde(default, skip_serializing_if = "PlacementSpec::is_default")]
    pub placement: PlacementSpec,
    /// Whether an instance that ends on its own is replaced (`"always"`, the default,
    /// `"on_failure"`, `"never"`).
    #[serde(default, skip_serializing_if = "RestartPolicy::is_default")]
    pub restart: RestartPolicy,
    /// How a changed spec replaces the running instances (surge, unavailability, deadline).
    #[serde(default, skip_serializing_if = "UpdateSpec::is_default")]
    pub update: UpdateSpec,
    /// How the replica count follows load, if it does (`replicas` is then where it starts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<AutoscaleSpec>,
}

fn default_replicas() -> u32 {
    1
}

fn default_stop_grace() -> Duration {
    Duration::from_secs(10)
}

fn default_startup_timeout() -> Duration {
    Duration::from_secs(30)
}

/// Why a [`ServiceSpec`] cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(pub String);

impl ServiceSpec {
    /// A spec with the given name and command and defaults for everything else.
    pub fn new(name: ServiceName, command: Vec<String>) -> Self {
        Self {
            name,
            command,
            image: None,
            port: None,
            pull: PullPolicy::default(),
            env: BTreeMap::new(),
            replicas: default_replicas(),
            resources: Resources::default(),
            stop_grace_period: default_stop_grace(),
            startup_timeout: default_startup_timeout(),
            balancing: BalancingSpec::default(),
            health: None,
            placement: PlacementSpec::default(),
            restart: RestartPolicy::default(),
            update: UpdateSpec::default(),
            autoscale: None,
        }
    }

    /// A spec running container `image` with defaults for everything else.
    pub fn from_image(name: ServiceName, image: impl Into<String>) -> Self {
        Self {
            image: Some(image.into()),
            ..Self::new(name, Vec::new())
        }
    }

    /// The kind of runtime that can run this service: Docker for an image, else processes.
    pub fn runtime_kind(&self) -> RuntimeKind {
        if self.image.is_some() {
            RuntimeKind::Docker
        } else {
            RuntimeKind::Process
        }
    }

    /// Checks everything serde cannot: a usable command or image, bounds, and the environment.
    pub fn validate(&self) -> Result<(), SpecError> {
        match &self.image {
            Some(image) => validate_image(image)?,
            None => {
                let program = self.command.first().map(String::as_str).unwrap_or("");
                if program.trim().is_empty() {
                    return Err(SpecError(
                        "command must name a program, e.g. [\"/usr/bin/env\", \"python3\", \"app.py\"], or image an image"
                            .into(),
                    ));
                }
                if self.port.is_some() {
                    return Err(SpecError(
                        "port is for image-based services: a program gets its port in PORT".into(),
                    ));
                }
            }
        }
        if self.port == Some(0) {
            return Err(SpecError("port must be between 1 and 65535".into()));
        }
        if self.command.len() + self.env.len() > MAX_COMMAND_AND_ENV_ENTRIES {
            return Err(SpecError(format!(
                "command and env together may have at most {MAX_COMMAND_AND_ENV_ENTRIES} entries"
            )));
        }
        if self.command.iter().any(|arg| arg.contains('\0')) {
            return Err(SpecError("command arguments may not contain NUL".into()));
        }
        validate_replicas(self.replicas)?;
        self.resources.validate().map_err(SpecError)?;
        for (key, value) in &self.env {
            if key.is_empty() || key.contains('=') || key.contains('\0') || value.contains('\0') {
                return Err(SpecError(format!(
                    "env {key:?} is not a valid variable (empty, or has '=' or NUL)"
                )));
            }
            if RESERVED_ENV.contains(&key.as_str()) {
                return Err(SpecError(format!(
                    "env {key} is set by the runtime for each instance and may not be set in the spec"
                )));
            }
        }
        if self.stop_grace_period > MAX_STOP_GRACE {
            return Err(SpecError(format!(
                "stop_grace_period may be at most {}",
                humantime::format_duration(MAX_STOP_GRACE)
            )));
        }
        self.balancing.validate().map_err(SpecError)?;
        self.placement.validate().map_err(SpecError)?;
        self.update.validate().map_err(SpecError)?;
        if let Some(autoscale) = &self.autoscale {
            autoscale.check_supported().map_err(SpecError)?;
        }
        if let Some(health) = &self.health {
            health.validate().map_err(SpecError)?;
        }
        if self.startup_timeout.is_zero() || self.startup_timeout > MAX_STARTUP_TIMEOUT {
            return Err(SpecError(format!(
                "startup_timeout must be above 0 and at most {}",
                humantime::format_duration(MAX_STARTUP_TIMEOUT)
            )));
        }
        Ok(())
    }

    /// Whether instances of `self` and of `other` differ: the program or image and what goes
    /// with it (environment, resources, port, timeouts, readiness path) or where they may run.
    /// Such a change is rolled out as a new revision; any other (replicas, balancing, health
    /// check timing, restart, update) applies to the running instances in place.
    pub fn instances_differ(&self, other: &ServiceSpec) -> bool {
        let id = InstanceId::new();
        self.instance(id) != other.instance(id) || self.placement != other.placement
    }

    /// The spec of one instance of this service.
    pub fn instance(&self, id: InstanceId) -> InstanceSpec {
        InstanceSpec {
            id,
            service: self.name.clone(),
            command: self.command.clone(),
            image: self.image.clone(),
            port: self.port,
            pull: self.pull,
            env: self.env.clone(),
            resources: self.resources,
            stop_grace_period: self.stop_grace_period,
            startup_timeout: self.startup_timeout,
            ready_path: self.health.as_ref().map(|h| h.path.clone()),
        }
    }
}

/// Checks an image reference looks like one: not empty, no whitespace or control characters,
/// at most [`MAX_IMAGE_LEN`] bytes. (The engine judges the rest.)
fn validate_image(image: &str) -> Result<(), SpecError> {
    if image.is_empty() || image.len() > MAX_IMAGE_LEN {
        return Err(SpecError(format!(
            "image must be a reference of 1 to {MAX_IMAGE_LEN} characters, e.g. \"tucano-demo:latest\""
        )));
    }
    if image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(SpecError(format!(
            "image {image:?} may not contain whitespace or control characters"
        )));
    }
    Ok(())
}

/// Checks a replica count is within `0..=MAX_REPLICAS`.
pub fn validate_replicas(replicas: u32) -> Result<(), SpecError> {
    if replicas > MAX_REPLICAS {
        return Err(SpecError(format!(
            "replicas must be between 0 and {MAX_REPLICAS}, got {replicas}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> ServiceSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn minimal_spec_gets_defaults() {
        let s = spec(r#"{"name":"hello","command":["/bin/demo"],"replicas":3}"#);
        assert_eq!(s.replicas, 3);
        assert_eq!(s.resources, Resources::default());
        assert_eq!(s.stop_grace_period, Duration::from_secs(10));
        assert!(s.validate().is_ok());
    }

    #[test]
    fn durations_and_resources_parse() {
        let s = spec(
            r#"{"name":"a","command":["x"],"resources":{"cpus":0.5,"memory_mb":256},
                "stop_grace_period":"2s","startup_timeout":"500ms"}"#,
        );
        assert_eq!(s.resources.cpus, 0.5);
        assert_eq!(s.resources.memory_mb, 256);
        assert_eq!(s.stop_grace_period, Duration::from_secs(2));
        assert_eq!(s.startup_timeout, Duration::from_millis(500));
    }

    #[test]
    fn rejects_invalid_specs() {
        let cases = [
            r#"{"name":"a","command":[]}"#,
            r#"{"name":"a","command":[" "]}"#,
            r#"{"name":"a","command":["x"],"replicas":1001}"#,
            r#"{"name":"a","command":["x"],"resources":{"cpus":0}}"#,
            r#"{"name":"a","command":["x"],"resources":{"memory_mb":0}}"#,
            r#"{"name":"a","command":["x"],"env":{"PORT":"1"}}"#,
            r#"{"name":"a","command":["x"],"env":{"A=B":"1"}}"#,
            r#"{"name":"a","command":["x"],"startup_timeout":"0s"}"#,
            r#"{"name":"a","command":["x"],"stop_grace_period":"2h"}"#,
            r#"{"name":"a","image":""}"#,
            r#"{"name":"a","image":"demo latest"}"#,
            r#"{"name":"a","image":"demo","port":0}"#,
            r#"{"name":"a","command":["x"],"port":8080}"#,
            r#"{"name":"a","image":"demo","pull":"sometimes"}"#,
            r#"{"name":"a","command":["x"],"autoscale":{"policy":"target","max":3,"metric":"cpu"}}"#,
        ];
        for case in cases {
            let parsed = serde_json::from_str::<ServiceSpec>(case);
            assert!(
                parsed.is_err() || parsed.is_ok_and(|s| s.validate().is_err()),
                "{case} should be invalid"
            );
        }
    }

    #[test]
    fn image_specs_run_on_docker_and_carry_their_image() {
        let s = spec(r#"{"name":"web","image":"tucano-demo:latest","port":9000,"pull":"missing"}"#);
        s.validate().unwrap();
        assert_eq!(s.runtime_kind(), RuntimeKind::Docker);
        let instance = s.instance(InstanceId::new());
        assert_eq!(instance.image.as_deref(), Some("tucano-demo:latest"));
        assert_eq!(instance.port, Some(9000));
        assert_eq!(instance.pull, PullPolicy::Missing);
        let program = spec(r#"{"name":"web","command":["/bin/demo"]}"#);
        assert_eq!(program.runtime_kind(), RuntimeKind::Process);
        assert_eq!(program.pull, PullPolicy::Never);
        let from_image = ServiceSpec::from_image("web".parse().unwrap(), "tucano-demo:latest");
        from_image.validate().unwrap();
    }

    #[test]
    fn only_changes_to_what_instances_run_need_new_instances() {
        let base = spec(r#"{"name":"a","command":["x"],"replicas":2}"#);
        for json in [
            r#"{"name":"a","command":["y"],"replicas":2}"#,
            r#"{"name":"a","command":["x"],"env":{"V":"2"},"replicas":2}"#,
            r#"{"name":"a","command":["x"],"resources":{"cpus":1},"replicas":2}"#,
            r#"{"name":"a","command":["x"],"placement":{"max_per_worker":1},"replicas":2}"#,
        ] {
            assert!(base.instances_differ(&spec(json)), "{json}");
        }
        for json in [
            r#"{"name":"a","command":["x"],"replicas":5}"#,
            r#"{"name":"a","command":["x"],"restart":"never"}"#,
            r#"{"name":"a","command":["x"],"update":{"max_surge":3}}"#,
            r#"{"name":"a","command":["x"],"balancing":{"policy":"least_connections"}}"#,
        ] {
            assert!(!base.instances_differ(&spec(json)), "{json}");
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(
            serde_json::from_str::<ServiceSpec>(r#"{"name":"a","command":["x"],"replica":2}"#)
                .is_err()
        );
    }
}
