//! `WorkerClient`: the controller's transport to workers' APIs.

use std::time::Duration;

use async_trait::async_trait;
use tucano_core::transport::{TransportError, WorkerAddress, WorkerTransport};
use tucano_core::wire::{InstanceReport, LogLine, LogsReply, StartReply, StopReply};
use tucano_core::{InstanceId, InstanceSpec};

use crate::http_client::{CALL_MARGIN, ClientError, call, join, pooled_client};

/// Calls workers' APIs; one pooled connection set serves every worker.
#[derive(Clone, Debug)]
pub struct WorkerClient {
    client: reqwest::Client,
}

impl WorkerClient {
    /// A client with Tucano's timeouts.
    pub fn new() -> Result<Self, ClientError> {
        Ok(Self {
            client: pooled_client()?,
        })
    }

    /// `GET /v1/instances` on the worker at `base_url`.
    pub async fn instances(&self, base_url: &str) -> Result<InstanceReport, ClientError> {
        call(self.client.get(join(base_url, "/v1/instances")?)).await
    }

    /// `GET /v1/instances/{id}/logs?tail=N` on the worker at `base_url`.
    pub async fn logs(
        &self,
        base_url: &str,
        id: InstanceId,
        tail: usize,
    ) -> Result<Vec<LogLine>, ClientError> {
        let url = join(base_url, &format!("/v1/instances/{id}/logs"))?;
        let reply: LogsReply = call(self.client.get(url).query(&[("tail", tail)])).await?;
        Ok(reply.lines)
    }
}

#[async_trait]
impl WorkerTransport for WorkerClient {
    async fn start_instance(
        &self,
        worker: &WorkerAddress,
        spec: &InstanceSpec,
    ) -> Result<StartReply, TransportError> {
        let request = self
            .client
            .post(join(&worker.url, "/v1/instances")?)
            .timeout(spec.startup_timeout + CALL_MARGIN)
            .json(spec);
        Ok(call(request).await?)
    }

    async fn stop_instance(
        &self,
        worker: &WorkerAddress,
        id: InstanceId,
        grace: Duration,
    ) -> Result<StopReply, TransportError> {
        let grace_text = format!("{}ms", grace.as_millis());
        let request = self
            .client
            .delete(join(&worker.url, &format!("/v1/instances/{id}"))?)
            .query(&[("grace", grace_text)])
            .timeout(grace + CALL_MARGIN);
        Ok(call(request).await?)
    }
}
