//! For tests that need a real engine: connect or say why the test skips (a failure when
//! `TUCANO_REQUIRE_DOCKER=1`, as in CI), and find or remove the containers a test's worker
//! made.

use std::path::Path;

use bollard::Docker;
use bollard::query_parameters::ListContainersOptionsBuilder;

use tokio::sync::OnceCell;

use crate::demo_image::build_demo_image;
use crate::engine::{ENGINE_TIMEOUT, connect, within};
use crate::error::DockerError;
use crate::runtime::{WORKER_LABEL, force_remove, label_filter};

/// Most removal passes of [`with_cleanup_of`].
pub const CLEANUP_PASSES: u32 = 5;
/// Pause between two removal passes.
const CLEANUP_PAUSE: std::time::Duration = std::time::Duration::from_millis(500);

/// The variable that makes a missing engine a test failure rather than a skip.
pub const REQUIRE_DOCKER_ENV: &str = "TUCANO_REQUIRE_DOCKER";

/// The engine, or `None` after printing on a line of its own why `test` skips. Panics
/// instead when `TUCANO_REQUIRE_DOCKER=1`.
pub async fn docker_or_skip(test: &str) -> Option<Docker> {
    match connect().await {
        Ok(docker) => Some(docker),
        Err(error) if std::env::var(REQUIRE_DOCKER_ENV).as_deref() == Ok("1") => {
            panic!("{REQUIRE_DOCKER_ENV}=1 but {error}")
        }
        Err(error) => {
            eprintln!("SKIPPED {test}: no Docker engine ({error})");
            None
        }
    }
}

/// The ids of the containers, running or not, labelled with `worker`.
pub async fn worker_containers(docker: &Docker, worker: &str) -> Result<Vec<String>, DockerError> {
    containers_labelled(docker, &worker_label(worker)).await
}

/// The label (`key=value`) that marks `worker`'s containers.
pub fn worker_label(worker: &str) -> String {
    format!("{WORKER_LABEL}={worker}")
}

/// The ids of the containers, running or not, that carry `label` (`key=value`).
pub async fn containers_labelled(docker: &Docker, label: &str) -> Result<Vec<String>, DockerError> {
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&label_filter(label))
        .build();
    let containers = within(
        ENGINE_TIMEOUT,
        "container list",
        docker.list_containers(Some(options)),
    )
    .await??;
    Ok(containers.into_iter().filter_map(|c| c.id).collect())
}

/// Removes every container carrying `label` (`key=value`), whatever its state; says on
/// stderr what it could not remove.
pub async fn remove_containers_labelled(docker: &Docker, label: &str) {
    let containers = match containers_labelled(docker, label).await {
        Ok(containers) => containers,
        Err(error) => {
            eprintln!("cleanup: could not list the containers labelled {label}: {error}");
            return;
        }
    };
    for id in containers {
        if let Err(error) = force_remove(docker, &id).await {
            eprintln!("cleanup: could not remove container {id}: {error}");
        }
    }
}

/// Removes network `name`; false (and a line on stderr) if it could not.
pub async fn remove_network(docker: &Docker, name: &str) -> bool {
    let removed = within(
        ENGINE_TIMEOUT,
        "network remove",
        docker.remove_network(name),
    )
    .await;
    let done = matches!(removed, Ok(Ok(())));
    if !done {
        eprintln!("cleanup: could not remove network {name}");
    }
    done
}

/// Builds [`DEMO_IMAGE`](crate::DEMO_IMAGE) from the workspace at `workspace` once for this
/// process (later calls wait for the first and share its result); returns the image id.
pub async fn demo_image_once(docker: &Docker, workspace: &Path) -> Result<String, String> {
    static IMAGE: OnceCell<Result<String, String>> = OnceCell::const_new();
    IMAGE
        .get_or_init(|| async {
            build_demo_image(docker, workspace)
                .await
                .map_err(|e| e.to_string())
        })
        .await
        .clone()
}

/// Runs `test` as a task (so that a failed assertion is caught), then removes every
/// container labelled with `worker`, then fails as the test did: cleanup happens whatever
/// the outcome.
pub async fn with_cleanup<F>(docker: &Docker, worker: &str, test: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    with_cleanup_of(docker, &[worker_label(worker)], &[], test).await;
}

/// Runs `test` as a task, then removes every container carrying one of `labels`
/// (`key=value`, in that order: put the labels of containers that make containers first),
/// then the `networks`, then fails as the test did — or, if the test passed, fails when
/// anything could not be removed. Removal is repeated (up to
/// [`CLEANUP_PASSES`] times) while containers with those labels remain, since a worker that was
/// being removed may have had a container creation on its way to the engine.
pub async fn with_cleanup_of<F>(docker: &Docker, labels: &[String], networks: &[String], test: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let outcome = tokio::spawn(test).await;
    let mut left = 0;
    for pass in 1..=CLEANUP_PASSES {
        for label in labels {
            remove_containers_labelled(docker, label).await;
        }
        left = 0;
        for label in labels {
            left += containers_labelled(docker, label)
                .await
                .map_or(0, |c| c.len());
        }
        if left == 0 {
            break;
        }
        eprintln!("cleanup: {left} containers appeared during pass {pass}; removing again");
        tokio::time::sleep(CLEANUP_PAUSE).await;
    }
    let mut networks_left = Vec::new();
    for network in networks {
        if !remove_network(docker, network).await {
            networks_left.push(network.as_str());
        }
    }
    if let Err(error) = outcome {
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("test task failed: {error}"),
        }
    }
    assert!(
        left == 0 && networks_left.is_empty(),
        "the test left {left} containers and the networks {networks_left:?} behind"
    );
}
