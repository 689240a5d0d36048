//! `ProcessRuntime`: runs instances as local processes. The embedded default runtime.

mod listener_owner;
mod log_buffer;
mod port_allocator;
mod proc_usage;
mod spawner;

pub use log_buffer::{LogBuffer, MAX_LINE_BYTES};
pub use port_allocator::{DEFAULT_PORT_RANGE, PortAllocator};

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::sync::{broadcast, watch};
use tokio::time::{Instant, sleep, timeout};

use super::{
    ExitStatus, Runtime, RuntimeError, RuntimeEvent, RuntimeInstance, StartedInstance, UsageSample,
};
use crate::model::{InstanceId, InstanceSpec, RuntimeKind, ServiceName};
use crate::wire::{LogLine, LogStream};
use spawner::Spawner;

/// How long a stopped process may take to die after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// How long an exited instance's output may take to reach its end before the exit is told.
const OUTPUT_DRAIN: Duration = Duration::from_secs(1);
/// Exited instances kept for their logs until stopped (forgotten) by the worker.
const MAX_EXITED_KEPT: usize = 256;
/// Output lines kept per instance.
const LOG_LINES: usize = 1000;
/// Output bytes kept per instance.
const LOG_BYTES: usize = 256 * 1024;
/// Longest a usage sample (a few `/proc` reads) may take.
const USAGE_TIMEOUT: Duration = Duration::from_secs(1);

/// Settings of a [`ProcessRuntime`].
#[derive(Clone, Debug)]
pub struct ProcessRuntimeConfig {
    /// Address instances are reached at from the worker; `PORT` is bound on it.
    pub host: IpAddr,
    /// Ports handed to instances.
    pub port_range: RangeInclusive<u16>,
    /// Ports tried for one start when the child cannot bind its port.
    pub port_attempts: u32,
}

impl Default for ProcessRuntimeConfig {
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port_range: DEFAULT_PORT_RANGE,
            port_attempts: 5,
        }
    }
}

/// Runs each instance as a child process of the worker.
///
/// The child gets `PORT` (a port reserved for it, see [`PortAllocator`]),
/// `TUCANO_INSTANCE_ID` and `TUCANO_SERVICE`, and is reported running once `PORT` accepts
/// connections. Its stdout and stderr are kept (the last 1000 lines). A stop sends SIGTERM to
/// its process group, then SIGKILL after the grace period. Children die with the worker, even
/// when the worker is killed with SIGKILL.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use tucano_core::{ProcessRuntime, Runtime, RuntimeError, ServiceSpec};
/// let runtime = ProcessRuntime::new(Default::default())?;
/// // `true` exits at once without listening: the start fails and says so.
/// let spec = ServiceSpec::new("demo".parse()?, vec!["true".into()]);
/// let result = runtime.start(&spec.instance(Default::default())).await;
/// assert!(matches!(result, Err(RuntimeError::ExitedDuringStartup { .. })));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ProcessRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    config: ProcessRuntimeConfig,
    spawner: Spawner,
    ports: Mutex<PortAllocator>,
    instances: Mutex<HashMap<InstanceId, ProcInstance>>,
    exited_order: Mutex<VecDeque<InstanceId>>,
    events: broadcast::Sender<RuntimeEvent>,
}

#[derive(Clone)]
struct ProcInstance {
    service: ServiceName,
    pid: u32,
    address: SocketAddr,
    logs: Arc<LogBuffer>,
    exit: watch::Receiver<Option<ExitStatus>>,
    ready: bool,
    stopping: bool,
}

