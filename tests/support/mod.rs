//! Shared scaffolding for the integration tests that run a real cluster on loopback: a
//! controller node (API + balancer) and worker nodes running the `tucano-demo` binary, with
//! HTTP everywhere in between.
//!
//! Each worker talks to the controller through a test-specific [`ControllerTransport`]
//! wrapping a [`ControllerClient`], so a test can tamper with the link (cut it, rewrite the
//! registration). Every test crate uses a subset of what is here.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tucano::core::transport::ControllerTransport;
use tucano::core::wire::ServiceView;
use tucano::core::{InstanceState, ServiceSpec, WorkerId};
use tucano::http::ControllerClient;
use tucano::{ControllerNode, ControllerNodeConfig, WorkerNode, WorkerNodeConfig};

/// How long the controller waits for a heartbeat before it declares a worker dead.
pub const LIVENESS: Duration = Duration::from_secs(2);

/// A controller node, its workers, the transport each worker reaches the controller through,
/// and an HTTP client for requests through the balancer.
pub struct Cluster<T> {
    pub controller: ControllerNode,
    pub workers: Vec<WorkerNode>,
    pub transports: Vec<Arc<T>>,
    pub http: reqwest::Client,
}

impl<T: ControllerTransport + 'static> Cluster<T> {
    /// A controller (liveness timeout [`LIVENESS`], then adjusted by `configure`) and
    /// `workers` workers named `worker-{i}`, each reaching the controller through
    /// `transport(client)`.
    pub async fn start(
        workers: usize,
        configure: impl FnOnce(&mut ControllerNodeConfig),
        transport: impl Fn(ControllerClient) -> T,
    ) -> Self {
        let any: SocketAddr = ([127, 0, 0, 1], 0).into();
        let mut config = ControllerNodeConfig::new(any, any);
        config.controller.liveness_timeout = LIVENESS;
        configure(&mut config);
        let controller = ControllerNode::start(config).await.unwrap();
        let mut nodes = Vec::new();
        let mut transports = Vec::new();
        for i in 0..workers {
            let link = Arc::new(transport(
                ControllerClient::new(&controller.api_url()).unwrap(),
            ));
            let mut config = WorkerNodeConfig::new(controller.api_url(), any, any);
            config.id = Some(format!("worker-{i}").parse().unwrap());
            config.heartbeat_interval = Duration::from_millis(200);
            nodes.push(
                WorkerNode::start_with_transport(config, link.clone())
                    .await
                    .unwrap(),
            );
            transports.push(link);
        }
        Cluster {
            controller,
            workers: nodes,
            transports,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        }
    }
}

impl<T> Cluster<T> {
    pub fn client(&self) -> &ControllerClient {
        self.controller.client()
    }

    /// Polls `name` until `done` holds, failing the test after `within`.
    pub async fn wait_for(
        &self,
        name: &str,
        within: Duration,
        done: impl Fn(&ServiceView) -> bool,
    ) -> ServiceView {
        let deadline = Instant::now() + within;
        loop {
            let view = self.client().service(name).await.unwrap();
            if done(&view) {
                return view;
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not get there within {within:?}: {view:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits up to 20 s for `name` to run `n` instances.
    pub async fn wait_running(&self, name: &str, n: u32) -> ServiceView {
        self.wait_for(name, Duration::from_secs(20), |v| v.replicas.running == n)
            .await
    }

    /// Creates the demo service `name` with `replicas` instances and waits until they run.
    pub async fn deploy(&self, name: &str, replicas: u32) -> ServiceView {
        self.client()
            .create_service(&demo_spec(name, replicas))
            .await
            .unwrap();
        self.wait_running(name, replicas).await
    }

    /// Sends a request through the balancer with `Host: host`.
    pub async fn get(&self, host: &str, path: &str) -> (u16, Value) {
        get(&self.http, self.controller.balancer_addr(), host, path).await
    }

    /// Instance ids answering `n` requests through the balancer; every request must succeed
    /// and arrive as the balancer sent it: one `x-forwarded-for` entry, the instance header.
    pub async fn instances_behind(&self, host: &str, n: usize) -> HashMap<String, usize> {
        let mut seen = HashMap::new();
        for _ in 0..n {
            let (status, body) = self.get(host, "/").await;
            assert_eq!(status, 200, "{body}");
            let instance = body["instance"].as_str().unwrap().to_owned();
            assert_eq!(body["headers"]["x-tucano-instance"], instance.as_str());
            assert_eq!(body["headers"]["x-forwarded-for"], "127.0.0.1");
            *seen.entry(instance).or_default() += 1;
        }
        seen
    }

    /// Like [`Self::instances_behind`], and the instances answering are exactly `expected`.
    pub async fn reaches(
        &self,
        host: &str,
        n: usize,
        expected: &HashSet<String>,
    ) -> HashMap<String, usize> {
        let seen = self.instances_behind(host, n).await;
        assert_eq!(&seen.keys().cloned().collect::<HashSet<_>>(), expected);
        seen
    }

    /// Stops the workers, then the controller.
    pub async fn shutdown(self) {
        for worker in self.workers {
            worker.shutdown().await;
        }
        self.controller.shutdown().await;
    }
}

/// Sends a request to the balancer at `balancer` with `Host: host`.
pub async fn get(
    http: &reqwest::Client,
    balancer: SocketAddr,
    host: &str,
    path: &str,
) -> (u16, Value) {
    let response = http
        .get(format!("http://{balancer}{path}"))
        .header("host", host)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A service running `replicas` instances of the `tucano-demo` binary on loopback.
pub fn demo_spec(name: &str, replicas: u32) -> ServiceSpec {
    let mut spec = ServiceSpec::new(
        name.parse().unwrap(),
        vec![env!("CARGO_BIN_EXE_tucano-demo").into()],
    );
    spec.replicas = replicas;
    spec.stop_grace_period = Duration::from_secs(5);
    spec.env
        .insert("TUCANO_DEMO_BIND".into(), "127.0.0.1".into());
    spec.env.insert("RUST_LOG".into(), "warn".into());
    spec
}

/// The workers `view`'s instances are placed on.
pub fn workers_of(view: &ServiceView) -> HashSet<WorkerId> {
    view.instances
        .iter()
        .filter_map(|i| i.worker.clone())
        .collect()
}

/// Ids of the instances of `view` that are running.
pub fn running(view: &ServiceView) -> HashSet<String> {
    view.instances
        .iter()
        .filter(|i| i.state == InstanceState::Running)
        .map(|i| i.id.to_string())
        .collect()
}
