//! `tucano-demo:latest`: the demo binary of this repository, statically linked, alone in an
//! image. What the examples and the Docker tests run.

use std::path::{Path, PathBuf};

use bollard::Docker;

use crate::error::DockerError;
use crate::image_builder::build_image_from_binary;
use crate::static_build::build_static;

/// The demo image's tag.
pub const DEMO_IMAGE: &str = "tucano-demo:latest";

/// Compiles `tucano-demo` of the workspace at `workspace` statically (see
/// [`build_static`]) and returns the binary's path.
pub async fn build_static_demo(workspace: &Path) -> Result<PathBuf, DockerError> {
    Ok(build_static(workspace, &["--bin", "tucano-demo"])
        .await?
        .join("tucano-demo"))
}

/// Compiles the static demo of the workspace at `workspace` and builds [`DEMO_IMAGE`] from it
/// through `docker`'s build API; returns the image id.
pub async fn build_demo_image(docker: &Docker, workspace: &Path) -> Result<String, DockerError> {
    let binary = build_static_demo(workspace).await?;
    build_image_from_binary(docker, &binary, DEMO_IMAGE).await
}
