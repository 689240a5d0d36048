//! Controller and three workers, each in its own container on a private Docker network the
//! test creates: the workers drive the host's engine through its socket and their instances
//! join the same network. Load through the balancer reaches instances on all three workers;
//! `docker kill` of one worker → its instances are replaced on the other two within the
//! liveness timeout + 5 s, and the balancer stops routing to the dead ones. Every container
//! and the network are removed at the end, also when the test fails.
//!
//! Needs a Docker engine: without one the test prints a line saying it skipped, unless
//! `TUCANO_REQUIRE_DOCKER=1` (CI), where it fails.

mod support;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use support::get;
use tucano::core::wire::{ServiceView, WorkerState};
use tucano::core::{InstanceState, ServiceSpec, WorkerId};
use tucano::docker::bollard::Docker;
use tucano::docker::bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, Ipam, IpamConfig,
    NetworkCreateRequest, NetworkingConfig,
};
use tucano::docker::bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptionsBuilder, StartContainerOptions,
};
use tucano::docker::testing::{demo_image_once, docker_or_skip, with_cleanup_of, worker_label};
use tucano::docker::{DEMO_IMAGE, build_image_from_binary, build_static};
use tucano::http::ControllerClient;

const CONTROLLER_IMAGE: &str = "tucano-controller:test";
const WORKER_IMAGE: &str = "tucano-worker:test";
/// The label on the node containers of one run, for cleanup.
const RUN_LABEL: &str = "tucano.test-run";
const LIVENESS: Duration = Duration::from_secs(3);
const API_PORT: u16 = 7070;
const BALANCER_PORT: u16 = 8080;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_of_containers_survives_a_killed_worker() {
    let Some(docker) = docker_or_skip("cluster_of_containers_survives_a_killed_worker").await
    else {
        return;
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    demo_image_once(&docker, workspace)
        .await
        .expect("the demo image builds");
    let binaries = build_static(
        workspace,
        &["--example", "controller", "--example", "worker"],
    )
    .await
    .expect("the node binaries build");
    for (name, image) in [("controller", CONTROLLER_IMAGE), ("worker", WORKER_IMAGE)] {
        build_image_from_binary(&docker, &binaries.join("examples").join(name), image)
            .await
            .expect("a node image builds");
    }

    let run = format!("mh-{}", std::process::id());
    let workers: Vec<String> = (1..=3).map(|i| format!("{run}-w{i}")).collect();
    let subnet = create_network(&docker, &run).await;
    // The nodes first, so that no worker starts a container while the instances go.
    let mut labels = vec![format!("{RUN_LABEL}={run}")];
    labels.extend(workers.iter().map(|w| worker_label(w)));
    let networks = vec![run.clone()];
    let engine = docker.clone();
    with_cleanup_of(&docker, &labels, &networks, async move {
        scenario(&engine, &run, &subnet, &workers).await;
    })
    .await;
}

/// Creates network `name` on a /24 no other network uses; returns its first three octets.
async fn create_network(docker: &Docker, name: &str) -> String {
    let mut last_error = None;
    for attempt in 0..8u32 {
        let prefix = format!("10.{}.{}", 200 + attempt, std::process::id() % 250);
        let request = NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some("bridge".to_owned()),
            ipam: Some(Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(format!("{prefix}.0/24")),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        match docker.create_network(request).await {
            Ok(_) => return prefix,
            Err(error) => last_error = Some(error),
        }
    }
    panic!("no free subnet for the test network: {last_error:?}")
}

/// Runs `image` as container `name` at `ip` on `network` with `args`, labelled with the run.
async fn run_node(
    docker: &Docker,
    run: &str,
    name: &str,
    image: &str,
    ip: &str,
    args: Vec<String>,
) {
    let endpoint = EndpointSettings {
        ipam_config: Some(EndpointIpamConfig {
            ipv4_address: Some(ip.to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let body = ContainerCreateBody {
        image: Some(image.to_owned()),
        cmd: Some(args),
        env: Some(vec!["RUST_LOG=info".to_owned()]),
        labels: Some(HashMap::from([(RUN_LABEL.to_owned(), run.to_owned())])),
        host_config: Some(HostConfig {
            network_mode: Some(run.to_owned()),
            binds: Some(vec!["/var/run/docker.sock:/var/run/docker.sock".to_owned()]),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(run.to_owned(), endpoint)])),
        }),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::new().name(name).build();
    docker
        .create_container(Some(options), body)
        .await
        .expect("a node container is created");
    docker
        .start_container(name, None::<StartContainerOptions>)
        .await
        .expect("a node container starts");
}

async fn scenario(docker: &Docker, run: &str, subnet: &str, workers: &[String]) {
    let controller_ip = format!("{subnet}.2");
    let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    run_node(
        docker,
        run,
        &format!("{run}-controller"),
        CONTROLLER_IMAGE,
        &controller_ip,
        args(&[
            "--api",
            &format!("0.0.0.0:{API_PORT}"),
            "--balancer",
            &format!("0.0.0.0:{BALANCER_PORT}"),
            "--in-memory",
            "--liveness-timeout",
            "3s",
        ]),
    )
    .await;
    let controller_url = format!("http://{controller_ip}:{API_PORT}");
    for (i, worker) in workers.iter().enumerate() {
        let ip = format!("{subnet}.{}", 11 + i);
        run_node(
            docker,
            run,
            worker,
            WORKER_IMAGE,
            &ip,
            args(&[
                "--controller",
                &controller_url,
                "--listen",
                "0.0.0.0:7071",
                "--proxy",
                "0.0.0.0:8081",
                "--advertise",
                &ip,
                "--id",
                worker,
                "--runtime",
                "docker",
                "--docker-network",
                run,
                "--heartbeat-interval",
                "500ms",
            ]),
        )
        .await;
    }
    let client = ControllerClient::new(&controller_url).expect("client");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let alive = client
            .list_workers()
            .await
            .map(|w| w.iter().filter(|w| w.state == WorkerState::Alive).count())
            .unwrap_or(0);
        if alive == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "3 workers did not register");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut web = ServiceSpec::from_image("web".parse().expect("name"), DEMO_IMAGE);
    web.replicas = 6;
    web.stop_grace_period = Duration::from_secs(2);
    client
        .create_service(&web)
        .await
        .expect("the service is created");
    let view = wait_for(&client, Duration::from_secs(60), |v| {
        v.replicas.running == 6
    })
    .await;
    let worker_of = placement(&view);
    let on: HashSet<&WorkerId> = worker_of.values().collect();
    assert_eq!(on.len(), 3, "instances on every worker: {worker_of:?}");

    let balancer: SocketAddr = format!("{controller_ip}:{BALANCER_PORT}")
        .parse()
        .expect("address");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let mut served_by = HashSet::new();
    for _ in 0..60 {
        let (status, body) = get(&http, balancer, "web", "/").await;
        assert_eq!(status, 200, "{body}");
        let instance = body["instance"].as_str().expect("instance").to_owned();
        served_by.insert(worker_of[&instance].clone());
    }
    assert_eq!(served_by.len(), 3, "load reached all three workers");

    // Kill one worker's container: its instances must move to the other two.
    let victim: WorkerId = workers[0].parse().expect("id");
    let lost: HashSet<String> = worker_of
        .iter()
        .filter(|(_, w)| **w == victim)
        .map(|(i, _)| i.clone())
        .collect();
    docker
        .kill_container(
            &workers[0],
            Some(KillContainerOptionsBuilder::new().signal("SIGKILL").build()),
        )
        .await
        .expect("docker kill");
    let killed_at = Instant::now();
    let view = wait_for(&client, LIVENESS + Duration::from_secs(5), |v| {
        let placed = placement(v);
        v.replicas.running == 6 && placed.values().all(|w| *w != victim)
    })
    .await;
    let replaced_in = killed_at.elapsed();
    let worker_of = placement(&view);
    for _ in 0..60 {
        let (status, body) = get(&http, balancer, "web", "/").await;
        assert_eq!(status, 200, "{body}");
        let instance = body["instance"].as_str().expect("instance");
        assert!(
            !lost.contains(instance),
            "routed to a dead worker's instance {instance}"
        );
        assert!(
            worker_of.contains_key(instance),
            "{instance} is not a current instance"
        );
    }
    eprintln!("instances of the killed worker replaced in {replaced_in:?}");
}

/// The worker of each running instance of `view`, by instance id.
fn placement(view: &ServiceView) -> HashMap<String, WorkerId> {
    view.instances
        .iter()
        .filter(|i| i.state == InstanceState::Running)
        .filter_map(|i| Some((i.id.to_string(), i.worker.clone()?)))
        .collect()
}

/// Polls `web` until `done` holds, failing after `within`.
async fn wait_for(
    client: &ControllerClient,
    within: Duration,
    done: impl Fn(&ServiceView) -> bool,
) -> ServiceView {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(view) = client.service("web").await {
            if done(&view) {
                return view;
            }
            assert!(
                Instant::now() < deadline,
                "not there within {within:?}: {view:#?}"
            );
        }
        assert!(
            Instant::now() < deadline,
            "the controller did not answer in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
