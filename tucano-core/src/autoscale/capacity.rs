//! `capacity`: each replica serves at most `max_in_flight` requests. When every replica is at
//! capacity, add one; when a replica has had no request for `idle_timeout`, remove one (the
//! autoscaling load balancer of the course project).
//!
//! "Every replica at capacity" is read two ways, and either adds a replica: each replica has
//! `max_in_flight` requests, or the service holds more requests (in flight and waiting at the
//! balancer) than its replicas' capacity together. The second catches a balancer that leaves
//! one replica with room while others queue far beyond theirs (round robin over replicas of
//! different speeds): the requests beyond capacity wait all the same.

use std::time::Duration;

use super::{Recommendation, ScalingPolicy, ServiceSignals};

/// The capacity policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// Requests one replica serves at once before it counts as full.
    pub max_in_flight: u32,
    /// A replica with no request for this long is surplus.
    pub idle_timeout: Duration,
}

impl ScalingPolicy for Capacity {
    fn recommend(&mut self, current: u32, signals: &ServiceSignals) -> Option<Recommendation> {
        let replicas = signals.replicas.as_ref()?;
        if replicas.is_empty() {
            return None;
        }
        let full = replicas
            .iter()
            .filter(|r| r.in_flight >= self.max_in_flight)
            .count();
        if full == replicas.len() {
            return Some(Recommendation::new(
                current.saturating_add(1),
                format!(
                    "all {full} running replicas serve at least max_in_flight {} requests",
                    self.max_in_flight
                ),
            ));
        }
        let held: u64 = replicas.iter().map(|r| u64::from(r.in_flight)).sum::<u64>()
            + u64::from(signals.waiting);
        let room = replicas.len() as u64 * u64::from(self.max_in_flight);
        if held > room {
            return Some(Recommendation::new(
                current.saturating_add(1),
                format!(
                    "{held} requests held, more than {} running replicas × max_in_flight {} = {room}",
                    replicas.len(),
                    self.max_in_flight
                ),
            ));
        }
        // Idle: nothing in flight, and no request since the timeout (counted from its start
        // when it never had one).
        let idle = replicas
            .iter()
            .filter(|r| {
                let last = r
                    .last_request
                    .unwrap_or(r.running_since)
                    .max(r.running_since);
                r.in_flight == 0 && signals.at.saturating_sub(last) >= self.idle_timeout
            })
            .count();
        (idle > 0).then(|| {
            Recommendation::new(
                current.saturating_sub(1),
                format!(
                    "{idle} replica(s) had no request for idle_timeout {}",
                    humantime::format_duration(self.idle_timeout)
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoscale::ReplicaLoad;

    const SECOND: Duration = Duration::from_secs(1);

    fn signals(at: u64, replicas: &[(u32, Option<u64>)]) -> ServiceSignals {
        ServiceSignals {
            at: SECOND * at as u32,
            replicas: Some(
                replicas
                    .iter()
                    .map(|(in_flight, last)| ReplicaLoad {
                        in_flight: *in_flight,
                        last_request: last.map(|s| SECOND * s as u32),
                        running_since: Duration::ZERO,
                    })
                    .collect(),
            ),
            ..ServiceSignals::default()
        }
    }

    #[test]
    fn scales_up_only_when_every_replica_is_full_and_down_when_one_idles() {
        let mut policy = Capacity {
            max_in_flight: 2,
            idle_timeout: SECOND * 30,
        };
        let up = policy.recommend(2, &signals(10, &[(2, Some(10)), (3, Some(10))]));
        assert_eq!(up.map(|r| r.replicas), Some(3));
        // One replica still has room and the service is within its capacity: no change.
        assert_eq!(
            policy.recommend(2, &signals(10, &[(2, Some(10)), (1, Some(9))])),
            None
        );
        assert_eq!(
            policy.recommend(2, &signals(10, &[(2, Some(10)), (0, Some(9))])),
            None
        );
        // One replica has room, but the other queues beyond both replicas' capacity.
        let queued = policy.recommend(2, &signals(10, &[(5, Some(10)), (0, Some(9))]));
        assert_eq!(queued.map(|r| r.replicas), Some(3));
        // Requests waiting at the balancer count too.
        let mut waiting = signals(10, &[(2, Some(10)), (1, Some(9))]);
        waiting.waiting = 2;
        assert_eq!(policy.recommend(2, &waiting).map(|r| r.replicas), Some(3));
        // One idle past the timeout: one fewer.
        let down = policy.recommend(2, &signals(50, &[(1, Some(50)), (0, Some(15))]));
        assert_eq!(down.map(|r| r.replicas), Some(1));
        // Idle, but not for long enough; or never used, but only just started.
        assert_eq!(
            policy.recommend(2, &signals(40, &[(1, Some(40)), (0, Some(15))])),
            None
        );
        assert_eq!(
            policy.recommend(2, &signals(20, &[(1, Some(20)), (0, None)])),
            None
        );
    }

    #[test]
    fn without_replica_loads_it_has_no_opinion() {
        let mut policy = Capacity {
            max_in_flight: 1,
            idle_timeout: SECOND,
        };
        assert_eq!(policy.recommend(3, &ServiceSignals::default()), None);
        assert_eq!(policy.recommend(0, &signals(5, &[])), None);
    }
}
