//! The balancer as an autoscaling signal source: each service's replicas with their requests
//! in flight and last request, the load they report (`x-tucano-load`), and the rate of
//! requests arriving and the p95 latency of those answered since the previous sample.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tucano_core::autoscale::{ReplicaLoad, ServiceSignals, SignalSource};
use tucano_core::{InstanceId, ServiceName};

use crate::clock;
use crate::latency_histogram::{BUCKETS, quantile};
use crate::routing_table::RoutingTable;

/// Samples a [`RoutingTable`] periodically; remembers each service's latency counts and each
/// endpoint's count of requests sent so the next sample measures the interval between the two.
///
/// Counts live with the endpoints: requests sent to or answered by an instance that left the
/// table between two samples are missed by the second one.
#[derive(Debug, Default)]
pub struct SignalSampler {
    previous: HashMap<ServiceName, (u64, [u64; BUCKETS])>,
    started: HashMap<InstanceId, u64>,
}

impl SignalSampler {
    /// A sampler with no history: the first sample of a service has no rate or latency.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every service's signals at `now_ns` (the [`clock`](crate::clock)'s time, which is also
    /// the signals' `at`).
    pub fn sample(
        &mut self,
        table: &RoutingTable,
        now_ns: u64,
    ) -> Vec<(ServiceName, ServiceSignals)> {
        let mut seen = HashMap::with_capacity(self.previous.len());
        let mut started = HashMap::with_capacity(self.started.len());
        let mut signals = Vec::new();
        for route in table.routes() {
            let mut totals = [0u64; BUCKETS];
            let mut arrived = 0u64;
            for backend in route.endpoints().iter() {
                let count = backend.state().started();
                let before = self.started.get(backend.instance()).copied().unwrap_or(0);
                arrived += count.saturating_sub(before);
                started.insert(*backend.instance(), count);
            }
            let reported: Vec<f64> = route
                .endpoints()
                .iter()
                .filter_map(|backend| backend.state().reported_load())
                .map(f64::from)
                .collect();
            let load = (!reported.is_empty())
                .then(|| reported.iter().sum::<f64>() / reported.len() as f64);
            let replicas = route
                .endpoints()
                .iter()
                .map(|backend| {
                    let state = backend.state();
                    state.latencies().add_to(&mut totals);
                    let first_seen = state.first_seen_ns();
                    let last = state.last_observed_ns();
                    ReplicaLoad {
                        in_flight: u32::try_from(state.in_flight()).unwrap_or(u32::MAX),
                        last_request: (last > first_seen).then(|| Duration::from_nanos(last)),
                        running_since: Duration::from_nanos(first_seen),
                    }
                })
                .collect();
            let (request_rate, latency_p95) = match self.previous.get(route.service()) {
                Some((at, before)) if now_ns > *at => {
                    let mut interval = [0u64; BUCKETS];
                    for ((slot, now), before) in interval.iter_mut().zip(&totals).zip(before) {
                        *slot = now.saturating_sub(*before);
                    }
                    let seconds = Duration::from_nanos(now_ns - at).as_secs_f64();
                    (
                        Some(arrived as f64 / seconds),
                        quantile(&interval, 0.95).map(Duration::from_nanos),
                    )
                }
                _ => (None, None),
            };
            seen.insert(route.service().clone(), (now_ns, totals));
            signals.push((
                route.service().clone(),
                ServiceSignals {
                    at: Duration::from_nanos(now_ns),
                    replicas: Some(replicas),
                    waiting: route.waiting(),
                    request_rate,
                    latency_p95,
                    load,
                    ..ServiceSignals::default()
                },
            ));
        }
        self.previous = seen;
        self.started = started;
        signals
    }
}

/// A routing table with its sampler, as the autoscaling loop's signal source.
pub struct BalancerSignals {
    table: Arc<RoutingTable>,
    sampler: SignalSampler,
}

impl BalancerSignals {
    /// Signals of the services in `table`.
    pub fn new(table: Arc<RoutingTable>) -> Self {
        Self {
            table,
            sampler: SignalSampler::new(),
        }
    }
}

impl SignalSource for BalancerSignals {
    fn now(&self) -> Duration {
        Duration::from_nanos(clock::now_ns())
    }

    fn sample(&mut self) -> Vec<(ServiceName, ServiceSignals)> {
        self.sampler.sample(&self.table, clock::now_ns())
    }

    fn wake_up(&self) -> Option<Arc<Notify>> {
        Some(self.table.held_requests())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tucano_core::transport::{Endpoint, EndpointSink, RouteSpec};
    use tucano_core::{InstanceId, WorkerId};

    const MS: u64 = 1_000_000;

    fn endpoint(port: u16) -> Endpoint {
        Endpoint {
            instance: InstanceId::new(),
            worker: "w".parse::<WorkerId>().unwrap(),
            proxy: ([127, 0, 0, 1], 9).into(),
            address: ([127, 0, 0, 1], port).into(),
            weight: 1,
        }
    }

    #[test]
    fn rate_and_p95_cover_the_interval_between_samples() {
        let table = RoutingTable::new();
        let web: ServiceName = "web".parse().unwrap();
        table.publish(&web, &RouteSpec::default(), vec![endpoint(1), endpoint(2)]);
        let mut sampler = SignalSampler::new();
        let start = clock::now_ns();
        let first = sampler.sample(&table, start);
        let (name, signals) = &first[0];
        assert_eq!(name, &web);
        assert_eq!((signals.request_rate, signals.latency_p95), (None, None));
        let replicas = signals.replicas.as_ref().unwrap();
        assert_eq!(replicas.len(), 2);
        assert!(
            replicas
                .iter()
                .all(|r| r.in_flight == 0 && r.last_request.is_none())
        );

        let route = table.route("web").unwrap();
        let busy = route.endpoints().get(0).unwrap().state().clone();
        // 20 requests sent and answered, and one more sent, still in flight.
        for _ in 0..19 {
            drop(busy.track());
            busy.observe(5 * MS, false, start + 10 * MS);
        }
        drop(busy.track());
        busy.observe(100 * MS, false, start + 20 * MS);
        let _in_flight = busy.track();
        busy.report_load(0.5);
        let second = sampler.sample(&table, start + 1_000 * MS);
        let signals = &second[0].1;
        assert_eq!(signals.at, Duration::from_nanos(start + 1_000 * MS));
        // The rate counts requests sent (21), answered or not.
        assert!((signals.request_rate.unwrap() - 21.0).abs() < 1e-9);
        let p95 = signals.latency_p95.unwrap();
        assert!(
            p95 >= Duration::from_millis(5) && p95 <= Duration::from_micros(6_300),
            "{p95:?}"
        );
        assert_eq!(
            signals.load,
            Some(0.5),
            "the mean of the replicas that report one"
        );
        let replicas = signals.replicas.as_ref().unwrap();
        assert_eq!(replicas.iter().map(|r| r.in_flight).sum::<u32>(), 1);
        assert_eq!(
            replicas.iter().filter_map(|r| r.last_request).max(),
            Some(Duration::from_nanos(start + 20 * MS))
        );
        // Nothing since: no requests, no latency.
        let third = sampler.sample(&table, start + 2_000 * MS);
        assert_eq!(third[0].1.request_rate, Some(0.0));
        assert_eq!(third[0].1.latency_p95, None);
    }
}
