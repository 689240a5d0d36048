//! [`DockerRuntime`]: instances as Docker containers, through the engine's API.

mod container_config;
mod container_usage;
mod events;
mod exit_status;
mod labels;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bollard::Docker;
use bollard::errors::Error as EngineError;
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, InspectContainerOptions,
    ListContainersOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    StartContainerOptions, StopContainerOptionsBuilder,
};
use futures_util::StreamExt;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tucano_core::wire::{LogLine, LogStream};
use tucano_core::{
    ExitStatus, InstanceId, InstanceSpec, PullPolicy, Runtime, RuntimeError, RuntimeEvent,
    RuntimeInstance, RuntimeKind, ServiceName, StartedInstance, UsageSample, WorkerId,
};

pub(crate) use labels::label_filter;
pub use labels::{INSTANCE_LABEL, PORT_LABEL, SERVICE_LABEL, WORKER_LABEL};

use crate::engine::{ENGINE_TIMEOUT, within};
use crate::error::DockerError;
use container_config::{Reachability, container_config, container_port, port_key};
use exit_status::exit_status_of;

/// How long pulling an image may take, when the spec's pull policy allows it.
const PULL_TIMEOUT: Duration = Duration::from_secs(300);
/// Runtime events buffered for slow subscribers.
const EVENT_BUFFER: usize = 1024;
/// Lines of output quoted in an error when an instance dies during startup.
const STARTUP_OUTPUT_LINES: usize = 20;
/// Most log lines one call returns.
const MAX_LOG_LINES: usize = 10_000;
/// Wait between two readiness probes (a refused connection to the container's own address
/// costs microseconds, so probing often costs little and shortens every start).
const PROBE_INTERVAL: Duration = Duration::from_millis(5);
/// How often a probe that keeps failing also asks the engine whether the container died.
const EXIT_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// Settings of a [`DockerRuntime`].
#[derive(Clone, Debug)]
pub struct DockerRuntimeConfig {
    /// The worker whose containers these are: set as the `tucano.worker` label, and what
    /// adoption looks for after a restart.
    pub worker: WorkerId,
    /// A network to attach instances to: they are then reached at their own address on it
    /// (from the worker and from other containers on it), and no port is published. `None`
    /// publishes each instance's port on a host port the engine picks.
    pub network: Option<String>,
    /// Host address published ports bind to (without a network).
    pub publish_ip: IpAddr,
    /// Address published ports are reached at from the worker (without a network).
    pub host: IpAddr,
    /// Whether an instance's memory limit covers swap too, so that past it the instance is
    /// OOM-killed rather than swapped out. By default, whether this host has swap (see
    /// [`host_has_swap`]): without swap there is nothing to limit, and setting it slows starts.
    pub limit_swap: bool,
}

impl DockerRuntimeConfig {
    /// Settings for `worker`: ports published on loopback, no network.
    pub fn new(worker: WorkerId) -> Self {
        Self {
            worker,
            network: None,
            publish_ip: Ipv4Addr::LOCALHOST.into(),
            host: Ipv4Addr::LOCALHOST.into(),
            limit_swap: host_has_swap(),
        }
    }
}

/// Whether this host has swap space (`SwapTotal` above 0 in `/proc/meminfo`; true if that
/// cannot be read, the safe side).
pub fn host_has_swap() -> bool {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|meminfo| {
            meminfo
                .lines()
                .find_map(|line| line.strip_prefix("SwapTotal:"))
                .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        })
        .is_none_or(|kib| kib > 0)
}

/// Runs instances as Docker containers: image, arguments and environment from the
/// [`InstanceSpec`]; labels `tucano.service`, `tucano.instance`, `tucano.worker`; CPU limit
/// (`NanoCpus`) and shares, memory limit (covering swap where the host has any); the port published on a host port the
/// engine picks and reads back (no bind-then-drop race), or the container's address on a
/// network. An instance is `running` once its port accepts connections. Stop is SIGTERM,
/// SIGKILL after the grace period, then removal. Exits, with their code and OOM kills, come
/// from the engine's event stream.
///
/// When a worker restarts, [`DockerRuntime::new`] adopts the live containers labelled with its
/// id (they are [`list`](Runtime::list)ed, nothing is started again) and removes dead ones.
#[derive(Clone)]
pub struct DockerRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    docker: Docker,
    config: DockerRuntimeConfig,
    instances: Mutex<HashMap<InstanceId, Known>>,
    events: broadcast::Sender<RuntimeEvent>,
    watcher: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// A container this runtime started or adopted, until it is stopped.
