//! What a run produced: a time series sampled every loop interval, the scaling decisions,
//! and every request's latency, with the summaries the scenarios compare.

use std::time::Duration;

use tucano_core::autoscale::ScalingDecision;

/// The state of the run at the end of one sampling interval.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// End of the interval, in seconds from the start.
    pub at_s: f64,
    /// The profile's arrival rate at the end of the interval (requests per second).
    pub offered_rate: f64,
    /// Requests that arrived during the interval.
    pub arrivals: u64,
    /// Requests completed during the interval.
    pub completed: u64,
    /// Requests completed since the start.
    pub completed_total: u64,
    /// Requests that found no instance during the interval.
    pub failed: u64,
    /// Replicas the service should have (the autoscaler's count).
    pub desired: u32,
    /// Instances serving (published to the balancer).
    pub ready: u32,
    /// Instances placed and not stopped: starting or serving (what is paid for).
    pub provisioned: u32,
    /// Requests in flight at the end of the interval.
    pub in_flight: u64,
    /// 95th percentile latency of the requests completed during the interval, if any.
    pub p95_ms: Option<f64>,
}

/// Everything a run produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// One sample per loop interval.
    pub samples: Vec<Sample>,
    /// Every scaling decision, in order.
    pub decisions: Vec<ScalingDecision>,
    /// Every completed request's latency (arrival to completion), sorted.
    pub latencies_ns: Vec<u64>,
    /// Requests that found no instance.
    pub failed: u64,
    /// Instance-seconds provisioned during the run: from placement until stopped and done
    /// with the requests it held.
    pub replica_seconds: f64,
    /// When the first request arrived, in nanoseconds.
    pub first_arrival_ns: Option<u64>,
    /// When the last request completed, in nanoseconds.
    pub last_completion_ns: Option<u64>,
}

impl Outcome {
    /// Completed requests.
    pub fn completed(&self) -> usize {
        self.latencies_ns.len()
    }

    /// The `q` quantile of the latencies in milliseconds (nearest rank), 0 without requests.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        nearest_rank(&self.latencies_ns, q).map_or(0.0, |ns| ns as f64 / 1e6)
    }

    /// Mean latency in milliseconds, 0 without requests.
    pub fn mean_ms(&self) -> f64 {
        if self.latencies_ns.is_empty() {
            return 0.0;
        }
        let total: u128 = self.latencies_ns.iter().map(|&ns| u128::from(ns)).sum();
        total as f64 / self.latencies_ns.len() as f64 / 1e6
    }

    /// The sum of every completed request's latency, in seconds.
    pub fn total_latency_s(&self) -> f64 {
        self.latencies_ns.iter().map(|&ns| ns as f64).sum::<f64>() / 1e9
    }

    /// Seconds from the first arrival to the last completion: how long the requests took
    /// altogether.
    pub fn makespan_s(&self) -> f64 {
        match (self.first_arrival_ns, self.last_completion_ns) {
            (Some(first), Some(last)) => last.saturating_sub(first) as f64 / 1e9,
            _ => 0.0,
        }
    }

    /// When the direction of scaling reversed: a scale-up after a scale-down or the other
    /// way round.
    pub fn reversals(&self) -> Vec<Duration> {
        let mut reversals = Vec::new();
        let mut last_up: Option<bool> = None;
        for decision in &self.decisions {
            let up = decision.to > decision.from;
            if last_up.is_some_and(|last| last != up) {
                reversals.push(decision.at);
            }
            last_up = Some(up);
        }
        reversals
    }

    /// The most reversals within any interval of length `window` (closed at both ends).
    pub fn max_reversals_within(&self, window: Duration) -> usize {
        let reversals = self.reversals();
        let mut most = 0;
        for (i, start) in reversals.iter().enumerate() {
            let within = reversals[i..]
                .iter()
                .take_while(|at| at.saturating_sub(*start) <= window)
                .count();
            most = most.max(within);
        }
        most
    }
}

/// The `q` quantile of `sorted` by nearest rank: the smallest value with at least `q` of
/// the values at or below it.
pub fn nearest_rank(sorted: &[u64], q: f64) -> Option<u64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(at: u64, from: u32, to: u32) -> ScalingDecision {
        ScalingDecision {
            at: Duration::from_secs(at),
            from,
            to,
            reason: String::new(),
        }
    }

    #[test]
    fn reversals_count_changes_of_direction_within_a_window() {
        let outcome = Outcome {
            decisions: vec![
                decision(10, 1, 2),
                decision(11, 2, 4),
                decision(100, 4, 3),
                decision(150, 3, 5),
                decision(500, 5, 2),
            ],
            ..Outcome::default()
        };
        let at: Vec<u64> = outcome.reversals().iter().map(Duration::as_secs).collect();
        assert_eq!(at, [100, 150, 500]);
        assert_eq!(outcome.max_reversals_within(Duration::from_secs(60)), 2);
        assert_eq!(outcome.max_reversals_within(Duration::from_secs(30)), 1);
        assert_eq!(outcome.max_reversals_within(Duration::from_secs(400)), 3);
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let sorted: Vec<u64> = (1..=100).map(|ms| ms * 1_000_000).collect();
        assert_eq!(nearest_rank(&sorted, 0.95), Some(95_000_000));
        assert_eq!(nearest_rank(&sorted, 0.0), Some(1_000_000));
        assert_eq!(nearest_rank(&[], 0.5), None);
        let outcome = Outcome {
            latencies_ns: sorted,
            first_arrival_ns: Some(1_000_000_000),
            last_completion_ns: Some(3_500_000_000),
            ..Outcome::default()
        };
        assert_eq!(outcome.quantile_ms(0.95), 95.0);
        assert_eq!(outcome.mean_ms(), 50.5);
        assert!((outcome.total_latency_s() - 5.05).abs() < 1e-9);
        assert_eq!(outcome.makespan_s(), 2.5);
    }
}
