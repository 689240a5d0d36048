//! Worker engine logic against a scripted runtime: races between starts, stops, exits and
//! callers that go away. The runtime is a fake so each race can be forced, not hoped for.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::sync::{Semaphore, broadcast};
use tucano_core::transport::{ControllerTransport, TransportError};
use tucano_core::wire::{Heartbeat, LocalState, LogLine, Registration, RegistrationReply};
use tucano_core::worker::{Worker, WorkerConfig, WorkerError, WorkerParts};
use tucano_core::{
    ExitStatus, InstanceId, InstanceSpec, MetricsError, MetricsSource, NodeMetrics, Runtime,
    RuntimeError, RuntimeEvent, RuntimeInstance, RuntimeKind, ServiceSpec, StartedInstance,
};

/// Starts wait for a permit; stops of instances it has not started yet are `NotFound`.
struct ScriptedRuntime {
    gate: Semaphore,
    started: Mutex<HashSet<InstanceId>>,
    stops: Mutex<Vec<InstanceId>>,
    exit_before_ready: AtomicBool,
    events: broadcast::Sender<RuntimeEvent>,
}

impl ScriptedRuntime {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            gate: Semaphore::new(0),
            started: Mutex::new(HashSet::new()),
            stops: Mutex::new(Vec::new()),
            exit_before_ready: AtomicBool::new(false),
            events: broadcast::channel(16).0,
        })
    }
}

#[async_trait]
impl Runtime for ScriptedRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Process
    }
    async fn start(&self, spec: &InstanceSpec) -> Result<StartedInstance, RuntimeError> {
        self.gate
            .acquire()
            .await
            .map_err(|_| RuntimeError::Unavailable("closed".into()))?
            .forget();
        self.started.lock().unwrap().insert(spec.id);
        if self.exit_before_ready.load(Ordering::SeqCst) {
            let status = ExitStatus {
                code: Some(9),
                signal: None,
                oom_killed: false,
            };
            let _ = self.events.send(RuntimeEvent::Exited {
                instance: spec.id,
                status,
            });
            // Let the worker's event listener see the exit before the start returns.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Ok(StartedInstance {
            address: SocketAddr::from(([127, 0, 0, 1], 20001)),
            pid: None,
        })
    }
    async fn stop(&self, id: InstanceId, _grace: Duration) -> Result<ExitStatus, RuntimeError> {
        self.stops.lock().unwrap().push(id);
        if self.started.lock().unwrap().remove(&id) {
            Ok(ExitStatus {
                code: None,
                signal: Some(15),
                oom_killed: false,
            })
        } else {
            Err(RuntimeError::NotFound(id))
        }
    }
    async fn list(&self) -> Result<Vec<RuntimeInstance>, RuntimeError> {
        Ok(Vec::new())
    }
    async fn logs(&self, id: InstanceId, _tail: usize) -> Result<Vec<LogLine>, RuntimeError> {
        Err(RuntimeError::NotFound(id))
    }
    fn subscribe(&self) -> broadcast::Receiver<RuntimeEvent> {
        self.events.subscribe()
    }
}

struct NoMetrics;
#[async_trait]
impl MetricsSource for NoMetrics {
    async fn sample(&self) -> Result<NodeMetrics, MetricsError> {
        Ok(NodeMetrics {
            taken_at: SystemTime::now(),
            cpu_usage: 0.0,
            cpu_count: 1,
            memory_used_bytes: 0,
            memory_total_bytes: 1 << 30,
            network_rx_bytes: 0,
            network_tx_bytes: 0,
            disk_used_bytes: 0,
            disk_total_bytes: 0,
            cpu_pressure: None,
        })
    }
}

