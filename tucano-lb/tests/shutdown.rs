//! Graceful shutdown of the proxies.

mod support;

use std::time::{Duration, Instant};

use support::*;
use tokio::net::TcpStream;
use tucano_lb::ProxyConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_requests_in_progress_finish_then_stops_accepting() {
    let cluster = Cluster::start(1).await;
    let addr = cluster.balancer.local_addr();
    let client = client();

    // An idle keep-alive connection must not hold shutdown up.
    let reply = send(&client, get(&format!("http://{addr}/"), "hello")).await;
    assert_eq!(reply.status, 200);

    let slow = tokio::spawn({
        let client = client.clone();
        async move { send(&client, get(&format!("http://{addr}/slow?ms=400"), "hello")).await }
    });
    eventually("request in flight", || cluster.in_flight() == [1]).await;

    let Cluster {
        balancer, worker, ..
    } = cluster;
    let started = Instant::now();
    within("balancer shutdown", balancer.shutdown()).await;
    let waited = started.elapsed();
    let reply = within("slow request", slow).await.unwrap();
    assert_eq!(reply.status, 200, "the request in progress completes");
    assert!(
        waited >= Duration::from_millis(150),
        "shutdown returned after {waited:?}, before the request in progress could finish"
    );
    assert!(waited < Duration::from_secs(5), "shutdown took {waited:?}");

    let refused = within("connect after shutdown", TcpStream::connect(addr)).await;
    assert!(refused.is_err(), "still accepting after shutdown");
    within("worker shutdown", worker.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_bounded_by_its_timeout() {
    let config = ProxyConfig {
        shutdown_timeout: Duration::from_millis(200),
        ..ProxyConfig::default()
    };
    let cluster = Cluster::with_config(1, config).await;
    let addr = cluster.balancer.local_addr();
    let client = client();
    let stuck = tokio::spawn({
        let client = client.clone();
        async move {
            let request = get(&format!("http://{addr}/slow?ms=8000"), "hello");
            tokio::time::timeout(WAIT, client.request(request)).await
        }
    });
    eventually("request in flight", || cluster.in_flight() == [1]).await;

    let Cluster {
        balancer,
        worker,
        table,
        ..
    } = cluster;
    let started = Instant::now();
    within("balancer shutdown", balancer.shutdown()).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "shutdown took {:?}",
        started.elapsed()
    );
    // The connection was closed under the request, and its in-flight count released.
    let outcome = within("stuck request", stuck).await.unwrap();
    assert!(matches!(outcome, Ok(Err(_))), "{outcome:?}");
    let route = table.route("hello").unwrap();
    assert_eq!(route.endpoints().get(0).unwrap().state().in_flight(), 0);
    within("worker shutdown", worker.shutdown()).await;
}

#[tokio::test]
async fn dropping_the_server_stops_accepting() {
    let cluster = Cluster::start(1).await;
    let Cluster { balancer, .. } = cluster;
    let addr = balancer.local_addr();
    drop(balancer);
    eventually("listener closed", || {
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err()
    })
    .await;
}
