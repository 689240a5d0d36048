//! Proxy settings.

use std::time::Duration;

/// Timeouts and pool settings shared by the balancer proxy and the worker proxy.
///
/// ```
/// use std::time::Duration;
/// use tucano_lb::ProxyConfig;
/// let config = ProxyConfig {
///     response_header_timeout: Duration::from_secs(5),
///     ..ProxyConfig::default()
/// };
/// assert_eq!(config.connect_timeout, Duration::from_secs(5));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyConfig {
    /// How long to wait for a TCP connection to an upstream; past it the request fails with
    /// 502 `upstream_unavailable`. Default 5 s.
    pub connect_timeout: Duration,
    /// How long to wait, from sending a request upstream (connecting included), for the
    /// upstream's response headers; past it the request fails with 504 `upstream_timeout`.
    /// For an upstream that reads the whole request body before answering, this includes the
    /// upload. The response body then streams without a deadline. Default 60 s.
    pub response_header_timeout: Duration,
    /// How long an idle upstream connection stays in the keep-alive pool. Default 90 s.
    pub pool_idle_timeout: Duration,
    /// Most idle connections kept per upstream. Default unlimited (`usize::MAX`).
    pub pool_max_idle_per_host: usize,
    /// How long a client may take to send a request's headers before its connection is
    /// closed. Default 30 s.
    pub client_header_timeout: Duration,
    /// How long [`ProxyServer::shutdown`](crate::ProxyServer::shutdown) waits for open
    /// connections to finish before closing them. Default 30 s.
    pub shutdown_timeout: Duration,
    /// How many other instances an idempotent, bodiless request is tried on when it could not
    /// be delivered (connection refused, instance unknown to its worker), within the service's
    /// retry budget. Default 2.
    pub connect_retries: u32,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            response_header_timeout: Duration::from_secs(60),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: usize::MAX,
            client_header_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(30),
            connect_retries: 2,
        }
    }
}
