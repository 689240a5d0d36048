//! The HTTP routes of the demo service and their shared state.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::error::ApiError;
use super::factor::{factorize, factors_sha256};
use super::{DemoConfig, say};

/// Longest sleep `GET /work` accepts, in milliseconds.
pub const MAX_WORK_MS: u64 = 60_000;
/// Largest single allocation `GET /alloc` accepts, in MiB (1 TiB: a sanity bound, not a promise it fits).
pub const MAX_ALLOC_MB: u64 = 1 << 20;
/// Exit code of `GET /crash` when the request gives none.
pub const DEFAULT_CRASH_CODE: u8 = 1;
/// How long `GET /crash` waits after answering before it exits, so the response can reach the client.
const CRASH_DELAY: Duration = Duration::from_millis(100);
const MIB: u64 = 1024 * 1024;

/// The header every response reports the instance's load in.
const LOAD_HEADER: &str = "x-tucano-load";

/// State shared by every handler of one router.
#[derive(Clone)]
struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    instance: Option<String>,
    service: Option<String>,
    held: Mutex<Held>,
    delay: Duration,
    capacity: u32,
    in_flight: AtomicUsize,
}

/// Memory allocated by `GET /alloc`, kept until the router is dropped.
#[derive(Default)]
struct Held {
    blocks: Vec<Vec<u8>>,
    mib: u64,
}

/// The demo service's [`Router`], with its state, ready for [`axum::serve()`].
///
/// Only `config.instance` and `config.service` are used here; the bind address matters to [`super::serve`]. Memory
/// taken by `GET /alloc` stays allocated as long as the router (or a clone of it) is alive, which for the
/// `tucano-demo` binary is the life of the process.
pub fn router(config: &DemoConfig) -> Router {
    let state = AppState {
        inner: Arc::new(Inner {
            instance: config.instance.clone(),
            service: config.service.clone(),
            held: Mutex::new(Held::default()),
            delay: config.delay,
            capacity: config.capacity.max(1),
            in_flight: AtomicUsize::new(0),
        }),
    };
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .route("/work", get(work))
        .route("/factor", get(factor))
        .route("/crash", get(crash))
        .route("/alloc", get(alloc))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            load_and_delay,
        ))
        .with_state(state)
}

/// Counts every request in flight, delays all but `/healthz` by the configured latency, and
/// reports the load (`x-tucano-load: in flight / capacity`) on every response.
async fn load_and_delay(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let inner = &state.inner;
    let in_flight = inner.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
    if !inner.delay.is_zero() && request.uri().path() != "/healthz" {
        tokio::time::sleep(inner.delay).await;
    }
    let mut response = next.run(request).await;
    inner.in_flight.fetch_sub(1, Ordering::Relaxed);
    let load = in_flight as f64 / f64::from(inner.capacity);
    if let Ok(value) = HeaderValue::from_str(&format!("{load:.3}")) {
        response.headers_mut().insert(LOAD_HEADER, value);
    }
    response
}

/// `Query<T>` whose rejection is the JSON `bad_request` error instead of axum's plain-text one.
struct ApiQuery<T>(T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(value)| Self(value))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// `GET /`: who answered and the request headers it saw.
///
/// Headers are an object keyed by lowercase header name; a header sent several times has its values joined with
/// `", "` in the order received (as HTTP allows for list-valued headers). Values that are not valid UTF-8 are
/// converted lossily.
async fn index(State(state): State<AppState>, headers: HeaderMap) -> Json<Value> {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for name in headers.keys() {
        let joined = headers
            .get_all(name)
            .iter()
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        seen.insert(name.as_str().to_owned(), joined);
    }
    Json(json!({
        "instance": state.inner.instance,
        "service": state.inner.service,
        "pid": std::process::id(),
        "headers": seen,
    }))
}

/// `GET /healthz`: always `{"status":"ok"}` while the server runs.
async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

#[derive(Deserialize)]
struct WorkParams {
    ms: u64,
}

/// `GET /work?ms=N`: sleeps N milliseconds (at most [`MAX_WORK_MS`]) without holding a thread.
async fn work(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<WorkParams>,
) -> Result<Json<Value>, ApiError> {
    if params.ms > MAX_WORK_MS {
        return Err(ApiError::bad_request(format!(
            "ms must be at most {MAX_WORK_MS}, got {}",
            params.ms
        )));
    }
    tokio::time::sleep(Duration::from_millis(params.ms)).await;
    Ok(Json(json!({
        "instance": state.inner.instance,
        "slept_ms": params.ms,
    })))
}