struct NoController;
#[async_trait]
impl ControllerTransport for NoController {
    async fn register(&self, _: &Registration) -> Result<RegistrationReply, TransportError> {
        Err(TransportError::Unreachable("not in this test".into()))
    }
    async fn heartbeat(&self, _: &Heartbeat) -> Result<(), TransportError> {
        Err(TransportError::Unreachable("not in this test".into()))
    }
    async fn deregister(&self, _: &tucano_core::WorkerId) -> Result<(), TransportError> {
        Ok(())
    }
}

async fn worker(runtime: Arc<ScriptedRuntime>) -> Worker {
    let config = WorkerConfig::new(
        "w1".parse().unwrap(),
        "http://127.0.0.1:1".into(),
        "127.0.0.1:2".parse().unwrap(),
    );
    let parts = WorkerParts {
        runtime,
        metrics: Arc::new(NoMetrics),
        controller: Arc::new(NoController),
    };
    Worker::new(config, parts).await.unwrap()
}

fn spec() -> InstanceSpec {
    ServiceSpec::new("web".parse().unwrap(), vec!["/bin/web".into()]).instance(InstanceId::new())
}

/// Waits (bounded) until the worker lists `id` in `state`.
async fn wait_listed(worker: &Worker, id: InstanceId, state: LocalState) {
    for _ in 0..500 {
        if worker
            .report()
            .instances
            .iter()
            .any(|i| i.id == id && i.state == state)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{id} never became {state:?}: {:?}", worker.report());
}

#[tokio::test]
async fn a_stop_during_a_start_leaves_no_process_behind() {
    let runtime = ScriptedRuntime::new();
    let worker = worker(runtime.clone()).await;
    let spec = spec();
    let starting = tokio::spawn({
        let worker = worker.clone();
        let spec = spec.clone();
        async move { worker.start_instance(spec).await }
    });
    wait_listed(&worker, spec.id, LocalState::Starting).await;
    // The stop arrives before the runtime has the instance: it answers NotFound.
    let stopped = worker.stop_instance(spec.id, None).await.unwrap();
    assert_eq!(stopped.exit, None);
    runtime.gate.add_permits(1);
    let started = starting.await.unwrap();
    assert!(
        matches!(started, Err(WorkerError::Conflict { .. })),
        "{started:?}"
    );
    // The process the start made was stopped too, and nothing is listed.
    assert_eq!(
        runtime.stops.lock().unwrap().as_slice(),
        &[spec.id, spec.id]
    );
    assert!(runtime.started.lock().unwrap().is_empty());
    assert!(worker.report().instances.is_empty());
}

#[tokio::test]
async fn a_caller_that_goes_away_does_not_cancel_a_start() {
    let runtime = ScriptedRuntime::new();
    let worker = worker(runtime.clone()).await;
    let spec = spec();
    let caller = tokio::spawn({
        let worker = worker.clone();
        let spec = spec.clone();
        async move { worker.start_instance(spec).await }
    });
    wait_listed(&worker, spec.id, LocalState::Starting).await;
    caller.abort();
    runtime.gate.add_permits(1);
    wait_listed(&worker, spec.id, LocalState::Running).await;
    let report = worker.report();
    assert_eq!(report.instances.len(), 1);
    assert_eq!(report.instances[0].state, LocalState::Running);
    // Asking again answers with the running instance instead of starting it twice.
    let again = worker.start_instance(spec.clone()).await.unwrap();
    assert_eq!(again.instance.id, spec.id);
    assert_eq!(runtime.started.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn an_exit_just_before_the_start_returns_is_not_lost() {
    let runtime = ScriptedRuntime::new();
    runtime.exit_before_ready.store(true, Ordering::SeqCst);
    runtime.gate.add_permits(1);
    let worker = worker(runtime.clone()).await;
    let result = worker.start_instance(spec()).await;
    assert!(
        matches!(result, Err(WorkerError::Runtime(RuntimeError::ExitedDuringStartup { status, .. })) if status.code == Some(9)),
        "{result:?}"
    );
    assert!(
        worker.report().instances.is_empty(),
        "not listed as running"
    );
}
