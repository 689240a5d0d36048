//! Autoscaling on a real cluster: the balancer's signals drive a service's `capacity` policy
//! up under concurrent slow requests and back to its minimum when they stop.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::{Cluster, demo_spec, get};
use tucano::core::AutoscaleSpec;

/// Longest the load runs, whatever happens to the test.
const LOAD_LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_policy_scales_up_under_load_and_back_down_when_idle() {
    let cluster = Cluster::start(
        1,
        |config| config.autoscale.interval = Duration::from_millis(200),
        |client| client,
    )
    .await;
    let mut spec = demo_spec("busy", 1);
    let autoscale: AutoscaleSpec = serde_json::from_str(
        r#"{"policy": "capacity", "min": 1, "max": 3, "max_in_flight": 1, "idle_timeout": "2s"}"#,
    )
    .unwrap();
    spec.autoscale = Some(autoscale);
    cluster.client().create_service(&spec).await.unwrap();
    cluster.wait_running("busy", 1).await;

    // Four clients, each with one 200 ms request at a time: every replica stays full.
    let stop = Arc::new(AtomicBool::new(false));
    let balancer = cluster.controller.balancer_addr();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, http) = (stop.clone(), cluster.http.clone());
            tokio::spawn(async move {
                let began = Instant::now();
                let mut failed = 0;
                while !stop.load(Ordering::Relaxed) && began.elapsed() < LOAD_LIMIT {
                    if get(&http, balancer, "busy", "/work?ms=200").await.0 != 200 {
                        failed += 1;
                    }
                }
                failed
            })
        })
        .collect();
    let scaled_up = cluster
        .wait_for("busy", Duration::from_secs(20), |v| {
            v.spec.replicas == 3 && v.replicas.running == 3
        })
        .await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        assert_eq!(client.await.unwrap(), 0, "requests failed under load");
    }
    let ups: Vec<_> = scaled_up
        .scaling_events
        .iter()
        .filter(|e| e.to > e.from)
        .collect();
    assert!(!ups.is_empty(), "{:#?}", scaled_up.scaling_events);
    assert!(
        ups.iter().all(|e| e.reason.contains("max_in_flight 1")),
        "{ups:#?}"
    );

    // Idle: back to min, one replica at a time.
    let down = cluster
        .wait_for("busy", Duration::from_secs(20), |v| {
            v.spec.replicas == 1 && v.replicas.running == 1
        })
        .await;
    let downs: Vec<_> = down
        .scaling_events
        .iter()
        .filter(|e| e.to < e.from)
        .collect();
    assert_eq!(downs.len(), 2, "{:#?}", down.scaling_events);
    assert!(
        downs.iter().all(|e| e.reason.contains("idle_timeout 2s")),
        "{downs:#?}"
    );
    cluster.client().delete_service("busy").await.unwrap();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_service_goes_to_zero_and_its_next_request_brings_it_back() {
    let cluster = Cluster::start(
        1,
        |config| config.autoscale.interval = Duration::from_millis(200),
        |client| client,
    )
    .await;
    let mut spec = demo_spec("sleepy", 1);
    spec.autoscale = Some(
        serde_json::from_str(
            r#"{"policy": "capacity", "min": 1, "max": 2, "idle_timeout": "60s",
                "to_zero": {"idle_timeout": "1s"}}"#,
        )
        .unwrap(),
    );
    cluster.client().create_service(&spec).await.unwrap();
    cluster.wait_running("sleepy", 1).await;
    let asleep = cluster
        .wait_for("sleepy", Duration::from_secs(20), |v| {
            v.spec.replicas == 0 && v.replicas.running == 0 && v.replicas.terminating == 0
        })
        .await;
    let to_zero = asleep.scaling_events.last().unwrap();
    assert_eq!((to_zero.from, to_zero.to), (1, 0));
    assert!(to_zero.reason.contains("no traffic"), "{}", to_zero.reason);

    // The first request waits in the balancer while a replica starts, then is served.
    let began = Instant::now();
    let (status, body) = cluster.get("sleepy", "/").await;
    let cold = began.elapsed();
    assert_eq!(status, 200, "{body}");
    eprintln!("scale from zero: first request answered after {cold:?}");
    let awake = cluster.client().service("sleepy").await.unwrap();
    let wake = awake.scaling_events.last().unwrap();
    assert_eq!((wake.from, wake.to), (0, 1));
    assert!(
        wake.reason.contains("wait for a replica"),
        "{}",
        wake.reason
    );
    cluster.client().delete_service("sleepy").await.unwrap();
    cluster.shutdown().await;
}