#[derive(Clone, Debug)]
struct Known {
    container: String,
    service: ServiceName,
    address: SocketAddr,
    pid: Option<u32>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl DockerRuntime {
    /// A runtime on `docker` (see [`connect`](crate::connect)) for `config.worker`: adopts the
    /// worker's live containers, removes its dead ones, and follows the engine's events. Must
    /// be called within a Tokio runtime.
    pub async fn new(docker: Docker, config: DockerRuntimeConfig) -> Result<Self, RuntimeError> {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let watcher = events::spawn_watcher(docker.clone(), config.worker.clone(), events.clone());
        let runtime = Self {
            inner: Arc::new(Inner {
                docker,
                config,
                instances: Mutex::new(HashMap::new()),
                events,
                watcher,
            }),
        };
        runtime.adopt().await?;
        Ok(runtime)
    }

    /// The engine this runtime drives.
    pub fn docker(&self) -> &Docker {
        &self.inner.docker
    }

    /// The container name of instance `id`.
    pub fn container_name(id: InstanceId) -> String {
        format!("tucano-{id}")
    }

    async fn adopt(&self) -> Result<(), RuntimeError> {
        let docker = &self.inner.docker;
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&labels::worker_filter(&self.inner.config.worker))
            .build();
        let containers = within(
            ENGINE_TIMEOUT,
            "container list",
            docker.list_containers(Some(options)),
        )
        .await
        .map_err(unavailable)?
        .map_err(engine_error)?;
        for summary in containers {
            let Some(container) = summary.id else {
                continue;
            };
            let inspect = self.inspect(&container).await?;
            let running = inspect.state.as_ref().and_then(|s| s.running) == Some(true);
            match (running, self.known_from(&container, &inspect)) {
                (true, Some((id, known))) => {
                    tracing::info!(instance = %id, container = %known.container, "adopted container");
                    lock(&self.inner.instances).insert(id, known);
                }
                _ => {
                    tracing::info!(%container, "removing a dead or unreadable container of this worker");
                    self.remove(&container).await;
                }
            }
        }
        Ok(())
    }

    /// What the runtime keeps of an adopted container, from its labels and addresses.
    fn known_from(
        &self,
        container: &str,
        inspect: &ContainerInspectResponse,
    ) -> Option<(InstanceId, Known)> {
        let labels = inspect.config.as_ref()?.labels.as_ref()?;
        let id: InstanceId = labels.get(INSTANCE_LABEL)?.parse().ok()?;
        let service: ServiceName = labels.get(SERVICE_LABEL)?.parse().ok()?;
        let port: u16 = labels.get(PORT_LABEL)?.parse().ok()?;
        let (address, _) = self.addresses(inspect, port)?;
        Some((
            id,
            Known {
                container: container.to_owned(),
                service,
                address,
                pid: pid_of(inspect),
            },
        ))
    }

    /// Where the worker reaches the instance, and where to probe its readiness (its own
    /// address: a published port accepts connections before the instance listens).
    fn addresses(
        &self,
        inspect: &ContainerInspectResponse,
        port: u16,
    ) -> Option<(SocketAddr, SocketAddr)> {
        let settings = inspect.network_settings.as_ref()?;
        let networks = settings.networks.as_ref();
        let own_ip = match &self.inner.config.network {
            Some(network) => networks?.get(network)?.ip_address.clone(),
            None => networks
                .and_then(|n| n.values().find_map(|e| e.ip_address.clone()))
                .filter(|ip| !ip.is_empty()),
        };
        let own = own_ip
            .and_then(|ip| ip.parse::<IpAddr>().ok())
            .map(|ip| SocketAddr::new(ip, port));
        match &self.inner.config.network {
            Some(_) => own.map(|own| (own, own)),
            None => {
                let host_port: u16 = settings
                    .ports
                    .as_ref()?
                    .get(&port_key(port))?
                    .as_ref()?
                    .iter()
                    .find_map(|binding| binding.host_port.as_ref()?.parse().ok())?;
                let published = SocketAddr::new(self.inner.config.host, host_port);
                Some((published, own.unwrap_or(published)))
            }
        }
    }

