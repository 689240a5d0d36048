//! Failure handling over real loopback sockets: retries on connect failure, outlier ejection
//! on server errors, active health checks, reported load, and the direct route mode.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::Request;
use support::*;
use tucano_core::transport::{Endpoint, EndpointSink, RouteSpec};
use tucano_core::{BalancingSpec, HealthSpec, InstanceId, WorkerId};
use tucano_lb::{Proxy, ProxyConfig, RouteMode, RoutingTable};

/// `hello` on the cluster's endpoints plus `extra`, balanced as `spec` says.
fn republish(cluster: &Cluster, spec: &RouteSpec, extra: Vec<Endpoint>) {
    let mut endpoints: Vec<Endpoint> = (0..cluster.backends.len())
        .map(|i| cluster.endpoint(i))
        .collect();
    endpoints.extend(extra);
    cluster.table.publish(&service("hello"), spec, endpoints);
}

fn endpoint_at(proxy: std::net::SocketAddr) -> Endpoint {
    Endpoint {
        instance: InstanceId::new(),
        worker: WorkerId::new("gone").unwrap(),
        proxy,
        address: proxy,
        weight: 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_requests_are_retried_on_another_instance_when_they_cannot_connect() {
    let cluster = Cluster::start(1).await;
    let dead = endpoint_at(closed_port().await);
    republish(&cluster, &RouteSpec::default(), vec![dead]);
    let client = client();
    // Three of these six go to the dead instance first: the retry budget's reserve covers them.
    for _ in 0..6 {
        let reply = send(&client, get(&cluster.balancer_url("/"), "hello")).await;
        assert_eq!(
            reply.status.as_u16(),
            200,
            "every GET reaches the live instance"
        );
    }
    assert_eq!(cluster.backends[0].received("GET"), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_its_worker_does_not_know_is_retried_elsewhere() {
    let cluster = Cluster::start(1).await;
    // Published, but the worker proxy has no such instance (it just stopped).
    let unknown = Endpoint {
        instance: InstanceId::new(),
        ..cluster.endpoint(0)
    };
    republish(&cluster, &RouteSpec::default(), vec![unknown]);
    let client = client();
    for _ in 0..6 {
        assert_eq!(
            send(&client, get(&cluster.balancer_url("/"), "hello"))
                .await
                .status
                .as_u16(),
            200
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_its_worker_cannot_connect_to_is_retried_elsewhere() {
    let cluster = Cluster::start(1).await;
    // The worker still lists it, but it no longer listens (it is shutting down).
    let stopping = InstanceId::new();
    cluster.directory.insert(stopping, closed_port().await);
    let unreachable = Endpoint {
        instance: stopping,
        ..cluster.endpoint(0)
    };
    republish(&cluster, &RouteSpec::default(), vec![unreachable]);
    let client = client();
    for _ in 0..6 {
        let reply = send(&client, get(&cluster.balancer_url("/"), "hello")).await;
        assert_eq!(
            reply.status.as_u16(),
            200,
            "every GET reaches the live instance"
        );
    }
    assert_eq!(cluster.backends[0].received("GET"), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_idempotent_requests_are_never_sent_twice() {
    let cluster = Cluster::start(1).await;
    let dead = endpoint_at(closed_port().await);
    republish(&cluster, &RouteSpec::default(), vec![dead]);
    let client = client();
    let mut ok = 0;
    let mut failed = 0;
    for _ in 0..10 {
        let post = Request::post(cluster.balancer_url("/"))
            .header("host", "hello")
            .body(full("payload"))
            .unwrap();
        match send(&client, post).await.status.as_u16() {
            200 => ok += 1,
            502 => failed += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    // A PUT with a body cannot be replayed either.
    let mut put_failures = 0;
    for _ in 0..4 {
        let put = Request::put(cluster.balancer_url("/"))
            .header("host", "hello")
            .body(full("payload"))
            .unwrap();
        if send(&client, put).await.status.as_u16() == 502 {
            put_failures += 1;
        }
    }
    assert_eq!(put_failures, 2, "PUTs with a body are not retried");
    assert!(
        failed > 0,
        "round robin sent some POSTs to the dead instance"
    );
    assert_eq!(
        cluster.backends[0].received("POST"),
        ok,
        "each POST reached at most one instance"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_answering_server_errors_are_ejected() {
    let cluster = Cluster::start(2).await;
    let mut spec = RouteSpec::default();
    spec.balancing.outlier.consecutive_failures = 3;
    spec.balancing.panic_threshold_percent = 0;
    republish(&cluster, &spec, vec![]);
    cluster.backends[1].failing.store(true, Ordering::Relaxed);
    let client = client();
    // Three 503s in a row from backend-1, then within one upkeep tick it gets no more traffic.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            send(&client, get(&cluster.balancer_url("/"), "hello"))
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 503).count(),
        3,
        "{statuses:?}"
    );
    eventually("backend-1 ejected", || {
        cluster
            .table
            .route("hello")
            .is_some_and(|route| route.active().len() == 1)
    })
    .await;
    for _ in 0..10 {
        assert_eq!(
            send(&client, get(&cluster.balancer_url("/"), "hello"))
                .await
                .status
                .as_u16(),
            200
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_health_checks_take_failing_instances_out_and_back() {
    let cluster = Cluster::start(2).await;
    let mut health = HealthSpec::path("/healthz");
    health.interval = Duration::from_millis(100);
    health.timeout = Duration::from_millis(100);
    let spec = RouteSpec {
        balancing: BalancingSpec {
            panic_threshold_percent: 0,
            ..BalancingSpec::default()
        },
        health: Some(health),
        ..RouteSpec::default()
    };
    republish(&cluster, &spec, vec![]);
    let active = || {
        cluster
            .table
            .route("hello")
            .map_or(0, |route| route.active().len())
    };
    cluster.backends[0].unhealthy.store(true, Ordering::Relaxed);
    eventually("backend-0 failed its health checks", || active() == 1).await;
    let client = client();
    for _ in 0..6 {
        let reply = send(&client, get(&cluster.balancer_url("/"), "hello")).await;
        assert_eq!(
            cluster.backend_of(
                reply.json()["headers"]["x-tucano-instance"][0]
                    .as_str()
                    .unwrap()
            ),
            "backend-1"
        );
    }
    cluster.backends[0]
        .unhealthy
        .store(false, Ordering::Relaxed);
    eventually("backend-0 healthy again", || active() == 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_instances_report_is_recorded() {
    let cluster = Cluster::start(1).await;
    let client = client();
    let reply = send(&client, get(&cluster.balancer_url("/load?v=0.7"), "hello")).await;
    assert_eq!(reply.status.as_u16(), 200);
    let route = cluster.table.route("hello").unwrap();
    assert_eq!(
        route.endpoints().get(0).unwrap().state().reported_load(),
        Some(0.7)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_mode_skips_the_worker_proxy() {
    let backend = echo_backend("direct").await;
    let table = Arc::new(RoutingTable::new().with_mode(RouteMode::Direct));
    let balancer = Proxy::bind(
        "127.0.0.1:0".parse().unwrap(),
        Arc::clone(&table),
        ProxyConfig::default(),
    )
    .await
    .unwrap();
    // The worker proxy address is dead: only a direct connection can succeed.
    let endpoint = Endpoint {
        address: backend.addr,
        ..endpoint_at(closed_port().await)
    };
    table.publish(&service("hello"), &RouteSpec::default(), vec![endpoint]);
    let url = format!("http://{}/", balancer.local_addr());
    let reply = send(&client(), get(&url, "hello")).await;
    assert_eq!(reply.status.as_u16(), 200);
    assert_eq!(reply.json()["backend"], "direct");
    assert_eq!(backend.received("GET"), 1);
    balancer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_scaled_to_zero_holds_requests_until_an_instance_is_published() {
    let cluster = Cluster::start(1).await;
    let holding = RouteSpec {
        hold_while_empty: Some(Duration::from_secs(10)),
        ..RouteSpec::default()
    };
    cluster.table.publish(&service("hello"), &holding, vec![]);
    let url = cluster.balancer_url("/");
    let request = tokio::spawn(async move {
        let began = std::time::Instant::now();
        let reply = send(&client(), get(&url, "hello")).await;
        (reply.status.as_u16(), began.elapsed())
    });
    let route = cluster.table.route("hello").unwrap();
    for _ in 0..100 {
        if route.waiting() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(route.waiting(), 1, "the request waits in the activator");
    tokio::time::sleep(Duration::from_millis(200)).await;
    cluster
        .table
        .publish(&service("hello"), &holding, vec![cluster.endpoint(0)]);
    let (status, waited) = request.await.unwrap();
    assert_eq!(status, 200, "released to the new instance");
    assert!(waited >= Duration::from_millis(200), "{waited:?}");
    assert_eq!(route.waiting(), 0);
    assert_eq!(cluster.backends[0].received("GET"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_request_gets_503_when_no_instance_comes_in_time() {
    let cluster = Cluster::start(1).await;
    let holding = RouteSpec {
        hold_while_empty: Some(Duration::from_millis(300)),
        ..RouteSpec::default()
    };
    cluster.table.publish(&service("hello"), &holding, vec![]);
    let began = std::time::Instant::now();
    let reply = send(&client(), get(&cluster.balancer_url("/"), "hello")).await;
    let waited = began.elapsed();
    reply.assert_error(503, "no_instance");
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    assert_eq!(cluster.table.route("hello").unwrap().waiting(), 0);
}
