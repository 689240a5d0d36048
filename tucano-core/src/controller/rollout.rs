//! Rolling updates: a changed spec becomes a new revision whose instances replace the old
//! ones a few at a time — at most `max_surge` above the replica count, at most
//! `max_unavailable` below it, an old instance stopped only once a new one is healthy — and
//! the previous revision comes back if no new instance becomes healthy within the deadline.

use std::cmp::Reverse;
use std::collections::HashSet;
use std::time::SystemTime;

use tokio::time::Instant;

use super::ControllerError;
use super::engine::Engine;
use super::records::{InstanceRecord, ServiceRecord};
use crate::model::{
    InstanceId, InstanceState, RolloutState, RolloutStatus, ServiceName, ServiceSpec,
};
use crate::wire::ServiceView;

impl Engine {
    /// Replaces a service's spec: a change to what its instances run starts a rolling update
    /// to a new revision; any other change applies at once. Either way, instances that ended
    /// and were kept ended by the restart policy give up their slot.
    pub(super) fn update_service(
        &mut self,
        spec: ServiceSpec,
    ) -> Result<ServiceView, ControllerError> {
        self.check_spec(&spec)?;
        let service = self.live_service_mut(spec.name.as_str())?;
        let name = spec.name.clone();
        if service.spec == spec {
            return Ok(service.view());
        }
        if service.spec.instances_differ(&spec) {
            start_rollout(service);
            tracing::info!(service = %name, revision = service.revision, "rolling update started");
        } else {
            tracing::info!(service = %name, "service spec changed in place");
        }
        service.spec = spec;
        service.slots_reset_at = Some(SystemTime::now());
        self.persistence.dirty.services.insert(name.clone());
        self.dirty_routes.insert(name.clone());
        self.reconcile();
        self.placement_outcome(&name)
    }

    /// One step of a rolling update: tracks its progress, completes it or rolls it back, and
    /// replaces instances of other revisions within the surge and unavailability bounds.
    /// False when every replica already runs the current revision (plain scaling applies).
    pub(super) fn roll(&mut self, name: &ServiceName, now: Instant) -> bool {
        self.track_rollout(name, now);
        let Some(service) = self.services.get(name) else {
            return false;
        };
        let update = service.spec.update;
        let replicas = service.spec.replicas as usize;
        let healthy = |i: &InstanceRecord| i.is_ready(update.min_ready, now);
        let (new, old): (Vec<&InstanceRecord>, Vec<&InstanceRecord>) = service
            .instances
            .values()
            .filter(|i| i.state().counts_as_replica() || service.is_retired(i))
            .partition(|i| i.revision == service.revision);
        let old: Vec<&InstanceRecord> = old
            .into_iter()
            .filter(|i| i.state().counts_as_replica())
            .collect();
        if old.is_empty() {
            return false;
        }
        // Start new instances up to the replica count, keeping the total within the surge.
        let wanted_new =
            replicas.min((replicas + update.max_surge as usize).saturating_sub(old.len()));
        let to_add = wanted_new.saturating_sub(new.len());
        // New instances beyond the replica count (scaled down meanwhile): unhealthy first.
        let mut surplus: Vec<(bool, Reverse<InstanceId>)> = new
            .iter()
            .filter(|i| i.state().counts_as_replica())
            .map(|i| (healthy(i), Reverse(i.id)))
            .collect();
        surplus.sort();
        surplus.truncate(new.len().saturating_sub(replicas));
        // Old instances that serve nothing go at once; serving ones as far as availability
        // allows: serving old + healthy new may not drop below replicas - max_unavailable.
        let serving_old: Vec<InstanceId> = old
            .iter()
            .filter(|i| i.state() == InstanceState::Running)
            .map(|i| i.id)
            .collect();
        let available = serving_old.len() + new.iter().filter(|i| healthy(i)).count();
        let removable =
            available.saturating_sub(replicas.saturating_sub(update.max_unavailable as usize));
        let mut stop: HashSet<InstanceId> = old
            .iter()
            .filter(|i| i.state() != InstanceState::Running)
            .map(|i| i.id)
            .collect();
        stop.extend(serving_old.iter().take(removable));
        stop.extend(surplus.iter().map(|(_, Reverse(id))| *id));
        self.add_instances(name, to_add, now);
        self.stop_instances(name, |i| stop.contains(&i.id));
        true
    }

