//! Per-instance resource usage on a real cluster with the process runtime: the worker measures
//! each `tucano-demo` instance from `/proc`, its heartbeats carry the usage, the controller
//! shows it in the service view, and a `target` policy on `cpu` scales on it.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::{Cluster, demo_spec, get};
use tucano::core::wire::{InstanceUsage, ServiceView};
use tucano::core::{AutoscaleSpec, InstanceState};

/// A prime near 2^44: factorising it takes about two million trial divisions.
const PRIME: u64 = 17_592_186_044_399;
/// Longest the CPU burners run, whatever happens to the test.
const BURN_LIMIT: Duration = Duration::from_secs(30);

/// `clients` loops of `GET /factor?n=PRIME` through the balancer until `stop` (or
/// [`BURN_LIMIT`]); each returns how many requests failed.
fn burn(
    http: &reqwest::Client,
    balancer: SocketAddr,
    host: &'static str,
    clients: usize,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<u32>> {
    (0..clients)
        .map(|_| {
            let (stop, http) = (stop.clone(), http.clone());
            tokio::spawn(async move {
                let began = Instant::now();
                let mut failed = 0;
                while !stop.load(Ordering::Relaxed) && began.elapsed() < BURN_LIMIT {
                    if get(&http, balancer, host, &format!("/factor?n={PRIME}"))
                        .await
                        .0
                        != 200
                    {
                        failed += 1;
                    }
                }
                failed
            })
        })
        .collect()
}

/// The usage of the service's only running instance, if it has one.
fn usage(view: &ServiceView) -> Option<InstanceUsage> {
    let running = view
        .instances
        .iter()
        .find(|i| i.state == InstanceState::Running)?;
    Some(running.usage?.usage)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_and_memory_of_an_instance_reach_the_service_view() {
    let cluster = Cluster::start(1, |_| {}, |client| client).await;
    let mut spec = demo_spec("burn", 1);
    spec.resources.cpus = 1.0;
    spec.resources.memory_mb = 512;
    cluster.client().create_service(&spec).await.unwrap();
    cluster.wait_running("burn", 1).await;

    // Idle, the instance is measured: memory at once, CPU from the second sample.
    let idle = cluster
        .wait_for("burn", Duration::from_secs(5), |v| {
            usage(v).is_some_and(|u| u.cpu.is_some())
        })
        .await;
    let idle = usage(&idle).unwrap();
    assert!(idle.memory_bytes > 0, "{idle:?}");
    let share = idle.memory.unwrap();
    let expected = idle.memory_bytes as f64 / (512.0 * 1024.0 * 1024.0);
    assert!((share - expected).abs() < 1e-9, "{idle:?}");

    // Two clients factorising a prime keep about one core busy: more than 30 % of its request.
    let stop = Arc::new(AtomicBool::new(false));
    let burners = burn(
        &cluster.http,
        cluster.controller.balancer_addr(),
        "burn",
        2,
        &stop,
    );
    let busy = cluster
        .wait_for("burn", Duration::from_secs(10), |v| {
            usage(v).and_then(|u| u.cpu).is_some_and(|cpu| cpu > 0.3)
        })
        .await;
    stop.store(true, Ordering::Relaxed);
    for burner in burners {
        assert_eq!(burner.await.unwrap(), 0, "factor requests failed");
    }
    let busy = usage(&busy).unwrap();
    println!(
        "process instance: cpu {:.2} of its 1.0-core request while burning ({:.2} idle)",
        busy.cpu.unwrap_or_default(),
        idle.cpu.unwrap_or_default()
    );
    assert_eq!(busy.cpu, busy.cpu_cores, "a 1-core request: share = cores");

    // 64 MiB more, every page touched: the resident memory grows by about that.
    let before = usage(&cluster.client().service("burn").await.unwrap())
        .unwrap()
        .memory_bytes;
    let (status, body) = cluster.get("burn", "/alloc?mb=64").await;
    assert_eq!(status, 200, "{body}");
    cluster
        .wait_for("burn", Duration::from_secs(5), |v| {
            usage(v).is_some_and(|u| u.memory_bytes >= before + 48 * 1024 * 1024)
        })
        .await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_policy_on_cpu_scales_up_a_busy_service() {
    let cluster = Cluster::start(
        1,
        |config| config.autoscale.interval = Duration::from_millis(200),
        |client| client,
    )
    .await;
    let mut spec = demo_spec("hot", 1);
    spec.resources.cpus = 1.0;
    let autoscale: AutoscaleSpec = serde_json::from_str(
        r#"{"policy": "target", "min": 1, "max": 2, "metric": "cpu", "target": 0.3}"#,
    )
    .unwrap();
    spec.autoscale = Some(autoscale);
    cluster.client().create_service(&spec).await.unwrap();
    cluster.wait_running("hot", 1).await;

    let stop = Arc::new(AtomicBool::new(false));
    let burners = burn(
        &cluster.http,
        cluster.controller.balancer_addr(),
        "hot",
        2,
        &stop,
    );
    let scaled = cluster
        .wait_for("hot", Duration::from_secs(15), |v| v.spec.replicas == 2)
        .await;
    stop.store(true, Ordering::Relaxed);
    for burner in burners {
        assert_eq!(burner.await.unwrap(), 0, "factor requests failed");
    }
    let event = scaled.scaling_events.last().unwrap();
    assert_eq!((event.from, event.to), (1, 2), "{event:?}");
    assert!(event.reason.starts_with("cpu is "), "{}", event.reason);
    println!("scaled up: {}", event.reason);
    cluster.shutdown().await;
}
