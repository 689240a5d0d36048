//! Fake workers and a fake balancer for controller tests: they stand in for the transport
//! only; the HTTP path is exercised end to end by the umbrella crate's cluster tests.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::time::Instant;
use tucano_core::controller::{
    Controller, ControllerConfig, ControllerError, ControllerHandle, ControllerParts,
};
use tucano_core::scheduler::Pipeline;
use tucano_core::store::MemoryStore;
use tucano_core::transport::{
    Endpoint, EndpointSink, RouteSpec, TransportError, WorkerAddress, WorkerTransport,
};
use tucano_core::wire::{
    Heartbeat, InstanceReport, LocalState, Registration, ReportedInstance, ServiceView, StartReply,
    StopReply,
};
use tucano_core::{
    BootId, ExitStatus, InstanceId, InstanceSpec, InstanceState, Resources, RuntimeKind,
    ServiceName, ServiceSpec, WorkerId,
};

#[derive(Default)]
pub struct FakeWorkers {
    pub boots: Mutex<HashMap<WorkerId, BootId>>,
    pub running: Mutex<HashMap<InstanceId, (WorkerId, ServiceName)>>,
    /// Every start asked for: worker, instance, and when (the test's clock).
    pub starts: Mutex<Vec<(WorkerId, InstanceId)>>,
    pub start_times: Mutex<Vec<Instant>>,
    /// The program of each instance started.
    pub programs: Mutex<HashMap<InstanceId, String>>,
    pub stops: Mutex<Vec<(WorkerId, InstanceId)>>,
    /// Workers whose starts fail.
    pub failing: Mutex<HashSet<WorkerId>>,
    /// A program whose starts fail on every worker.
    pub broken_program: Mutex<Option<String>>,
    pub generation: AtomicU64,
    pub port: AtomicU16,
}

#[async_trait]
impl WorkerTransport for FakeWorkers {
    async fn start_instance(
        &self,
        worker: &WorkerAddress,
        spec: &InstanceSpec,
    ) -> Result<StartReply, TransportError> {
        self.starts
            .lock()
            .unwrap()
            .push((worker.id.clone(), spec.id));
        self.start_times.lock().unwrap().push(Instant::now());
        let program = spec.command.first().cloned().unwrap_or_default();
        self.programs
            .lock()
            .unwrap()
            .insert(spec.id, program.clone());
        if self.failing.lock().unwrap().contains(&worker.id)
            || self.broken_program.lock().unwrap().as_ref() == Some(&program)
        {
            return Err(TransportError::Rejected {
                code: "runtime_error".into(),
                message: "exited with code 1".into(),
            });
        }
        self.running
            .lock()
            .unwrap()
            .insert(spec.id, (worker.id.clone(), spec.service.clone()));
        let port = 20000 + self.port.fetch_add(1, Ordering::SeqCst);
        Ok(StartReply {
            instance: ReportedInstance {
                id: spec.id,
                service: spec.service.clone(),
                state: LocalState::Running,
                address: Some(SocketAddr::from(([127, 0, 0, 1], port))),
                pid: None,
                exit: None,
                reason: None,
                usage: None,
            },
            boot_id: self.boot(&worker.id),
            generation: self.generation.fetch_add(1, Ordering::SeqCst) + 1,
        })
    }

    async fn stop_instance(
        &self,
        worker: &WorkerAddress,
        id: InstanceId,
        _grace: Duration,
    ) -> Result<StopReply, TransportError> {
        self.stops.lock().unwrap().push((worker.id.clone(), id));
        match self.running.lock().unwrap().remove(&id) {
            Some(_) => Ok(StopReply {
                exit: Some(ExitStatus {
                    code: None,
                    signal: Some(15),
                    oom_killed: false,
                }),
            }),
            None => Err(TransportError::NotFound(id.to_string())),
        }
    }
}

impl FakeWorkers {
    pub fn boot(&self, worker: &WorkerId) -> BootId {
        *self
            .boots
            .lock()
            .unwrap()
            .entry(worker.clone())
            .or_default()
    }

    pub fn report(&self, worker: &WorkerId) -> InstanceReport {
        let instances = self
            .running
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, (w, _))| w == worker)
            .map(|(id, (_, service))| ReportedInstance {
                id: *id,
                service: service.clone(),
                state: LocalState::Running,
                address: None,
                pid: None,
                exit: None,
                reason: None,
                usage: None,
            })
            .collect();
        InstanceReport {
            boot_id: self.boot(worker),
            generation: self.generation.load(Ordering::SeqCst),
            instances,
        }
    }
}

/// The balancer's view: each service's endpoints, and every count ever published.
#[derive(Default)]
pub struct Routes {
    current: Mutex<HashMap<ServiceName, Vec<Endpoint>>>,
    published: Mutex<Vec<(ServiceName, usize)>>,
}

