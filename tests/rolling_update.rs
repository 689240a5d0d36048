//! Rolling updates on a real cluster: the process runtime running `tucano-demo` on loopback,
//! the balancer in front, requests flowing all along. An update replaces every instance
//! without one failed request; a broken revision is rolled back, again without one.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::{Cluster, demo_spec, get, running};
use tucano::core::wire::ServiceView;
use tucano::core::{HealthSpec, RolloutState, ServiceSpec};
use tucano::http::ControllerClient;

/// Longest a load loop runs, whatever happens to the test.
const LOAD_LIMIT: Duration = Duration::from_secs(90);
/// Concurrent clients sending requests through the balancer.
const CLIENTS: usize = 4;

/// Clients sending requests through the balancer until stopped, keeping every status.
struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<Vec<u16>>>,
}

impl Load {
    fn start(cluster: &Cluster<ControllerClient>, host: &'static str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let balancer = cluster.controller.balancer_addr();
        let clients = (0..CLIENTS)
            .map(|_| {
                let (stop, http) = (stop.clone(), cluster.http.clone());
                tokio::spawn(async move {
                    let began = Instant::now();
                    let mut statuses = Vec::new();
                    while !stop.load(Ordering::Relaxed) && began.elapsed() < LOAD_LIMIT {
                        statuses.push(get(&http, balancer, host, "/").await.0);
                    }
                    statuses
                })
            })
            .collect();
        Self { stop, clients }
    }

    /// Stops the clients and checks they sent more than 50 requests, every one answered 200.
    async fn finish_all_ok(self) {
        let statuses = self.finish().await;
        assert!(statuses.len() > 50, "too few requests: {}", statuses.len());
        let failed: Vec<&u16> = statuses.iter().filter(|s| **s != 200).collect();
        assert!(
            failed.is_empty(),
            "{} of {} requests failed: {failed:?}",
            failed.len(),
            statuses.len()
        );
    }

    /// Stops the clients; every status they saw.
    async fn finish(self) -> Vec<u16> {
        self.stop.store(true, Ordering::Relaxed);
        let mut statuses = Vec::new();
        for client in self.clients {
            statuses.extend(client.await.unwrap());
        }
        statuses
    }
}

fn with_version(view: &ServiceView, version: &str) -> ServiceSpec {
    let mut spec = view.spec.clone();
    spec.env.insert("APP_VERSION".into(), version.into());
    spec
}

fn rollout_is(state: RolloutState) -> impl Fn(&ServiceView) -> bool {
    move |view| view.rollout.as_ref().is_some_and(|r| r.state == state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_updates_and_rollbacks_never_fail_a_request() {
    let cluster = Cluster::start(2, |_| {}, |client| client).await;
    let mut spec = demo_spec("web", 3);
    spec.update.deadline = Duration::from_secs(4);
    // Instances count as started once GET /healthz answers 2xx.
    spec.health = Some(HealthSpec::path("/healthz"));
    cluster.client().create_service(&spec).await.unwrap();
    let first = cluster.wait_running("web", 3).await;
    let old = running(&first);

    // A new environment: every instance is replaced while requests flow.
    let load = Load::start(&cluster, "web");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = cluster
        .client()
        .update_service(&with_version(&first, "2"))
        .await
        .unwrap();
    assert_eq!(started.revision, 2);
    let done = cluster
        .wait_for(
            "web",
            Duration::from_secs(40),
            rollout_is(RolloutState::Complete),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    load.finish_all_ok().await;
    let now_running = running(&done);
    assert_eq!(now_running.len(), 3);
    assert!(now_running.is_disjoint(&old), "every old instance replaced");
    assert!(
        done.instances
            .iter()
            .filter(|i| now_running.contains(&i.id.to_string()))
            .all(|i| i.revision == 2)
    );

    // A revision that runs but never passes its health check (its path answers 404) never
    // becomes ready: after the deadline the controller rolls back to revision 2, and the
    // instances that served all along still do.
    let load = Load::start(&cluster, "web");
    let mut broken = with_version(&done, "3");
    broken.health = Some(HealthSpec::path("/not-there"));
    let started = cluster.client().update_service(&broken).await.unwrap();
    assert_eq!(started.revision, 3);
    let back = cluster
        .wait_for(
            "web",
            Duration::from_secs(40),
            rollout_is(RolloutState::RolledBack),
        )
        .await;
    load.finish_all_ok().await;
    assert_eq!(back.revision, 2);
    assert_eq!(
        back.spec.env.get("APP_VERSION").map(String::as_str),
        Some("2")
    );
    assert_eq!(
        running(&back),
        now_running,
        "the serving instances were kept"
    );
    let reason = back
        .rollout
        .as_ref()
        .and_then(|r| r.reason.clone())
        .unwrap_or_default();
    assert!(
        reason.contains("revision 3") && reason.contains("readiness"),
        "{reason}"
    );
    cluster.client().delete_service("web").await.unwrap();
    cluster.shutdown().await;
}
