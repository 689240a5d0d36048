//! `to_zero`: a service without traffic for `idle_timeout` goes to zero replicas; a request
//! waiting in the balancer's activator brings the first one back. Combined with any policy.

use std::time::Duration;

use super::ServiceSignals;

/// Scale to zero and back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToZero {
    /// No traffic for this long: zero replicas.
    pub idle_timeout: Duration,
    /// When traffic was last seen (or watching began).
    last_traffic: Option<Duration>,
}

impl ToZero {
    /// Going to zero after `idle_timeout` without traffic.
    pub fn new(idle_timeout: Duration) -> Self {
        Self {
            idle_timeout,
            last_traffic: None,
        }
    }

    /// Why a service at `current` replicas needs its first one back, if it does.
    pub fn wake(&mut self, current: u32, signals: &ServiceSignals) -> Option<String> {
        if signals.waiting > 0 {
            self.last_traffic = Some(signals.at);
        }
        (current == 0 && signals.waiting > 0)
            .then(|| format!("{} request(s) wait for a replica", signals.waiting))
    }

    /// Why the service should go to zero, if it should: no request in flight, none arriving,
    /// and none for the idle timeout since the last one (or since its newest replica started).
    /// Unknown traffic is never idle.
    pub fn idle(&mut self, signals: &ServiceSignals) -> Option<String> {
        let replicas = signals.replicas.as_ref()?;
        let busy = signals.waiting > 0
            || replicas.iter().any(|r| r.in_flight > 0)
            || signals.request_rate.is_some_and(|rate| rate > 0.0);
        let seen = if busy {
            Some(signals.at)
        } else {
            replicas.iter().filter_map(|r| r.last_request).max()
        };
        let newest_start = replicas.iter().map(|r| r.running_since).max();
        let last = [self.last_traffic, seen, newest_start]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(signals.at);
        self.last_traffic = Some(last);
        let quiet = signals.at.saturating_sub(last);
        (!busy && quiet >= self.idle_timeout).then(|| {
            format!(
                "no traffic for {} (idle_timeout {})",
                humantime::format_duration(quiet),
                humantime::format_duration(self.idle_timeout)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoscale::{Autoscaler, Recommendation, ReplicaLoad, ScalingPolicy};

    struct Keep;
    impl ScalingPolicy for Keep {
        fn recommend(&mut self, _: u32, _: &ServiceSignals) -> Option<Recommendation> {
            None
        }
    }

    fn quiet(at: u64, last_request: Option<u64>, waiting: u32) -> ServiceSignals {
        started(at, last_request, waiting, 0)
    }

    /// Signals of one replica running since `since`, with nothing in flight.
    fn started(at: u64, last_request: Option<u64>, waiting: u32, since: u64) -> ServiceSignals {
        ServiceSignals {
            at: Duration::from_secs(at),
            replicas: Some(vec![ReplicaLoad {
                in_flight: 0,
                last_request: last_request.map(Duration::from_secs),
                running_since: Duration::from_secs(since),
            }]),
            waiting,
            request_rate: Some(0.0),
            ..ServiceSignals::default()
        }
    }

    #[test]
    fn an_idle_service_goes_to_zero_and_a_waiting_request_brings_one_back() {
        let mut a = Autoscaler::new(Box::new(Keep), 2, 5, Duration::from_secs(10))
            .with_to_zero(Duration::from_secs(60));
        let at = |s| Duration::from_secs(s);
        // The last request at 10 s: not yet idle at 60 s, idle at 70 s.
        assert_eq!(a.decide(at(60), 2, Some(&quiet(60, Some(10), 0))), None);
        let down = a.decide(at(70), 2, Some(&quiet(70, Some(10), 0))).unwrap();
        assert_eq!(down.to, 0);
        assert!(down.reason.contains("no traffic"), "{}", down.reason);
        // At zero, nothing happens until a request waits; then min (2) comes back.
        let empty = ServiceSignals {
            replicas: Some(Vec::new()),
            ..quiet(80, None, 0)
        };
        assert_eq!(a.decide(at(80), 0, Some(&empty)), None);
        let waiting = ServiceSignals {
            replicas: Some(Vec::new()),
            ..quiet(90, None, 3)
        };
        let up = a.decide(at(90), 0, Some(&waiting)).unwrap();
        assert_eq!(up.to, 2);
        assert!(up.reason.contains("3 request(s) wait"), "{}", up.reason);
    }

    #[test]
    fn unknown_traffic_and_fresh_services_are_never_idle() {
        let mut z = ToZero::new(Duration::from_secs(30));
        let unknown = ServiceSignals {
            at: Duration::from_secs(100),
            ..ServiceSignals::default()
        };
        assert_eq!(z.idle(&unknown), None);
        // A replica started at 100 s that never had a request: idle from 130 s.
        assert_eq!(z.idle(&started(100, None, 0, 100)), None);
        assert_eq!(z.idle(&started(120, None, 0, 100)), None);
        assert!(z.idle(&started(130, None, 0, 100)).is_some());
        // Traffic seen once is remembered even when a later sample lacks it.
        let mut z = ToZero::new(Duration::from_secs(30));
        assert_eq!(z.idle(&started(200, Some(195), 0, 0)), None);
        assert_eq!(z.idle(&started(220, None, 0, 0)), None);
        assert!(z.idle(&started(225, None, 0, 0)).is_some());
    }
}
