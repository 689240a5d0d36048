//! The balancer's reverse proxy: routes each request by its Host header to one of the
//! service's running instances, through that instance's worker proxy.

use std::net::SocketAddr;
use std::sync::Arc;

use http::header::HOST;
use http::{Method, Request, Response};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tracing::{debug, warn};

use crate::balancer::PickContext;
use crate::body::ProxyBody;
use crate::config::ProxyConfig;
#[cfg(doc)]
use crate::endpoint_state::EndpointState;
use crate::error::ProxyError;
use crate::error_code::ErrorCode;
use crate::failure::Failure;
use crate::forward::{Forwarder, append_forwarded_for};
use crate::headers::{ERROR_HEADER, INSTANCE_HEADER};
use crate::routing_table::{RoutingTable, SelectError};
use crate::server::{self, Handler, ProxyServer};

/// The load balancer's HTTP/1.1 reverse proxy.
///
/// For each request it reads the service from the Host header (port, case and a trailing dot
/// ignored), asks the [`RoutingTable`] for one of the service's running instances, and sends
/// the request to that instance's worker proxy with `x-tucano-instance: <instance id>` and the
/// client's address appended to `x-forwarded-for`. Bodies stream both ways; hop-by-hop headers
/// are removed both ways; Host is kept. Upstream connections are pooled and kept alive.
/// A request counts as in flight on its endpoint ([`EndpointState::in_flight`]) from the pick
/// until its response body has been sent, has failed, or the client has gone away.
///
/// When it cannot forward, it answers `{"error":{"code":"...","message":"..."}}`:
/// 400 `missing_host`, 404 `unknown_service`, 503 `no_instance`, 502 `upstream_unavailable`
/// (also when the worker proxy does not know the instance), 504 `upstream_timeout`.
///
/// ```
/// use std::sync::Arc;
/// use tucano_lb::{Proxy, ProxyConfig, RoutingTable};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tucano_lb::ProxyError> {
/// let table = Arc::new(RoutingTable::new()); // give it to the controller as its EndpointSink
/// let server = Proxy::bind(([127, 0, 0, 1], 0).into(), table, ProxyConfig::default()).await?;
/// println!("balancing on http://{}", server.local_addr());
/// server.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Proxy {
    table: Arc<RoutingTable>,
    forwarder: Forwarder,
}

impl Proxy {
    /// Listens on `addr` and serves requests routed by `table`.
    pub async fn bind(
        addr: SocketAddr,
        table: Arc<RoutingTable>,
        config: ProxyConfig,
    ) -> Result<ProxyServer, ProxyError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ProxyError::Bind { addr, source })?;
        Self::serve(listener, table, config)
    }

    /// Serves requests routed by `table` on an already bound `listener`, on the
    /// current Tokio runtime.
    pub fn serve(
        listener: TcpListener,
        table: Arc<RoutingTable>,
        config: ProxyConfig,
    ) -> Result<ProxyServer, ProxyError> {
        let proxy = Self {
            table,
            forwarder: Forwarder::new(&config),
        };
        server::serve(listener, proxy, &config, "balancer")
    }

    async fn route(
        &self,
        request: Request<Incoming>,
        client: SocketAddr,
    ) -> Result<Response<ProxyBody>, Failure> {
        if request.method() == Method::CONNECT {
            return Err(Failure::new(
                ErrorCode::BadRequest,
                "CONNECT is not supported: this is a reverse proxy",
            ));
        }
        let pick = {
            let host = request_host(&request)?;
            let context = PickContext::new(client.ip(), request.headers());
            self.table
                .select_by_host(host, &context)
                .map_err(|error| select_failure(error, host))?
        };
        let instance = *pick.instance();
        let instance_header = pick.instance_header().clone();
        let response = self
            .forwarder
            .forward(request, pick.upstream().clone(), |headers| {
                headers.insert(INSTANCE_HEADER, instance_header);
                append_forwarded_for(headers, client.ip());
            })
            .await
            .map_err(|error| {
                warn!(%instance, upstream = %pick.upstream(), %error, "forwarding failed");
                error.failure()
            })?;
        if let Some(code) = response.headers().get(ERROR_HEADER) {
            return Err(worker_failure(code.as_bytes(), &instance));
        }
        Ok(response.map(|body| ProxyBody::upstream(body, Some(pick.into_guard()))))
    }
}

impl Handler for Proxy {
    async fn handle(&self, request: Request<Incoming>, client: SocketAddr) -> Response<ProxyBody> {
        match self.route(request, client).await {
            Ok(response) => response,
            Err(failure) => failure.into_response(),
        }
    }
}

/// The host the request is for: its one Host header or, without one, the authority of an
/// absolute-form target.
fn request_host(request: &Request<Incoming>) -> Result<&[u8], Failure> {
    let mut hosts = request.headers().get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(host), None) => Ok(host.as_bytes()),
        (Some(_), Some(_)) => Err(Failure::new(
            ErrorCode::MissingHost,
            "the request has more than one Host header",
        )),
        (None, _) => request
            .uri()
            .authority()
            .map(|authority| authority.as_str().as_bytes())
            .ok_or_else(|| {
                Failure::new(
                    ErrorCode::MissingHost,
                    "the request has no Host header; send the service name as Host",
                )
            }),
    }
}

fn select_failure(error: SelectError, host: &[u8]) -> Failure {
    match error {
        SelectError::InvalidHost => Failure::new(
            ErrorCode::MissingHost,
            "the Host header must be host[:port], where host names a service",
        ),
        // The host passed validation, so it is printable ASCII.
        SelectError::UnknownService => Failure::new(
            ErrorCode::UnknownService,
            format!(
                "no service matches Host {:?}",
                String::from_utf8_lossy(host)
            ),
        ),
        SelectError::NoInstance => Failure::new(
            ErrorCode::NoInstance,
            format!(
                "the service of Host {:?} has no running instance",
                String::from_utf8_lossy(host)
            ),
        ),
    }
}

/// The answer when the worker proxy could not deliver the request: a timeout stays a
/// timeout; anything else (unknown instance, instance unreachable) is an upstream failure.
fn worker_failure(code: &[u8], instance: &tucano_core::InstanceId) -> Failure {
    let code = std::str::from_utf8(code)
        .ok()
        .and_then(|code| code.parse::<ErrorCode>().ok());
    debug!(%instance, ?code, "worker proxy could not deliver the request");
    match code {
        Some(ErrorCode::UpstreamTimeout) => Failure::new(
            ErrorCode::UpstreamTimeout,
            "the instance serving this request did not answer in time",
        ),
        _ => Failure::new(
            ErrorCode::UpstreamUnavailable,
            "the instance serving this request could not be reached",
        ),
    }
}
