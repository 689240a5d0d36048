//! Why a node could not start.

use std::net::SocketAddr;

/// Why a [`ControllerNode`](crate::ControllerNode) or [`WorkerNode`](crate::WorkerNode)
/// could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A listening address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The controller's store could not be opened or read.
    #[error(transparent)]
    Store(#[from] tucano_core::store::StoreError),
    /// The runtime could not be created.
    #[error(transparent)]
    Runtime(#[from] tucano_core::RuntimeError),
    /// Node metrics are unavailable.
    #[error(transparent)]
    Metrics(#[from] tucano_core::MetricsError),
    /// The worker failed to start or register.
    #[error(transparent)]
    Worker(#[from] tucano_core::worker::WorkerError),
    /// An HTTP client could not be built.
    #[error(transparent)]
    Client(#[from] tucano_http::ClientError),
    /// A proxy failed to start.
    #[error(transparent)]
    Proxy(#[from] tucano_lb::ProxyError),
    /// The Docker engine could not be reached (a worker with the Docker runtime).
    #[error(transparent)]
    Docker(#[from] tucano_docker::DockerError),
    /// The configuration is inconsistent.
    #[error("{0}")]
    Config(String),
}

/// Binds a TCP listener, naming the address on failure.
pub(crate) async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, NodeError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Bind { addr, source })
}

/// The address a listener actually got (port 0 resolved).
pub(crate) fn local_addr(
    listener: &tokio::net::TcpListener,
    addr: SocketAddr,
) -> Result<SocketAddr, NodeError> {
    listener
        .local_addr()
        .map_err(|source| NodeError::Bind { addr, source })
}
