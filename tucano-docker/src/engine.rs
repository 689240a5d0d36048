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
        .map_err(|e| DockerError::Unreachable(e.to_string()))?;
    checked(docker, "the local engine").await
}

/// Connects to the engine listening on the Unix socket at `path`, and checks it as
/// [`connect`] does.
pub async fn connect_unix(path: &str) -> Result<Docker, DockerError> {
    let docker =
        Docker::connect_with_unix(path, CLIENT_TIMEOUT.as_secs(), bollard::API_DEFAULT_VERSION)
            .map_err(|e| DockerError::Unreachable(format!("{path}: {e}")))?;
    checked(docker, path).await
}

/// The client's own limit on a call, which must outlast the longest one (a stop waits out
/// the grace period before the engine answers); each call has its own timeout on top.
const CLIENT_TIMEOUT: Duration =
    Duration::from_secs(MAX_STOP_GRACE.as_secs() + ENGINE_TIMEOUT.as_secs());

/// `docker` once it agreed on an API version and answered a ping; `at` names it in errors.
async fn checked(docker: Docker, at: &str) -> Result<Docker, DockerError> {
    let unreachable = |e: bollard::errors::Error| DockerError::Unreachable(format!("{at}: {e}"));
    let docker = docker.with_timeout(CLIENT_TIMEOUT);
    let docker = within(
        ENGINE_TIMEOUT,
        "version negotiation",
        docker.negotiate_version(),
    )
    .await?
    .map_err(unreachable)?;
    within(ENGINE_TIMEOUT, "ping", docker.ping())
        .await?
        .map_err(unreachable)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_absent_engine_is_a_clear_error() {
        let error = connect_unix("/nonexistent/tucano-test/docker.sock")
            .await
            .expect_err("nothing listens there");
        let message = error.to_string();
        assert!(matches!(error, DockerError::Unreachable(_)), "{message}");
        assert!(message.contains("Docker engine unreachable"), "{message}");
        assert!(
            message.contains("/nonexistent/tucano-test/docker.sock"),
            "{message}"
        );
    }
}
