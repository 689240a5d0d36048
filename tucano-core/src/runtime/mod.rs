//! The `Runtime` seam: what runs instances on a worker.

pub mod process;
mod usage;

pub use usage::UsageSample;

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::model::{InstanceId, InstanceSpec, RuntimeKind, ServiceName};
use crate::wire::LogLine;

/// How an instance ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// Exit code, when it exited on its own.
    pub code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    /// True when the kernel killed it for exceeding its memory limit.
    pub oom_killed: bool,
}

impl ExitStatus {
    /// Exited on its own with code 0 (and was not killed for its memory).
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.oom_killed
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.oom_killed, self.code, self.signal) {
            (true, _, _) => f.write_str("killed for exceeding its memory limit"),
            (false, Some(code), _) => write!(f, "exited with code {code}"),
            (false, None, Some(signal)) => write!(f, "killed by signal {signal}"),
            (false, None, None) => f.write_str("exited"),
        }
    }
}

/// A started instance that accepts connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartedInstance {
    /// Where it listens, as reachable from its worker.
    pub address: SocketAddr,
    /// Its process id, for runtimes that have one.
    pub pid: Option<u32>,
}

/// An instance a runtime runs, as listed for adoption after a worker restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeInstance {
    /// The instance's id.
    pub id: InstanceId,
    /// Its service.
    pub service: ServiceName,
    /// Where it listens.
    pub address: SocketAddr,
    /// Its process id, for runtimes that have one.
    pub pid: Option<u32>,
}

/// Something that happened to an instance without being asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuntimeEvent {
    /// The instance ended (on its own, or because it was stopped).
    Exited {
        /// Which instance.
        instance: InstanceId,
        /// How.
        status: ExitStatus,
    },
}

/// Why a runtime operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// The program could not be started (not found, not executable, ...).
    #[error("could not start {program:?}: {message}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        message: String,
    },
    /// The instance exited before it accepted connections.
    #[error("instance {status} before accepting connections{}", last_output(.output))]
    ExitedDuringStartup {
        /// How it exited.
        status: ExitStatus,
        /// Its last lines of output.
        output: Vec<String>,
    },
    /// The instance did not accept connections within its startup timeout.
    #[error("instance did not accept connections on {address} within {timeout:?}")]
    StartupTimeout {
        /// Where it was expected to listen.
        address: SocketAddr,
        /// How long it was given.
        timeout: Duration,
    },
    /// The instance accepted connections but its readiness path did not answer 2xx within its
    /// startup timeout.
    #[error("instance did not answer GET {path} with 2xx within its startup timeout: {reason}")]
    NotReady {
        /// The readiness path.
        path: String,
        /// The last check's outcome.
        reason: String,
    },
    /// An instance with this id already exists.
    #[error("instance {0} already exists")]
    AlreadyExists(InstanceId),
    /// No instance with this id.
    #[error("no instance {0}")]
    NotFound(InstanceId),
    /// The image is not in the engine (and the spec's pull policy did not allow pulling it,
    /// or the pull failed).
    #[error("image not found: {image}")]
    ImageNotFound {
        /// The image reference.
        image: String,
    },
    /// This runtime cannot run the spec (an image on the process runtime, a command-only
    /// service on the Docker runtime).
    #[error("unsupported by this runtime: {0}")]
    Unsupported(String),
    /// No port could be allocated.
    #[error("no free port: {0}")]
    NoPort(String),
    /// The runtime itself is not working (shut down, engine unreachable).
    #[error("runtime unavailable: {0}")]
    Unavailable(String),
    /// Any other OS or engine error.
    #[error("{0}")]
    Other(String),
}

fn last_output(output: &[String]) -> String {
    match output.last() {
        Some(line) => format!("; last output: {line}"),
        None => String::new(),
    }
}

/// Runs instances on one worker: local processes, containers, or a fake in a unit test.
///
/// Implementations never panic on an engine or process error; they return [`RuntimeError`].
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// The kind of runtime, advertised to the scheduler.
    fn kind(&self) -> RuntimeKind;

    /// Starts an instance and returns once it accepts connections.
    async fn start(&self, spec: &InstanceSpec) -> Result<StartedInstance, RuntimeError>;

    /// Stops an instance: SIGTERM, then SIGKILL once `grace` has passed. Returns how it exited.
    async fn stop(&self, id: InstanceId, grace: Duration) -> Result<ExitStatus, RuntimeError>;

    /// The instances this runtime runs now.
    async fn list(&self) -> Result<Vec<RuntimeInstance>, RuntimeError>;

    /// The last `tail` lines an instance wrote to stdout and stderr, oldest first.
    async fn logs(&self, id: InstanceId, tail: usize) -> Result<Vec<LogLine>, RuntimeError>;

    /// Events about instances ending. A receiver that lags should resynchronise with [`list`](Runtime::list).
    fn subscribe(&self) -> broadcast::Receiver<RuntimeEvent>;

    /// Samples a running instance's resource use. Runtimes that cannot measure it keep this
    /// default, which answers [`RuntimeError::Unsupported`]; the worker then reports no usage.
    async fn usage(&self, id: InstanceId) -> Result<UsageSample, RuntimeError> {
        let _ = id;
        Err(RuntimeError::Unsupported(
            "this runtime does not measure resource usage".into(),
        ))
    }
}
