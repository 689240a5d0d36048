//! Sending a request on to an upstream and bringing its response back: the code both proxies
//! share.

mod forwarded_for;
mod hop_by_hop;
mod request_body;
mod upstream_body;
mod upstream_connection;
mod upstream_pool;

pub(crate) use forwarded_for::{ClientAddress, append as append_forwarded_for};
pub(crate) use request_body::RequestBody;
pub(crate) use upstream_body::UpstreamBody;

use std::error::Error as _;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use http::header::{DATE, HOST};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Request, Response, Uri, Version};
use hyper::client::conn::TrySendError;

use crate::config::ProxyConfig;
use crate::error_code::ErrorCode;
use crate::failure::Failure;
use upstream_connection::UpstreamConnection;
use upstream_pool::UpstreamPool;

/// Sends requests upstream over pooled keep-alive HTTP/1.1 connections, with the rules for
/// passing messages through.
#[derive(Clone, Debug)]
pub(crate) struct Forwarder {
    pool: UpstreamPool,
    connect_timeout: Duration,
    response_header_timeout: Duration,
}

/// Why a request could not be forwarded.
#[derive(Debug)]
pub(crate) enum ForwardError {
    /// No connection to the upstream could be made: the request was not sent.
    Connect(std::io::Error),
    /// No connection to the upstream within the connect timeout: the request was not sent.
    ConnectTimeout(Duration),
    /// Sending the request or reading the response head failed.
    Exchange(hyper::Error),
    /// The response head did not arrive in time.
    Timeout(Duration),
}

impl Forwarder {
    /// A forwarder with an empty pool (whose idle sweeper runs on the current Tokio runtime).
    pub fn new(config: &ProxyConfig) -> Self {
        Self {
            pool: UpstreamPool::new(config.pool_idle_timeout, config.pool_max_idle_per_host),
            connect_timeout: config.connect_timeout,
            response_header_timeout: config.response_header_timeout,
        }
    }

    /// Sends `request` to `upstream` and returns the response head with its body still
    /// streaming. Hop-by-hop headers are removed both ways; `edit` then adjusts the request
    /// headers (it runs after the removal, so what it sets is sent). The request body is
    /// streamed, never collected; the Host header is kept as the client sent it, and the
    /// target is sent in origin form (path and query).
    pub async fn forward(
        &self,
        request: Request<RequestBody>,
        upstream: SocketAddr,
        edit: impl FnOnce(&mut HeaderMap),
    ) -> Result<Response<UpstreamBody>, ForwardError> {
        let (mut parts, body) = request.into_parts();
        hop_by_hop::strip(&mut parts.headers);
        edit(&mut parts.headers);
        if !parts.headers.contains_key(HOST) {
            // An absolute-form request without Host: keep the host the client addressed.
            if let Some(authority) = parts.uri.authority()
                && let Ok(host) = HeaderValue::from_str(authority.as_str())
            {
                parts.headers.insert(HOST, host);
            }
        }
        if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
            parts.uri = origin_form(&parts.uri);
        }
        parts.version = Version::HTTP_11;
        parts.extensions.clear();
        let request = Request::from_parts(parts, body);

        let exchange = tokio::time::timeout(
            self.response_header_timeout,
            self.exchange(request, upstream),
        );
        let (response, connection) = match exchange.await {
            Ok(result) => result?,
            Err(_) => return Err(ForwardError::Timeout(self.response_header_timeout)),
        };
        let (mut parts, body) = response.into_parts();
        hop_by_hop::strip(&mut parts.headers);
        if !parts.headers.contains_key(DATE) {
            parts.headers.insert(DATE, crate::headers::date_now());
        }
        let body = UpstreamBody::new(body, connection, self.pool.clone());
        Ok(Response::from_parts(parts, body))
    }

    /// Sends `request` on a pooled connection to `upstream`, or a new one; a request that a
    /// pooled connection could not start sending (the upstream had just closed it) is sent
    /// again on a new connection.
    async fn exchange(
        &self,
        request: Request<RequestBody>,
        upstream: SocketAddr,
    ) -> Result<(Response<hyper::body::Incoming>, UpstreamConnection), ForwardError> {
        let mut connection = match self.pool.take(upstream) {
            Some(connection) => connection,
            None => self.connect(upstream).await?,
        };
        let request = match connection.send(request).await {
            Ok(response) => return Ok((response, connection)),
            Err(error) => unsent(error, &connection)?,
        };
        let mut connection = self.connect(upstream).await?;
        match connection.send(request).await {
            Ok(response) => Ok((response, connection)),
            Err(error) => Err(ForwardError::Exchange(error.into_error())),
        }
    }

    async fn connect(&self, upstream: SocketAddr) -> Result<UpstreamConnection, ForwardError> {
        match tokio::time::timeout(self.connect_timeout, UpstreamConnection::open(upstream)).await {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(error)) => Err(ForwardError::Connect(error)),
            Err(_) => Err(ForwardError::ConnectTimeout(self.connect_timeout)),
        }
    }
}

/// The request back from a failed send, if it may be sent again on a new connection: it was
/// not sent at all, on a connection reused from the pool (which the upstream may close just
/// as it is taken). Otherwise the error.
fn unsent(
    error: TrySendError<Request<RequestBody>>,
    connection: &UpstreamConnection,
) -> Result<Request<RequestBody>, ForwardError> {
    let reused = connection.is_reused();
    let mut error = error;
    match error.take_message() {
        Some(request) if reused => Ok(request),
        _ => Err(ForwardError::Exchange(error.into_error())),
    }
}

/// The path and query of `original` (`/` if it has none), as an origin-form target.
fn origin_form(original: &Uri) -> Uri {
    let path_and_query = original
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    Uri::from(path_and_query)
}

impl ForwardError {
    /// True when the upstream could not be connected to: the request never reached it, so
    /// it may be sent elsewhere.
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::Connect(_) | Self::ConnectTimeout(_))
    }

    /// The answer the client gets. The message does not reveal upstream addresses or errors;
    /// those are for the log.
    pub fn failure(&self) -> Failure {
        match self {
            Self::Connect(_) | Self::ConnectTimeout(_) | Self::Exchange(_) => Failure::new(
                ErrorCode::UpstreamUnavailable,
                "the instance serving this request could not be reached",
            ),
            Self::Timeout(after) => Failure::new(
                ErrorCode::UpstreamTimeout,
                format!(
                    "the instance serving this request did not answer within {} ms",
                    after.as_millis()
                ),
            ),
        }
    }
}

impl fmt::Display for ForwardError {
    /// The error with its chain of causes, for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(error) => write!(f, "cannot connect: {error}"),
            Self::ConnectTimeout(after) => write!(f, "cannot connect within {after:?}"),
            Self::Timeout(after) => write!(f, "no response head within {after:?}"),
            Self::Exchange(error) => {
                write!(f, "{error}")?;
                let mut source = error.source();
                while let Some(cause) = source {
                    write!(f, ": {cause}")?;
                    source = cause.source();
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_sent_in_origin_form() {
        for (original, want) in [
            ("/a/b?c=d", "/a/b?c=d"),
            ("http://hello/x?y", "/x?y"),
            ("http://hello", "/"),
            ("*", "*"),
        ] {
            let original: Uri = original.parse().unwrap();
            assert_eq!(origin_form(&original).to_string(), want, "{original}");
        }
    }

    #[test]
    fn failures_map_to_codes() {
        assert_eq!(
            ForwardError::Timeout(Duration::from_millis(250))
                .failure()
                .code,
            ErrorCode::UpstreamTimeout
        );
    }
}
