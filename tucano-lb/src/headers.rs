//! The headers Tucano's proxies read and write.

use http::HeaderName;

/// Names the instance a request is for. The balancer sets it; the worker proxy routes by it;
/// the instance receives it.
pub const INSTANCE_HEADER: HeaderName = HeaderName::from_static("x-tucano-instance");

/// Set on every error response a Tucano proxy generates itself, with the error code (see
/// [`ErrorCode`](crate::ErrorCode)). The balancer recognises a worker proxy's errors by it;
/// the worker proxy removes it from instances' responses so only proxies can set it.
pub const ERROR_HEADER: HeaderName = HeaderName::from_static("x-tucano-error");

/// The client addresses a request passed through, oldest first.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The load an instance reports on its responses, a number from 0 (idle) to 1 (saturated);
/// the `feedback` policy sends requests to the least loaded instances.
pub const LOAD_HEADER: HeaderName = HeaderName::from_static("x-tucano-load");

/// The current time as a `Date` header value, for responses that have none: the proxy's own
/// error responses, and upstream responses without one (RFC 9110 section 6.6.1).
pub(crate) fn date_now() -> http::HeaderValue {
    http::HeaderValue::from_str(&httpdate::fmt_http_date(std::time::SystemTime::now()))
        .unwrap_or_else(|_| http::HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"))
}
