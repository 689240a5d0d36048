//! Restart policies on a real cluster: `tucano-demo` instances on the process runtime exit on
//! request (`GET /crash?code=N` through the balancer), and the controller replaces them or
//! not as the service's `restart` says.

mod support;

use std::time::Duration;

use support::{Cluster, demo_spec, running};
use tucano::core::wire::ServiceView;
use tucano::core::{InstanceState, RestartPolicy};
use tucano::http::ControllerClient;

/// How long a clean exit is watched for a replacement that must not come (the crash backoff
/// of a first failure is at most 1 s).
const NO_REPLACEMENT_WATCH: Duration = Duration::from_secs(3);

/// Asks one instance, through the balancer, to exit with `code`; its id.
async fn crash(cluster: &Cluster<ControllerClient>, code: u8) -> String {
    let (status, body) = cluster.get("task", &format!("/crash?code={code}")).await;
    assert_eq!(status, 200, "{body}");
    body["instance"].as_str().unwrap().to_owned()
}

/// The instance `id` of `view`, ended with exit code `code`.
fn ended_with(view: &ServiceView, id: &str, code: i32) -> bool {
    view.instances.iter().any(|i| {
        i.id.to_string() == id
            && i.state == InstanceState::Failed
            && i.exit.and_then(|e| e.code) == Some(code)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_failure_replaces_crashed_instances_but_not_finished_ones() {
    let cluster = Cluster::start(1, |_| {}, |client| client).await;
    let mut spec = demo_spec("task", 2);
    spec.restart = RestartPolicy::OnFailure;
    cluster.client().create_service(&spec).await.unwrap();
    cluster.wait_running("task", 2).await;

    // A clean exit (code 0): the task is done, its slot stays ended.
    let finished = crash(&cluster, 0).await;
    cluster
        .wait_for("task", Duration::from_secs(10), |v| {
            ended_with(v, &finished, 0)
        })
        .await;
    tokio::time::sleep(NO_REPLACEMENT_WATCH).await;
    let view = cluster.client().service("task").await.unwrap();
    assert_eq!(running(&view).len(), 1, "{view:#?}");
    assert_eq!(view.replicas.starting, 0, "nothing replaces it: {view:#?}");

    // A crash (code 3): replaced.
    let crashed = crash(&cluster, 3).await;
    assert_ne!(crashed, finished);
    let view = cluster
        .wait_for("task", Duration::from_secs(20), |v| {
            ended_with(v, &crashed, 3) && v.replicas.running == 1
        })
        .await;
    assert!(!running(&view).contains(&crashed));

    // Scaling gives the finished slot back.
    cluster
        .client()
        .scale_service("task", 2)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    cluster.wait_running("task", 2).await;
    cluster.client().delete_service("task").await.unwrap();
    cluster.shutdown().await;
}
