//! What an autoscaling policy looks at: one service's load, sampled at one moment.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One running replica's load, as the balancer sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReplicaLoad {
    /// Requests it is serving now.
    pub in_flight: u32,
    /// When it last received a request (the policy's clock), if it ever did.
    pub last_request: Option<Duration>,
    /// When it started running (the policy's clock).
    pub running_since: Duration,
}

/// One service's signals at time `at`. Every signal may be missing: a policy that needs a
/// missing one has no opinion, and missing signals never cause a scale-down.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceSignals {
    /// When they were sampled, on the policy's clock (real or simulated time since an origin).
    pub at: Duration,
    /// Each running replica's load (from the balancer), if known.
    pub replicas: Option<Vec<ReplicaLoad>>,
    /// Requests waiting for a replica (the activator's queue while the service has none).
    pub waiting: u32,
    /// Requests per second arriving at the service (sent to a replica, answered or not) since
    /// the previous sample.
    pub request_rate: Option<f64>,
    /// 95th percentile response time.
    pub latency_p95: Option<Duration>,
    /// Mean CPU use of the replicas, in cores per replica's request (1.0 = all it asked for).
    pub cpu: Option<f64>,
    /// Mean memory use of the replicas, as a share of what each asked for.
    pub memory: Option<f64>,
    /// Mean load the replicas report themselves (`x-tucano-load`, 0 to 1).
    pub load: Option<f64>,
    /// CPU pressure: share of time some task waited for a CPU (PSI `some avg10`, 0 to 1).
    pub cpu_pressure: Option<f64>,
}

/// A signal a `threshold` or `target` policy follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Mean CPU use per replica ([`ServiceSignals::cpu`]).
    Cpu,
    /// Mean memory use per replica ([`ServiceSignals::memory`]).
    Memory,
    /// Mean self-reported load ([`ServiceSignals::load`]).
    Load,
    /// CPU pressure ([`ServiceSignals::cpu_pressure`]).
    CpuPressure,
    /// Requests in flight per running replica.
    InFlight,
    /// Requests per second per running replica.
    RequestRate,
    /// 95th percentile latency, in milliseconds.
    LatencyP95Ms,
}

impl Metric {
    /// The metric's value in `signals`, if they have it. Per-replica metrics need at least
    /// one running replica.
    pub fn value(self, signals: &ServiceSignals) -> Option<f64> {
        let running = signals.replicas.as_ref().map(Vec::len).filter(|n| *n > 0);
        match self {
            Self::Cpu => signals.cpu,
            Self::Memory => signals.memory,
            Self::Load => signals.load,
            Self::CpuPressure => signals.cpu_pressure,
            Self::InFlight => {
                let replicas = signals.replicas.as_ref()?;
                let total: u64 = replicas.iter().map(|r| u64::from(r.in_flight)).sum();
                Some(total as f64 / running? as f64)
            }
            Self::RequestRate => Some(signals.request_rate? / running? as f64),
            Self::LatencyP95Ms => Some(signals.latency_p95?.as_secs_f64() * 1000.0),
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cpu => "cpu",
            Self::Memory => "memory",
            Self::Load => "load",
            Self::CpuPressure => "cpu_pressure",
            Self::InFlight => "in_flight",
            Self::RequestRate => "request_rate",
            Self::LatencyP95Ms => "latency_p95_ms",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_replica_metrics_divide_by_running_replicas_and_need_them() {
        let replica = |in_flight| ReplicaLoad {
            in_flight,
            last_request: None,
            running_since: Duration::ZERO,
        };
        let signals = ServiceSignals {
            replicas: Some(vec![replica(2), replica(4)]),
            request_rate: Some(30.0),
            latency_p95: Some(Duration::from_millis(120)),
            cpu: Some(0.5),
            ..ServiceSignals::default()
        };
        assert_eq!(Metric::InFlight.value(&signals), Some(3.0));
        assert_eq!(Metric::RequestRate.value(&signals), Some(15.0));
        assert_eq!(Metric::LatencyP95Ms.value(&signals), Some(120.0));
        assert_eq!(Metric::Cpu.value(&signals), Some(0.5));
        assert_eq!(Metric::Memory.value(&signals), None);
        let none_running = ServiceSignals {
            replicas: Some(Vec::new()),
            request_rate: Some(5.0),
            ..ServiceSignals::default()
        };
        assert_eq!(Metric::InFlight.value(&none_running), None);
        assert_eq!(Metric::RequestRate.value(&none_running), None);
        assert_eq!(Metric::InFlight.value(&ServiceSignals::default()), None);
    }
}
