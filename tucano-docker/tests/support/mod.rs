//! What the Docker tests share: the engine (or a line saying why a test skips), the demo
//! image built once per test binary, and cleanup of every container a test made.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;

use bollard::Docker;
use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder};
use tokio::sync::OnceCell;
use tucano_docker::{WORKER_LABEL, build_demo_image, connect};

/// The engine, or `None` after printing why `test` skips. With `TUCANO_REQUIRE_DOCKER=1` (CI)
/// a missing engine fails the test instead.
pub async fn docker_or_skip(test: &str) -> Option<Docker> {
    match connect().await {
        Ok(docker) => Some(docker),
        Err(error) if std::env::var("TUCANO_REQUIRE_DOCKER").as_deref() == Ok("1") => {
            panic!("TUCANO_REQUIRE_DOCKER=1 but {error}")
        }
        Err(error) => {
            eprintln!("SKIPPED {test}: no Docker engine ({error})");
            None
        }
    }
}

/// Builds `tucano-demo:latest` once for this test binary; returns its id.
pub async fn demo_image(docker: &Docker) -> String {
    static IMAGE: OnceCell<String> = OnceCell::const_new();
    IMAGE
        .get_or_init(|| async {
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            build_demo_image(docker, &workspace)
                .await
                .expect("the demo image builds")
        })
        .await
        .clone()
}

/// Runs `test` (a spawned task, so that a failed assertion is caught), then removes every
/// container labelled with `worker`, then fails if the test did.
pub async fn with_cleanup<F>(docker: &Docker, worker: &str, test: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let outcome = tokio::spawn(test).await;
    remove_worker_containers(docker, worker).await;
    if let Err(error) = outcome {
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("test task failed: {error}"),
        }
    }
}

/// The ids of the containers (running or not) labelled with `worker`.
pub async fn worker_containers(docker: &Docker, worker: &str) -> Vec<String> {
    let filters = HashMap::from([("label", vec![format!("{WORKER_LABEL}={worker}")])]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    docker
        .list_containers(Some(options))
        .await
        .expect("containers list")
        .into_iter()
        .filter_map(|c| c.id)
        .collect()
}

/// Removes every container labelled with `worker`.
pub async fn remove_worker_containers(docker: &Docker, worker: &str) {
    for id in worker_containers(docker, worker).await {
        let options = RemoveContainerOptionsBuilder::new().force(true).build();
        if let Err(error) = docker.remove_container(&id, Some(options)).await {
            eprintln!("cleanup: could not remove {id}: {error}");
        }
    }
}
