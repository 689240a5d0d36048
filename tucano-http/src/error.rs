//! API errors: every failure answers `{"error":{"code":"...","message":"..."}}` with its status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tucano_core::RuntimeError;
use tucano_core::controller::ControllerError;
use tucano_core::wire::ErrorBody;
use tucano_core::worker::WorkerError;

/// An error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The JSON body.
    pub body: ErrorBody,
}

impl ApiError {
    /// An error with `status`, snake_case `code` and a human `message`.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody::new(code, message),
        }
    }

    /// 404 for a path no route serves.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no route for {path}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<ControllerError> for ApiError {
    fn from(error: ControllerError) -> Self {
        let message = error.to_string();
        let (status, code) = match error {
            ControllerError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_spec"),
            ControllerError::ServiceExists(_) => (StatusCode::CONFLICT, "service_exists"),
            ControllerError::ServiceDeleting(_) => (StatusCode::CONFLICT, "service_deleting"),
            ControllerError::ServiceNotFound(_) => (StatusCode::NOT_FOUND, "service_not_found"),
            ControllerError::WorkerNotFound(_) => (StatusCode::NOT_FOUND, "worker_not_found"),
            ControllerError::NoCapacity { .. } => (StatusCode::SERVICE_UNAVAILABLE, "no_capacity"),
            ControllerError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        };
        Self::new(status, code, message)
    }
}

impl From<WorkerError> for ApiError {
    fn from(error: WorkerError) -> Self {
        let message = error.to_string();
        let (status, code) = match &error {
            WorkerError::NotFound(_) => (StatusCode::NOT_FOUND, "instance_not_found"),
            WorkerError::Conflict { .. } => (StatusCode::CONFLICT, "instance_conflict"),
            WorkerError::Runtime(runtime) => runtime_status(runtime),
            WorkerError::Register(_) | WorkerError::ShuttingDown => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
        };
        Self::new(status, code, message)
    }
}

fn runtime_status(error: &RuntimeError) -> (StatusCode, &'static str) {
    match error {
        RuntimeError::Spawn { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "spawn_failed"),
        RuntimeError::ExitedDuringStartup { .. } => {
            (StatusCode::INTERNAL_SERVER_ERROR, "exited_during_startup")
        }
        RuntimeError::StartupTimeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "startup_timeout"),
        RuntimeError::NotReady { .. } => (StatusCode::GATEWAY_TIMEOUT, "not_ready"),
        RuntimeError::AlreadyExists(_) => (StatusCode::CONFLICT, "instance_conflict"),
        RuntimeError::NotFound(_) => (StatusCode::NOT_FOUND, "instance_not_found"),
        RuntimeError::ImageNotFound { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "image_not_found"),
        RuntimeError::Unsupported(_) => {
            (StatusCode::UNPROCESSABLE_ENTITY, "unsupported_by_runtime")
        }
        RuntimeError::NoPort(_) => (StatusCode::SERVICE_UNAVAILABLE, "no_port"),
        RuntimeError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "runtime_unavailable"),
        RuntimeError::Other(_) => (StatusCode::INTERNAL_SERVER_ERROR, "runtime_error"),
    }
}
