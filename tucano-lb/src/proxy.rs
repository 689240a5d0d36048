//! The balancer's reverse proxy: routes each request by its Host header to one of the
//! service's running instances, through that instance's worker proxy.

use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue, Method, Request, Response};
use hyper::body::{Body, Incoming};
use tokio::net::TcpListener;
use tracing::{debug, warn};

use crate::balancer::PickContext;
use crate::body::ProxyBody;
use crate::clock;
use crate::config::ProxyConfig;
#[cfg(doc)]
use crate::endpoint_state::EndpointState;
use crate::error::ProxyError;
use crate::error_code::ErrorCode;
use crate::failure::Failure;
use crate::forward::{ClientAddress, Forwarder, RequestBody, append_forwarded_for};
use crate::headers::{ERROR_HEADER, INSTANCE_HEADER, LOAD_HEADER};
use crate::maintenance::Maintenance;
use crate::pick::Pick;
use crate::route_mode::RouteMode;
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
    connect_retries: u32,
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
            table: Arc::clone(&table),
            forwarder: Forwarder::new(&config),
            connect_retries: config.connect_retries,
        };
        let server = server::serve(listener, proxy, &config, "balancer")?;
        // The server checked there is a runtime to run the upkeep on.
        Ok(server.with_upkeep(Maintenance::start(table)))
    }

    async fn route(
        &self,
        request: Request<Incoming>,
        client: &ClientAddress,
    ) -> Result<Response<ProxyBody>, Failure> {
        if request.method() == Method::CONNECT {
            return Err(Failure::new(
                ErrorCode::BadRequest,
                "CONNECT is not supported: this is a reverse proxy",
            ));
        }
        let started = clock::now_ns();
        let host = request_host(&request)?;
        let selected = {
            let context = PickContext::new(client.ip(), request.headers(), started);
            self.table.select_by_host(host.as_bytes(), &context)
        };
        let mut pick = match selected {
            Ok(pick) => pick,
            Err(SelectError::NoInstance) => {
                self.activate(host.as_bytes(), client, &request).await?
            }
            Err(error) => return Err(select_failure(error, host.as_bytes())),
        };
        let replay = Replay::capture(&request);
        let mut first = Some(request);
        let mut retries = 0;
        loop {
            let outgoing = match first.take() {
                Some(request) => request.map(RequestBody::Incoming),
                None => match &replay {
                    Some(replay) => replay.request(),
                    None => return Err(no_retry_failure()),
                },
            };
            // The first attempt goes out right after the pick: its clock reading will do.
            let sent_at = if retries == 0 {
                started
            } else {
                clock::now_ns()
            };
            let instance = *pick.instance();
            let instance_header = pick.instance_header().clone();
            let result = self
                .forwarder
                .forward(outgoing, pick.upstream(), |headers| {
                    headers.insert(INSTANCE_HEADER, instance_header);
                    append_forwarded_for(headers, client);
                })
                .await;
            let now = clock::now_ns();
            let latency = now.saturating_sub(sent_at);
            let (failure, undelivered) = match result {
                Ok(response) => {
                    let worker_error = (self.table.mode() == RouteMode::ViaWorker)
                        .then(|| response.headers().get(ERROR_HEADER))
                        .flatten();
                    match worker_error {
                        None => {
                            let state = pick.guard().state();
                            state.observe(latency, response.status().is_server_error(), now);
                            if let Some(load) = reported_load(response.headers()) {
                                state.report_load(load);
                            }
                            return Ok(response
                                .map(|body| ProxyBody::upstream(body, Some(pick.into_guard()))));
                        }
                        Some(code) => worker_failure(code.as_bytes(), &instance),
                    }
                }
                Err(error) => {
                    warn!(%instance, upstream = %pick.upstream(), %error, "forwarding failed");
                    (error.failure(), error.is_connect())
                }
            };
            pick.guard().state().observe(latency, true, now);
            let next = match &replay {
                Some(_) if undelivered && retries < self.connect_retries => {
                    self.table.reselect_by_host(host.as_bytes(), &instance)
                }
                _ => None,
            };
            match next {
                Some(next) => {
                    debug!(%instance, next = %next.instance(), "request did not reach its instance; retrying on another");
                    retries += 1;
                    pick = next;
                }
                None => return Err(failure),
            }
        }
    }
}

/// What is needed to send a request again: only idempotent requests without a body are, and
/// only when they never reached an instance.
struct Replay {
    method: Method,
    uri: http::Uri,
    headers: HeaderMap,
}

impl Replay {
    fn capture(request: &Request<Incoming>) -> Option<Self> {
        let idempotent = matches!(
            *request.method(),
            Method::GET
                | Method::HEAD
                | Method::OPTIONS
                | Method::TRACE
                | Method::PUT
                | Method::DELETE
        );
        (idempotent && is_bodiless(request)).then(|| Self {
            method: request.method().clone(),
            uri: request.uri().clone(),
            headers: request.headers().clone(),
        })
    }

