//! Errors starting a proxy.

use std::io;
use std::net::SocketAddr;

/// Why a proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The listener's own address could not be read.
    #[error("cannot read the listening address: {0}")]
    LocalAddr(#[source] io::Error),
    /// The proxy was started outside a Tokio runtime, which it needs to run.
    #[error("a proxy must be started from within a Tokio runtime")]
    NoRuntime,
}
