//! The direct route mode on a real cluster over loopback: controller node (API + balancer)
//! with `route_mode: Direct`, two worker nodes running the `tucano-demo` binary, HTTP
//! everywhere in between.
//!
//! The worker proxy forwards `x-tucano-instance` and `x-forwarded-for` as it receives them, so
//! what an instance sees is the same in both modes. To tell them apart, each worker registers
//! with its proxy address replaced by a *tripwire*: a listener that counts connections and
//! closes them at once. Via the worker, every request would hit the tripwire and fail; in
//! direct mode, none may touch it.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tucano::core::WorkerId;
use tucano::core::transport::{ControllerTransport, Endpoint, EndpointSink, TransportError};
use tucano::core::wire::{Heartbeat, Registration, RegistrationReply};
use tucano::http::ControllerClient;
use tucano::lb::{Proxy, ProxyConfig, RouteMode, RoutingTable};

mod support;
use support::{Cluster, get, running, workers_of};

/// A listener that counts the connections made to it and closes each at once.
struct Tripwire {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Tripwire {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Self { addr, hits, task }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Tripwire {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A controller transport that registers the worker with `proxy` as its proxy address.
struct ProxyAt {
    inner: ControllerClient,
    proxy: SocketAddr,
}

#[async_trait]
impl ControllerTransport for ProxyAt {
    async fn register(
        &self,
        registration: &Registration,
    ) -> Result<RegistrationReply, TransportError> {
        let mut registration = registration.clone();
        registration.proxy_address = self.proxy;
        self.inner.register(&registration).await
    }
    async fn heartbeat(&self, heartbeat: &Heartbeat) -> Result<(), TransportError> {
        self.inner.heartbeat(heartbeat).await
    }
    async fn deregister(&self, id: &WorkerId) -> Result<(), TransportError> {
        self.inner.deregister(id).await
    }
}

/// A direct-mode controller and `workers` workers whose advertised proxy is the tripwire.
async fn direct_cluster(workers: usize) -> (Cluster<ProxyAt>, Tripwire) {
    let tripwire = Tripwire::start().await;
    let proxy = tripwire.addr;
    let cluster = Cluster::start(
        workers,
        |config| config.route_mode = RouteMode::Direct,
        |inner| ProxyAt { inner, proxy },
    )
    .await;
    (cluster, tripwire)
}

impl<T> Cluster<T> {
    /// The endpoints the controller published for `service`.
    fn endpoints(&self, service: &str) -> Vec<Endpoint> {
        let route = self.controller.routes().route(service).unwrap();
        route
            .endpoints()
            .iter()
            .map(|backend| backend.endpoint().clone())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_mode_reaches_every_instance_without_the_worker_proxy() {
    let (c, tripwire) = direct_cluster(2).await;
    assert_eq!(c.controller.routes().mode(), RouteMode::Direct);
    let view = c.deploy("hello", 3).await;
    assert_eq!(
        workers_of(&view).len(),
        2,
        "the deploy spreads over both workers"
    );

    // The balancer knows each instance by its own loopback address, and each worker by the
    // tripwire.
    let addresses: HashMap<String, SocketAddr> = view
        .instances
        .iter()
        .filter_map(|i| Some((i.id.to_string(), i.address?)))
        .collect();
    let endpoints = c.endpoints("hello");
    assert_eq!(endpoints.len(), 3);
    for endpoint in &endpoints {
        assert!(endpoint.address.ip().is_loopback(), "{endpoint:?}");
        assert_eq!(
            addresses.get(&endpoint.instance.to_string()),
            Some(&endpoint.address)
        );
        assert_eq!(endpoint.proxy, tripwire.addr);
    }

    // 30 requests reach all 3 instances, round robin, and none touches a worker proxy.
    let seen = c.reaches("hello", 30, &running(&view)).await;
    assert!(seen.values().all(|&n| n == 10), "round robin: {seen:?}");
    assert_eq!(tripwire.hits(), 0, "a request went to a worker proxy");

    // Control: a balancer routing the same endpoints via the worker hits the tripwire and fails,
    // so the tripwire would have caught it.
    let table = Arc::new(RoutingTable::new());
    assert_eq!(table.mode(), RouteMode::ViaWorker);
    table.publish(
        &"hello".parse().unwrap(),
        &tucano::core::transport::RouteSpec::default(),
        endpoints,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let via_worker = Proxy::serve(listener, table, ProxyConfig::default()).unwrap();
    let (status, body) = get(&c.http, via_worker.local_addr(), "hello", "/").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("upstream_unavailable")),
        "{body}"
    );
    assert!(tripwire.hits() > 0);
    via_worker.shutdown().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_mode_drains_instances_on_scale_down() {
    let (c, tripwire) = direct_cluster(2).await;
    let before = c.deploy("hello", 3).await;
    assert_eq!(c.instances_behind("hello", 6).await.len(), 3);

    // Slow requests on every instance while the service scales down to one: the stopped
    // instances finish theirs (the controller takes them out of routing before stopping them,
    // and the demo drains on SIGTERM).
    let balancer = c.controller.balancer_addr();
    let slow: Vec<_> = (0..6)
        .map(|_| {
            let http = c.http.clone();
            tokio::spawn(async move { get(&http, balancer, "hello", "/work?ms=1000").await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    c.client().scale_service("hello", 1).await.unwrap();

    // Meanwhile, and until the scale-down is over, quick requests keep succeeding.
    let mut quick = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = get(&c.http, balancer, "hello", "/").await;
        assert_eq!(status, 200, "during scale-down: {body}");
        quick += 1;
        let view = c.client().service("hello").await.unwrap();
        if view.replicas.running == 1 && view.replicas.terminating == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "scale-down stuck: {view:#?}");
    }
    assert!(quick > 0);

    let mut drained = HashSet::new();
    for request in slow {
        let (status, body) = request.await.unwrap();
        assert_eq!(status, 200, "a slow request was cut: {body}");
        assert_eq!(body["slept_ms"], 1000);
        drained.insert(body["instance"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        drained,
        running(&before),
        "every instance had a slow request"
    );

    // Afterwards every request goes to the one instance left.
    let after = c.client().service("hello").await.unwrap();
    let kept = running(&after);
    assert_eq!(kept.len(), 1);
    assert!(kept.is_subset(&running(&before)));
    c.reaches("hello", 10, &kept).await;
    assert_eq!(tripwire.hits(), 0, "a request went to a worker proxy");
    c.shutdown().await;
}
