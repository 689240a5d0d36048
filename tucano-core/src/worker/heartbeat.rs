//! The heartbeat pusher: registers the worker, then reports metrics and instance statuses,
//! with each running instance's measured usage, every interval and right after an instance
//! changes.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior, timeout};

use super::WorkerInner;
use super::usage_tracker::UsageTracker;
use crate::model::NodeMetrics;
use crate::transport::TransportError;
use crate::wire::{Heartbeat, LocalState, Registration, RegistrationReply};

/// Longest a metrics sample may take before a heartbeat goes without one.
const SAMPLE_TIMEOUT: Duration = Duration::from_millis(500);
/// Shortest time a heartbeat call gets.
const MIN_CALL_TIMEOUT: Duration = Duration::from_millis(200);
/// Shortest time between two rounds of instance usage samples.
const MIN_USAGE_INTERVAL: Duration = Duration::from_millis(100);
/// Most instance usage samples in flight at once (each a /proc read or an engine call).
const USAGE_CONCURRENCY: usize = 16;

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
        let mut usage = UsageTracker::default();
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = self.changed.notified() => {}
                _ = shutdown.changed() => return,
            }
            if self.prune_exited(Instant::now()) {
                self.changed.notify_one();
            }
            let (metrics, ()) = tokio::join!(self.node_metrics(), self.sample_usage(&mut usage));
            let mut report = self.report();
            for instance in &mut report.instances {
                if matches!(instance.state, LocalState::Running | LocalState::Stopping) {
                    instance.usage = usage.latest(&instance.id);
                }
            }
            let heartbeat = Heartbeat {
                id: self.config.id.clone(),
                sent_at: SystemTime::now(),
                metrics,
                report,
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

    /// A node metrics sample, or none if it fails or takes over [`SAMPLE_TIMEOUT`].
    async fn node_metrics(&self) -> Option<NodeMetrics> {
        match timeout(SAMPLE_TIMEOUT, self.parts.metrics.sample()).await {
            Ok(Ok(metrics)) => Some(metrics),
            Ok(Err(error)) => {
                tracing::debug!(%error, "no metrics for this heartbeat");
                None
            }
            Err(_) => None,
        }
    }

    /// Samples every running instance's usage through the runtime, at most
    /// [`USAGE_CONCURRENCY`] at once, the longest unsampled first, the whole round bounded by
    /// [`SAMPLE_TIMEOUT`] (an instance not sampled in time reports no usage this round); at
    /// most one round per half heartbeat interval. A sample counts as taken halfway through
    /// its call.
    async fn sample_usage(&self, tracker: &mut UsageTracker) {
        let now = Instant::now();
        let min_interval = (self.config.heartbeat_interval / 2).max(MIN_USAGE_INTERVAL);
        if !tracker.due(now, min_interval) {
            return;
        }
        let mut running: Vec<_> = self
            .table()
            .entries
            .iter()
            .filter(|(_, i)| i.state == LocalState::Running)
            .map(|(id, i)| (*id, i.resources))
            .collect();
        // Never sampled first, then the longest ago: when a round cannot sample every
        // instance in time, the next one starts with those it missed.
        running.sort_by_key(|(id, _)| tracker.last_sampled(id));
        tracker.begin_round(
            now,
            &running.iter().map(|(id, _)| *id).collect::<HashSet<_>>(),
        );
        let permits = Arc::new(Semaphore::new(USAGE_CONCURRENCY));
        let mut samples = JoinSet::new();
        for &(id, request) in &running {
            let runtime = self.parts.runtime.clone();
            let permits = Arc::clone(&permits);
            samples.spawn(async move {
                let _permit = permits.acquire_owned().await.ok();
                let before = Instant::now();
                let sample = match runtime.usage(id).await {
                    Ok(sample) => Some(sample),
                    Err(error) => {
                        tracing::trace!(instance = %id, %error, "no usage for this heartbeat");
                        None
                    }
                };
                let taken = before + Instant::now().saturating_duration_since(before) / 2;
                (id, request, sample, taken)
            });
        }
        let mut sampled = HashSet::with_capacity(running.len());
        let collect = async {
            while let Some(done) = samples.join_next().await {
                if let Ok((id, request, sample, at)) = done {
                    tracker.record(id, request, sample, at);
                    sampled.insert(id);
                }
            }
        };
        let _ = timeout(SAMPLE_TIMEOUT, collect).await;
        samples.abort_all();
        for (id, request) in running {
            if !sampled.contains(&id) {
                tracker.record(id, request, None, now);
            }
        }
    }
}