    async fn inspect(&self, container: &str) -> Result<ContainerInspectResponse, RuntimeError> {
        within(
            ENGINE_TIMEOUT,
            "container inspect",
            self.inner
                .docker
                .inspect_container(container, None::<InspectContainerOptions>),
        )
        .await
        .map_err(unavailable)?
        .map_err(engine_error)
    }

    /// Removes `container` and its anonymous volumes, whatever its state; failures are logged
    /// (the next adoption removes what is left).
    async fn remove(&self, container: &str) {
        if let Err(error) = force_remove(&self.inner.docker, container).await {
            tracing::warn!(%container, %error, "could not remove container");
        }
    }

    /// Pulls `image` from its registry.
    async fn pull(&self, image: &str) -> Result<(), RuntimeError> {
        let options = CreateImageOptionsBuilder::new().from_image(image).build();
        let pull = async {
            let mut progress = self.inner.docker.create_image(Some(options), None, None);
            while let Some(step) = progress.next().await {
                step?;
            }
            Ok::<_, EngineError>(())
        };
        match within(PULL_TIMEOUT, "image pull", pull).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => {
                tracing::warn!(%image, %error, "pull failed");
                Err(RuntimeError::ImageNotFound {
                    image: image.to_owned(),
                })
            }
            Err(error) => Err(unavailable(error)),
        }
    }

    /// Waits until the instance in `container` accepts connections on `probe`, or exits, or
    /// `deadline` passes.
    async fn wait_ready(
        &self,
        container: &str,
        probe: SocketAddr,
        address: SocketAddr,
        timeout: Duration,
    ) -> Result<(), RuntimeError> {
        let deadline = Instant::now() + timeout;
        let mut next_exit_check = Instant::now() + EXIT_CHECK_INTERVAL;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let attempt = tokio::time::timeout(
                left.min(Duration::from_secs(1)),
                tokio::net::TcpStream::connect(probe),
            )
            .await;
            if matches!(attempt, Ok(Ok(_))) {
                return Ok(());
            }
            if Instant::now() >= next_exit_check {
                next_exit_check = Instant::now() + EXIT_CHECK_INTERVAL;
                self.fail_if_exited(container).await?;
            }
            if Instant::now() >= deadline {
                return Err(RuntimeError::StartupTimeout { address, timeout });
            }
            tokio::time::sleep(PROBE_INTERVAL.min(left)).await;
        }
    }

    /// [`RuntimeError::ExitedDuringStartup`], with its last output, if `container` is no
    /// longer running.
    async fn fail_if_exited(&self, container: &str) -> Result<(), RuntimeError> {
        let inspect = self.inspect(container).await?;
        let Some(state) = inspect.state.filter(|s| s.running != Some(true)) else {
            return Ok(());
        };
        let status = exit_status_of(&state);
        let output = self
            .container_logs(container, STARTUP_OUTPUT_LINES)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|line| line.line)
            .collect();
        Err(RuntimeError::ExitedDuringStartup { status, output })
    }

    /// Creates and starts the container of `spec`; returns where it is reached and probed.
    async fn create_and_start(
        &self,
        spec: &InstanceSpec,
        image: &str,
        container: &str,
    ) -> Result<(SocketAddr, SocketAddr, Option<u32>), RuntimeError> {
        let config = &self.inner.config;
        let reach = match &config.network {
            Some(network) => Reachability::Network(network.clone()),
            None => Reachability::Published(config.publish_ip),
        };
        let body = container_config(spec, image, &config.worker, &reach, config.limit_swap);
        if spec.pull == PullPolicy::Always {
            self.pull(image).await?;
        }
        let docker = &self.inner.docker;
        let create = || {
            let options = CreateContainerOptionsBuilder::new().name(container).build();
            within(
                ENGINE_TIMEOUT,
                "container create",
                docker.create_container(Some(options), body.clone()),
            )
        };
        // No image check first: creating is the check (a 404 names a missing image), one
        // engine call fewer per instance.
        let mut created = create().await.map_err(unavailable)?;
        if is_not_found(&created) {
            if spec.pull != PullPolicy::Missing {
                return Err(RuntimeError::ImageNotFound {
                    image: image.to_owned(),
                });
            }
            self.pull(image).await?;
            created = create().await.map_err(unavailable)?;
        }
        match created {
            Ok(_) => {}
            Err(EngineError::DockerResponseServerError {
                status_code: 409, ..
            }) => return Err(RuntimeError::AlreadyExists(spec.id)),
            Err(EngineError::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                return Err(RuntimeError::ImageNotFound {
                    image: image.to_owned(),
                });
            }
            Err(error) => return Err(engine_error(error)),
        }
        within(
            ENGINE_TIMEOUT,
            "container start",
            docker.start_container(container, None::<StartContainerOptions>),
        )
        .await
        .map_err(unavailable)?
        .map_err(engine_error)?;
        let inspect = self.inspect(container).await?;
        let (address, probe) = self
            .addresses(&inspect, container_port(spec))
            .ok_or_else(|| {
                RuntimeError::Other(format!("container {container} has no reachable address"))
            })?;
        Ok((address, probe, pid_of(&inspect)))
    }

    /// The last `tail` lines `container` wrote, oldest first.
    async fn container_logs(
        &self,
        container: &str,
        tail: usize,
    ) -> Result<Vec<LogLine>, RuntimeError> {
        let tail = tail.min(MAX_LOG_LINES);
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .tail(&tail.to_string())
            .build();
        let collect = async {
            let mut lines = Vec::new();
            let mut stream = self.inner.docker.logs(container, Some(options));
            while let Some(chunk) = stream.next().await {
                let (stream, bytes) = match chunk? {
                    bollard::container::LogOutput::StdErr { message } => {
                        (LogStream::Stderr, message)
                    }
                    bollard::container::LogOutput::StdOut { message }
                    | bollard::container::LogOutput::Console { message } => {
                        (LogStream::Stdout, message)
                    }
                    bollard::container::LogOutput::StdIn { .. } => continue,
                };
                let text = String::from_utf8_lossy(&bytes);
                lines.extend(text.lines().map(|line| LogLine {
                    stream,
                    line: line.to_owned(),
                }));
            }
            Ok::<_, EngineError>(lines)
        };
        let mut lines = within(ENGINE_TIMEOUT, "container logs", collect)
            .await
            .map_err(unavailable)?
            .map_err(engine_error)?;
        let excess = lines.len().saturating_sub(tail);
        lines.drain(..excess);
        Ok(lines)
    }
}

