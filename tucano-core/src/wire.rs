//! Wire types: what the controller and worker APIs send and receive, kept in one place so
//! servers, clients and stores agree.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::model::{
    BootId, InstanceId, InstanceState, NodeMetrics, Resources, RolloutStatus, RuntimeKind,
    ServiceName, ServiceSpec, WorkerId, first_revision,
};
use crate::runtime::ExitStatus;

/// One instance as the controller sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceView {
    /// The instance's id (UUIDv7).
    pub id: InstanceId,
    /// Its service.
    pub service: ServiceName,
    /// Where it is in its life.
    pub state: InstanceState,
    /// The revision of the service's spec it runs.
    #[serde(default = "first_revision")]
    pub revision: u64,
    /// The worker it is placed on, once placed.
    pub worker: Option<WorkerId>,
    /// The address the instance listens on, once running.
    pub address: Option<SocketAddr>,
    /// Start attempts made.
    pub start_attempts: u32,
    /// Why it is pending, failed or lost, when known.
    pub reason: Option<String>,
    /// How it exited, when it did.
    pub exit: Option<ExitStatus>,
    /// When the controller created it.
    #[serde(with = "humantime_serde")]
    pub created_at: SystemTime,
    /// When its state last changed.
    #[serde(with = "humantime_serde")]
    pub updated_at: SystemTime,
    /// Its latest resource use, as its worker's heartbeats reported it (running and
    /// terminating instances on a runtime that measures it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<MeasuredUsage>,
}

/// An instance's resource use as its worker measured it, partly relative to what the instance
/// asked for (as the Kubernetes HPA counts utilisation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InstanceUsage {
    /// CPU used between the worker's two latest samples, as a share of the instance's
    /// requested `cpus` (0.6 = 60 % of its request; of one core when it requested none or the
    /// worker does not know its request). `None` until the worker has two samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    /// The same CPU use in cores (1.0 = one core busy all the time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_cores: Option<f64>,
    /// Memory held, as a share of the instance's requested `memory_mb`; `None` when it
    /// requested none (or the worker does not know its request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<f64>,
    /// Memory held, in bytes.
    #[serde(default)]
    pub memory_bytes: u64,
    /// The CPU pressure of the instance's own cgroup (PSI `some avg10`, 0 to 1), when it has
    /// one the worker can read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_pressure: Option<f64>,
}

/// An instance's latest usage and when the controller received it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeasuredUsage {
    /// When the heartbeat carrying it reached the controller (the controller's clock); the
    /// worker measured it at most a heartbeat's sampling time before.
    #[serde(with = "humantime_serde")]
    pub received_at: SystemTime,
    /// The usage.
    #[serde(flatten)]
    pub usage: InstanceUsage,
}

/// Instance counts of a service by phase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaCounts {
    /// Replicas asked for.
    pub desired: u32,
    /// Instances running.
    pub running: u32,
    /// Instances pending or deploying.
    pub starting: u32,
    /// Instances being stopped.
    pub terminating: u32,
}

/// A service with its instances (active ones first, then recent final ones).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceView {
    /// The service's name.
    pub name: ServiceName,
    /// Its spec, with defaults filled in.
    pub spec: ServiceSpec,
    /// The revision of `spec`: 1 at creation, one more for each change that needs new
    /// instances (a rollback returns to the previous revision's number).
    pub revision: u64,
    /// Its latest rolling update, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,
    /// Counts by phase.
    pub replicas: ReplicaCounts,
    /// True while `DELETE` waits for its instances to terminate.
    pub deleting: bool,
    /// When it was created.
    #[serde(with = "humantime_serde")]
    pub created_at: SystemTime,
    /// Its instances.
    pub instances: Vec<InstanceView>,
    /// The latest replica changes the autoscaler made, oldest first, each with its cause.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scaling_events: Vec<ScalingEvent>,
}

