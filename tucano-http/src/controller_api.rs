//! The controller's HTTP API.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use tucano_core::controller::{ControllerError, ControllerHandle, DeleteOutcome};
use tucano_core::wire::{Heartbeat, Registration, ScaleRequest, ServiceList, WorkerList};
use tucano_core::{ServiceSpec, WorkerId};

use crate::error::ApiError;
use crate::json_body::JsonBody;

/// The controller's routes, JSON in and out:
///
/// | route | answer |
/// |---|---|
/// | `POST /v1/services` (a `ServiceSpec`) | 201 the service; 503 `no_capacity` when instances wait for a worker |
/// | `GET /v1/services` | `{"services": [...]}` |
/// | `GET /v1/services/{name}` | the service with its instances, revision and rollout |
/// | `PUT /v1/services/{name}` (a `ServiceSpec`) | the service; a changed program, image, env, resources or placement rolls out as a new revision; 422 `name_mismatch` |
/// | `PUT /v1/services/{name}/replicas` (`{"replicas": N}`) | the service |
/// | `DELETE /v1/services/{name}` | 200 once every instance terminated; 202 if still terminating |
/// | `GET /v1/workers` | `{"workers": [...]}` |
/// | `POST /v1/workers` (a `Registration`) | `{"liveness_timeout": "5s"}` |
/// | `POST /v1/workers/{id}/heartbeat` (a `Heartbeat`) | 204; 404 `worker_not_found`: register again |
/// | `DELETE /v1/workers/{id}` | 204 |
/// | `GET /healthz` | `{"status": "ok"}` |
///
/// ```no_run
/// # async fn example(controller: tucano_core::controller::ControllerHandle) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:7070").await?;
/// let server = tucano_http::ApiServer::serve(listener, tucano_http::controller_router(controller))?;
/// println!("controller API on {}", server.local_addr());
/// # Ok(()) }
/// ```
pub fn controller_router(controller: ControllerHandle) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/services", post(create_service).get(list_services))
        .route(
            "/v1/services/{name}",
            get(get_service).put(update_service).delete(delete_service),
        )
        .route("/v1/services/{name}/replicas", put(scale_service))
        .route("/v1/workers", post(register_worker).get(list_workers))
        .route("/v1/workers/{id}/heartbeat", post(heartbeat))
        .route("/v1/workers/{id}", delete(deregister_worker))
        .with_state(controller)
}

pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn create_service(
    State(controller): State<ControllerHandle>,
    JsonBody(spec): JsonBody<ServiceSpec>,
) -> Result<Response, ApiError> {
    let view = controller.create_service(spec).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn list_services(
    State(controller): State<ControllerHandle>,
) -> Result<Json<ServiceList>, ApiError> {
    let services = controller.list_services().await?;
    Ok(Json(ServiceList { services }))
}

async fn get_service(
    State(controller): State<ControllerHandle>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(controller.service(&name).await?).into_response())
}

async fn update_service(
    State(controller): State<ControllerHandle>,
    Path(name): Path<String>,
    JsonBody(spec): JsonBody<ServiceSpec>,
) -> Result<Response, ApiError> {
    if spec.name.as_str() != name {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "name_mismatch",
            format!(
                "the spec names service {} but was sent to the route of {name}; a service cannot be renamed",
                spec.name
            ),
        ));
    }
    Ok(Json(controller.update_service(spec).await?).into_response())
}

async fn scale_service(
    State(controller): State<ControllerHandle>,
    Path(name): Path<String>,
    JsonBody(request): JsonBody<ScaleRequest>,
) -> Result<Response, ApiError> {
    Ok(Json(controller.scale_service(&name, request.replicas).await?).into_response())
}

async fn delete_service(
    State(controller): State<ControllerHandle>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    Ok(match controller.delete_service(&name).await? {
        DeleteOutcome::Deleted(view) => (StatusCode::OK, Json(view)).into_response(),
        DeleteOutcome::InProgress(view) => (StatusCode::ACCEPTED, Json(view)).into_response(),
    })
}

async fn list_workers(
    State(controller): State<ControllerHandle>,
) -> Result<Json<WorkerList>, ApiError> {
    let workers = controller.list_workers().await?;
    Ok(Json(WorkerList { workers }))
}

async fn register_worker(
    State(controller): State<ControllerHandle>,
    JsonBody(registration): JsonBody<Registration>,
) -> Result<Response, ApiError> {
    match controller.register_worker(registration).await {
        Ok(reply) => Ok(Json(reply).into_response()),
        Err(ControllerError::Invalid(message)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_registration",
            message,
        )),
        Err(error) => Err(error.into()),
    }
}

async fn heartbeat(
    State(controller): State<ControllerHandle>,
    Path(id): Path<String>,
    JsonBody(heartbeat): JsonBody<Heartbeat>,
) -> Result<StatusCode, ApiError> {
    if heartbeat.id.as_str() != id {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "worker_mismatch",
            format!("heartbeat of {} sent to the route of {id}", heartbeat.id),
        ));
    }
    controller.heartbeat(heartbeat).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn deregister_worker(
    State(controller): State<ControllerHandle>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: WorkerId = id.parse().map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "worker_not_found",
            format!("no registered worker {id}"),
        )
    })?;
    controller.deregister_worker(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
