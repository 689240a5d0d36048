//! How many worker heartbeats per second the controller absorbs, per cluster size.
//!
//! ```text
//! cargo bench -p tucano-core --bench heartbeat
//! TUCANO_BENCH_HEARTBEAT_FULL=1 cargo bench -p tucano-core --bench heartbeat -- ingest_restored
//! ```
//!
//! - `heartbeat/ingest/<workers>`: heartbeats sent round robin over `workers` (100, 1000,
//!   10000) workers through [`ControllerHandle::heartbeat`], by [`SENDERS`] concurrent tasks
//!   (as an HTTP server's handlers would) on a two-thread Tokio runtime. Each heartbeat lists
//!   every instance its worker runs, with node metrics: 10 instances per worker at 100 and
//!   1 000 workers, 1 at 10 000 (see [`deployed`] for why). Criterion's throughput is
//!   heartbeats per second.
//! - `heartbeat/ingest_restored/<workers>` (1000, 10000, only with
//!   `TUCANO_BENCH_HEARTBEAT_FULL` set): the same with 10 instances per worker, on a
//!   controller that restored its instances from the store instead of deploying them (see
//!   [`restored`]); the 10 000-worker setup takes about 11 minutes on two cores.
//!
//! What is timed is the handle's channel and the engine: matching each reported instance with
//! the controller's record, looking for vanished ones, and whatever else the engine's task
//! does meanwhile (its 100 ms tick with a reconcile pass, writing behind to the store). No
//! HTTP, no JSON: each heartbeat is a clone of a prepared one, as a server would deserialize.
//! Setup is outside the timing. The controller is a real one (default `Pipeline`,
//! `MemoryStore`, a no-op balancer) with a liveness timeout of an hour, so no worker expires;
//! each worker offers room for exactly the instances it runs, and after each size the bench
//! checks that every instance still runs.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use tucano_core::controller::{Controller, ControllerConfig, ControllerHandle, ControllerParts};
use tucano_core::scheduler::Pipeline;
use tucano_core::store::{MemoryStore, Store, StoreOp, StoredService, StoredState};
use tucano_core::transport::{
    Endpoint, EndpointSink, RouteSpec, TransportError, WorkerAddress, WorkerTransport,
};
use tucano_core::wire::{
    Heartbeat, InstanceReport, InstanceView, LocalState, Registration, ReportedInstance,
    StartReply, StopReply, WorkerState, WorkerView,
};
use tucano_core::{
    BootId, FIRST_REVISION, InstanceId, InstanceSpec, InstanceState, MAX_REPLICAS, NodeMetrics,
    Resources, RuntimeKind, ServiceName, ServiceSpec, WorkerId,
};

/// Workers, and running instances on each.
const SIZES: [(usize, usize); 3] = [(100, 10), (1000, 10), (10_000, 1)];

/// Sizes of `ingest_restored`.
const RESTORED_SIZES: [(usize, usize); 2] = [(1000, 10), (10_000, 10)];

/// Heartbeats in flight at once.
const SENDERS: usize = 32;

/// What each instance asks for.
const INSTANCE: Resources = Resources {
    cpus: 0.5,
    memory_mb: 512,
};

/// A cluster to send heartbeats to.
struct Cluster {
    controller: ControllerHandle,
    /// One per worker, listing what the worker runs.
    heartbeats: Arc<Vec<Heartbeat>>,
    instances: usize,
}

/// Workers that run every instance they are asked to start (answering at once with a running
/// instance) and remember what they run. Nothing is stopped during the bench: a stop fails.
struct FakeWorkers {
    boots: HashMap<WorkerId, BootId>,
    running: Mutex<HashMap<WorkerId, Vec<ReportedInstance>>>,
    next: AtomicU32,
}

impl FakeWorkers {
    fn new(workers: &[WorkerId]) -> Self {
        Self {
            boots: workers
                .iter()
                .map(|id| (id.clone(), BootId::new()))
                .collect(),
            running: Mutex::new(HashMap::new()),
            next: AtomicU32::new(0),
        }
    }

