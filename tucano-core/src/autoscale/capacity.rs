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
//! adding more, for at most [`STARTING_WAIT`]: a replica that never serves (it cannot be
//! placed, it crashes, a rolling update holds it back) must not stop the service from growing.
//!
//! In-flight counts include requests queued on a replica, which a new replica cannot take: a
//! full service to which no request arrived since the previous round (its `request_rate` is
//! 0 and none waits) is left as it is, since another replica would have nothing to serve.

use std::time::Duration;

use super::{Recommendation, ScalingPolicy, ServiceSignals};

/// Longest a full service waits for its starting replicas before adding more anyway.
pub const STARTING_WAIT: Duration = Duration::from_secs(30);

/// The capacity policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// Requests one replica serves at once before it counts as full.
    pub max_in_flight: u32,
    /// A replica with no request for this long is surplus.
    pub idle_timeout: Duration,
    /// The service was full at the previous round.
    full_before: bool,
    /// Since when fewer replicas serve than are desired.
    starting_since: Option<Duration>,
}

impl Capacity {
    /// The policy with these settings.
    pub fn new(max_in_flight: u32, idle_timeout: Duration) -> Self {
        Self {
            max_in_flight,
            idle_timeout,
            full_before: false,
            starting_since: None,
        }
    }

    /// Whether replicas are starting and the service should wait for them: fewer serve than
    /// `current`, for less than [`STARTING_WAIT`].
    fn waiting_for_starts(&mut self, current: u32, serving: usize, at: Duration) -> bool {
        if current as usize <= serving {
            self.starting_since = None;
            return false;
        }
        let since = *self.starting_since.get_or_insert(at);
        at.saturating_sub(since) < STARTING_WAIT
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
        let Some(replicas) = signals.replicas.as_ref().filter(|r| !r.is_empty()) else {
            self.full_before = false;
            return None;
        };
        let starting = self.waiting_for_starts(current, replicas.len(), signals.at);
        if let Some(full) = self.full(replicas, signals.waiting) {
            let arriving =
                signals.request_rate.is_none_or(|rate| rate > 0.0) || signals.waiting > 0;
            if !arriving {
                self.full_before = false;
                return None;
            }
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
    fn a_replica_that_never_serves_holds_scale_ups_back_only_for_a_while() {
        let mut policy = Capacity::new(2, SECOND * 30);
        let full_at = |at: u64| signals(at, &[(2, Some(at)), (2, Some(at))]);
        // Three desired, two ever serve.
        for at in 0..30 {
            assert_eq!(policy.recommend(3, &full_at(at)), None, "at {at} s");
        }
        assert_eq!(policy.recommend(3, &full_at(30)), None);
        assert_eq!(
            policy.recommend(3, &full_at(31)).map(|r| r.replicas),
            Some(4)
        );
    }

    #[test]
    fn a_backlog_with_nothing_arriving_adds_no_replica() {
        let mut policy = Capacity::new(2, SECOND * 30);
        let mut backlog = signals(10, &[(9, Some(10)), (2, Some(10))]);
        backlog.request_rate = Some(0.0);
        assert_eq!(twice(&mut policy, 2, &backlog), None);
        // Requests arriving again, or waiting at the balancer: full as before.
        backlog.request_rate = Some(40.0);
        assert_eq!(twice(&mut policy, 2, &backlog), Some(3));
        backlog.request_rate = Some(0.0);
        backlog.waiting = 1;
        assert_eq!(twice(&mut policy, 2, &backlog), Some(3));
    }

    #[test]
    fn rounds_without_replica_loads_break_the_two_in_a_row() {
        let mut policy = Capacity::new(2, SECOND * 30);
        let full = signals(10, &[(2, Some(10)), (2, Some(10))]);
        assert_eq!(policy.recommend(2, &full), None);
        assert_eq!(policy.recommend(2, &ServiceSignals::default()), None);
        assert_eq!(policy.recommend(2, &full), None);
        assert_eq!(policy.recommend(2, &full).map(|r| r.replicas), Some(3));
    }

    #[test]
    fn without_replica_loads_it_has_no_opinion() {
        let mut policy = Capacity::new(1, SECOND);
        assert_eq!(policy.recommend(3, &ServiceSignals::default()), None);
        assert_eq!(policy.recommend(0, &signals(5, &[])), None);
    }
}