/// A replica change the autoscaler made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScalingEvent {
    /// When the controller applied it.
    #[serde(with = "humantime_serde")]
    pub at: SystemTime,
    /// Replicas before.
    pub from: u32,
    /// Replicas after.
    pub to: u32,
    /// Why, with the signals that caused it.
    pub reason: String,
}

/// `GET /v1/services`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceList {
    /// Every service, by name.
    pub services: Vec<ServiceView>,
}

/// `PUT /v1/services/{name}/replicas`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleRequest {
    /// The new replica count.
    pub replicas: u32,
}

/// Whether the controller hears from a worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    /// Heard from within the liveness timeout.
    Alive,
    /// Silent for longer than the liveness timeout; gets no instances.
    Dead,
}

/// A worker as the controller sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerView {
    /// The worker's id.
    pub id: WorkerId,
    /// Base URL of the worker's API (`http://host:port`).
    pub address: String,
    /// Address of the worker's proxy, which the balancer sends requests to.
    pub proxy_address: SocketAddr,
    /// The kind of runtime it runs instances with.
    pub runtime: RuntimeKind,
    /// What it offers to instances.
    pub capacity: Resources,
    /// Its labels, which placement constraints match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Its current boot.
    pub boot_id: BootId,
    /// Alive or dead.
    pub state: WorkerState,
    /// When it (last) registered.
    #[serde(with = "humantime_serde")]
    pub registered_at: SystemTime,
    /// When the controller last heard from it.
    #[serde(with = "humantime_serde")]
    pub last_heartbeat_at: SystemTime,
    /// Its latest metrics; `metrics.taken_at` says when they were taken.
    pub metrics: Option<NodeMetrics>,
    /// Instances the controller has placed on it that are not final.
    pub instances: u32,
}

/// `GET /v1/workers`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerList {
    /// Every known worker, by id.
    pub workers: Vec<WorkerView>,
}

/// Where an instance is in its life, as its worker sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocalState {
    /// Started, not yet accepting connections.
    Starting,
    /// Accepting connections.
    Running,
    /// Being stopped.
    Stopping,
    /// Exited (on its own or stopped); kept until the controller forgets it.
    Exited,
}

/// One instance as its worker sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportedInstance {
    /// The instance's id.
    pub id: InstanceId,
    /// Its service.
    pub service: ServiceName,
    /// Its state on the worker.
    pub state: LocalState,
    /// Where it listens, once running.
    pub address: Option<SocketAddr>,
    /// Its process id, for runtimes that have one.
    pub pid: Option<u32>,
    /// How it exited, once it did.
    pub exit: Option<ExitStatus>,
    /// Why it failed to start or exited, when known.
    pub reason: Option<String>,
    /// Its resource use, in heartbeats from workers whose runtime measures it (absent from
    /// registrations, start replies and older workers' heartbeats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<InstanceUsage>,
}

/// A worker's instances at one generation. The generation counts changes to the worker's
/// instance table within one boot, so the controller can tell a stale report from a fresh one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceReport {
    /// The worker's boot.
    pub boot_id: BootId,
    /// Changes to the instance table so far in this boot.
    pub generation: u64,
    /// Every instance the worker knows.
    pub instances: Vec<ReportedInstance>,
}

/// `POST /v1/workers`: a worker introduces itself (again, after a restart or a controller restart).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    /// The worker's id.
    pub id: WorkerId,
    /// Base URL of the worker's API.
    pub address: String,
    /// Address of the worker's proxy.
    pub proxy_address: SocketAddr,
    /// Its runtime kind.
    pub runtime: RuntimeKind,
    /// What it offers to instances.
    pub capacity: Resources,
    /// Its labels (`zone=a`, ...), which placement constraints match.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The instances it already runs (adopted after a restart).
    pub report: InstanceReport,
}

/// The controller's answer to a registration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegistrationReply {
    /// A worker silent for this long is declared dead.
    #[serde(with = "humantime_serde")]
    pub liveness_timeout: Duration,
}

