//! The error codes of the proxies' JSON error responses.

use std::fmt;
use std::str::FromStr;

use http::StatusCode;

/// Why a proxy answered a request itself instead of forwarding it. Sent as
/// `{"error":{"code":"<code>","message":"..."}}` with [`status`](ErrorCode::status), and as
/// the [`ERROR_HEADER`](crate::ERROR_HEADER).
///
/// ```
/// use tucano_lb::ErrorCode;
/// assert_eq!(ErrorCode::NoInstance.as_str(), "no_instance");
/// assert_eq!(ErrorCode::NoInstance.status().as_u16(), 503);
/// assert_eq!("no_instance".parse(), Ok(ErrorCode::NoInstance));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 400: the request cannot be forwarded (for example a CONNECT).
    BadRequest,
    /// 400: the balancer got no Host header, or one that is not `host[:port]`.
    MissingHost,
    /// 400: the worker proxy got no valid `x-tucano-instance` header.
    MissingInstance,
    /// 404: no service is named by the Host header.
    UnknownService,
    /// 404: the worker proxy runs no instance with that id.
    UnknownInstance,
    /// 502: the worker proxy could not connect to the instance (it is stopping, or gone): the
    /// request never reached it.
    InstanceUnreachable,
    /// 503: the service has no running instance.
    NoInstance,
    /// 502: the upstream could not be reached or broke the connection.
    UpstreamUnavailable,
    /// 504: the upstream did not send response headers in time.
    UpstreamTimeout,
}

impl ErrorCode {
    const ALL: [ErrorCode; 9] = [
        Self::BadRequest,
        Self::MissingHost,
        Self::MissingInstance,
        Self::UnknownService,
        Self::UnknownInstance,
        Self::InstanceUnreachable,
        Self::NoInstance,
        Self::UpstreamUnavailable,
        Self::UpstreamTimeout,
    ];

    /// The code as written in responses.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::MissingHost => "missing_host",
            Self::MissingInstance => "missing_instance",
            Self::UnknownService => "unknown_service",
            Self::UnknownInstance => "unknown_instance",
            Self::InstanceUnreachable => "instance_unreachable",
            Self::NoInstance => "no_instance",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::UpstreamTimeout => "upstream_timeout",
        }
    }

    /// The HTTP status sent with this code.
    pub const fn status(self) -> StatusCode {
        match self {
            Self::BadRequest | Self::MissingHost | Self::MissingInstance => StatusCode::BAD_REQUEST,
            Self::UnknownService | Self::UnknownInstance => StatusCode::NOT_FOUND,
            Self::NoInstance => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpstreamUnavailable | Self::InstanceUnreachable => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the [`ErrorCode`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a Tucano proxy error code")]
pub struct UnknownErrorCode;

impl FromStr for ErrorCode {
    type Err = UnknownErrorCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|code| code.as_str() == s)
            .ok_or(UnknownErrorCode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_map_to_their_status() {
        for code in ErrorCode::ALL {
            assert_eq!(code.as_str().parse(), Ok(code));
            assert!(code.status().is_client_error() || code.status().is_server_error());
        }
        assert_eq!(ErrorCode::MissingHost.status(), StatusCode::BAD_REQUEST);
        assert_eq!(ErrorCode::UnknownService.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            ErrorCode::UpstreamUnavailable.status(),
            StatusCode::BAD_GATEWAY
        );
        assert_eq!(
            ErrorCode::UpstreamTimeout.status(),
            StatusCode::GATEWAY_TIMEOUT
        );
        assert!("nope".parse::<ErrorCode>().is_err());
    }
}