#[async_trait]
impl Runtime for DockerRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Docker
    }

    async fn start(&self, spec: &InstanceSpec) -> Result<StartedInstance, RuntimeError> {
        let image = spec.image.as_deref().ok_or_else(|| {
            RuntimeError::Unsupported(
                "the Docker runtime runs images; this service has a command and no image".into(),
            )
        })?;
        if lock(&self.inner.instances).contains_key(&spec.id) {
            return Err(RuntimeError::AlreadyExists(spec.id));
        }
        let container = Self::container_name(spec.id);
        let started = async {
            let (address, probe, pid) = self.create_and_start(spec, image, &container).await?;
            self.wait_ready(&container, probe, address, spec.startup_timeout)
                .await?;
            Ok::<_, RuntimeError>((address, pid))
        };
        match started.await {
            Ok((address, pid)) => {
                lock(&self.inner.instances).insert(
                    spec.id,
                    Known {
                        container,
                        service: spec.service.clone(),
                        address,
                        pid,
                    },
                );
                Ok(StartedInstance { address, pid })
            }
            Err(RuntimeError::AlreadyExists(id)) => Err(RuntimeError::AlreadyExists(id)),
            Err(error) => {
                // Leave nothing behind: the start can be retried with the same id.
                self.remove(&container).await;
                Err(error)
            }
        }
    }

    async fn stop(&self, id: InstanceId, grace: Duration) -> Result<ExitStatus, RuntimeError> {
        let known = lock(&self.inner.instances)
            .get(&id)
            .cloned()
            .ok_or(RuntimeError::NotFound(id))?;
        let seconds = i32::try_from(grace.as_secs() + u64::from(grace.subsec_nanos() > 0))
            .unwrap_or(i32::MAX);
        let options = StopContainerOptionsBuilder::new().t(seconds).build();
        let stopped = within(
            grace + ENGINE_TIMEOUT,
            "container stop",
            self.inner
                .docker
                .stop_container(&known.container, Some(options)),
        )
        .await
        .map_err(unavailable)?;
        match stopped {
            // 304: it had already exited.
            Ok(())
            | Err(EngineError::DockerResponseServerError {
                status_code: 304, ..
            }) => {}
            Err(EngineError::DockerResponseServerError {
                status_code: 404, ..
            }) => {
                lock(&self.inner.instances).remove(&id);
                return Err(RuntimeError::NotFound(id));
            }
            Err(error) => return Err(engine_error(error)),
        }
        let state = self.inspect(&known.container).await?.state;
        let status = state.as_ref().map(exit_status_of).unwrap_or_default();
        self.remove(&known.container).await;
        lock(&self.inner.instances).remove(&id);
        Ok(status)
    }

    async fn list(&self) -> Result<Vec<RuntimeInstance>, RuntimeError> {
        let options = ListContainersOptionsBuilder::new()
            .filters(&labels::worker_filter(&self.inner.config.worker))
            .build();
        let running = within(
            ENGINE_TIMEOUT,
            "container list",
            self.inner.docker.list_containers(Some(options)),
        )
        .await
        .map_err(unavailable)?
        .map_err(engine_error)?;
        let instances = lock(&self.inner.instances);
        Ok(running
            .iter()
            .filter_map(|summary| {
                let id: InstanceId = summary.labels.as_ref()?.get(INSTANCE_LABEL)?.parse().ok()?;
                let known = instances.get(&id)?;
                Some(RuntimeInstance {
                    id,
                    service: known.service.clone(),
                    address: known.address,
                    pid: known.pid,
                })
            })
            .collect())
    }

    async fn logs(&self, id: InstanceId, tail: usize) -> Result<Vec<LogLine>, RuntimeError> {
        let container = lock(&self.inner.instances)
            .get(&id)
            .map(|known| known.container.clone())
            .ok_or(RuntimeError::NotFound(id))?;
        self.container_logs(&container, tail).await
    }

    fn subscribe(&self) -> broadcast::Receiver<RuntimeEvent> {
        self.inner.events.subscribe()
    }

    /// The engine's one-shot stats of the instance's container (CPU time, memory without
    /// inactive file pages) and its cgroup v2 `cpu.pressure` where that can be read.
    async fn usage(&self, id: InstanceId) -> Result<UsageSample, RuntimeError> {
        let (container, pid) = lock(&self.inner.instances)
            .get(&id)
            .map(|known| (known.container.clone(), known.pid))
            .ok_or(RuntimeError::NotFound(id))?;
        container_usage::container_usage(&self.inner.docker, &container, pid).await
    }
}

