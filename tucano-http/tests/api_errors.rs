//! Every bad-input case of the controller and worker APIs, over real sockets: each gets its
//! status and a JSON error body, and nothing is lost.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use tucano_core::controller::{Controller, ControllerConfig, ControllerHandle, ControllerParts};
use tucano_core::scheduler::Pipeline;
use tucano_core::store::MemoryStore;
use tucano_core::transport::{Endpoint, EndpointSink, RouteSpec};
use tucano_core::worker::{Worker, WorkerConfig, WorkerParts};
use tucano_core::{ProcessRuntime, ServiceName, SystemMonitor};
use tucano_http::{ApiServer, ControllerClient, WorkerClient, controller_router, worker_router};

struct NoBalancer;
impl EndpointSink for NoBalancer {
    fn publish(&self, _: &ServiceName, _: &RouteSpec, _: Vec<Endpoint>) {}
    fn remove(&self, _: &ServiceName) {}
}

async fn controller() -> (ApiServer, ControllerHandle) {
    let parts = ControllerParts {
        scheduler: Arc::new(Pipeline::default()),
        workers: Arc::new(WorkerClient::new().unwrap()),
        store: Arc::new(MemoryStore::new()),
        endpoints: Arc::new(NoBalancer),
    };
    let handle = Controller::start(ControllerConfig::default(), parts)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    (
        ApiServer::serve(listener, controller_router(handle.clone())).unwrap(),
        handle,
    )
}

