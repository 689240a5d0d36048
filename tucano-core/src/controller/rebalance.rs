//! Rebalancing, opt in: when a service's instances are spread unevenly — typically after a
//! worker joins — a periodic pass moves a few of them from the worker with the most to a
//! worker with fewer that can take them. A move starts the new instance first and stops the
//! old one once the new runs, so the service never drops below its replica count. A pass
//! starts at most `max_moves` moves and none while earlier moves are still on their way.

use std::cmp::Reverse;
use std::time::Duration;

use tokio::time::Instant;

use super::engine::Engine;
use super::records::InstanceRecord;
use crate::model::{InstanceEvent, InstanceId, InstanceState, ServiceName, WorkerId};
use crate::scheduler::{PlacementRequest, check};

/// Settings of the rebalancer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RebalanceConfig {
    /// How often a pass runs.
    pub interval: Duration,
    /// Most moves a pass starts: the rate limit is `max_moves` per `interval`.
    pub max_moves: u32,
}

impl Default for RebalanceConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
            max_moves: 1,
        }
    }
}

/// A move the pass found: one instance of `service` from `from` to `to`, narrowing a spread
/// of `skew` instances between the two workers.
struct Move {
    service: ServiceName,
    instance: InstanceId,
    to: WorkerId,
    skew: u32,
}

impl Engine {
    /// One rebalancing pass, if one is configured and due.
    pub(super) fn rebalance_if_due(&mut self, now: Instant) {
        let Some(config) = self.config.rebalance else {
            return;
        };
        if now < self.last_rebalance + config.interval {
            return;
        }
        self.last_rebalance = now;
        if self.moves_in_flight() > 0 {
            return;
        }
        let mut moves = self.skewed_services();
        moves.sort_by(|a, b| b.skew.cmp(&a.skew).then(a.service.cmp(&b.service)));
        for chosen in moves.into_iter().take(config.max_moves as usize) {
            self.start_move(chosen, now);
        }
    }

    fn moves_in_flight(&self) -> usize {
        self.services
            .values()
            .flat_map(|s| s.instances.values())
            .filter(|i| i.moving_to.is_some())
            .count()
    }

    /// For each service that is settled (not deleting, no rolling update, every replica
    /// running), the move that narrows its spread most, if its most and least loaded workers
    /// that could take one more differ by two instances or more.
    fn skewed_services(&self) -> Vec<Move> {
        let mut cluster = self.cluster_view();
        let mut moves = Vec::new();
        for service in self.services.values() {
            let running: Vec<&InstanceRecord> = service
                .instances
                .values()
                .filter(|i| i.state() == InstanceState::Running)
                .collect();
            let settled = !service.deleting
                && running.len() == service.spec.replicas as usize
                && running.iter().all(|i| i.revision == service.revision)
                && !service
                    .instances
                    .values()
                    .any(|i| i.state().counts_as_replica() && i.state() != InstanceState::Running);
            if !settled || running.is_empty() {
                continue;
            }
            let on = service.per_worker(|i| i.state() == InstanceState::Running);
            let Some((&from, &most)) = on.iter().max_by_key(|(w, n)| (**n, Reverse(**w))) else {
                continue;
            };
            cluster.service_instances = cluster
                .workers
                .iter()
                .map(|w| on.get(&w.id).copied().unwrap_or(0))
                .collect();
            let spec = &service.spec;
            let request = PlacementRequest {
                constraints: &spec.placement.constraints,
                max_per_worker: spec.placement.max_per_worker,
                ..PlacementRequest::new(&spec.name, &spec.resources, spec.runtime_kind())
            };
            let target = cluster
                .workers
                .iter()
                .zip(&cluster.service_instances)
                .filter(|(w, n)| w.id != *from && check(&request, w, **n).is_ok())
                .min_by_key(|(w, n)| (**n, &w.id));
            let Some((to, &fewest)) = target else {
                continue;
            };
            if most < fewest + 2 {
                continue;
            }
            // The newest instance on the crowded worker moves.
            let Some(instance) = running
                .iter()
                .filter(|i| i.worker.as_ref() == Some(from))
                .map(|i| i.id)
                .max()
            else {
                continue;
            };
            moves.push(Move {
                service: spec.name.clone(),
                instance,
                to: to.id.clone(),
                skew: most - fewest,
            });
        }
        moves
    }

    /// Adds the instance that replaces `chosen.instance` on `chosen.to`.
    fn start_move(&mut self, chosen: Move, now: Instant) {
        let Some(service) = self.services.get_mut(&chosen.service) else {
            return;
        };
        let id = InstanceId::new();
        let mut replacement = InstanceRecord::new(id, service.revision, now);
        replacement.pinned = Some(chosen.to.clone());
        let Some(old) = service.instances.get_mut(&chosen.instance) else {
            return;
        };
        old.moving_to = Some(id);
        service.instances.insert(id, replacement);
        tracing::info!(service = %chosen.service, instance = %chosen.instance, to = %chosen.to, skew = chosen.skew, "rebalancing: moving an instance");
        self.persistence
            .dirty
            .instances
            .insert((chosen.service, id));
        self.needs_reconcile = true;
    }

    /// Completes the service's moves whose new instance runs (the old one is stopped) and
    /// gives up those whose new instance ended or cannot be placed (it is stopped instead).
    /// A move whose old instance ended on its own is over: the new one simply replaces it.
    pub(super) fn advance_moves(&mut self, name: &ServiceName) {
        let Some(service) = self.services.get(name) else {
            return;
        };
        // (old instance, the instance to stop, if any)
        let mut finished: Vec<(InstanceId, Option<InstanceId>)> = Vec::new();
        for old in service.instances.values() {
            let Some(new) = old.moving_to else { continue };
            let new_state = service.instances.get(&new).map(|n| (n.state(), n.unplaced));
            let outcome = match new_state {
                _ if !old.state().counts_as_replica() => Some(None),
                Some((InstanceState::Running, _)) => Some(Some(old.id)),
                Some((InstanceState::Pending, true)) => Some(Some(new)),
                Some((state, _)) if !state.is_final() => None,
                _ => Some(None),
            };
            if let Some(stop) = outcome {
                finished.push((old.id, stop));
            }
        }
        for (old, stop) in finished {
            if let Some(instance) = self
                .services
                .get_mut(name)
                .and_then(|s| s.instances.get_mut(&old))
            {
                instance.moving_to = None;
            }
            tracing::info!(service = %name, instance = %old, moved = stop == Some(old), "rebalancing move finished");
            if let Some(victim) = stop {
                self.transition(name, victim, InstanceEvent::StopRequested, None);
            }
        }
    }
}