impl EndpointSink for Routes {
    fn publish(&self, service: &ServiceName, _: &RouteSpec, endpoints: Vec<Endpoint>) {
        self.published
            .lock()
            .unwrap()
            .push((service.clone(), endpoints.len()));
        self.current
            .lock()
            .unwrap()
            .insert(service.clone(), endpoints);
    }
    fn remove(&self, service: &ServiceName) {
        self.current.lock().unwrap().remove(service);
    }
}

impl Routes {
    pub fn count(&self, service: &str) -> usize {
        self.current
            .lock()
            .unwrap()
            .get(&service.parse::<ServiceName>().unwrap())
            .map_or(0, Vec::len)
    }

    /// The fewest endpoints published for `service` since the last call.
    pub fn fewest_since_last(&self, service: &str) -> Option<usize> {
        let service: ServiceName = service.parse().unwrap();
        let mut published = self.published.lock().unwrap();
        let fewest = published
            .iter()
            .filter(|(s, _)| *s == service)
            .map(|(_, n)| *n)
            .min();
        published.clear();
        fewest
    }
}

pub struct Harness {
    pub controller: ControllerHandle,
    pub workers: Arc<FakeWorkers>,
    pub routes: Arc<Routes>,
    pub store: Arc<MemoryStore>,
}

pub fn config() -> ControllerConfig {
    ControllerConfig {
        liveness_timeout: Duration::from_secs(3),
        tick: Duration::from_millis(50),
        ..ControllerConfig::default()
    }
}

pub async fn harness_with(config: ControllerConfig, store: Arc<MemoryStore>) -> Harness {
    let workers = Arc::new(FakeWorkers::default());
    let routes = Arc::new(Routes::default());
    let parts = ControllerParts {
        scheduler: Arc::new(Pipeline::default()),
        workers: workers.clone(),
        store: store.clone(),
        endpoints: routes.clone(),
    };
    let controller = Controller::start(config, parts).await.unwrap();
    Harness {
        controller,
        workers,
        routes,
        store,
    }
}

pub async fn harness() -> Harness {
    harness_with(config(), Arc::new(MemoryStore::new())).await
}

impl Harness {
    pub async fn register(&self, id: &str) -> WorkerId {
        self.register_with_labels(id, &[]).await
    }

    pub async fn register_with_labels(&self, id: &str, labels: &[(&str, &str)]) -> WorkerId {
        let id: WorkerId = id.parse().unwrap();
        self.controller
            .register_worker(Registration {
                id: id.clone(),
                address: format!("http://{id}.invalid"),
                proxy_address: "127.0.0.1:9".parse().unwrap(),
                runtime: RuntimeKind::Process,
                // Room for every instance the tests place (resource fit is tested with the
                // scheduler).
                capacity: Resources {
                    cpus: 64.0,
                    memory_mb: 65536,
                },
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                report: self.workers.report(&id),
            })
            .await
            .unwrap();
        id
    }

    pub async fn heartbeat(
        &self,
        id: &WorkerId,
        report: InstanceReport,
    ) -> Result<(), ControllerError> {
        self.controller
            .heartbeat(Heartbeat {
                id: id.clone(),
                sent_at: SystemTime::now(),
                metrics: None,
                report,
            })
            .await
    }

    /// Polls the service until `done` holds (paused time advances while we sleep).
    pub async fn wait_for(&self, name: &str, done: impl Fn(&ServiceView) -> bool) -> ServiceView {
        for _ in 0..400 {
            if let Ok(view) = self.controller.service(name).await
                && done(&view)
            {
                return view;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "{name} never reached the expected state: {:#?}",
            self.controller.service(name).await
        );
    }
}

pub fn spec(name: &str, replicas: u32) -> ServiceSpec {
    let mut spec = ServiceSpec::new(name.parse().unwrap(), vec!["/bin/demo".into()]);
    spec.replicas = replicas;
    spec
}

pub fn count(view: &ServiceView, state: InstanceState) -> usize {
    view.instances.iter().filter(|i| i.state == state).count()
}

pub fn running_on(view: &ServiceView) -> HashMap<String, usize> {
    let mut on = HashMap::new();
    for instance in view
        .instances
        .iter()
        .filter(|i| i.state == InstanceState::Running)
    {
        if let Some(worker) = &instance.worker {
            *on.entry(worker.to_string()).or_default() += 1;
        }
    }
    on
}

/// `report` with instance `id` exited with `code`.
pub fn with_exit(mut report: InstanceReport, id: InstanceId, code: i32) -> InstanceReport {
    for instance in &mut report.instances {
        if instance.id == id {
            instance.state = LocalState::Exited;
            instance.exit = Some(ExitStatus {
                code: Some(code),
                signal: None,
                oom_killed: false,
            });
        }
    }
    report
}