/// `POST /v1/workers/{id}/heartbeat`: metrics and instance statuses, sent periodically and
/// right after an instance changes state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The worker's id.
    pub id: WorkerId,
    /// When it was sent (worker clock).
    #[serde(with = "humantime_serde")]
    pub sent_at: SystemTime,
    /// The latest node metrics, if a sample succeeded.
    pub metrics: Option<NodeMetrics>,
    /// The worker's instances.
    pub report: InstanceReport,
}

/// The worker's answer to a start: the instance is running.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StartReply {
    /// The instance as the worker now sees it.
    pub instance: ReportedInstance,
    /// The worker's boot.
    pub boot_id: BootId,
    /// The worker's generation once the instance was added.
    pub generation: u64,
}

/// The worker's answer to a stop.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StopReply {
    /// How the instance exited, if it had been running.
    pub exit: Option<ExitStatus>,
}

/// A stream an instance wrote to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One line an instance wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Where it was written.
    pub stream: LogStream,
    /// The line, without its newline (invalid UTF-8 replaced).
    pub line: String,
}

/// `GET /v1/instances/{id}/logs` on a worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogsReply {
    /// The last lines, oldest first.
    pub lines: Vec<LogLine>,
}

/// The body of every error response: `{"error":{"code":"...","message":"..."}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// A machine-readable code and a human sentence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// snake_case code, e.g. `service_not_found`.
    pub code: String,
    /// What went wrong, for a human.
    pub message: String,
}

impl ErrorBody {
    /// An error body with `code` and `message`.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A heartbeat as workers sent it before instances carried their usage.
    const OLD_HEARTBEAT: &str = r#"{
        "id": "worker-1", "sent_at": "2026-01-01T00:00:00Z", "metrics": null,
        "report": {"boot_id": "01a20827-0e82-71ac-96ca-bca8496ab335", "generation": 3, "instances": [
            {"id": "01a20827-0e82-71ac-96ca-bca8496ab336", "service": "web", "state": "running",
             "address": "127.0.0.1:20001", "pid": 42, "exit": null, "reason": null}]}
    }"#;

    #[test]
    fn heartbeats_without_usage_still_parse() {
        let heartbeat: Heartbeat = serde_json::from_str(OLD_HEARTBEAT).unwrap();
        assert_eq!(heartbeat.report.instances.len(), 1);
        assert_eq!(heartbeat.report.instances[0].usage, None);
    }

    #[test]
    fn usage_round_trips_and_is_left_out_when_absent() {
        let mut heartbeat: Heartbeat = serde_json::from_str(OLD_HEARTBEAT).unwrap();
        let json = serde_json::to_string(&heartbeat).unwrap();
        assert!(!json.contains("usage"), "{json}");
        heartbeat.report.instances[0].usage = Some(InstanceUsage {
            cpu: Some(0.5),
            cpu_cores: Some(0.125),
            memory: None,
            memory_bytes: 7 << 20,
            cpu_pressure: Some(0.02),
        });
        let json = serde_json::to_string(&heartbeat).unwrap();
        assert!(json.contains(r#""usage":{"cpu":0.5,"cpu_cores":0.125,"memory_bytes":7340032,"cpu_pressure":0.02}"#), "{json}");
        assert_eq!(serde_json::from_str::<Heartbeat>(&json).unwrap(), heartbeat);
    }

    #[test]
    fn measured_usage_is_flat_in_the_instance_view() {
        let measured = MeasuredUsage {
            received_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            usage: InstanceUsage {
                cpu: Some(0.6),
                memory_bytes: 1024,
                ..InstanceUsage::default()
            },
        };
        let json = serde_json::to_value(measured).unwrap();
        assert_eq!(json["cpu"], 0.6);
        assert_eq!(json["memory_bytes"], 1024);
        assert!(json["received_at"].is_string(), "{json}");
        assert_eq!(
            serde_json::from_value::<MeasuredUsage>(json).unwrap(),
            measured
        );
    }
}