/// Removes `container` and its anonymous volumes whatever its state; one already gone counts
/// as removed.
pub(crate) async fn force_remove(docker: &Docker, container: &str) -> Result<(), DockerError> {
    let options = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    let removed = within(
        ENGINE_TIMEOUT,
        "container remove",
        docker.remove_container(container, Some(options)),
    )
    .await?;
    match removed {
        Ok(()) => Ok(()),
        gone if is_not_found(&gone) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Whether an engine answer is a 404 (for a create: no such image).
fn is_not_found<T>(result: &Result<T, EngineError>) -> bool {
    matches!(
        result,
        Err(EngineError::DockerResponseServerError {
            status_code: 404,
            ..
        })
    )
}

/// The container's main process id, if it runs.
fn pid_of(inspect: &ContainerInspectResponse) -> Option<u32> {
    inspect
        .state
        .as_ref()?
        .pid
        .and_then(|pid| u32::try_from(pid).ok())
        .filter(|&pid| pid > 0)
}

/// An engine error as a runtime error.
fn engine_error(error: EngineError) -> RuntimeError {
    match error {
        EngineError::DockerResponseServerError {
            status_code,
            message,
        } => RuntimeError::Other(format!("Docker engine answered {status_code}: {message}")),
        other => RuntimeError::Unavailable(other.to_string()),
    }
}

/// An engine that did not answer in time.
fn unavailable(error: DockerError) -> RuntimeError {
    RuntimeError::Unavailable(error.to_string())
}