    fn registration(&self, id: &WorkerId, capacity: Resources) -> Registration {
        Registration {
            id: id.clone(),
            address: format!("http://{id}.invalid:7000"),
            proxy_address: "10.255.0.1:7001".parse().expect("an address"),
            runtime: RuntimeKind::Process,
            capacity,
            labels: labels(),
            report: self.report(id),
        }
    }

    fn report(&self, id: &WorkerId) -> InstanceReport {
        let instances = self
            .running
            .lock()
            .expect("fake worker table")
            .get(id)
            .cloned()
            .unwrap_or_default();
        InstanceReport {
            boot_id: self.boots[id],
            generation: instances.len() as u64,
            instances,
        }
    }

    /// One heartbeat per worker of `workers`, listing exactly `per_worker` instances.
    fn heartbeats(&self, workers: &[WorkerId], per_worker: usize) -> Arc<Vec<Heartbeat>> {
        let heartbeats = workers
            .iter()
            .map(|id| {
                let report = self.report(id);
                assert_eq!(report.instances.len(), per_worker, "instances on {id}");
                Heartbeat {
                    id: id.clone(),
                    sent_at: SystemTime::now(),
                    metrics: Some(metrics()),
                    report,
                }
            })
            .collect();
        Arc::new(heartbeats)
    }
}

/// The `i`-th instance's address and pid, as a worker would report them.
fn reported(i: u32, id: InstanceId, service: ServiceName) -> ReportedInstance {
    ReportedInstance {
        id,
        service,
        state: LocalState::Running,
        address: Some(SocketAddr::from((
            [10, (i >> 16) as u8, (i >> 8) as u8, i as u8],
            8080,
        ))),
        pid: Some(1000 + i),
        exit: None,
        reason: None,
        usage: None,
    }
}

#[async_trait]
impl WorkerTransport for FakeWorkers {
    async fn start_instance(
        &self,
        worker: &WorkerAddress,
        spec: &InstanceSpec,
    ) -> Result<StartReply, TransportError> {
        let boot_id = *self
            .boots
            .get(&worker.id)
            .ok_or_else(|| TransportError::NotFound(worker.id.to_string()))?;
        let instance = reported(
            self.next.fetch_add(1, Ordering::Relaxed),
            spec.id,
            spec.service.clone(),
        );
        let mut running = self.running.lock().expect("fake worker table");
        let table = running.entry(worker.id.clone()).or_default();
        table.push(instance.clone());
        Ok(StartReply {
            instance,
            boot_id,
            generation: table.len() as u64,
        })
    }

    async fn stop_instance(
        &self,
        _: &WorkerAddress,
        id: InstanceId,
        _: Duration,
    ) -> Result<StopReply, TransportError> {
        Err(TransportError::Rejected {
            code: "bench".into(),
            message: format!("unexpected stop of {id}"),
        })
    }
}

/// A balancer that ignores its routes.
struct NoBalancer;

impl EndpointSink for NoBalancer {
    fn publish(&self, _: &ServiceName, _: &RouteSpec, _: Vec<Endpoint>) {}
    fn remove(&self, _: &ServiceName) {}
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime")
}

fn metrics() -> NodeMetrics {
    NodeMetrics {
        taken_at: SystemTime::now(),
        cpu_usage: 0.42,
        cpu_count: 8,
        memory_used_bytes: 12 << 30,
        memory_total_bytes: 32 << 30,
        network_rx_bytes: 123_456_789,
        network_tx_bytes: 98_765_432,
        disk_used_bytes: 40 << 30,
        disk_total_bytes: 200 << 30,
        cpu_pressure: Some(0.05),
    }
}

fn labels() -> BTreeMap<String, String> {
    [("zone".to_owned(), "a".to_owned())].into()
}

fn worker_ids(n: usize) -> Vec<WorkerId> {
    (0..n)
        .map(|i| format!("w{i}").parse().expect("a worker id"))
        .collect()
}

/// Room for exactly `per_worker` instances, so that placement fills every worker.
fn capacity(per_worker: usize) -> Resources {
    Resources {
        cpus: INSTANCE.cpus * per_worker as f64,
        memory_mb: INSTANCE.memory_mb * per_worker as u64,
    }
}

