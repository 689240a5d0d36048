//! Sending a request on to an upstream and bringing its response back: the code both proxies
//! share.

mod forwarded_for;
mod hop_by_hop;
mod request_body;

pub(crate) use forwarded_for::append as append_forwarded_for;
pub(crate) use request_body::RequestBody;

use std::error::Error as _;
use std::fmt;
use std::time::Duration;

use http::header::HOST;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderValue, Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::ProxyConfig;
use crate::error_code::ErrorCode;
use crate::failure::Failure;

/// A pooled keep-alive HTTP/1.1 client and the rules for passing messages through it.
#[derive(Clone, Debug)]
pub(crate) struct Forwarder {
    client: Client<HttpConnector, RequestBody>,
    response_header_timeout: Duration,
}

/// Why a request could not be forwarded.
#[derive(Debug)]
pub(crate) enum ForwardError {
    /// The request's target cannot be rewritten for the upstream.
    InvalidTarget(http::Error),
    /// Connecting, sending, or reading the response head failed.
    Unavailable(hyper_util::client::legacy::Error),
    /// The response head did not arrive in time.
    Timeout(Duration),
}

impl Forwarder {
    pub fn new(config: &ProxyConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.connect_timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .build(connector);
        Self {
            client,
            response_header_timeout: config.response_header_timeout,
        }
    }

    /// Sends `request` to `upstream` and returns the response head with its body still
    /// streaming. Hop-by-hop headers are removed both ways; `edit` then adjusts the request
    /// headers (it runs after the removal, so what it sets is sent). The request body is
    /// streamed, never collected; the Host header is kept as the client sent it.
    pub async fn forward(
        &self,
        request: Request<RequestBody>,
        upstream: Authority,
        edit: impl FnOnce(&mut HeaderMap),
    ) -> Result<Response<Incoming>, ForwardError> {
        let (mut parts, body) = request.into_parts();
        hop_by_hop::strip(&mut parts.headers);
        edit(&mut parts.headers);
        if !parts.headers.contains_key(HOST) {
            // An absolute-form request without Host: keep the host the client addressed.
            if let Some(authority) = parts.uri.authority() {
                if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
                    parts.headers.insert(HOST, host);
                }
            }
        }
        parts.uri = upstream_uri(upstream, &parts.uri).map_err(ForwardError::InvalidTarget)?;
        parts.version = Version::HTTP_11;
        parts.extensions.clear();
        let request = Request::from_parts(parts, body);

        let sent = tokio::time::timeout(self.response_header_timeout, self.client.request(request));
        let mut response = match sent.await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => return Err(ForwardError::Unavailable(error)),
            Err(_) => return Err(ForwardError::Timeout(self.response_header_timeout)),
        };
        hop_by_hop::strip(response.headers_mut());
        Ok(response)
    }
}

/// `http://<upstream><path and query of original>`.
fn upstream_uri(upstream: Authority, original: &Uri) -> Result<Uri, http::Error> {
    let path_and_query = original
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(upstream)
        .path_and_query(path_and_query)
        .build()
}

impl ForwardError {
    /// True when the upstream could not be connected to: the request never reached it, so
    /// it may be sent elsewhere.
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::Unavailable(error) if error.is_connect())
    }

    /// The answer the client gets. The message does not reveal upstream addresses or errors;
    /// those are for the log.
    pub fn failure(&self) -> Failure {
        match self {
            Self::InvalidTarget(_) => Failure::new(
                ErrorCode::BadRequest,
                "the request target cannot be forwarded",
            ),
            Self::Unavailable(_) => Failure::new(
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
            Self::InvalidTarget(error) => write!(f, "invalid request target: {error}"),
            Self::Timeout(after) => write!(f, "no response head within {after:?}"),
            Self::Unavailable(error) => {
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
    fn upstream_uri_keeps_path_and_query() {
        let upstream = Authority::from_static("127.0.0.1:8081");
        for (original, want) in [
            ("/a/b?c=d", "http://127.0.0.1:8081/a/b?c=d"),
            ("http://hello/x?y", "http://127.0.0.1:8081/x?y"),
            ("hello:80", "http://127.0.0.1:8081/"),
            ("*", "http://127.0.0.1:8081*"),
        ] {
            let original: Uri = original.parse().unwrap();
            let got = upstream_uri(upstream.clone(), &original).unwrap();
            assert_eq!(got.to_string(), want, "{original}");
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
