//! What the typed clients share: one pooled reqwest client, timeouts, and turning error
//! responses into typed errors.

use std::time::Duration;

use reqwest::{Client, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use tucano_core::transport::TransportError;
use tucano_core::wire::ErrorBody;

/// Time to establish a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time for a plain call (anything but instance start and stop).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Extra time a start or stop call gets beyond the instance's own timeout.
pub const CALL_MARGIN: Duration = Duration::from_secs(10);

/// Why a client call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error.
    #[error("{status} {code}: {message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The error code from the body.
        code: String,
        /// The message from the body.
        message: String,
    },
    /// The server could not be reached or did not answer in time.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The answer could not be understood.
    #[error("bad answer: {0}")]
    BadAnswer(String),
    /// The base URL is not an http(s) URL.
    #[error("invalid base URL {0:?}")]
    InvalidUrl(String),
}

impl From<ClientError> for TransportError {
    fn from(error: ClientError) -> Self {
        match error {
            ClientError::Api {
                status: 404,
                message,
                ..
            } => TransportError::NotFound(message),
            ClientError::Api { code, message, .. } => TransportError::Rejected { code, message },
            ClientError::Unreachable(message) => TransportError::Unreachable(message),
            ClientError::BadAnswer(message) | ClientError::InvalidUrl(message) => {
                TransportError::BadAnswer(message)
            }
        }
    }
}

/// A pooled client with Tucano's timeouts.
pub(crate) fn pooled_client() -> Result<Client, ClientError> {
    Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT)
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| ClientError::Unreachable(format!("could not build an HTTP client: {e}")))
}

/// `base` (an http(s) URL, trailing slashes dropped) joined with `path`.
pub(crate) fn join(base: &str, path: &str) -> Result<String, ClientError> {
    let base = base.trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(ClientError::InvalidUrl(base.to_owned()));
    }
    Ok(format!("{base}{path}"))
}

/// Sends `request`; decodes a 2xx body as `T`, anything else as an [`ErrorBody`].
pub(crate) async fn call<T: DeserializeOwned>(request: RequestBuilder) -> Result<T, ClientError> {
    let (status, body) = send(request).await?;
    serde_json::from_slice(&body).map_err(|e| ClientError::BadAnswer(format!("{status}: {e}")))
}

/// Sends `request` and returns the status of a 2xx answer and its body.
pub(crate) async fn send(
    request: RequestBuilder,
) -> Result<(StatusCode, bytes::Bytes), ClientError> {
    let response = request
        .send()
        .await
        .map_err(|e| ClientError::Unreachable(describe(&e)))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| ClientError::Unreachable(describe(&e)))?;
    if status.is_success() {
        return Ok((status, body));
    }
    match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(error) => Err(ClientError::Api {
            status: status.as_u16(),
            code: error.error.code,
            message: error.error.message,
        }),
        Err(_) => Err(ClientError::Api {
            status: status.as_u16(),
            code: "http_error".into(),
            message: String::from_utf8_lossy(&body).chars().take(200).collect(),
        }),
    }
}

fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    match error.url() {
        Some(url) => format!("{kind}: {url}"),
        None => kind.to_owned(),
    }
}