/// Names of services of up to 1 000 replicas for `total` instances.
fn service_names(total: usize) -> Vec<ServiceName> {
    (0..total.div_ceil(MAX_REPLICAS as usize))
        .map(|k| format!("svc{k}").parse().expect("a service name"))
        .collect()
}

fn service_spec(name: &ServiceName, replicas: usize) -> ServiceSpec {
    let mut spec = ServiceSpec::new(name.clone(), vec!["/bin/demo".into()]);
    spec.replicas = replicas as u32;
    spec.resources = INSTANCE;
    spec
}

async fn start(workers: Arc<FakeWorkers>, store: Arc<MemoryStore>) -> ControllerHandle {
    let config = ControllerConfig {
        liveness_timeout: Duration::from_secs(3600),
        ..ControllerConfig::default()
    };
    let parts = ControllerParts {
        scheduler: Arc::new(Pipeline::default()),
        workers,
        store,
        endpoints: Arc::new(NoBalancer),
    };
    Controller::start(config, parts)
        .await
        .expect("the controller starts")
}

/// `n` workers register, then services of up to 1 000 replicas are created until every
/// worker runs `per_worker` instances, each placed by the controller and started by
/// [`FakeWorkers`].
///
/// The controller runs a whole reconcile pass after every message that changes an instance,
/// here after every start answer, and a pass costs time in proportion to instances and
/// workers: 1 000 × 10 takes ~15 s to deploy; 10 000 × 10 would take hours, hence 10 000 × 1
/// (~3 minutes).
async fn deployed(n: usize, per_worker: usize) -> Cluster {
    let ids = worker_ids(n);
    let workers = Arc::new(FakeWorkers::new(&ids));
    let controller = start(workers.clone(), Arc::new(MemoryStore::new())).await;
    for id in &ids {
        controller
            .register_worker(workers.registration(id, capacity(per_worker)))
            .await
            .expect("the worker registers");
    }
    let total = n * per_worker;
    for (k, name) in service_names(total).iter().enumerate() {
        let replicas = (total - k * MAX_REPLICAS as usize).min(MAX_REPLICAS as usize);
        controller
            .create_service(service_spec(name, replicas))
            .await
            .expect("the service is placed");
    }
    let started = Instant::now();
    while running(&controller).await < total {
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "instances still starting after 15 minutes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Cluster {
        controller,
        heartbeats: workers.heartbeats(&ids, per_worker),
        instances: total,
    }
}

/// A controller that starts from a store holding `n` workers with `per_worker` running
/// instances each (as after a controller restart), then every worker registers again with
/// what it runs. Instance `i` runs on worker `i % n`, so a worker's instances belong to
/// several services once there are several.
///
/// Much faster to set up than [`deployed`] (a reconcile pass per registration rather than per
/// instance), but the controller's records are allocated in one go, in order, where a
/// controller that deployed them has them spread over its heap.
async fn restored(n: usize, per_worker: usize) -> Cluster {
    let now = SystemTime::now();
    let ids = worker_ids(n);
    let workers = Arc::new(FakeWorkers::new(&ids));
    let total = n * per_worker;
    let services = service_names(total);
    let per_service = MAX_REPLICAS as usize;
    let mut instances = Vec::with_capacity(total);
    {
        let mut running = workers.running.lock().expect("fake worker table");
        for i in 0..total {
            let (id, service, worker) =
                (InstanceId::new(), &services[i / per_service], &ids[i % n]);
            let report = reported(i as u32, id, service.clone());
            instances.push(InstanceView {
                id,
                service: service.clone(),
                state: InstanceState::Running,
                revision: FIRST_REVISION,
                worker: Some(worker.clone()),
                address: report.address,
                start_attempts: 1,
                reason: None,
                exit: None,
                created_at: now,
                updated_at: now,
                usage: None,
            });
            running.entry(worker.clone()).or_default().push(report);
        }
    }
    let stored = StoredState {
        services: services
            .iter()
            .enumerate()
            .map(|(k, name)| {
                StoredService::new(
                    service_spec(name, per_service.min(total - k * per_service)),
                    now,
                )
            })
            .collect(),
        instances,
        workers: ids
            .iter()
            .map(|id| {
                let registration = workers.registration(id, capacity(per_worker));
                WorkerView {
                    id: id.clone(),
                    address: registration.address,
                    proxy_address: registration.proxy_address,
                    runtime: registration.runtime,
                    capacity: registration.capacity,
                    labels: registration.labels,
                    boot_id: registration.report.boot_id,
                    state: WorkerState::Alive,
                    registered_at: now,
                    last_heartbeat_at: now,
                    metrics: Some(metrics()),
                    instances: per_worker as u32,
                }
            })
            .collect(),
    };
    let store = Arc::new(MemoryStore::new());
    store
        .apply(vec![StoreOp::ReplaceAll(stored)])
        .await
        .expect("the store takes the state");
    let controller = start(workers.clone(), store).await;
    for id in &ids {
        controller
            .register_worker(workers.registration(id, capacity(per_worker)))
            .await
            .expect("the worker registers");
    }
    Cluster {
        controller,
        heartbeats: workers.heartbeats(&ids, per_worker),
        instances: total,
    }
}

