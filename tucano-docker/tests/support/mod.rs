//! What the Docker tests share, on top of `tucano_docker::testing`: the demo image of this
//! workspace, and the containers of a test's worker.

#![allow(dead_code)]

use std::path::Path;

use bollard::Docker;

/// Builds `tucano-demo:latest` once for this test binary; returns its id.
pub async fn demo_image(docker: &Docker) -> String {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    tucano_docker::testing::demo_image_once(docker, &workspace)
        .await
        .expect("the demo image builds")
}

/// The ids of the containers (running or not) labelled with `worker`.
pub async fn worker_containers(docker: &Docker, worker: &str) -> Vec<String> {
    tucano_docker::testing::worker_containers(docker, worker)
        .await
        .expect("containers list")
}
