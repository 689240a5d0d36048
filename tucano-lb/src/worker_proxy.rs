//! The worker's proxy: forwards each request to the local instance named by its
//! `x-tucano-instance` header.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Method, Request, Response};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tracing::warn;
use tucano_core::InstanceId;
use tucano_core::transport::InstanceDirectory;

use crate::body::ProxyBody;
use crate::config::ProxyConfig;
use crate::error::ProxyError;
use crate::error_code::ErrorCode;
use crate::failure::Failure;
use crate::forward::{ClientAddress, Forwarder, RequestBody};
use crate::headers::{ERROR_HEADER, INSTANCE_HEADER};
use crate::server::{self, Handler, ProxyServer};

/// The reverse proxy each worker runs in front of its instances, as in the Tucano paper: the
/// balancer sends it requests with `x-tucano-instance: <id>`, and it forwards each to the
/// address the [`InstanceDirectory`] gives for that id, with `x-tucano-instance` and
/// `x-forwarded-for` as received.
///
/// When it cannot forward, it answers with a JSON error and the [`ERROR_HEADER`]:
/// 400 `missing_instance` (no valid header), 404 `unknown_instance` (not running here), 502
/// `instance_unreachable` (it refused the connection: the request never reached it),
/// 502 `upstream_unavailable`, 504 `upstream_timeout`. It removes `x-tucano-error` from
/// instances' responses, so the balancer can tell its errors from the application's.
///
/// ```
/// use std::collections::HashMap;
/// use std::net::SocketAddr;
/// use std::sync::Arc;
/// use tucano_core::InstanceId;
/// use tucano_core::transport::InstanceDirectory;
/// use tucano_lb::{ProxyConfig, WorkerProxy};
///
/// struct Fixed(HashMap<InstanceId, SocketAddr>);
/// impl InstanceDirectory for Fixed {
///     fn address_of(&self, id: &InstanceId) -> Option<SocketAddr> {
///         self.0.get(id).copied()
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tucano_lb::ProxyError> {
/// let directory = Arc::new(Fixed(HashMap::new()));
/// let server = WorkerProxy::bind(([127, 0, 0, 1], 0).into(), directory, ProxyConfig::default()).await?;
/// println!("worker proxy on {}", server.local_addr());
/// server.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct WorkerProxy {
    directory: Arc<dyn InstanceDirectory>,
    forwarder: Forwarder,
}

impl WorkerProxy {
    /// Listens on `addr` and forwards to the instances in `directory`.
    pub async fn bind(
        addr: SocketAddr,
        directory: Arc<dyn InstanceDirectory>,
        config: ProxyConfig,
    ) -> Result<ProxyServer, ProxyError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ProxyError::Bind { addr, source })?;
        Self::serve(listener, directory, config)
    }

    /// Forwards to the instances in `directory` from an already bound `listener`, on the
    /// current Tokio runtime.
    pub fn serve(
        listener: TcpListener,
        directory: Arc<dyn InstanceDirectory>,
        config: ProxyConfig,
    ) -> Result<ProxyServer, ProxyError> {
        let proxy = Self {
            directory,
            forwarder: Forwarder::new(&config),
        };
        server::serve(listener, proxy, &config, "worker")
    }

    async fn route(&self, request: Request<Incoming>) -> Result<Response<ProxyBody>, Failure> {
        if request.method() == Method::CONNECT {
            return Err(Failure::new(
                ErrorCode::BadRequest,
                "CONNECT is not supported: this is a reverse proxy",
            ));
        }
        let instance_header = request
            .headers()
            .get(INSTANCE_HEADER)
            .cloned()
            .ok_or_else(|| {
                Failure::new(
                    ErrorCode::MissingInstance,
                    "the request has no x-tucano-instance header",
                )
            })?;
        let instance: InstanceId = instance_header
            .to_str()
            .ok()
            .and_then(|id| id.trim().parse().ok())
            .ok_or_else(|| {
                Failure::new(
                    ErrorCode::MissingInstance,
                    "the x-tucano-instance header is not an instance id",
                )
            })?;
        let address = self.directory.address_of(&instance).ok_or_else(|| {
            Failure::new(
                ErrorCode::UnknownInstance,
                format!("instance {instance} is not running on this worker"),
            )
        })?;
        let mut response = self
            .forwarder
            .forward(request.map(RequestBody::Incoming), address, |headers| {
                // Routing depends on it: keep it even if `Connection` named it.
                headers.insert(INSTANCE_HEADER, instance_header);
            })
            .await
            .map_err(|error| {
                warn!(%instance, %address, %error, "forwarding to instance failed");
                if error.is_connect() {
                    // Stopping (its listener closed) or gone: the balancer may send it elsewhere.
                    Failure::new(
                        ErrorCode::InstanceUnreachable,
                        format!("instance {instance} could not be connected to"),
                    )
                } else {
                    error.failure()
                }
            })?;
        response.headers_mut().remove(ERROR_HEADER);
        Ok(response.map(|body| ProxyBody::upstream(body, None)))
    }
}

impl Handler for WorkerProxy {
    async fn handle(
        &self,
        request: Request<Incoming>,
        _client: &ClientAddress,
    ) -> Response<ProxyBody> {
        match self.route(request).await {
            Ok(response) => response,
            Err(failure) => failure.into_response(),
        }
    }
}

impl std::fmt::Debug for WorkerProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerProxy")
            .field("forwarder", &self.forwarder)
            .finish_non_exhaustive()
    }
}
