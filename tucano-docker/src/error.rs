//! What can go wrong talking to the Docker engine.

use std::time::Duration;

/// Why a Docker operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The engine could not be reached or did not answer (no socket, daemon down, timeout).
    #[error("Docker engine unreachable: {0} (is the daemon running, and DOCKER_HOST right?)")]
    Unreachable(String),
    /// An engine call did not finish in time.
    #[error("Docker engine did not answer {operation} within {timeout:?}")]
    Timeout {
        /// What was asked.
        operation: &'static str,
        /// How long it was given.
        timeout: Duration,
    },
    /// The engine refused or failed an image build.
    #[error("building image {image} failed: {message}")]
    Build {
        /// The tag being built.
        image: String,
        /// The engine's message.
        message: String,
    },
    /// Compiling the binary to put in an image failed.
    #[error("compiling {what} failed: {message}")]
    Compile {
        /// What was being compiled.
        what: String,
        /// The compiler's last output or the OS error.
        message: String,
    },
    /// A local file could not be read.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// The OS error.
        message: String,
    },
    /// Any other engine error.
    #[error("Docker engine error: {0}")]
    Engine(#[from] bollard::errors::Error),
}
