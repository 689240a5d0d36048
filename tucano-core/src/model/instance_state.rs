//! The instance state machine, as an explicit transition function.
//!
//! ```text
//!            Scheduled            Ready
//!  Pending ───────────► Deploying ──────► Running
//!    ▲  │                 │  │  │           │ │ │
//!    │  │StopRequested    │  │  │StopReq.   │ │ └ Exited ─► Failed
//!    │  ▼                 │  │  ▼           │ ▼
//!    │ Terminated ◄─Stopped/Exited── Terminating ◄─ StopRequested
//!    │                    │  │
//!    └─ StartFailed/Exited┘  └ StartFailed/Exited, attempts spent ─► Failed
//!       (attempts left)
//!  Deploying, Running, Terminating ── WorkerLost ──► Lost
//!  Terminating ── StopFailed ──► Terminating (attempts left) or Lost (spent)
//! ```
//!
//! Every other (state, event) pair is a [`TransitionError`]; nothing here panics.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where an instance is in its life, as the controller sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    /// Wanted, not yet on a worker (waiting for a worker or for its retry backoff).
    Pending,
    /// Sent to a worker, which is starting it.
    Deploying,
    /// Accepting connections; the balancer routes to it.
    Running,
    /// Being stopped (SIGTERM, then SIGKILL after the grace period).
    Terminating,
    /// Stopped on request. Final.
    Terminated,
    /// Exited on its own, or could not be started within the retry bound. Final.
    Failed,
    /// Its worker died or left, or it could not be confirmed stopped. Final.
    Lost,
}

impl InstanceState {
    /// Every state, in life order.
    pub const ALL: [InstanceState; 7] = [
        Self::Pending,
        Self::Deploying,
        Self::Running,
        Self::Terminating,
        Self::Terminated,
        Self::Failed,
        Self::Lost,
    ];

    /// Final states accept no event.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Terminated | Self::Failed | Self::Lost)
    }

    /// Pending, deploying and running instances count towards a service's replicas.
    pub fn counts_as_replica(self) -> bool {
        matches!(self, Self::Pending | Self::Deploying | Self::Running)
    }

    /// The snake_case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Deploying => "deploying",
            Self::Running => "running",
            Self::Terminating => "terminating",
            Self::Terminated => "terminated",
            Self::Failed => "failed",
            Self::Lost => "lost",
        }
    }
}

impl fmt::Display for InstanceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something that happened to an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InstanceEvent {
    /// The scheduler placed it on a worker and the start was sent.
    Scheduled,
    /// The worker reports it accepts connections.
    Ready,
    /// The worker could not start it.
    StartFailed,
    /// Its process or container exited.
    Exited,
    /// The controller wants it gone (scale down, delete).
    StopRequested,
    /// The worker confirmed it stopped.
    Stopped,
    /// The stop call failed (worker unreachable, engine error).
    StopFailed,
    /// Its worker was declared dead or deregistered.
    WorkerLost,
}

impl InstanceEvent {
    /// Every event.
    pub const ALL: [InstanceEvent; 8] = [
        Self::Scheduled,
        Self::Ready,
        Self::StartFailed,
        Self::Exited,
        Self::StopRequested,
        Self::Stopped,
        Self::StopFailed,
        Self::WorkerLost,
    ];
}

/// How many start and stop attempts an instance gets before it is given up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttemptLimits {
    /// Start attempts (≥ 1) before `Failed`.
    pub start: u32,
    /// Stop attempts (≥ 1) before `Lost`.
    pub stop: u32,
}

impl Default for AttemptLimits {
    fn default() -> Self {
        Self { start: 3, stop: 5 }
    }
}

/// An instance's state with its attempt counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    /// Current state.
    pub state: InstanceState,
    /// Start attempts made so far.
    pub start_attempts: u32,
    /// Stop attempts that failed so far.
    pub stop_failures: u32,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}

/// An event that the current state does not accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("instance in state {state} does not accept event {event:?}")]
pub struct TransitionError {
    /// The state the instance was in.
    pub state: InstanceState,
    /// The refused event.
    pub event: InstanceEvent,
}

impl Lifecycle {
    /// A new, pending instance.
    pub fn new() -> Self {
        Self {
            state: InstanceState::Pending,
            start_attempts: 0,
            stop_failures: 0,
        }
    }