enum Startup {
    Ready,
    Exited(ExitStatus),
    TimedOut,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl ProcessRuntime {
    /// A runtime with `config`. Must be called within a Tokio runtime.
    pub fn new(config: ProcessRuntimeConfig) -> Result<Self, RuntimeError> {
        let spawner = Spawner::new().map_err(|e| RuntimeError::Unavailable(e.to_string()))?;
        let ports = PortAllocator::new(config.host, config.port_range.clone());
        let (events, _) = broadcast::channel(256);
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                spawner,
                ports: Mutex::new(ports),
                instances: Mutex::new(HashMap::new()),
                exited_order: Mutex::new(VecDeque::new()),
                events,
            }),
        })
    }

    fn command(&self, spec: &InstanceSpec, port: u16) -> Result<Command, RuntimeError> {
        let (program, args) = spec
            .command
            .split_first()
            .ok_or_else(|| RuntimeError::Spawn {
                program: String::new(),
                message: "empty command".into(),
            })?;
        let mut command = Command::new(program);
        command
            .args(args)
            .envs(&spec.env)
            .env("PORT", port.to_string())
            .env("TUCANO_INSTANCE_ID", spec.id.to_string())
            .env("TUCANO_SERVICE", spec.service.as_str())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Ok(command)
    }

    /// Spawns one attempt on `port` and registers it; returns its exit watch.
    async fn spawn_on(
        &self,
        spec: &InstanceSpec,
        port: u16,
    ) -> Result<(u32, watch::Receiver<Option<ExitStatus>>), RuntimeError> {
        let command = self.command(spec, port)?;
        let mut child =
            self.inner
                .spawner
                .spawn(command)
                .await
                .map_err(|e| RuntimeError::Spawn {
                    program: spec.command.first().cloned().unwrap_or_default(),
                    message: e.to_string(),
                })?;
        let pid = child.id().unwrap_or(0);
        let logs = Arc::new(LogBuffer::new(LOG_LINES, LOG_BYTES));
        let mut collectors = Vec::with_capacity(2);
        if let Some(stdout) = child.stdout.take() {
            let logs = logs.clone();
            collectors.push(tokio::spawn(async move {
                logs.collect(LogStream::Stdout, stdout).await
            }));
        }
        if let Some(stderr) = child.stderr.take() {
            let logs = logs.clone();
            collectors.push(tokio::spawn(async move {
                logs.collect(LogStream::Stderr, stderr).await
            }));
        }
        let (exit_tx, exit_rx) = watch::channel(None);
        let address = SocketAddr::new(self.inner.config.host, port);
        lock(&self.inner.instances).insert(
            spec.id,
            ProcInstance {
                service: spec.service.clone(),
                pid,
                address,
                logs,
                exit: exit_rx.clone(),
                ready: false,
                stopping: false,
            },
        );
        let inner = Arc::downgrade(&self.inner);
        let id = spec.id;
        tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(status) => ExitStatus {
                    code: status.code(),
                    signal: status.signal(),
                    oom_killed: false,
                },
                Err(error) => {
                    tracing::warn!(instance = %id, %error, "could not wait for instance process");
                    ExitStatus::default()
                }
            };
            // Descendants the instance left behind go with it.
            Self::kill_group(pid);
            // Its last words are read before its exit is told (a startup failure quotes them).
            let drained = join_tasks(collectors);
            if tokio::time::timeout(OUTPUT_DRAIN, drained).await.is_err() {
                tracing::warn!(instance = %id, "output still open after exit; not waiting for it");
            }
            let _ = exit_tx.send(Some(status));
            if let Some(inner) = inner.upgrade() {
                lock(&inner.ports).release(port);
                inner.remember_exit(id);
                let _ = inner.events.send(RuntimeEvent::Exited {
                    instance: id,
                    status,
                });
            }
        });
        Ok((pid, exit_rx))
    }

    async fn wait_ready(
        address: SocketAddr,
        group: u32,
        exit: &mut watch::Receiver<Option<ExitStatus>>,
        deadline: Instant,
    ) -> Startup {
        let mut pause = Duration::from_millis(5);
        loop {
            if let Some(status) = *exit.borrow() {
                return Startup::Exited(status);
            }
            let answered = matches!(
                timeout(Duration::from_millis(250), TcpStream::connect(address)).await,
                Ok(Ok(_))
            );
            // The port answers; make sure it is our instance that answers, not another program
            // that took the same port.
            if answered && listener_owner::group_listens_on(address.port(), group) != Some(false) {
                return match *exit.borrow() {
                    Some(status) => Startup::Exited(status),
                    None => Startup::Ready,
                };
            }
            if Instant::now() + pause > deadline {
                return Startup::TimedOut;
            }
            tokio::select! {
                _ = sleep(pause) => {}
                _ = exit.changed() => {}
            }
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    fn last_output(&self, id: InstanceId) -> Vec<String> {
        lock(&self.inner.instances)
            .get(&id)
            .map(|instance| instance.logs.tail(5).into_iter().map(|l| l.line).collect())
            .unwrap_or_default()
    }

    fn forget(&self, id: InstanceId) {
        lock(&self.inner.instances).remove(&id);
    }

    /// Signals a running instance: its process group (its children too), then the leader
    /// in case it left the group.
    fn signal_group(pid: u32, signal: Signal) {
        let Ok(pid) = i32::try_from(pid) else { return };
        if pid <= 0 {
            return;
        }
        let _ = kill(Pid::from_raw(-pid), signal);
        let _ = kill(Pid::from_raw(pid), signal);
    }

    /// SIGKILLs what is left of an exited instance's process group. The leader is reaped, but
    /// its pid stays reserved while the group has members, so this reaches only them.
    fn kill_group(pid: u32) {
        if let Ok(pid) = i32::try_from(pid)
            && pid > 0
        {
            let _ = kill(Pid::from_raw(-pid), Signal::SIGKILL);
        }
    }

    async fn wait_exit(exit: &mut watch::Receiver<Option<ExitStatus>>) -> Option<ExitStatus> {
        exit.wait_for(Option::is_some).await.ok().and_then(|s| *s)
    }
}

impl Inner {
    /// Records an exit; keeps at most [`MAX_EXITED_KEPT`] exited instances for their logs.
    fn remember_exit(&self, id: InstanceId) {
        let mut order = lock(&self.exited_order);
        order.push_back(id);
        while order.len() > MAX_EXITED_KEPT {
            if let Some(old) = order.pop_front() {
                let mut instances = lock(&self.instances);
                if instances
                    .get(&old)
                    .is_some_and(|i| i.exit.borrow().is_some())
                {
                    instances.remove(&old);
                }
            }
        }
    }
}

#[async_trait]
impl Runtime for ProcessRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Process
    }

    async fn start(&self, spec: &InstanceSpec) -> Result<StartedInstance, RuntimeError> {
        if let Some(image) = &spec.image {
            return Err(RuntimeError::Unsupported(format!(
                "the process runtime runs commands, not images ({image}): use a Docker worker"
            )));
        }
        if lock(&self.inner.instances).contains_key(&spec.id) {
            return Err(RuntimeError::AlreadyExists(spec.id));
        }
        let deadline = Instant::now() + spec.startup_timeout;
        let attempts = self.inner.config.port_attempts.max(1);
        for attempt in 1..=attempts {
            let port = lock(&self.inner.ports).reserve().ok_or_else(|| {
                RuntimeError::NoPort(format!(
                    "every port in {:?} is in use",
                    self.inner.config.port_range
                ))
            })?;
            let address = SocketAddr::new(self.inner.config.host, port);
            let (pid, mut exit) = match self.spawn_on(spec, port).await {
                Ok(spawned) => spawned,
                Err(error) => {
                    lock(&self.inner.ports).release(port);
                    return Err(error);
                }
            };
            match Self::wait_ready(address, pid, &mut exit, deadline).await {
                Startup::Ready => {
                    let mut instances = lock(&self.inner.instances);
                    let Some(instance) = instances.get_mut(&spec.id) else {
                        return Err(RuntimeError::Other(
                            "instance was stopped while starting".into(),
                        ));
                    };
                    instance.ready = true;
                    return Ok(StartedInstance {
                        address,
                        pid: Some(instance.pid),
                    });
                }
                Startup::Exited(status) => {
                    let output = self.last_output(spec.id);
                    let stopped = lock(&self.inner.instances)
                        .get(&spec.id)
                        .is_none_or(|i| i.stopping);
                    self.forget(spec.id);
                    let port_conflict =
                        !stopped && attempt < attempts && !lock(&self.inner.ports).is_free(port);
                    if port_conflict {
                        tracing::info!(instance = %spec.id, port, "port taken by another program; retrying on another port");
                        continue;
                    }
                    return Err(RuntimeError::ExitedDuringStartup { status, output });
                }
                Startup::TimedOut => {
                    let pid = lock(&self.inner.instances).get(&spec.id).map(|i| i.pid);
                    if let Some(pid) = pid {
                        Self::signal_group(pid, Signal::SIGKILL);
                        let _ = timeout(KILL_WAIT, Self::wait_exit(&mut exit)).await;
                    }
                    self.forget(spec.id);
                    return Err(RuntimeError::StartupTimeout {
                        address,
                        timeout: spec.startup_timeout,
                    });
                }
            }
        }
        Err(RuntimeError::NoPort(format!(
            "the instance could not bind any of {attempts} ports"
        )))
    }

    async fn stop(&self, id: InstanceId, grace: Duration) -> Result<ExitStatus, RuntimeError> {
        let (pid, mut exit) = {
            let mut instances = lock(&self.inner.instances);
            let instance = instances.get_mut(&id).ok_or(RuntimeError::NotFound(id))?;
            instance.stopping = true;
            (instance.pid, instance.exit.clone())
        };
        let already = *exit.borrow();
        let status = match already {
            Some(status) => status,
            None => {
                Self::signal_group(pid, Signal::SIGTERM);
                match timeout(grace, Self::wait_exit(&mut exit)).await {
                    Ok(Some(status)) => status,
                    _ => {
                        tracing::info!(instance = %id, ?grace, "instance ignored SIGTERM; sending SIGKILL");
                        Self::signal_group(pid, Signal::SIGKILL);
                        timeout(KILL_WAIT, Self::wait_exit(&mut exit))
                            .await
                            .ok()
                            .flatten()
                            .ok_or_else(|| {
                                RuntimeError::Other(format!(
                                    "process {pid} did not exit after SIGKILL"
                                ))
                            })?
                    }
                }
            }
        };
        self.forget(id);
        Ok(status)
    }

    async fn list(&self) -> Result<Vec<RuntimeInstance>, RuntimeError> {
        let instances = lock(&self.inner.instances);
        Ok(instances
            .iter()
            .filter(|(_, i)| i.ready && i.exit.borrow().is_none())
            .map(|(id, i)| RuntimeInstance {
                id: *id,
                service: i.service.clone(),
                address: i.address,
                pid: Some(i.pid),
            })
            .collect())
    }

    async fn logs(&self, id: InstanceId, tail: usize) -> Result<Vec<LogLine>, RuntimeError> {
        let logs = lock(&self.inner.instances)
            .get(&id)
            .map(|i| i.logs.clone())
            .ok_or(RuntimeError::NotFound(id))?;
        Ok(logs.tail(tail))
    }

    fn subscribe(&self) -> broadcast::Receiver<RuntimeEvent> {
        self.inner.events.subscribe()
    }

    /// The instance's main process from `/proc` (see `proc_usage`): CPU time with that of its
    /// ended children, resident memory, and its cgroup's pressure if it has a cgroup of its own
    /// (instances share the worker's cgroup unless something else moved them).
    async fn usage(&self, id: InstanceId) -> Result<UsageSample, RuntimeError> {
        let pid = lock(&self.inner.instances)
            .get(&id)
            .filter(|i| i.exit.borrow().is_none())
            .map(|i| i.pid)
            .ok_or(RuntimeError::NotFound(id))?;
        let read = tokio::task::spawn_blocking(move || proc_usage::sample(pid));
        match timeout(USAGE_TIMEOUT, read).await {
            Ok(Ok(Some(sample))) => Ok(sample),
            Ok(Ok(None)) => Err(RuntimeError::Other(format!(
                "could not read the usage of process {pid}"
            ))),
            Ok(Err(error)) => Err(RuntimeError::Other(format!("usage task failed: {error}"))),
            Err(_) => Err(RuntimeError::Other(format!(
                "reading the usage of process {pid} took over {USAGE_TIMEOUT:?}"
            ))),
        }
    }
}

/// Waits for every task of `tasks` to end (their results do not matter).
async fn join_tasks(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}
