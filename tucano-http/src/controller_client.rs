//! `ControllerClient`: a typed client of the controller API, and the worker's transport to it.

use async_trait::async_trait;
use tucano_core::ServiceSpec;
use tucano_core::WorkerId;
use tucano_core::controller::DeleteOutcome;
use tucano_core::transport::{ControllerTransport, TransportError};
use tucano_core::wire::{
    Heartbeat, Registration, RegistrationReply, ScaleRequest, ServiceList, ServiceView, WorkerList,
    WorkerView,
};

use crate::http_client::{ClientError, call, join, pooled_client, send};

/// Longest a delete may take: the controller's default delete wait (60 s) plus a margin.
pub const DELETE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(90);

/// Talks to a controller's API.
///
/// ```no_run
/// # async fn example() -> Result<(), tucano_http::ClientError> {
/// use tucano_http::ControllerClient;
/// let client = ControllerClient::new("http://127.0.0.1:7070")?;
/// let spec = serde_json::from_str(r#"{"name":"hello","command":["/usr/local/bin/tucano-demo"],"replicas":3}"#)
///     .expect("valid spec");
/// let service = client.create_service(&spec).await?;
/// println!("{} instances", service.instances.len());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct ControllerClient {
    base: String,
    client: reqwest::Client,
}

impl ControllerClient {
    /// A client of the controller at `base_url` (`http://host:port`).
    pub fn new(base_url: &str) -> Result<Self, ClientError> {
        join(base_url, "")?;
        Ok(Self {
            base: base_url.trim_end_matches('/').to_owned(),
            client: pooled_client()?,
        })
    }

    /// The controller's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `POST /v1/services`.
    pub async fn create_service(&self, spec: &ServiceSpec) -> Result<ServiceView, ClientError> {
        call(self.client.post(self.url("/v1/services")).json(spec)).await
    }

    /// `GET /v1/services`.
    pub async fn list_services(&self) -> Result<Vec<ServiceView>, ClientError> {
        let list: ServiceList = call(self.client.get(self.url("/v1/services"))).await?;
        Ok(list.services)
    }

    /// `GET /v1/services/{name}`.
    pub async fn service(&self, name: &str) -> Result<ServiceView, ClientError> {
        call(self.client.get(self.url(&format!("/v1/services/{name}")))).await
    }

    /// `PUT /v1/services/{name}`: replaces the spec (a rolling update when what the instances
    /// run changed).
    pub async fn update_service(&self, spec: &ServiceSpec) -> Result<ServiceView, ClientError> {
        let url = self.url(&format!("/v1/services/{}", spec.name));
        call(self.client.put(url).json(spec)).await
    }

    /// `PUT /v1/services/{name}/replicas`.
    pub async fn scale_service(
        &self,
        name: &str,
        replicas: u32,
    ) -> Result<ServiceView, ClientError> {
        let url = self.url(&format!("/v1/services/{name}/replicas"));
        call(self.client.put(url).json(&ScaleRequest { replicas })).await
    }

    /// `DELETE /v1/services/{name}`: waits for the controller's answer, which comes once every
    /// instance terminated or after the controller's delete wait.
    pub async fn delete_service(&self, name: &str) -> Result<DeleteOutcome, ClientError> {
        let url = self.url(&format!("/v1/services/{name}"));
        let request = self.client.delete(url).timeout(DELETE_TIMEOUT);
        let (status, body) = send(request).await?;
        let view: ServiceView =
            serde_json::from_slice(&body).map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        Ok(if status == reqwest::StatusCode::ACCEPTED {
            DeleteOutcome::InProgress(view)
        } else {
            DeleteOutcome::Deleted(view)
        })
    }

    /// `GET /v1/workers`.
    pub async fn list_workers(&self) -> Result<Vec<WorkerView>, ClientError> {
        let list: WorkerList = call(self.client.get(self.url("/v1/workers"))).await?;
        Ok(list.workers)
    }
}

#[async_trait]
impl ControllerTransport for ControllerClient {
    async fn register(
        &self,
        registration: &Registration,
    ) -> Result<RegistrationReply, TransportError> {
        Ok(call(self.client.post(self.url("/v1/workers")).json(registration)).await?)
    }

    async fn heartbeat(&self, heartbeat: &Heartbeat) -> Result<(), TransportError> {
        let url = self.url(&format!("/v1/workers/{}/heartbeat", heartbeat.id));
        send(self.client.post(url).json(heartbeat)).await?;
        Ok(())
    }

    async fn deregister(&self, id: &WorkerId) -> Result<(), TransportError> {
        send(self.client.delete(self.url(&format!("/v1/workers/{id}")))).await?;
        Ok(())
    }
}