    /// The lifecycle after `event`, or an error if the current state does not accept it.
    pub fn transition(
        self,
        event: InstanceEvent,
        limits: AttemptLimits,
    ) -> Result<Lifecycle, TransitionError> {
        use InstanceEvent as E;
        use InstanceState as S;
        let refuse = Err(TransitionError {
            state: self.state,
            event,
        });
        let to = |state| Ok(Lifecycle { state, ..self });
        match (self.state, event) {
            (S::Pending, E::Scheduled) => Ok(Lifecycle {
                state: S::Deploying,
                start_attempts: self.start_attempts.saturating_add(1),
                ..self
            }),
            (S::Pending, E::StopRequested) => to(S::Terminated),
            (S::Deploying, E::Ready) => to(S::Running),
            (S::Deploying, E::StartFailed | E::Exited) => {
                if self.start_attempts < limits.start.max(1) {
                    to(S::Pending)
                } else {
                    to(S::Failed)
                }
            }
            (S::Deploying | S::Running, E::StopRequested) => to(S::Terminating),
            (S::Running, E::Exited) => to(S::Failed),
            (S::Terminating, E::Stopped | E::Exited) => to(S::Terminated),
            (S::Terminating, E::StopFailed) => {
                let stop_failures = self.stop_failures.saturating_add(1);
                let state = if stop_failures < limits.stop.max(1) {
                    S::Terminating
                } else {
                    S::Lost
                };
                Ok(Lifecycle {
                    state,
                    stop_failures,
                    ..self
                })
            }
            (S::Deploying | S::Running | S::Terminating, E::WorkerLost) => to(S::Lost),
            _ => refuse,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use InstanceEvent as E;
    use InstanceState as S;

    const LIMITS: AttemptLimits = AttemptLimits { start: 3, stop: 2 };

    fn at(state: InstanceState) -> Lifecycle {
        Lifecycle {
            state,
            start_attempts: 1,
            stop_failures: 0,
        }
    }

    /// The documented table: (from, event) → to. Every pair not listed must be refused.
    const TABLE: &[(InstanceState, InstanceEvent, InstanceState)] = &[
        (S::Pending, E::Scheduled, S::Deploying),
        (S::Pending, E::StopRequested, S::Terminated),
        (S::Deploying, E::Ready, S::Running),
        (S::Deploying, E::StartFailed, S::Pending),
        (S::Deploying, E::Exited, S::Pending),
        (S::Deploying, E::StopRequested, S::Terminating),
        (S::Deploying, E::WorkerLost, S::Lost),
        (S::Running, E::Exited, S::Failed),
        (S::Running, E::StopRequested, S::Terminating),
        (S::Running, E::WorkerLost, S::Lost),
        (S::Terminating, E::Stopped, S::Terminated),
        (S::Terminating, E::Exited, S::Terminated),
        (S::Terminating, E::StopFailed, S::Terminating),
        (S::Terminating, E::WorkerLost, S::Lost),
    ];

    #[test]
    fn every_pair_transitions_as_documented_or_is_refused() {
        let mut checked = 0;
        for state in InstanceState::ALL {
            for event in InstanceEvent::ALL {
                let result = at(state).transition(event, LIMITS);
                match TABLE.iter().find(|(s, e, _)| *s == state && *e == event) {
                    Some((_, _, to)) => {
                        assert_eq!(result.map(|l| l.state), Ok(*to), "{state:?} + {event:?}")
                    }
                    None => assert_eq!(
                        result,
                        Err(TransitionError { state, event }),
                        "{state:?} + {event:?} should be refused"
                    ),
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 7 * 8);
    }

    #[test]
    fn final_states_refuse_everything() {
        for state in [S::Terminated, S::Failed, S::Lost] {
            assert!(state.is_final());
            for event in InstanceEvent::ALL {
                assert!(at(state).transition(event, LIMITS).is_err());
            }
        }
    }

    #[test]
    fn start_retries_stop_at_the_bound() {
        let mut life = Lifecycle::new();
        for attempt in 1..=LIMITS.start {
            life = life.transition(E::Scheduled, LIMITS).unwrap();
            assert_eq!(life.start_attempts, attempt);
            life = life.transition(E::StartFailed, LIMITS).unwrap();
            let expected = if attempt < LIMITS.start {
                S::Pending
            } else {
                S::Failed
            };
            assert_eq!(life.state, expected, "after attempt {attempt}");
        }
        assert!(life.transition(E::Scheduled, LIMITS).is_err());
    }

    #[test]
    fn stop_retries_stop_at_the_bound() {
        let mut life = at(S::Terminating);
        life = life.transition(E::StopFailed, LIMITS).unwrap();
        assert_eq!(life.state, S::Terminating);
        life = life.transition(E::StopFailed, LIMITS).unwrap();
        assert_eq!(life.state, S::Lost);
        assert_eq!(life.stop_failures, 2);
    }

    #[test]
    fn zero_limits_still_allow_one_attempt() {
        let none = AttemptLimits { start: 0, stop: 0 };
        let life = Lifecycle::new().transition(E::Scheduled, none).unwrap();
        assert_eq!(
            life.transition(E::StartFailed, none).unwrap().state,
            S::Failed
        );
    }

    #[test]
    fn states_serialize_snake_case() {
        assert_eq!(
            serde_json::to_string(&S::Terminating).unwrap(),
            "\"terminating\""
        );
        for s in InstanceState::ALL {
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
    }
}