    /// Refreshes the rollout's count of healthy new replicas, completes it when only healthy
    /// new replicas are left, and rolls it back when it made no progress within the deadline.
    fn track_rollout(&mut self, name: &ServiceName, now: Instant) {
        let Some(service) = self
            .services
            .get_mut(name)
            .filter(|s| s.rollout.as_ref().is_some_and(|r| r.state.is_active()))
        else {
            return;
        };
        let min_ready = service.spec.update.min_ready;
        let ready = service
            .instances
            .values()
            .filter(|i| i.revision == service.revision && i.is_ready(min_ready, now))
            .count() as u32;
        let old_left = service
            .instances
            .values()
            .any(|i| i.revision != service.revision && i.state().counts_as_replica());
        let deadline = service.spec.update.deadline;
        let Some(rollout) = service.rollout.as_mut().filter(|r| r.state.is_active()) else {
            return;
        };
        let mut changed = false;
        if ready != rollout.ready {
            if ready > rollout.ready {
                service.rollout_progress_at = now;
            }
            rollout.ready = ready;
            changed = true;
        }
        if !old_left && ready >= service.spec.replicas {
            rollout.state = match rollout.state {
                RolloutState::RollingBack => RolloutState::RolledBack,
                _ => RolloutState::Complete,
            };
            tracing::info!(service = %name, revision = service.revision, state = %rollout.state, "rolling update finished");
            service.previous = None;
            changed = true;
        } else if rollout.state == RolloutState::InProgress
            && now >= service.rollout_progress_at + deadline
        {
            roll_back(service, deadline, now);
            self.dirty_routes.insert(name.clone());
            changed = true;
        }
        if changed {
            if let Some(rollout) = self.services.get_mut(name).and_then(|s| s.rollout.as_mut()) {
                rollout.updated_at = SystemTime::now();
            }
            self.persistence.dirty.services.insert(name.clone());
        }
    }
}

/// Makes the next revision current, remembering the last stable spec to roll back to (while
/// an update is still rolling out, that is the spec it started from).
fn start_rollout(service: &mut ServiceRecord) {
    let now = SystemTime::now();
    let (from, previous) = match &service.rollout {
        Some(rollout) if rollout.state == RolloutState::InProgress => (
            rollout.from_revision,
            service
                .previous
                .take()
                .unwrap_or_else(|| service.spec.clone()),
        ),
        _ => (service.revision, service.spec.clone()),
    };
    service.latest_revision = service.latest_revision.saturating_add(1);
    service.revision = service.latest_revision;
    service.previous = Some(previous);
    service.rollout = Some(RolloutStatus {
        state: RolloutState::InProgress,
        from_revision: from,
        to_revision: service.revision,
        ready: 0,
        reason: None,
        started_at: now,
        updated_at: now,
    });
    service.rollout_progress_at = Instant::now();
    service.consecutive_failures = 0;
    // Rebalancing moves give way: the update replaces those instances anyway.
    for instance in service.instances.values_mut() {
        instance.moving_to = None;
    }
}

/// Makes the revision the update started from current again (at the current replica count),
/// saying why.
fn roll_back(service: &mut ServiceRecord, deadline: std::time::Duration, now: Instant) {
    let Some(mut previous) = service.previous.take() else {
        return;
    };
    let Some(rollout) = service.rollout.as_mut() else {
        return;
    };
    let last_failure = service
        .instances
        .values()
        .filter(|i| i.revision == service.revision && i.reason.is_some())
        .max_by_key(|i| i.updated_at)
        .and_then(|i| i.reason.clone());
    let mut reason = format!(
        "no new instance of revision {} became healthy within {}",
        rollout.to_revision,
        humantime::format_duration(deadline)
    );
    match last_failure {
        Some(last) => reason.push_str(&format!(" (last: {last})")),
        None => {
            let waiting = service
                .instances
                .values()
                .filter(|i| i.revision == service.revision && i.state().counts_as_replica())
                .count();
            reason.push_str(&format!(
                " ({waiting} still starting or not yet passing their readiness check)"
            ));
        }
    }
    tracing::warn!(service = %service.spec.name, from = rollout.to_revision, to = rollout.from_revision, %reason, "rolling back");
    previous.replicas = service.spec.replicas;
    service.spec = previous;
    service.revision = rollout.from_revision;
    rollout.state = RolloutState::RollingBack;
    rollout.reason = Some(reason);
    rollout.ready = 0;
    service.rollout_progress_at = now;
    service.consecutive_failures = 0;
}
