//! `DockerRuntime` against the real engine: limits and labels as the engine sees them,
//! graceful stop and kill after the grace period, crash and OOM reported with their cause,
//! adoption after a restart, clear errors for a missing image or a command-only spec, and
//! resource usage from the engine's stats.
//!
//! Needs a Docker engine: without one each test prints a line saying it skipped, unless
//! `TUCANO_REQUIRE_DOCKER=1` (CI), where they fail.

use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::query_parameters::InspectContainerOptions;
use tokio::sync::broadcast;
use tucano_core::{
    ExitStatus, InstanceId, InstanceSpec, Runtime, RuntimeError, RuntimeEvent, ServiceSpec,
    StartedInstance,
};
use tucano_docker::{
    DEMO_IMAGE, DockerRuntime, DockerRuntimeConfig, INSTANCE_LABEL, SERVICE_LABEL, WORKER_LABEL,
};

use tucano_docker::testing::{docker_or_skip, with_cleanup};

mod support;
use support::{demo_image, worker_containers};

/// A worker id of its own for each test, so that tests running at once never see each
/// other's containers or events.
fn worker(test: &str) -> String {
    format!("t-{test}-{}", std::process::id())
}

async fn runtime(docker: &Docker, worker: &str) -> DockerRuntime {
    let config = DockerRuntimeConfig::new(worker.parse().expect("a worker id"));
    DockerRuntime::new(docker.clone(), config)
        .await
        .expect("the runtime starts")
}

/// An instance of the demo image with `cpus` and `memory_mb`.
fn demo(cpus: f64, memory_mb: u64) -> InstanceSpec {
    let mut service = ServiceSpec::from_image("web".parse().expect("a name"), DEMO_IMAGE);
    service.resources.cpus = cpus;
    service.resources.memory_mb = memory_mb;
    service.startup_timeout = Duration::from_secs(20);
    service.instance(InstanceId::new())
}

async fn get(started: &StartedInstance, path: &str) -> Result<serde_json::Value, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?
        .get(format!("http://{}{path}", started.address))
        .send()
        .await?
        .json()
        .await
}

/// The next exit of `instance` reported by the runtime, within 20 s.
async fn exit_of(
    events: &mut broadcast::Receiver<RuntimeEvent>,
    instance: InstanceId,
) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Ok(RuntimeEvent::Exited {
                instance: id,
                status,
            })) if id == instance => {
                return status;
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => panic!("runtime events: {error}"),
            Err(_) => panic!("no exit reported for {instance} within 20 s"),
        }
    }
}

macro_rules! docker_test {
    ($name:ident, |$docker:ident, $worker:ident| $body:block) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let Some(docker) = docker_or_skip(stringify!($name)).await else {
                return;
            };
            demo_image(&docker).await;
            let worker = worker(stringify!($name));
            let $docker = docker.clone();
            let $worker = worker.clone();
            with_cleanup(&docker, &worker, async move { $body }).await;
        }
    };
}

docker_test!(
    starts_with_limits_and_labels_and_stops_gracefully,
    |docker, worker| {
        let runtime = runtime(&docker, &worker).await;
        let spec = demo(0.5, 64);
        let started = runtime.start(&spec).await.expect("the instance starts");
        let answer = get(&started, "/").await.expect("the instance answers");
        assert_eq!(answer["instance"], spec.id.to_string(), "{answer}");

        let inspect = docker
            .inspect_container(
                &DockerRuntime::container_name(spec.id),
                None::<InspectContainerOptions>,
            )
            .await
            .expect("the engine knows the container");
        let host = inspect.host_config.expect("host config");
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.memory, Some(64 * 1024 * 1024));
        let labels = inspect.config.and_then(|c| c.labels).expect("labels");
        assert_eq!(labels[SERVICE_LABEL], "web");
        assert_eq!(labels[INSTANCE_LABEL], spec.id.to_string());
        assert_eq!(labels[WORKER_LABEL], worker);

        let listed = runtime.list().await.expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].id, listed[0].address),
            (spec.id, started.address)
        );
        let logs = runtime.logs(spec.id, 50).await.expect("logs");
        assert!(
            logs.iter()
                .any(|l| l.line.contains("tucano-demo listening")),
            "{logs:?}"
        );

        // The demo exits 0 only from its SIGTERM handler, after draining: a graceful stop.
        let status = runtime
            .stop(spec.id, Duration::from_secs(10))
            .await
            .expect("the instance stops");
        assert_eq!(status.code, Some(0), "{status}");
        assert_eq!(status.signal, None, "{status}");
        assert!(
            worker_containers(&docker, &worker).await.is_empty(),
            "removed after stop"
        );
        assert!(matches!(
            runtime.stop(spec.id, Duration::from_secs(1)).await,
            Err(RuntimeError::NotFound(_))
        ));
    }
);

