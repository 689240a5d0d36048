//! Connecting to the Docker engine.

use std::time::Duration;

use bollard::Docker;
use tucano_core::MAX_STOP_GRACE;

use crate::error::DockerError;

/// How long a short engine call (version, ping, inspect) may take.
pub const ENGINE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to the local engine (`DOCKER_HOST`, else `/var/run/docker.sock`), agrees on an API
/// version, and checks that it answers: an engine that is absent or stuck is an error here,
/// with its cause, rather than at the first container started.
pub async fn connect() -> Result<Docker, DockerError> {
    let docker = Docker::connect_with_local_defaults()
        .map_err(|e| DockerError::Unreachable(e.to_string()))?
        // The client's own limit must outlast the longest call (a stop waits out the grace
        // period before the engine answers); each call has its own timeout on top.
        .with_timeout(MAX_STOP_GRACE + ENGINE_TIMEOUT);
    let docker = within(
        ENGINE_TIMEOUT,
        "version negotiation",
        docker.negotiate_version(),
    )
    .await?
    .map_err(|e| DockerError::Unreachable(e.to_string()))?;
    within(ENGINE_TIMEOUT, "ping", docker.ping())
        .await?
        .map_err(|e| DockerError::Unreachable(e.to_string()))?;
    Ok(docker)
}

/// `future`, or [`DockerError::Timeout`] after `timeout`.
pub(crate) async fn within<T>(
    timeout: Duration,
    operation: &'static str,
    future: impl Future<Output = T>,
) -> Result<T, DockerError> {
    tokio::time::timeout(timeout, future)
        .await
        .map_err(|_| DockerError::Timeout { operation, timeout })
}