#[derive(Deserialize)]
struct FactorParams {
    n: u64,
}

/// `GET /factor?n=N`: factorises N (1 ≤ N ≤ 2^64 − 1) on a blocking thread and hashes the factors with
/// [`factors_sha256`].
async fn factor(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<FactorParams>,
) -> Result<Json<Value>, ApiError> {
    let n = params.n;
    if n == 0 {
        return Err(ApiError::bad_request("n must be at least 1"));
    }
    let (factors, sha256) = tokio::task::spawn_blocking(move || {
        let factors = factorize(n);
        let sha256 = factors_sha256(&factors);
        (factors, sha256)
    })
    .await
    .map_err(|error| ApiError::internal(format!("factorisation task failed: {error}")))?;
    Ok(Json(json!({
        "n": n,
        "factors": factors,
        "sha256": sha256,
        "instance": state.inner.instance,
    })))
}

#[derive(Deserialize)]
struct CrashParams {
    #[serde(default = "default_crash_code")]
    code: u8,
}

fn default_crash_code() -> u8 {
    DEFAULT_CRASH_CODE
}

/// `GET /crash?code=N`: answers, then exits the whole process with code N (0–255, default
/// [`DEFAULT_CRASH_CODE`]) about [`CRASH_DELAY`] later, without graceful shutdown.
async fn crash(State(state): State<AppState>, ApiQuery(params): ApiQuery<CrashParams>) -> Response {
    let code = params.code;
    say(&format!(
        "tucano-demo exiting with code {code} on request (GET /crash)"
    ));
    tracing::warn!(code, "exiting on request (GET /crash)");
    tokio::spawn(async move {
        tokio::time::sleep(CRASH_DELAY).await;
        std::process::exit(i32::from(code));
    });
    let body = Json(json!({
        "instance": state.inner.instance,
        "exiting_with_code": code,
    }));
    (
        [(header::CONNECTION, HeaderValue::from_static("close"))],
        body,
    )
        .into_response()
}

#[derive(Deserialize)]
struct AllocParams {
    mb: u64,
}

/// `GET /alloc?mb=N`: allocates N MiB (at most [`MAX_ALLOC_MB`]), writes every byte so every page is resident, and
/// keeps it; answers with the total held. An allocation the allocator refuses is a 503 `out_of_memory`; one the kernel
/// cannot back (a container memory limit) gets the process OOM-killed, which is the point.
async fn alloc(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<AllocParams>,
) -> Result<Json<Value>, ApiError> {
    let mb = params.mb;
    if mb > MAX_ALLOC_MB {
        return Err(ApiError::bad_request(format!(
            "mb must be at most {MAX_ALLOC_MB}, got {mb}"
        )));
    }
    let bytes = usize::try_from(mb * MIB)
        .map_err(|_| ApiError::bad_request(format!("{mb} MiB does not fit in memory")))?;
    let block = tokio::task::spawn_blocking(move || allocate_touched(bytes))
        .await
        .map_err(|error| ApiError::internal(format!("allocation task failed: {error}")))?
        .map_err(|error| ApiError::out_of_memory(format!("cannot allocate {mb} MiB: {error}")))?;
    let held_mb = {
        let mut held = state
            .inner
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        held.blocks.push(block);
        held.mib += mb;
        held.mib
    };
    tracing::info!(allocated_mb = mb, held_mb, "allocated memory on request");
    Ok(Json(json!({
        "instance": state.inner.instance,
        "allocated_mb": mb,
        "held_mb": held_mb,
    })))
}

/// Allocates `bytes` bytes and writes every one of them, so the pages are really backed by memory.
fn allocate_touched(bytes: usize) -> Result<Vec<u8>, std::collections::TryReserveError> {
    let mut block = Vec::new();
    block.try_reserve_exact(bytes)?;
    // A non-zero fill cannot be turned into a lazily zeroed (untouched) allocation.
    block.resize(bytes, 0xA5);
    Ok(std::hint::black_box(block))
}

/// Any unknown path: 404 `not_found`.
async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

/// A known path with a method other than GET: 405 `method_not_allowed`.
async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::method_not_allowed(format!(
        "{method} is not allowed on {}; use GET",
        uri.path()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocate_touched_fills_every_byte() {
        let block = allocate_touched(3 * 4096 + 7).unwrap();
        assert_eq!(block.len(), 3 * 4096 + 7);
        assert!(block.iter().all(|&b| b == 0xA5));
    }

    #[test]
    fn impossible_allocation_is_an_error_not_an_abort() {
        assert!(allocate_touched(usize::MAX).is_err());
    }
}
