//! Applying the autoscaler's decisions: a replica change with its cause, recorded on the
//! service (the last few, shown in its view and stored) and in the log. The reconciler does
//! the rest, as for any change of replicas.

use std::time::SystemTime;

use super::ControllerError;
use super::engine::Engine;
use super::records::SCALING_EVENTS;
use crate::autoscale::ScalingDecision;
use crate::model::validate_replicas;
use crate::wire::{ScalingEvent, ServiceView};

impl Engine {
    /// Sets the service's replicas to `decision.to` if they still are `decision.from` (a
    /// decision made on a count that changed since is dropped: the autoscaler decides again
    /// on the new one).
    pub(super) fn apply_scaling(
        &mut self,
        name: &str,
        decision: ScalingDecision,
    ) -> Result<ServiceView, ControllerError> {
        validate_replicas(decision.to).map_err(|e| ControllerError::Invalid(e.to_string()))?;
        let service = self.live_service_mut(name)?;
        let name = service.spec.name.clone();
        if service.spec.replicas != decision.from || decision.from == decision.to {
            return Ok(service.view());
        }
        tracing::info!(service = %name, from = decision.from, to = decision.to, reason = %decision.reason, "autoscaled");
        service.spec.replicas = decision.to;
        if service.scaling_events.len() >= SCALING_EVENTS {
            service.scaling_events.pop_front();
        }
        service.scaling_events.push_back(ScalingEvent {
            at: SystemTime::now(),
            from: decision.from,
            to: decision.to,
            reason: decision.reason,
        });
        self.persistence.dirty.services.insert(name.clone());
        self.reconcile();
        self.placement_outcome(&name)
    }
}
