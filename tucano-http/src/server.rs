//! Serving a router on a real socket, with graceful shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::ApiError;
use crate::json_body::MAX_BODY_BYTES;

/// How long shutdown waits for open requests to finish.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// A running API server.
pub struct ApiServer {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ApiServer {
    /// Serves `router` on `listener`, with the body limit and JSON 404/405 answers every
    /// Tucano API shares.
    pub fn serve(listener: TcpListener, router: Router) -> std::io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let router = router
            .fallback(|uri: Uri| async move { ApiError::no_route(uri.path()) })
            .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
                ApiError::new(
                    axum::http::StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    format!("{method} is not allowed on {}", uri.path()),
                )
            })
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            if let Err(error) = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(%error, "API server failed");
            }
        });
        Ok(Self {
            local_addr,
            stop,
            task,
        })
    }

    /// Where the server listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections and waits (bounded) for open requests to finish.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(SHUTDOWN_WAIT, &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}
