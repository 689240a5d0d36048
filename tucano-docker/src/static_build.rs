//! Statically linked release builds of this workspace's binaries and examples, the content
//! of images that have nothing else in them (`FROM scratch`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::engine::within;
use crate::error::DockerError;

/// The target static binaries are compiled for, with `+crt-static`.
pub const STATIC_TARGET: &str = "x86_64-unknown-linux-gnu";
/// How long a static build may take (a cold release build of the dependencies).
const COMPILE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Compiles `selection` (cargo target flags: `["--bin", "tucano-demo"]`,
/// `["--example", "worker"]`, ...) of the workspace at `workspace` as statically linked
/// release binaries, in their own target directory (`target/static`, so that the changed
/// `RUSTFLAGS` do not invalidate the usual build). Returns the directory the binaries are in
/// (examples are in its `examples/`).
pub async fn build_static(workspace: &Path, selection: &[&str]) -> Result<PathBuf, DockerError> {
    let target_dir = workspace.join("target").join("static");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = tokio::process::Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--release", "--target", STATIC_TARGET])
        .args(selection)
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
    let compile_error = |message: String| DockerError::Compile {
        what: format!("{} (static)", selection.join(" ")),
        message,
    };
    let child = command.spawn().map_err(|e| compile_error(e.to_string()))?;
    let output = within(COMPILE_TIMEOUT, "static build", child.wait_with_output())
        .await?
        .map_err(|e| compile_error(e.to_string()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        let tail = &lines[lines.len().saturating_sub(20)..];
        return Err(compile_error(format!(
            "cargo {}:\n{}",
            output.status,
            tail.join("\n")
        )));
    }
    Ok(target_dir.join(STATIC_TARGET).join("release"))
}
