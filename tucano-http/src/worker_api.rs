//! The worker's HTTP API, called by the controller.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use tucano_core::wire::{InstanceReport, LogsReply};
use tucano_core::worker::Worker;
use tucano_core::{InstanceId, InstanceSpec};

use crate::controller_api::healthz;
use crate::error::ApiError;
use crate::json_body::JsonBody;
use crate::query_params::{QueryParams, bad_query};

/// Most log lines one request returns.
pub const MAX_LOG_LINES: usize = 1000;

/// The worker's routes:
///
/// | route | answer |
/// |---|---|
/// | `POST /v1/instances` (an `InstanceSpec`) | 201 once the instance accepts connections |
/// | `GET /v1/instances` | the worker's instance report (boot, generation, instances) |
/// | `DELETE /v1/instances/{id}?grace=10s` | 200 once stopped (SIGTERM, then SIGKILL after `grace`) |
/// | `GET /v1/instances/{id}/logs?tail=100` | `{"lines": [{"stream": "stdout", "line": "..."}]}` |
/// | `GET /healthz` | `{"status": "ok"}` |
pub fn worker_router(worker: Worker) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/instances", get(list_instances).post(start_instance))
        .route("/v1/instances/{id}", axum::routing::delete(stop_instance))
        .route("/v1/instances/{id}/logs", get(logs))
        .with_state(worker)
}

fn instance_id(raw: &str) -> Result<InstanceId, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "instance_not_found",
            format!("no instance {raw} on this worker"),
        )
    })
}

async fn start_instance(
    State(worker): State<Worker>,
    JsonBody(spec): JsonBody<InstanceSpec>,
) -> Result<Response, ApiError> {
    spec.validate().map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_spec",
            e.to_string(),
        )
    })?;
    let reply = worker.start_instance(spec).await?;
    Ok((StatusCode::CREATED, Json(reply)).into_response())
}

async fn list_instances(State(worker): State<Worker>) -> Json<InstanceReport> {
    Json(worker.report())
}

#[derive(Debug, Deserialize)]
struct StopQuery {
    grace: Option<String>,
}

async fn stop_instance(
    State(worker): State<Worker>,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<StopQuery>,
) -> Result<Response, ApiError> {
    let grace = query
        .grace
        .map(|g| humantime::parse_duration(&g).map_err(|e| bad_query(format!("grace {g:?}: {e}"))))
        .transpose()?;
    if grace.is_some_and(|g| g > tucano_core::MAX_STOP_GRACE) {
        return Err(bad_query("grace may be at most 1h".into()));
    }
    let reply = worker.stop_instance(instance_id(&id)?, grace).await?;
    Ok(Json(reply).into_response())
}

#[derive(Debug, Deserialize)]
struct LogsQuery {
    tail: Option<String>,
}

async fn logs(
    State(worker): State<Worker>,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<LogsQuery>,
) -> Result<Json<LogsReply>, ApiError> {
    let tail = match query.tail {
        None => 100,
        Some(tail) => tail
            .parse::<usize>()
            .map_err(|_| bad_query(format!("tail {tail:?} is not a number")))?
            .min(MAX_LOG_LINES),
    };
    let lines = worker.logs(instance_id(&id)?, tail).await?;
    Ok(Json(LogsReply { lines }))
}
