//! The heartbeat pusher: registers the worker, then reports metrics and instance statuses
//! every interval and right after an instance changes.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use tokio::time::{Instant, MissedTickBehavior, timeout};

use super::WorkerInner;
use crate::transport::TransportError;
use crate::wire::{Heartbeat, Registration, RegistrationReply};

/// Longest a metrics sample may take before a heartbeat goes without one.
const SAMPLE_TIMEOUT: Duration = Duration::from_millis(500);
/// Shortest time a heartbeat call gets.
const MIN_CALL_TIMEOUT: Duration = Duration::from_millis(200);

impl WorkerInner {
    pub(crate) fn registration(&self) -> Registration {
        Registration {
            id: self.config.id.clone(),
            address: self.config.address.clone(),
            proxy_address: self.config.proxy_address,
            runtime: self.parts.runtime.kind(),
            capacity: self.capacity,
            labels: self.config.labels.clone(),
            report: self.report(),
        }
    }

    /// Registers with bounded retries and backoff.
    pub(crate) async fn register(&self) -> Result<RegistrationReply, TransportError> {
        self.config
            .register_retry
            .retry(
                |attempt| async move {
                    let result = self.register_once().await;
                    if let Err(error) = &result {
                        tracing::warn!(worker = %self.config.id, attempt, %error, "registration failed");
                    }
                    result
                },
                TransportError::is_retryable,
            )
            .await
    }

    /// One registration; remembers the controller's liveness timeout, which bounds each
    /// heartbeat call.
    async fn register_once(&self) -> Result<RegistrationReply, TransportError> {
        let reply = self.parts.controller.register(&self.registration()).await?;
        let liveness = reply.liveness_timeout;
        self.liveness_ms.store(
            u64::try_from(liveness.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        if self.config.heartbeat_interval * 3 > liveness {
            tracing::warn!(interval = ?self.config.heartbeat_interval, ?liveness,
                "heartbeat interval is more than a third of the controller's liveness timeout; one late heartbeat may get this worker declared dead");
        }
        Ok(reply)
    }

    /// Half the controller's liveness timeout: a heartbeat slower than that is no use.
    fn call_timeout(&self) -> Duration {
        (Duration::from_millis(self.liveness_ms.load(Ordering::Relaxed)) / 2).max(MIN_CALL_TIMEOUT)
    }

    pub(crate) async fn heartbeat_loop(self: Arc<Self>) {
        let mut interval = tokio::time::interval(self.config.heartbeat_interval);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut healthy = true;
        let mut shutdown = self.shutdown.subscribe();
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = self.changed.notified() => {}
                _ = shutdown.changed() => return,
            }
            if self.prune_exited(Instant::now()) {
                self.changed.notify_one();
            }
            let metrics = match timeout(SAMPLE_TIMEOUT, self.parts.metrics.sample()).await {
                Ok(Ok(metrics)) => Some(metrics),
                Ok(Err(error)) => {
                    tracing::debug!(%error, "no metrics for this heartbeat");
                    None
                }
                Err(_) => None,
            };
            let heartbeat = Heartbeat {
                id: self.config.id.clone(),
                sent_at: SystemTime::now(),
                metrics,
                report: self.report(),
            };
            let call = timeout(
                self.call_timeout(),
                self.parts.controller.heartbeat(&heartbeat),
            );
            let result = match call.await {
                Ok(Err(TransportError::NotFound(_))) => {
                    tracing::info!(worker = %self.config.id, "controller does not know this worker; registering again");
                    self.register_once().await.map(|_| ())
                }
                Ok(other) => other,
                Err(_) => Err(TransportError::Unreachable("heartbeat timed out".into())),
            };
            match result {
                Ok(()) if !healthy => {
                    tracing::info!(worker = %self.config.id, "heartbeats reach the controller again");
                    healthy = true;
                }
                Err(error) if healthy => {
                    tracing::warn!(worker = %self.config.id, %error, "heartbeat failed; retrying every interval");
                    healthy = false;
                }
                _ => {}
            }
        }
    }
}
