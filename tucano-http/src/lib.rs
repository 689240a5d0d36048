//! # tucano-http
//!
//! Tucano's HTTP transport: the controller API and the worker API served by axum on real
//! sockets, and typed reqwest clients — [`ControllerClient`] (for operators, and the worker's
//! [`ControllerTransport`](tucano_core::transport::ControllerTransport)) and [`WorkerClient`]
//! (the controller's [`WorkerTransport`](tucano_core::transport::WorkerTransport)).
//!
//! Every error answers `{"error":{"code":"...","message":"..."}}`: 400 malformed JSON,
//! 413 a body over 1 MiB, 422 a well-formed but invalid request, 404 unknown things and
//! routes, 409 conflicts, 503 when the cluster cannot take the work now.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::Router;
//! use axum::routing::get;
//! // Any router gets the shared body limit and JSON 404s.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let server = tucano_http::ApiServer::serve(listener, Router::new().route("/", get(|| async { "hi" })))?;
//! let url = format!("http://{}/nowhere", server.local_addr());
//! let response = reqwest::get(&url).await?;
//! assert_eq!(response.status(), 404);
//! let body: tucano_core::wire::ErrorBody = response.json().await?;
//! assert_eq!(body.error.code, "not_found");
//! server.shutdown().await;
//! # Ok(()) }
//! ```

mod controller_api;
mod controller_client;
mod error;
mod http_client;
mod json_body;
mod query_params;
mod server;
mod worker_api;
mod worker_client;

pub use controller_api::controller_router;
pub use controller_client::ControllerClient;
pub use error::ApiError;
pub use http_client::{CALL_MARGIN, CALL_TIMEOUT, CONNECT_TIMEOUT, ClientError};
pub use json_body::{JsonBody, MAX_BODY_BYTES};
pub use query_params::QueryParams;
pub use server::ApiServer;
pub use worker_api::{MAX_LOG_LINES, worker_router};
pub use worker_client::WorkerClient;
