//! Errors: [`DemoError`] for starting and running the server, and the JSON error body of every non-2xx response.

use std::io;
use std::net::SocketAddr;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Why the demo server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The `PORT` environment variable is missing or empty.
    #[error("environment variable PORT is required (the TCP port to listen on)")]
    MissingPort,
    /// The `PORT` environment variable is not a number from 0 to 65535.
    #[error("environment variable PORT must be a number from 0 to 65535, got {value:?}")]
    InvalidPort {
        /// The rejected value.
        value: String,
    },
    /// The `TUCANO_DEMO_BIND` environment variable is not an IP address.
    #[error("environment variable TUCANO_DEMO_BIND must be an IP address, got {value:?}")]
    InvalidBind {
        /// The rejected value.
        value: String,
    },
    /// A numeric setting (`TUCANO_DEMO_DELAY_MS`, `TUCANO_DEMO_CAPACITY`) is out of range.
    #[error("environment variable {name} has an invalid value {value:?}")]
    InvalidSetting {
        /// The variable.
        name: &'static str,
        /// The rejected value.
        value: String,
    },
    /// The SIGTERM/SIGINT handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signal(#[source] io::Error),
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address that was asked for.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The server failed while running (or its listener's address could not be read).
    #[error("demo server failed: {0}")]
    Serve(#[source] io::Error),
    /// The async runtime could not be built.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] io::Error),
}

impl DemoError {
    /// True for configuration errors (bad or missing environment variables), as opposed to runtime failures.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            Self::MissingPort
                | Self::InvalidPort { .. }
                | Self::InvalidBind { .. }
                | Self::InvalidSetting { .. }
        )
    }
}

/// An HTTP error answered as `{"error":{"code":"...","message":"..."}}` with its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: message.into(),
        }
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
        }
    }

    pub(crate) fn method_not_allowed(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: "method_not_allowed",
            message: message.into(),
        }
    }

    pub(crate) fn out_of_memory(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "out_of_memory",
            message: message.into(),
        }
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}
