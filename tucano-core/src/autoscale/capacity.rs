//! `capacity`: each replica serves at most `max_in_flight` requests. When every replica is at
//! capacity, add one; when a replica has had no request for `idle_timeout`, remove one (the
//! autoscaling load balancer of the course project).
//!
//! "Every replica at capacity" is read two ways, and either counts as full: each replica has
//! `max_in_flight` requests, or the service holds more requests (in flight and waiting at the
//! balancer) than its replicas' capacity together. The second catches a balancer that leaves
//! one replica with room while others queue far beyond theirs (round robin over replicas of
//! different speeds): the requests beyond capacity wait all the same.
//!
//! A replica is added when the service is full at two rounds in a row: in-flight counts are
//! sampled at one instant, and a moment when a few requests happen to coincide is not load
//! (under a steady 25 requests/s of 50 ms, one instant's count in the simulator grew the
//! service to 2–3 replicas where 1 serves at a third of its capacity). While replicas are
//! starting (fewer serve than the desired count), a full service waits for them instead of
//! adding more.

use std::time::Duration;

use super::{Recommendation, ScalingPolicy, ServiceSignals};

/// The capacity policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// Requests one replica serves at once before it counts as full.
    pub max_in_flight: u32,
    /// A replica with no request for this long is surplus.
    pub idle_timeout: Duration,
    /// The service was full at the previous round.
    full_before: bool,
}

impl Capacity {
    /// The policy with these settings.
    pub fn new(max_in_flight: u32, idle_timeout: Duration) -> Self {
        Self {
            max_in_flight,
            idle_timeout,
            full_before: false,
        }
    }

    /// Why the service is full, if it is.
    fn full(&self, replicas: &[super::ReplicaLoad], waiting: u32) -> Option<String> {
        let full = replicas
            .iter()
            .filter(|r| r.in_flight >= self.max_in_flight)
            .count();
        if full == replicas.len() {
            return Some(format!(
                "all {full} running replicas serve at least max_in_flight {} requests",
                self.max_in_flight
            ));
        }
        let held: u64 =
            replicas.iter().map(|r| u64::from(r.in_flight)).sum::<u64>() + u64::from(waiting);
        let room = replicas.len() as u64 * u64::from(self.max_in_flight);
        (held > room).then(|| {
            format!(
                "{held} requests held, more than {} running replicas × max_in_flight {} = {room}",
                replicas.len(),
                self.max_in_flight
            )
        })
    }
}

impl ScalingPolicy for Capacity {
    fn recommend(&mut self, current: u32, signals: &ServiceSignals) -> Option<Recommendation> {
        let replicas = signals.replicas.as_ref()?;
        if replicas.is_empty() {
            return None;
        }
        if let Some(full) = self.full(replicas, signals.waiting) {
            let starting = current as usize > replicas.len();
            let confirmed = std::mem::replace(&mut self.full_before, !starting);
            return (confirmed && !starting).then(|| {
                self.full_before = false;
                Recommendation::new(
                    current.saturating_add(1),
                    format!("{full}, at two rounds in a row"),
                )
            });
        }
        self.full_before = false;
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

    /// What `policy` recommends for `current` replicas after seeing `signals` twice (two
    /// rounds of the same load).
    fn twice(policy: &mut Capacity, current: u32, signals: &ServiceSignals) -> Option<u32> {
        policy.recommend(current, signals);
        policy.recommend(current, signals).map(|r| r.replicas)
    }

    #[test]
    fn scales_up_when_every_replica_or_the_whole_service_is_full_and_down_when_one_idles() {
        let mut policy = Capacity::new(2, SECOND * 30);
        let full = signals(10, &[(2, Some(10)), (3, Some(10))]);
        assert_eq!(twice(&mut policy, 2, &full), Some(3));
        // One replica still has room and the service is within its capacity: no change.
        let room = signals(10, &[(2, Some(10)), (1, Some(9))]);
        assert_eq!(twice(&mut policy, 2, &room), None);
        let idle_one = signals(10, &[(2, Some(10)), (0, Some(9))]);
        assert_eq!(twice(&mut policy, 2, &idle_one), None);
        // One replica has room, but the other queues beyond both replicas' capacity.
        let queued = signals(10, &[(5, Some(10)), (0, Some(9))]);
        assert_eq!(twice(&mut policy, 2, &queued), Some(3));
        // Requests waiting at the balancer count too.
        let mut waiting = signals(10, &[(2, Some(10)), (1, Some(9))]);
        waiting.waiting = 2;
        assert_eq!(twice(&mut policy, 2, &waiting), Some(3));
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
    fn a_service_full_at_one_round_only_is_not_scaled() {
        let mut policy = Capacity::new(2, SECOND * 30);
        let full = signals(10, &[(2, Some(10)), (2, Some(10))]);
        let calm = signals(11, &[(1, Some(11)), (0, Some(11))]);
        for _ in 0..3 {
            assert_eq!(policy.recommend(2, &full), None);
            assert_eq!(policy.recommend(2, &calm), None);
        }
        assert_eq!(policy.recommend(2, &full), None);
        let second = policy.recommend(2, &full).unwrap();
        assert_eq!(second.replicas, 3);
        assert!(
            second.reason.contains("two rounds in a row"),
            "{}",
            second.reason
        );
        // The round after a scale-up starts counting again.
        assert_eq!(policy.recommend(3, &signals(12, &[(2, None); 3])), None);
    }

    #[test]
    fn a_full_service_waits_for_replicas_already_starting() {
        let mut policy = Capacity::new(2, SECOND * 30);
        // Three desired, two serve, both full: the third is on its way.
        let full = signals(10, &[(2, Some(10)), (3, Some(10))]);
        assert_eq!(twice(&mut policy, 3, &full), None);
        let queued = signals(10, &[(9, Some(10)), (0, Some(10))]);
        assert_eq!(twice(&mut policy, 3, &queued), None);
        // Once it serves (and is full too), one more after two rounds.
        let all = signals(11, &[(2, Some(11)), (3, Some(11)), (2, Some(11))]);
        assert_eq!(twice(&mut policy, 3, &all), Some(4));
    }

    #[test]
    fn without_replica_loads_it_has_no_opinion() {
        let mut policy = Capacity::new(1, SECOND);
        assert_eq!(policy.recommend(3, &ServiceSignals::default()), None);
        assert_eq!(policy.recommend(0, &signals(5, &[])), None);
    }
}