/// Running instances; panics if any instance is in another state.
async fn running(controller: &ControllerHandle) -> usize {
    let services = controller.list_services().await.expect("the services");
    let mut running = 0;
    for instance in services.iter().flat_map(|s| &s.instances) {
        match instance.state {
            InstanceState::Running => running += 1,
            InstanceState::Pending | InstanceState::Deploying => {}
            state => panic!("instance {} is {state}", instance.id),
        }
    }
    running
}

/// Sends `count` heartbeats round robin from `first` on, [`SENDERS`] at a time; returns how
/// long they took.
async fn send(cluster: &Cluster, first: u64, count: u64) -> Duration {
    let start = Instant::now();
    let senders: Vec<_> = (0..SENDERS as u64)
        .map(|sender| {
            let controller = cluster.controller.clone();
            let heartbeats = cluster.heartbeats.clone();
            tokio::spawn(async move {
                let n = heartbeats.len() as u64;
                let mut i = sender;
                while i < count {
                    let heartbeat = heartbeats[((first + i) % n) as usize].clone();
                    controller
                        .heartbeat(heartbeat)
                        .await
                        .expect("the heartbeat is accepted");
                    i += SENDERS as u64;
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.expect("a sender task");
    }
    start.elapsed()
}

/// Benchmarks `sizes` in `group`, each on a cluster that `setup` builds on first use (so
/// that a filter that skips a size skips its setup too).
fn ingest_group<F: Future<Output = Cluster>>(
    c: &mut Criterion,
    rt: &Runtime,
    group: &str,
    sizes: &[(usize, usize)],
    setup: fn(usize, usize) -> F,
) {
    let mut group = c.benchmark_group(group);
    group.throughput(Throughput::Elements(1));
    for &(n, per_worker) in sizes {
        let mut cluster: Option<Cluster> = None;
        let mut next = 0u64;
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            let cluster = cluster.get_or_insert_with(|| {
                let started = Instant::now();
                let cluster = rt.block_on(setup(n, per_worker));
                eprintln!(
                    "{n} workers × {per_worker} running instances, set up in {:.1?}",
                    started.elapsed()
                );
                cluster
            });
            b.iter_custom(|iters| {
                let elapsed = rt.block_on(send(cluster, next, iters));
                next = next.wrapping_add(iters);
                elapsed
            });
        });
        if let Some(cluster) = cluster {
            // The heartbeats changed nothing: no instance lost, stopped or replaced.
            assert_eq!(rt.block_on(running(&cluster.controller)), cluster.instances);
            rt.block_on(cluster.controller.shutdown());
        }
    }
    group.finish();
}

fn ingest(c: &mut Criterion) {
    let rt = runtime();
    ingest_group(c, &rt, "heartbeat/ingest", &SIZES, deployed);
    if std::env::var_os("TUCANO_BENCH_HEARTBEAT_FULL").is_some() {
        ingest_group(
            c,
            &rt,
            "heartbeat/ingest_restored",
            &RESTORED_SIZES,
            restored,
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));
    targets = ingest
}
criterion_main!(benches);
