//! A real cluster on loopback: controller node (API + balancer), two worker nodes, the
//! process runtime running the `tucano-demo` binary, and HTTP everywhere in between.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tucano::core::controller::DeleteOutcome;
use tucano::core::transport::{
    ControllerTransport, Endpoint, EndpointSink, RouteSpec, TransportError,
};
use tucano::core::wire::{Heartbeat, Registration, RegistrationReply};
use tucano::core::{InstanceId, InstanceState, WorkerId};
use tucano::http::{ControllerClient, WorkerClient};
use tucano::{ControllerNode, ControllerNodeConfig, WorkerNode, WorkerNodeConfig};

mod support;
use support::{Cluster, LIVENESS, demo_spec, running, workers_of};

/// A controller transport whose link can be cut, as a network partition would.
struct Partition {
    inner: ControllerClient,
    cut: AtomicBool,
}

impl Partition {
    fn check(&self) -> Result<(), TransportError> {
        if self.cut.load(Ordering::SeqCst) {
            Err(TransportError::Unreachable("partitioned".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl ControllerTransport for Partition {
    async fn register(
        &self,
        registration: &Registration,
    ) -> Result<RegistrationReply, TransportError> {
        self.check()?;
        self.inner.register(registration).await
    }
    async fn heartbeat(&self, heartbeat: &Heartbeat) -> Result<(), TransportError> {
        self.check()?;
        self.inner.heartbeat(heartbeat).await
    }
    async fn deregister(&self, id: &WorkerId) -> Result<(), TransportError> {
        self.check()?;
        self.inner.deregister(id).await
    }
}

async fn cluster(workers: usize) -> Cluster<Partition> {
    Cluster::start(
        workers,
        |_| {},
        |inner| Partition {
            inner,
            cut: AtomicBool::new(false),
        },
    )
    .await
}

impl<T> Cluster<T> {
    /// Process ids of every instance the workers run, by instance.
    async fn pids(&self) -> HashMap<InstanceId, u32> {
        let client = WorkerClient::new().unwrap();
        let mut pids = HashMap::new();
        for worker in &self.workers {
            let report = client
                .instances(&format!("http://{}", worker.api_addr()))
                .await
                .unwrap();
            for instance in report.instances {
                if let Some(pid) = instance.pid {
                    pids.insert(instance.id, pid);
                }
            }
        }
        pids
    }
}

fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_balance_scale_and_delete() {
    let c = cluster(2).await;
    let created = c
        .client()
        .create_service(&demo_spec("hello", 3))
        .await
        .unwrap();
    assert_eq!(created.instances.len(), 3);
    let view = c.wait_running("hello", 3).await;
    assert_eq!(
        workers_of(&view).len(),
        2,
        "one deploy spreads over both workers"
    );
    assert!(view.instances.iter().all(|i| i.address.is_some()));

    // 30 requests reach all 3 instances, round robin.
    let seen = c.reaches("hello", 30, &running(&view)).await;
    assert!(seen.values().all(|&n| n == 10), "round robin: {seen:?}");

    // Scale to 5, then back to 2.
    let mut pids = c.pids().await;
    c.client().scale_service("hello", 5).await.unwrap();
    let view = c.wait_running("hello", 5).await;
    assert_eq!(c.instances_behind("hello", 50).await.len(), 5);
    pids.extend(c.pids().await);
    assert_eq!(pids.len(), 5);
    c.client().scale_service("hello", 2).await.unwrap();
    let view_after = c
        .wait_for("hello", Duration::from_secs(20), |v| {
            v.replicas.running == 2 && v.replicas.terminating == 0
        })
        .await;
    let kept: HashSet<String> = running(&view_after);
    assert!(
        kept.iter().all(|id| running(&view).contains(id)),
        "scale down keeps running instances"
    );
    c.reaches("hello", 20, &kept).await;
    let stopped: Vec<u32> = pids
        .iter()
        .filter(|(id, _)| !kept.contains(&id.to_string()))
        .map(|(_, pid)| *pid)
        .collect();
    assert_eq!(stopped.len(), 3);
    assert!(
        stopped.iter().all(|pid| is_dead(*pid)),
        "scaled-down processes are gone"
    );

    // Delete: every instance terminates, then the service is forgotten.
    match c.client().delete_service("hello").await.unwrap() {
        DeleteOutcome::Deleted(view) => {
            assert!(
                view.instances.iter().all(|i| i.state.is_final()),
                "{view:#?}"
            );
        }
        other => panic!("delete did not finish: {other:?}"),
    }
    for (id, pid) in &pids {
        assert!(
            is_dead(*pid),
            "instance {id} (pid {pid}) outlived its service"
        );
    }
    assert!(c.client().service("hello").await.is_err());
    assert_eq!(c.get("hello", "/").await.0, 404);
    assert!(c.pids().await.is_empty());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_stops_heartbeating_is_replaced() {
    let c = cluster(2).await;
    let view = c.deploy("hello", 4).await;
    let (a, b) = (
        c.workers[0].worker().id().clone(),
        c.workers[1].worker().id().clone(),
    );
    let on_b: HashSet<InstanceId> = view
        .instances
        .iter()
        .filter(|i| i.worker.as_ref() == Some(&b))
        .map(|i| i.id)
        .collect();
    assert!(!on_b.is_empty(), "{view:#?}");

    c.transports[1].cut.store(true, Ordering::SeqCst);
    let cut_at = Instant::now();
    let view = c
        .wait_for("hello", LIVENESS + Duration::from_secs(2), |v| {
            let lost = v
                .instances
                .iter()
                .filter(|i| on_b.contains(&i.id))
                .all(|i| i.state == InstanceState::Lost);
            let replaced = v
                .instances
                .iter()
                .filter(|i| i.state == InstanceState::Running)
                .all(|i| i.worker.as_ref() == Some(&a));
            lost && replaced && v.replicas.running == 4
        })
        .await;
    assert!(cut_at.elapsed() <= LIVENESS + Duration::from_secs(2));
    let workers = c.client().list_workers().await.unwrap();
    assert_eq!(
        workers.iter().find(|w| w.id == b).map(|w| w.state),
        Some(tucano::core::wire::WorkerState::Dead)
    );

    // The balancer only routes to the replacements.
    c.reaches("hello", 20, &running(&view)).await;

    // When the partition heals, the worker is alive again and stops its lost instances.
    c.transports[1].cut.store(false, Ordering::SeqCst);
    let client = WorkerClient::new().unwrap();
    let b_url = format!("http://{}", c.workers[1].api_addr());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !client.instances(&b_url).await.unwrap().instances.is_empty() {
        assert!(
            Instant::now() < deadline,
            "worker b kept its lost instances"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let workers = c.client().list_workers().await.unwrap();
    assert_eq!(
        workers.iter().find(|w| w.id == b).map(|w| w.state),
        Some(tucano::core::wire::WorkerState::Alive)
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_balancer_answers_bad_requests_with_json_errors() {
    let c = cluster(1).await;
    c.client()
        .create_service(&demo_spec("idle", 0))
        .await
        .unwrap();

    // No Host at all (HTTP/1.0 allows that) → 400.
    let mut stream = std::net::TcpStream::connect(c.controller.balancer_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.0 400") || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    assert!(answer.contains("\"code\":\"missing_host\""), "{answer}");

    let (status, body) = c.get("nobody", "/").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_service"))
    );
    let (status, body) = c.get("idle", "/").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("no_instance"))
    );

    // An endpoint whose worker proxy is gone → 502.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    c.controller.routes().publish(
        &"ghost".parse().unwrap(),
        &RouteSpec::default(),
        vec![Endpoint {
            instance: InstanceId::new(),
            worker: "gone".parse().unwrap(),
            proxy: closed,
            address: closed,
            weight: 1,
        }],
    );
    let (status, body) = c.get("ghost", "/").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("upstream_unavailable"))
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_resumes_from_sqlite_without_restarting_instances() {
    let dir = std::env::temp_dir().join(format!("tucano-restart-{}", InstanceId::new()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("controller.db");
    let any: SocketAddr = ([127, 0, 0, 1], 0).into();
    let node_config = |api, balancer| {
        let mut config = ControllerNodeConfig::new(api, balancer);
        config.controller.liveness_timeout = LIVENESS;
        config.state = tucano::StateStore::Sqlite(db.clone());
        config
    };
    let controller = ControllerNode::start(node_config(any, any)).await.unwrap();
    let (api, balancer) = (controller.api_addr(), controller.balancer_addr());
    let mut config = WorkerNodeConfig::new(controller.api_url(), any, any);
    config.heartbeat_interval = Duration::from_millis(200);
    let worker = WorkerNode::start(config).await.unwrap();
    let c: Cluster<Partition> = Cluster {
        controller,
        workers: vec![worker],
        transports: vec![],
        http: reqwest::Client::new(),
    };
    let before = c.deploy("hello", 2).await;
    let Cluster {
        controller,
        workers,
        http,
        ..
    } = c;
    // Stopping the controller writes what is pending; the worker keeps running.
    controller.shutdown().await;

    let controller = ControllerNode::start(node_config(api, balancer))
        .await
        .unwrap();
    let c: Cluster<Partition> = Cluster {
        controller,
        workers,
        transports: vec![],
        http,
    };
    let after = c
        .wait_for("hello", Duration::from_secs(10), |v| {
            v.replicas.running == 2
        })
        .await;
    assert_eq!(running(&after), running(&before));
    assert_eq!(after.instances.len(), 2, "nothing restarted: {after:#?}");
    assert_eq!(c.instances_behind("hello", 10).await.len(), 2);
    c.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_default_strategy_applies_unless_a_service_names_its_own() {
    let cluster = Cluster::start(
        3,
        |config| config.placement_strategy = tucano::core::scheduler::Strategy::Binpack,
        |inner| Partition {
            inner,
            cut: AtomicBool::new(false),
        },
    )
    .await;
    // A service asking for spread gets one instance per worker (allocations stay even).
    let mut spread = demo_spec("spread", 3);
    spread.placement.strategy = Some(tucano::core::scheduler::Strategy::Spread);
    cluster.client().create_service(&spread).await.unwrap();
    let spread = cluster.wait_running("spread", 3).await;
    assert_eq!(workers_of(&spread).len(), 3, "{spread:#?}");
    // Binpack by default: three more small instances share one worker.
    let packed = cluster.deploy("packed", 3).await;
    assert_eq!(workers_of(&packed).len(), 1, "{packed:#?}");
    cluster.shutdown().await;
}