async fn request(method: Method, url: &str, body: Option<Vec<u8>>) -> (StatusCode, Value) {
    let client = Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut builder = client.request(method, url);
    if let Some(body) = body {
        builder = builder
            .header("content-type", "application/json")
            .body(body);
    }
    let response = builder.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

fn assert_error(result: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(result.0, status, "{result:?}");
    assert_eq!(result.1["error"]["code"], code, "{result:?}");
    assert!(
        result.1["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{result:?}"
    );
}

#[tokio::test]
async fn controller_api_refuses_bad_input_with_json_errors() {
    let (server, _) = controller().await;
    let base = format!("http://{}", server.local_addr());
    let services = format!("{base}/v1/services");
    let post = |body: &str| request(Method::POST, &services, Some(body.as_bytes().to_vec()));

    assert_error(
        &post("{\"name\": \"a\",").await,
        StatusCode::BAD_REQUEST,
        "malformed_json",
    );
    assert_error(
        &post("not json").await,
        StatusCode::BAD_REQUEST,
        "malformed_json",
    );
    let huge = format!(
        r#"{{"name":"a","command":["{}"]}}"#,
        "x".repeat(1024 * 1024)
    );
    assert_error(
        &post(&huge).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    assert_error(
        &post(r#"{"name":"Bad_Name","command":["x"]}"#).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_spec",
    );
    assert_error(
        &post(r#"{"name":"a","command":[]}"#).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_spec",
    );
    assert_error(
        &post(r#"{"name":"a"}"#).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_spec",
    );
    assert_error(
        &post(r#"{"name":"a","command":["x"],"replicas":5000}"#).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_spec",
    );
    assert_error(
        &post(r#"{"name":"a","command":["x"],"replicas":-1}"#).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_spec",
    );
    assert_error(
        &post(r#"{"name":"a","command":["x"],"unknown":1}"#).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_spec",
    );

    // No worker: the service is kept (503), and a second create is a conflict.
    let spec = r#"{"name":"hello","command":["/bin/demo"],"replicas":2}"#;
    assert_error(
        &post(spec).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "no_capacity",
    );
    assert_error(&post(spec).await, StatusCode::CONFLICT, "service_exists");
    let (status, kept) = request(Method::GET, &format!("{services}/hello"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(kept["instances"].as_array().map(Vec::len), Some(2));
    assert_eq!(kept["instances"][0]["state"], "pending");
    assert!(
        kept["instances"][0]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("live worker")
    );

    for (method, path, body) in [
        (Method::GET, "/v1/services/nope", None),
        (Method::DELETE, "/v1/services/nope", None),
        (
            Method::PUT,
            "/v1/services/nope/replicas",
            Some(r#"{"replicas":1}"#),
        ),
        (Method::GET, "/v1/services/NOT%20A%20NAME", None),
        (
            Method::PUT,
            "/v1/services/nope",
            Some(r#"{"name":"nope","command":["x"]}"#),
        ),
    ] {
        let result = request(
            method,
            &format!("{base}{path}"),
            body.map(|b| b.as_bytes().to_vec()),
        )
        .await;
        assert_error(&result, StatusCode::NOT_FOUND, "service_not_found");
    }
    let scale = format!("{services}/hello/replicas");
    assert_error(
        &request(Method::PUT, &scale, Some(b"{\"replicas\":".to_vec())).await,
        StatusCode::BAD_REQUEST,
        "malformed_json",
    );
    assert_error(
        &request(Method::PUT, &scale, Some(br#"{"replicas":1001}"#.to_vec())).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_spec",
    );
    assert_error(
        &request(Method::PUT, &scale, Some(br#"{"replicas":"3"}"#.to_vec())).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_spec",
    );
    // Updates: the body is a whole valid spec for the route's service.
    let update = format!("{services}/hello");
    let put = |body: &str| request(Method::PUT, &update, Some(body.as_bytes().to_vec()));
    assert_error(
        &put(r#"{"name":"hello","command":"#).await,
        StatusCode::BAD_REQUEST,
        "malformed_json",
    );
    assert_error(
        &put(r#"{"name":"other","command":["/bin/demo"]}"#).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "name_mismatch",
    );
    assert_error(
        &put(r#"{"name":"hello","command":["/bin/demo"],"update":{"max_surge":0}}"#).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_spec",
    );
    assert_error(
        &put(r#"{"name":"hello","command":["/bin/demo"],"restart":"sometimes"}"#).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_spec",
    );
    assert_error(
        &request(Method::GET, &format!("{base}/v2/nothing"), None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &request(Method::PATCH, &services, None).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );

    // Worker routes.
    let heartbeat = json!({"id": "w1", "sent_at": "2026-01-01T00:00:00Z", "metrics": null,
        "report": {"boot_id": "0191e6d2-0000-7000-8000-000000000000", "generation": 0, "instances": []}});
    let url = format!("{base}/v1/workers/w1/heartbeat");
    assert_error(
        &request(Method::POST, &url, Some(heartbeat.to_string().into_bytes())).await,
        StatusCode::NOT_FOUND,
        "worker_not_found",
    );
    let url = format!("{base}/v1/workers/w2/heartbeat");
    assert_error(
        &request(Method::POST, &url, Some(heartbeat.to_string().into_bytes())).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "worker_mismatch",
    );
    assert_error(
        &request(Method::DELETE, &format!("{base}/v1/workers/w1"), None).await,
        StatusCode::NOT_FOUND,
        "worker_not_found",
    );
    let registration = json!({"id": "w1", "address": "ftp://x", "proxy_address": "127.0.0.1:1",
        "runtime": "process", "capacity": {"cpus": 1.0, "memory_mb": 64},
        "report": {"boot_id": "0191e6d2-0000-7000-8000-000000000000", "generation": 0, "instances": []}});
    let url = format!("{base}/v1/workers");
    assert_error(
        &request(
            Method::POST,
            &url,
            Some(registration.to_string().into_bytes()),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_registration",
    );

    // Nothing above changed the one service that was created.
    let client = ControllerClient::new(&base).unwrap();
    let listed = client.list_services().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].spec.replicas, 2);
    assert_eq!(listed[0].revision, 1);
    assert!(listed[0].rollout.is_none());
    server.shutdown().await;
}

#[tokio::test]
async fn worker_api_refuses_bad_input_with_json_errors() {
    let (controller_server, _) = controller().await;
    let controller_url = format!("http://{}", controller_server.local_addr());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let parts = WorkerParts {
        runtime: Arc::new(ProcessRuntime::new(Default::default()).unwrap()),
        metrics: Arc::new(SystemMonitor::new().unwrap()),
        controller: Arc::new(ControllerClient::new(&controller_url).unwrap()),
    };
    let config = WorkerConfig::new(
        "w1".parse().unwrap(),
        address.clone(),
        "127.0.0.1:1".parse().unwrap(),
    );
    let worker = Worker::new(config, parts).await.unwrap();
    let server = ApiServer::serve(listener, worker_router(worker.clone())).unwrap();
    worker.join().await.unwrap();
    let instances = format!("{address}/v1/instances");

    let spec = |command: Value| {
        json!({"id": "0191e6d2-0000-7000-8000-000000000001", "service": "hello", "command": command,
            "env": {}, "resources": {"cpus": 0.5, "memory_mb": 64},
            "stop_grace_period": "1s", "startup_timeout": "2s"})
        .to_string()
        .into_bytes()
    };
    assert_error(
        &request(Method::POST, &instances, Some(b"{".to_vec())).await,
        StatusCode::BAD_REQUEST,
        "malformed_json",
    );
    assert_error(
        &request(Method::POST, &instances, Some(vec![b' '; 2 * 1024 * 1024])).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    assert_error(
        &request(Method::POST, &instances, Some(br#"{"id":"x"}"#.to_vec())).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_spec",
    );
    assert_error(
        &request(Method::POST, &instances, Some(spec(json!([])))).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_spec",
    );
    assert_error(
        &request(
            Method::POST,
            &instances,
            Some(spec(json!(["/nonexistent/program"]))),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "spawn_failed",
    );
    let unknown = format!("{instances}/0191e6d2-0000-7000-8000-000000000009");
    assert_error(
        &request(Method::DELETE, &unknown, None).await,
        StatusCode::NOT_FOUND,
        "instance_not_found",
    );
    assert_error(
        &request(Method::GET, &format!("{unknown}/logs"), None).await,
        StatusCode::NOT_FOUND,
        "instance_not_found",
    );
    assert_error(
        &request(Method::DELETE, &format!("{instances}/not-a-uuid"), None).await,
        StatusCode::NOT_FOUND,
        "instance_not_found",
    );
    assert_error(
        &request(Method::DELETE, &format!("{unknown}?grace=soon"), None).await,
        StatusCode::BAD_REQUEST,
        "bad_query",
    );
    assert_error(
        &request(Method::GET, &format!("{unknown}/logs?tail=many"), None).await,
        StatusCode::BAD_REQUEST,
        "bad_query",
    );

    // The failed start left nothing behind.
    let report = WorkerClient::new()
        .unwrap()
        .instances(&address)
        .await
        .unwrap();
    assert!(report.instances.is_empty());
    // The worker is registered and visible.
    let workers = ControllerClient::new(&controller_url)
        .unwrap()
        .list_workers()
        .await
        .unwrap();
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0].address, address);
    worker.shutdown().await;
    server.shutdown().await;
    controller_server.shutdown().await;
}
