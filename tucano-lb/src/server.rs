//! The accept loop both proxies run, and the handle that stops it.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, error, info, warn};

use crate::body::ProxyBody;
use crate::config::ProxyConfig;
use crate::error::ProxyError;
use crate::forward::ClientAddress;
use crate::maintenance::Maintenance;

/// How long the accept loop pauses after an accept error (such as running out of file
/// descriptors) before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Answers one request. Never fails: errors become error responses.
pub(crate) trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        request: Request<Incoming>,
        client: &ClientAddress,
    ) -> impl Future<Output = Response<ProxyBody>> + Send;
}

/// A running proxy. [`shutdown`](ProxyServer::shutdown) stops it gracefully; dropping it
/// stops accepting too, and lets open connections finish in the background.
#[derive(Debug)]
#[must_use = "dropping a ProxyServer stops it"]
pub struct ProxyServer {
    local_addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    upkeep: Option<Maintenance>,
}

impl ProxyServer {
    /// The address the proxy listens on (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections, lets requests in progress finish (idle keep-alive
    /// connections close at once), and returns when every connection is closed or after
    /// [`ProxyConfig::shutdown_timeout`], when the remaining ones are closed.
    pub async fn shutdown(self) {
        // The loop may already have ended; then there is nothing to tell it.
        let _ = self.stop.send(());
        if let Err(error) = self.task.await {
            error!(%error, "proxy accept loop ended abnormally");
        }
        if let Some(upkeep) = self.upkeep {
            upkeep.stop().await;
        }
    }

    /// Keeps `upkeep` running as long as this server.
    pub(crate) fn with_upkeep(mut self, upkeep: Maintenance) -> Self {
        self.upkeep = Some(upkeep);
        self
    }
}

/// Serves `handler` on `listener` in a new task on the current Tokio runtime.
pub(crate) fn serve<H: Handler>(
    listener: TcpListener,
    handler: H,
    config: &ProxyConfig,
    name: &'static str,
) -> Result<ProxyServer, ProxyError> {
    let runtime = Handle::try_current().map_err(|_| ProxyError::NoRuntime)?;
    let local_addr = listener.local_addr().map_err(ProxyError::LocalAddr)?;
    let mut http = http1::Builder::new();
    // Responses carry the upstream's Date, or one the proxy adds where it is missing (see
    // `headers::date_now`), so hyper need not render its own on every response.
    http.timer(TokioTimer::new())
        .header_read_timeout(config.client_header_timeout)
        .auto_date_header(false);
    let (stop, stopped) = oneshot::channel();
    let task = runtime.spawn(accept_loop(
        listener,
        Arc::new(handler),
        http,
        stopped,
        config.shutdown_timeout,
        name,
    ));
    info!(proxy = name, %local_addr, "listening");
    Ok(ProxyServer {
        local_addr,
        stop,
        task,
        upkeep: None,
    })
}

async fn accept_loop<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    http: http1::Builder,
    mut stopped: oneshot::Receiver<()>,
    shutdown_timeout: Duration,
    name: &'static str,
) {
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            // A stop message or a dropped ProxyServer.
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, client)) => {
                    if let Err(error) = stream.set_nodelay(true) {
                        debug!(proxy = name, %client, %error, "cannot set TCP_NODELAY");
                    }
                    let handler = Arc::clone(&handler);
                    let address = Arc::new(ClientAddress::new(client));
                    let service = service_fn(move |request| {
                        let handler = Arc::clone(&handler);
                        let address = Arc::clone(&address);
                        async move { Ok::<_, Infallible>(handler.handle(request, &address).await) }
                    });
                    let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                    connections.spawn(async move {
                        if let Err(error) = connection.await {
                            debug!(proxy = name, %client, %error, "connection closed with an error");
                        }
                    });
                }
                Err(error) => {
                    warn!(proxy = name, %error, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
            Some(finished) = connections.join_next(), if !connections.is_empty() => {
                if let Err(error) = finished {
                    error!(proxy = name, %error, "connection task ended abnormally");
                }
            }
        }
    }
    drop(listener);
    let open = graceful.count();
    info!(proxy = name, open, "shutting down");
    if tokio::time::timeout(shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        warn!(
            proxy = name,
            open = connections.len(),
            "connections still open after {shutdown_timeout:?}; closing them"
        );
    }
    connections.shutdown().await;
    info!(proxy = name, "stopped");
}
