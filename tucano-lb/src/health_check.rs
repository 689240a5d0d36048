//! Active HTTP health checks: `GET <health path>` to each instance of services that ask for
//! them, on their interval; the verdicts feed each endpoint's state.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::HOST;
use http::uri::{PathAndQuery, Scheme};
use http::{HeaderValue, Request, Uri};
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;
use tucano_core::InstanceId;

use crate::backend::Backend;
use crate::headers::INSTANCE_HEADER;
use crate::routing_table::RoutingTable;

/// Checks in flight at once, across all services.
const MAX_CONCURRENT_CHECKS: usize = 64;

/// Runs the checks that are due; remembers when each endpoint is next due.
pub(crate) struct HealthChecker {
    client: Client<HttpConnector, Empty<Bytes>>,
    next_due_ns: HashMap<InstanceId, u64>,
    permits: Arc<Semaphore>,
}

impl HealthChecker {
    pub fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(1)));
        Self {
            client: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(1)
                .build(connector),
            next_due_ns: HashMap::new(),
            permits: Arc::new(Semaphore::new(MAX_CONCURRENT_CHECKS)),
        }
    }

    /// Starts every check due at `now_ns` (each in its own task) and forgets endpoints that
    /// are gone.
    pub fn run_due(&mut self, table: &Arc<RoutingTable>, now_ns: u64) {
        let mut present = HashMap::with_capacity(self.next_due_ns.len());
        for route in table.routes() {
            let Some(health) = route.spec().health.clone() else {
                continue;
            };
            let interval_ns = u64::try_from(health.interval.as_nanos()).unwrap_or(u64::MAX);
            for backend in route.endpoints() {
                let instance = *backend.instance();
                let due = self.next_due_ns.get(&instance).copied().unwrap_or(now_ns);
                if due > now_ns {
                    present.insert(instance, due);
                    continue;
                }
                present.insert(instance, now_ns.saturating_add(interval_ns));
                let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
                    // Too many checks in flight: try again next tick.
                    present.insert(instance, now_ns);
                    continue;
                };
                let client = self.client.clone();
                let table = Arc::clone(table);
                let service = route.service().to_string();
                let backend = backend.clone();
                let health = health.clone();
                tokio::spawn(async move {
                    let passed =
                        check(&client, &backend, &service, &health.path, health.timeout).await;
                    drop(permit);
                    let changed = backend.state().record_health_check(
                        passed,
                        health.healthy_threshold,
                        health.unhealthy_threshold,
                    );
                    if changed {
                        tracing::warn!(%service, instance = %backend.instance(),
                            healthy = backend.state().is_healthy(), path = %health.path, "health check verdict changed");
                        if let Some(route) = table.route(&service) {
                            route.note_availability_change();
                        }
                    }
                });
            }
        }
        self.next_due_ns = present;
    }
}

/// One check: true if `GET path` answers 2xx within `timeout`.
async fn check(
    client: &Client<HttpConnector, Empty<Bytes>>,
    backend: &Backend,
    service: &str,
    path: &str,
    timeout: Duration,
) -> bool {
    let Ok(path) = PathAndQuery::try_from(path) else {
        return false;
    };
    let Ok(uri) = Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(backend.upstream().clone())
        .path_and_query(path)
        .build()
    else {
        return false;
    };
    let mut request = Request::new(Empty::new());
    *request.uri_mut() = uri;
    if let Ok(host) = HeaderValue::from_str(service) {
        request.headers_mut().insert(HOST, host);
    }
    request
        .headers_mut()
        .insert(INSTANCE_HEADER, backend.instance_header().clone());
    match tokio::time::timeout(timeout, client.request(request)).await {
        Ok(Ok(response)) => response.status().is_success(),
        _ => false,
    }
}
