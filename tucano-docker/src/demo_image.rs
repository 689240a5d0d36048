//! `tucano-demo:latest`: the demo binary of this repository, statically linked, alone in an
//! image. What the examples and the Docker tests run.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use bollard::Docker;

use crate::engine::within;
use crate::error::DockerError;
use crate::image_builder::build_image_from_binary;

/// The demo image's tag.
pub const DEMO_IMAGE: &str = "tucano-demo:latest";
/// The target the demo is compiled for, with `+crt-static`.
pub const STATIC_TARGET: &str = "x86_64-unknown-linux-gnu";
/// How long compiling the static demo may take (a cold release build of its dependencies).
const COMPILE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Compiles `tucano-demo` of the workspace at `workspace` as a statically linked release
/// binary, in its own target directory (`target/static`, so that the changed `RUSTFLAGS` do
/// not invalidate the usual build), and returns the binary's path.
pub async fn build_static_demo(workspace: &Path) -> Result<PathBuf, DockerError> {
    let target_dir = workspace.join("target").join("static");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = tokio::process::Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--release", "--bin", "tucano-demo", "--target"])
        .arg(STATIC_TARGET)
        .arg("--target-dir")
        .arg(&target_dir)
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let what = "tucano-demo (static)".to_owned();
    let compile_error = |message: String| DockerError::Compile {
        what: what.clone(),
        message,
    };
    let child = command.spawn().map_err(|e| compile_error(e.to_string()))?;
    let output = within(
        COMPILE_TIMEOUT,
        "static demo build",
        child.wait_with_output(),
    )
    .await?
    .map_err(|e| compile_error(e.to_string()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(compile_error(format!(
            "cargo {}:\n{}",
            output.status,
            tail.join("\n")
        )));
    }
    Ok(target_dir
        .join(STATIC_TARGET)
        .join("release")
        .join("tucano-demo"))
}

/// Compiles the static demo of the workspace at `workspace` and builds [`DEMO_IMAGE`] from it
/// through `docker`'s build API; returns the image id.
pub async fn build_demo_image(docker: &Docker, workspace: &Path) -> Result<String, DockerError> {
    let binary = build_static_demo(workspace).await?;
    build_image_from_binary(docker, &binary, DEMO_IMAGE).await
}
