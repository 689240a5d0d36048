//! A cluster with a process worker and a Docker worker on the real engine: image-based
//! services are placed on the Docker worker only, command-based ones on the process worker
//! only; requests through the balancer reach the containers; deleting the service removes
//! them.
//!
//! Needs a Docker engine: without one the test prints a line saying it skipped, unless
//! `TUCANO_REQUIRE_DOCKER=1` (CI), where it fails.

mod support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use support::{demo_spec, get};
use tucano::core::{RuntimeKind, ServiceSpec, WorkerId};
use tucano::docker::DEMO_IMAGE;
use tucano::docker::testing::{demo_image_once, docker_or_skip, with_cleanup, worker_containers};
use tucano::{ControllerNode, ControllerNodeConfig, WorkerNode, WorkerNodeConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_services_run_on_docker_workers_behind_the_balancer() {
    let test = "image_services_run_on_docker_workers_behind_the_balancer";
    let Some(docker) = docker_or_skip(test).await else {
        return;
    };
    demo_image_once(&docker, Path::new(env!("CARGO_MANIFEST_DIR")))
        .await
        .expect("the demo image builds");
    let docker_worker = format!("docker-{}", std::process::id());
    let worker = docker_worker.clone();
    let engine = docker.clone();
    with_cleanup(&docker, &docker_worker, async move {
        let any: SocketAddr = ([127, 0, 0, 1], 0).into();
        let controller = ControllerNode::start(ControllerNodeConfig::new(any, any))
            .await
            .expect("controller");
        let mut nodes = Vec::new();
        for (id, kind) in [
            ("process-0".to_owned(), RuntimeKind::Process),
            (worker.clone(), RuntimeKind::Docker),
        ] {
            let mut config = WorkerNodeConfig::new(controller.api_url(), any, any);
            config.id = Some(id.parse().expect("worker id"));
            config.runtime_kind = kind;
            config.heartbeat_interval = Duration::from_millis(200);
            nodes.push(WorkerNode::start(config).await.expect("worker"));
        }
        let client = controller.client();

        let mut web = ServiceSpec::from_image("web".parse().expect("name"), DEMO_IMAGE);
        web.replicas = 3;
        web.stop_grace_period = Duration::from_secs(5);
        client.create_service(&web).await.expect("image service");
        client
            .create_service(&demo_spec("cmd", 2))
            .await
            .expect("command service");

        let deadline = Instant::now() + Duration::from_secs(60);
        let (web_view, cmd_view) = loop {
            let web = client.service("web").await.expect("web");
            let cmd = client.service("cmd").await.expect("cmd");
            if web.replicas.running == 3 && cmd.replicas.running == 2 {
                break (web, cmd);
            }
            assert!(
                Instant::now() < deadline,
                "not running in time: {web:#?} {cmd:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let on = |view: &tucano::core::wire::ServiceView| -> HashSet<WorkerId> {
            view.instances
                .iter()
                .filter_map(|i| i.worker.clone())
                .collect()
        };
        let docker_id: WorkerId = worker.parse().expect("worker id");
        assert_eq!(on(&web_view), HashSet::from([docker_id.clone()]));
        assert_eq!(
            on(&cmd_view),
            HashSet::from(["process-0".parse().expect("id")])
        );
        assert_eq!(
            worker_containers(&engine, &worker)
                .await
                .expect("list")
                .len(),
            3
        );

        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        let mut answered = HashSet::new();
        for _ in 0..30 {
            let (status, body) = get(&http, controller.balancer_addr(), "web", "/").await;
            assert_eq!(status, 200, "{body}");
            answered.insert(body["instance"].as_str().expect("instance").to_owned());
        }
        let web_ids: HashSet<String> = web_view
            .instances
            .iter()
            .map(|i| i.id.to_string())
            .collect();
        assert_eq!(
            answered, web_ids,
            "every container answers through the balancer"
        );

        client.delete_service("web").await.expect("delete");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !worker_containers(&engine, &worker)
            .await
            .expect("list")
            .is_empty()
        {
            assert!(
                Instant::now() < deadline,
                "containers left after the service was deleted"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for node in nodes {
            node.shutdown().await;
        }
        controller.shutdown().await;
    })
    .await;
}