    fn request(&self) -> Request<RequestBody> {
        let mut request = Request::new(RequestBody::Empty);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// True when the request has no body: HTTP/1.1 sends one only with `Content-Length` above 0
/// or `Transfer-Encoding`.
fn is_bodiless(request: &Request<Incoming>) -> bool {
    let headers = request.headers();
    let empty_length = headers
        .get(CONTENT_LENGTH)
        .is_none_or(|length| length.as_bytes() == b"0");
    request.body().is_end_stream() || (empty_length && !headers.contains_key(TRANSFER_ENCODING))
}

fn no_retry_failure() -> Failure {
    Failure::new(
        ErrorCode::UpstreamUnavailable,
        "the instance serving this request could not be reached",
    )
}

/// The load an instance reports in `x-tucano-load`, if it is a number.
fn reported_load(headers: &HeaderMap) -> Option<f32> {
    headers
        .get(LOAD_HEADER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f32>()
        .ok()
}

impl Handler for Proxy {
    async fn handle(
        &self,
        request: Request<Incoming>,
        client: &ClientAddress,
    ) -> Response<ProxyBody> {
        match self.route(request, client).await {
            Ok(response) => response,
            Err(failure) => failure.into_response(),
        }
    }
}

/// The host the request is for: its one Host header or, without one, the authority of an
/// absolute-form target.
fn request_host(request: &Request<Incoming>) -> Result<HeaderValue, Failure> {
    let mut hosts = request.headers().get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(host), None) => Ok(host.clone()),
        (Some(_), Some(_)) => Err(Failure::new(
            ErrorCode::MissingHost,
            "the request has more than one Host header",
        )),
        (None, _) => request
            .uri()
            .authority()
            .and_then(|authority| HeaderValue::from_str(authority.as_str()).ok())
            .ok_or_else(|| {
                Failure::new(
                    ErrorCode::MissingHost,
                    "the request has no Host header; send the service name as Host",
                )
            }),
    }
}

impl Proxy {
    /// A pick for a request to a service without a running instance, if its route holds such
    /// requests (scale to zero): it waits in the service's activator — at most
    /// [`MAX_HELD`](crate::MAX_HELD) requests, each for at most the route's wait — and is
    /// picked for as soon as an instance is published. Otherwise 503 `no_instance`.
    async fn activate(
        &self,
        host: &[u8],
        client: &ClientAddress,
        request: &Request<Incoming>,
    ) -> Result<Pick, Failure> {
        let no_instance = || select_failure(SelectError::NoInstance, host);
        let route = crate::host::normalize(host)
            .ok()
            .and_then(|service| self.table.route(&service))
            .ok_or_else(no_instance)?;
        let Some(wait) = route.spec().hold_while_empty else {
            return Err(no_instance());
        };
        let activator = Arc::clone(route.activator());
        drop(route);
        let Some((_held, first)) = activator.hold() else {
            return Err(Failure::new(
                ErrorCode::NoInstance,
                "too many requests already wait for the service's first instance",
            ));
        };
        if first {
            self.table.held_requests().notify_one();
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            activator.wait().await;
            let context = PickContext::new(client.ip(), request.headers(), clock::now_ns());
            match self.table.select_by_host(host, &context) {
                Ok(pick) => return Ok(pick),
                Err(SelectError::NoInstance) if tokio::time::Instant::now() < deadline => {}
                Err(SelectError::NoInstance) => {
                    return Err(Failure::new(
                        ErrorCode::NoInstance,
                        format!("no instance of the service started within {wait:?}"),
                    ));
                }
                Err(error) => return Err(select_failure(error, host)),
            }
        }
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

/// The answer when the worker proxy could not deliver the request — a timeout stays a
/// timeout; anything else (unknown instance, instance unreachable) is an upstream failure —
/// and whether the request surely never reached the instance (the worker does not know it,
/// or could not connect to it: it is stopping).
fn worker_failure(code: &[u8], instance: &tucano_core::InstanceId) -> (Failure, bool) {
    let code = std::str::from_utf8(code)
        .ok()
        .and_then(|code| code.parse::<ErrorCode>().ok());
    debug!(%instance, ?code, "worker proxy could not deliver the request");
    let undelivered = matches!(
        code,
        Some(ErrorCode::UnknownInstance | ErrorCode::InstanceUnreachable)
    );
    let failure = match code {
        Some(ErrorCode::UpstreamTimeout) => Failure::new(
            ErrorCode::UpstreamTimeout,
            "the instance serving this request did not answer in time",
        ),
        _ => no_retry_failure(),
    };
    (failure, undelivered)
}