docker_test!(kills_after_the_grace_period, |docker, worker| {
    let runtime = runtime(&docker, &worker).await;
    let spec = demo(0.5, 64);
    let started = runtime.start(&spec).await.expect("the instance starts");
    // A request in flight for 30 s keeps the demo draining after SIGTERM: SIGKILL ends it.
    let slow = tokio::spawn(async move { get(&started, "/work?ms=30000").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let began = Instant::now();
    let status = runtime
        .stop(spec.id, Duration::from_secs(1))
        .await
        .expect("the instance stops");
    let took = began.elapsed();
    assert_eq!(status.signal, Some(9), "{status}");
    assert!(
        took >= Duration::from_secs(1),
        "killed before the grace period: {took:?}"
    );
    assert!(took < Duration::from_secs(15), "kill came late: {took:?}");
    assert!(slow.await.expect("the request task").is_err());
    drop(docker);
});

docker_test!(reports_a_crash_with_its_exit_code, |docker, worker| {
    let runtime = runtime(&docker, &worker).await;
    let mut events = runtime.subscribe();
    let spec = demo(0.5, 64);
    let started = runtime.start(&spec).await.expect("the instance starts");
    let _ = get(&started, "/crash?code=3").await;
    let status = exit_of(&mut events, spec.id).await;
    assert_eq!(status.code, Some(3), "{status}");
    assert!(!status.oom_killed);
    // The exited container is kept (for its logs) until stopped, then removed.
    let logs = runtime
        .logs(spec.id, 20)
        .await
        .expect("logs of the crashed instance");
    assert!(
        logs.iter().any(|l| l.line.contains("exiting with code 3")),
        "{logs:?}"
    );
    let status = runtime
        .stop(spec.id, Duration::from_secs(1))
        .await
        .expect("stop");
    assert_eq!(status.code, Some(3));
    assert!(worker_containers(&docker, &worker).await.is_empty());
});

docker_test!(reports_an_oom_kill, |docker, worker| {
    let runtime = runtime(&docker, &worker).await;
    let mut events = runtime.subscribe();
    let spec = demo(0.5, 32);
    let started = runtime.start(&spec).await.expect("the instance starts");
    assert!(
        get(&started, "/alloc?mb=128").await.is_err(),
        "128 MiB fit in 32"
    );
    let status = exit_of(&mut events, spec.id).await;
    assert!(status.oom_killed, "{status}");
    drop(docker);
});

docker_test!(
    adopts_live_containers_and_removes_dead_ones,
    |docker, worker| {
        let first = runtime(&docker, &worker).await;
        let live = demo(0.25, 64);
        let started = first.start(&live).await.expect("starts");
        let dead = demo(0.25, 64);
        let crashed = first.start(&dead).await.expect("starts");
        let mut events = first.subscribe();
        let _ = get(&crashed, "/crash?code=1").await;
        exit_of(&mut events, dead.id).await;
        assert_eq!(worker_containers(&docker, &worker).await.len(), 2);
        drop(first);

        // The worker restarts: a new runtime for the same worker id.
        let second = runtime(&docker, &worker).await;
        let listed = second.list().await.expect("list");
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(
            (listed[0].id, listed[0].address),
            (live.id, started.address)
        );
        assert_eq!(listed[0].service.as_str(), "web");
        assert_eq!(
            worker_containers(&docker, &worker).await.len(),
            1,
            "nothing new started, the dead container removed"
        );
        assert!(
            get(&started, "/").await.is_ok(),
            "the adopted instance still serves"
        );
        let status = second
            .stop(live.id, Duration::from_secs(10))
            .await
            .expect("stop");
        assert_eq!(status.code, Some(0));
    }
);

docker_test!(
    missing_image_and_command_only_specs_are_clear_errors,
    |docker, worker| {
        let runtime = runtime(&docker, &worker).await;
        let mut spec = demo(0.25, 64);
        spec.image = Some("tucano-no-such-image:never".into());
        match runtime.start(&spec).await {
            Err(RuntimeError::ImageNotFound { image }) => {
                assert_eq!(image, "tucano-no-such-image:never")
            }
            other => panic!("expected image_not_found, got {other:?}"),
        }
        let command = ServiceSpec::new("web".parse().expect("a name"), vec!["/bin/true".into()])
            .instance(InstanceId::new());
        assert!(matches!(
            runtime.start(&command).await,
            Err(RuntimeError::Unsupported(_))
        ));
        assert!(worker_containers(&docker, &worker).await.is_empty());
    }
);

/// A prime near 2^44: factorising it takes about two million trial divisions.
const PRIME: u64 = 17_592_186_044_399;

docker_test!(
    measures_cpu_and_memory_from_engine_stats,
    |docker, worker| {
        let runtime = runtime(&docker, &worker).await;
        let spec = demo(1.0, 256);
        let started = runtime.start(&spec).await.expect("the instance starts");
        let before = runtime
            .usage(spec.id)
            .await
            .expect("usage of a running container");
        assert!(before.memory_bytes > 0, "{before:?}");

        // Two clients factorising a prime for about a second.
        let began = Instant::now();
        let burners: Vec<_> = (0..2)
            .map(|_| {
                tokio::spawn(async move {
                    while began.elapsed() < Duration::from_millis(1_500) {
                        get(&started, &format!("/factor?n={PRIME}"))
                            .await
                            .expect("factor answers");
                    }
                })
            })
            .collect();
        for burner in burners {
            burner.await.expect("the burner task");
        }
        let burned = runtime.usage(spec.id).await.expect("usage after burning");
        let wall = began.elapsed().as_secs_f64();
        let cores = (burned.cpu_time.saturating_sub(before.cpu_time)).as_secs_f64() / wall;
        println!("docker instance used {cores:.2} cores while burning (limit 1.0)");
        assert!(cores > 0.3, "{cores} cores: {before:?} → {burned:?}");

        get(&started, "/alloc?mb=64").await.expect("alloc answers");
        let grown = runtime.usage(spec.id).await.expect("usage after alloc");
        assert!(
            grown.memory_bytes >= burned.memory_bytes + 48 * 1024 * 1024,
            "{burned:?} → {grown:?}"
        );

        runtime
            .stop(spec.id, Duration::from_secs(5))
            .await
            .expect("the instance stops");
        assert!(matches!(
            runtime.usage(spec.id).await,
            Err(RuntimeError::NotFound(_))
        ));
    }
);
