//! The discrete-event engine: a simulated clock, a queue of timed events, and Tucano's own
//! code for every decision.
//!
//! - Balancing: a real [`RoutingTable`] with the service's route; each arrival is placed by
//!   `select` (the policy's `pick`, counted in flight by the returned [`Pick`]), and each
//!   completion is recorded with `observe` and the instance's reported load, as the proxy
//!   does with a response. Endpoints are published with
//!   [`publish_at`](RoutingTable::publish_at) on the simulated clock.
//! - Autoscaling: every interval the real [`SignalSampler`] samples the table and the real
//!   [`Autoscaler`] built from the service's [`AutoscaleSpec`](tucano_core::AutoscaleSpec)
//!   decides the desired replicas. The sampler's signals are completed with `cpu`: the mean
//!   share of the serving instances' request slots in use since the previous round (what the
//!   workers' usage reports give the controller; memory is not modelled).
//! - Placement: new instances go where the real scheduler [`Pipeline`] puts them; surplus
//!   instances stop as the controller stops them (starting before serving, newest first).
//!
//! What is modelled rather than run: an instance serves `concurrency` requests at once and
//! queues the rest (first come, first served), each taking a service time drawn from the
//! config divided by its worker's speed; it serves `startup` after it is placed; a stopped
//! instance leaves the balancer at once and finishes the requests it holds, and costs
//! replica-seconds until it has. Networks and
//! the controller's own delays are not modelled (a decision takes effect at once). Scale to
//! zero is not simulated: the activator that holds requests lives in the proxy's async path.
//!
//! Same config, same outcome: every draw comes from seeded generators (the workload's from
//! [`SplitMix64`] streams, the policies' from `tucano_lb::rng::seed` on this thread), events
//! at the same time run in the order they were scheduled, and instance ids are fixed.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use tucano_core::autoscale::Autoscaler;
use tucano_core::scheduler::{
    ClusterView, Pipeline, PlacementRequest, Scheduler, Strategy, WorkerCandidate,
};
use tucano_core::transport::{Endpoint, RouteSpec};
use tucano_core::{BalancingSpec, InstanceId, Resources, RuntimeKind, ServiceName, WorkerId};
use tucano_lb::{Pick, PickContext, RoutingTable, SignalSampler};

use crate::config::{Scaling, SimConfig};
use crate::load_profile::Arrivals;
use crate::outcome::{Outcome, Sample, nearest_rank};
use crate::random::SplitMix64;
use crate::utilisation::Utilisation;

/// Why a run could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// The balancing policy is not one tucano-lb knows.
    #[error("unknown balancing policy {0:?}")]
    UnknownPolicy(String),
    /// The config cannot be simulated.
    #[error("cannot simulate: {0}")]
    Unsupported(String),
}

/// Runs `config` to its end and returns what happened.
pub fn simulate(config: &SimConfig) -> Result<Outcome, SimError> {
    Simulation::new(config)?.run()
}

/// The service every run simulates.
const SERVICE: &str = "sim";
/// Memory each worker offers and each instance asks for; only CPUs limit placement.
const MEMORY_MB: u64 = 1 << 20;

/// Random streams of a run.
const ARRIVAL_STREAM: u64 = 1;
const SERVICE_STREAM: u64 = 2;

#[derive(Debug)]
enum EventKind {
    Arrival,
    Complete { instance: usize, request: usize },
    Ready { instance: usize },
    Tick,
}

#[derive(Debug)]
struct Event {
    at: u64,
    seq: u64,
    kind: EventKind,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Event {}

impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Event {
    /// By time, then the order of scheduling: a total order, so runs repeat exactly.
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Where an instance is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lifecycle {
    Starting,
    Serving,
    Stopped,
}

#[derive(Debug)]
struct Instance {
    endpoint: Endpoint,
    worker: usize,
    phase: Lifecycle,
    utilisation: Utilisation,
    queue: VecDeque<usize>,
    placed_ns: u64,
    /// When, stopped, it had finished its last request: the end of what it costs.
    released_ns: Option<u64>,
}

impl Instance {
    /// Nothing in service or queued.
    fn is_empty(&self) -> bool {
        self.utilisation.busy() == 0 && self.queue.is_empty()
    }
}

#[derive(Debug)]
struct Request {
    arrived_ns: u64,
    pick: Pick,
}

/// Counts of the current sampling interval.
#[derive(Debug, Default)]
struct Interval {
    arrivals: u64,
    completed: u64,
    failed: u64,
    latencies_ns: Vec<u64>,
}

struct Simulation<'a> {
    config: &'a SimConfig,
    now: u64,
    seq: u64,
    events: BinaryHeap<Reverse<Event>>,
    table: RoutingTable,
    service: ServiceName,
    route: RouteSpec,
    sampler: SignalSampler,
    autoscaler: Option<Autoscaler>,
    desired: u32,
    scheduler: Pipeline,
    workers: Vec<WorkerId>,
    instances: Vec<Instance>,
    by_id: HashMap<InstanceId, usize>,
    requests: Vec<Option<Request>>,
    free_requests: Vec<usize>,
    arrivals: Arrivals,
    service_rng: SplitMix64,
    in_flight: u64,
    completed_total: u64,
    interval: Interval,
    outcome: Outcome,
}

impl<'a> Simulation<'a> {
    fn new(config: &'a SimConfig) -> Result<Self, SimError> {
        let balancing = BalancingSpec::named(&config.balancing);
        let table = RoutingTable::new();
        table
            .registry()
            .create(&balancing)
            .map_err(|_| SimError::UnknownPolicy(config.balancing.clone()))?;
        let autoscaler = match &config.scaling {
            Scaling::Fixed(_) => None,
            Scaling::Autoscale(spec) if spec.to_zero.is_some() => {
                return Err(SimError::Unsupported(
                    "to_zero: the activator that holds requests at zero replicas is not simulated"
                        .into(),
                ));
            }
            Scaling::Autoscale(spec) => Some(spec.autoscaler(config.max_signal_age)),
        };
        if let Some(phase) = config
            .load
            .phases()
            .iter()
            .find(|p| !p.rate.is_finite() || p.rate < 0.0)
        {
            return Err(SimError::Unsupported(format!(
                "an arrival rate of {} per second",
                phase.rate
            )));
        }
        if config.interval.is_zero() {
            return Err(SimError::Unsupported("a zero loop interval".into()));
        }
        let service = ServiceName::new(SERVICE)
            .map_err(|e| SimError::Unsupported(format!("service name: {e}")))?;
        let workers = (0..config.cluster.workers.len())
            .map(|i| WorkerId::new(format!("w{i}")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SimError::Unsupported(format!("worker id: {e}")))?;
        Ok(Self {
            config,
            now: 0,
            seq: 0,
            events: BinaryHeap::new(),
            table,
            service,
            route: RouteSpec {
                balancing,
                ..RouteSpec::default()
            },
            sampler: SignalSampler::new(),
            autoscaler,
            desired: config.scaling.initial(),
            scheduler: Pipeline::new(Strategy::LeastLoaded),
            workers,
            instances: Vec::new(),
            by_id: HashMap::new(),
            requests: Vec::new(),
            free_requests: Vec::new(),
            arrivals: config
                .load
                .arrivals(SplitMix64::stream(config.seed, ARRIVAL_STREAM)),
            service_rng: SplitMix64::stream(config.seed, SERVICE_STREAM),
            in_flight: 0,
            completed_total: 0,
            interval: Interval::default(),
            outcome: Outcome::default(),
        })
    }

    fn run(mut self) -> Result<Outcome, SimError> {
        tucano_lb::rng::seed(self.config.seed);
        for _ in 0..self.desired {
            if let Some(instance) = self.place()?
                && let Some(started) = self.instances.get_mut(instance)
            {
                started.phase = Lifecycle::Serving;
            }
        }
        self.publish();
        if let Some(first) = self.arrivals.next_ns() {
            self.schedule(first, EventKind::Arrival);
        }
        let interval = duration_ns(self.config.interval);
        if interval <= duration_ns(self.config.duration) {
            self.schedule(interval, EventKind::Tick);
        }
        while let Some(Reverse(event)) = self.events.pop() {
            self.now = event.at;
            match event.kind {
                EventKind::Arrival => self.arrive(),
                EventKind::Complete { instance, request } => self.complete(instance, request),
                EventKind::Ready { instance } => self.ready(instance),
                EventKind::Tick => self.tick()?,
            }
        }
        Ok(self.finish())
    }

    fn schedule(&mut self, at: u64, kind: EventKind) {
        self.seq += 1;
        self.events.push(Reverse(Event {
            at,
            seq: self.seq,
            kind,
        }));
    }

    fn arrive(&mut self) {
        self.interval.arrivals += 1;
        self.outcome.first_arrival_ns.get_or_insert(self.now);
        match self
            .table
            .select(self.service.as_str(), &PickContext::at(self.now))
        {
            Ok(pick) => match self.by_id.get(pick.instance()).copied() {
                Some(instance) => {
                    let request = self.store(Request {
                        arrived_ns: self.now,
                        pick,
                    });
                    self.in_flight += 1;
                    self.enqueue(instance, request);
                }
                None => self.fail(),
            },
            Err(_) => self.fail(),
        }
        if let Some(next) = self.arrivals.next_ns() {
            self.schedule(next, EventKind::Arrival);
        }
    }

    fn fail(&mut self) {
        self.interval.failed += 1;
        self.outcome.failed += 1;
    }

    fn store(&mut self, request: Request) -> usize {
        match self.free_requests.pop() {
            Some(slot) => {
                self.requests[slot] = Some(request);
                slot
            }
            None => {
                self.requests.push(Some(request));
                self.requests.len() - 1
            }
        }
    }

    fn enqueue(&mut self, instance: usize, request: usize) {
        let concurrency = self.config.cluster.concurrency.max(1);
        let Some(target) = self.instances.get_mut(instance) else {
            return;
        };
        if target.utilisation.busy() < concurrency {
            self.serve(instance, request);
        } else {
            target.queue.push_back(request);
        }
    }

    fn serve(&mut self, instance: usize, request: usize) {
        let Some(target) = self.instances.get_mut(instance) else {
            return;
        };
        let busy = target.utilisation.busy() + 1;
        target.utilisation.set_busy(self.now, busy);
        let speed = self
            .config
            .cluster
            .workers
            .get(target.worker)
            .map_or(1.0, |w| w.speed)
            .max(1e-3);
        let seconds = self.config.service_time.sample(&mut self.service_rng) / speed;
        let done = self.now + (seconds * 1e9).max(1.0) as u64;
        self.schedule(done, EventKind::Complete { instance, request });
    }

    fn complete(&mut self, instance: usize, request: usize) {
        let concurrency = self.config.cluster.concurrency.max(1);
        if let Some(Request { arrived_ns, pick }) =
            self.requests.get_mut(request).and_then(Option::take)
        {
            self.free_requests.push(request);
            let latency = self.now.saturating_sub(arrived_ns);
            let state = pick.guard().state();
            state.observe(latency, false, self.now);
            if let Some(served) = self.instances.get(instance) {
                let held = served.utilisation.busy() as usize + served.queue.len();
                state.report_load(held as f32 / concurrency as f32);
            }
            drop(pick);
            self.in_flight = self.in_flight.saturating_sub(1);
            self.completed_total += 1;
            self.interval.completed += 1;
            self.interval.latencies_ns.push(latency);
            self.outcome.latencies_ns.push(latency);
            self.outcome.last_completion_ns = Some(self.now);
        }
        let now = self.now;
        let next = self.instances.get_mut(instance).and_then(|served| {
            let busy = served.utilisation.busy().saturating_sub(1);
            served.utilisation.set_busy(now, busy);
            let next = served.queue.pop_front();
            if next.is_none() && served.phase == Lifecycle::Stopped && served.is_empty() {
                served.released_ns = Some(now);
            }
            next
        });
        if let Some(next) = next {
            self.serve(instance, next);
        }
    }

    fn ready(&mut self, instance: usize) {
        if let Some(started) = self.instances.get_mut(instance)
            && started.phase == Lifecycle::Starting
        {
            started.phase = Lifecycle::Serving;
            started.utilisation = Utilisation::starting_at(self.now);
            self.publish();
        }
    }

    fn tick(&mut self) -> Result<(), SimError> {
        let now = Duration::from_nanos(self.now);
        let cpu = self.read_cpu();
        if let Some(autoscaler) = self.autoscaler.as_mut() {
            let signals = self
                .sampler
                .sample(&self.table, self.now)
                .into_iter()
                .find(|(name, _)| *name == self.service)
                .map(|(_, mut signals)| {
                    signals.cpu = cpu;
                    signals
                });
            if let Some(decision) = autoscaler.decide(now, self.desired, signals.as_ref()) {
                self.desired = decision.to;
                self.outcome.decisions.push(decision);
            }
        }
        self.reconcile()?;
        self.record_sample(now);
        let next = self.now + duration_ns(self.config.interval);
        if next <= duration_ns(self.config.duration) {
            self.schedule(next, EventKind::Tick);
        }
        Ok(())
    }

    /// The serving instances' mean CPU use since the previous round: the share of their
    /// request slots in use (an instance whose slots are all busy uses all the CPU it asked
    /// for), as the workers' usage reports give the controller.
    fn read_cpu(&mut self) -> Option<f64> {
        let slots = self.config.cluster.concurrency.max(1);
        let now = self.now;
        let shares: Vec<f64> = self
            .instances
            .iter_mut()
            .filter(|i| i.phase == Lifecycle::Serving)
            .filter_map(|i| i.utilisation.read(now, slots))
            .collect();
        (!shares.is_empty()).then(|| shares.iter().sum::<f64>() / shares.len() as f64)
    }

    /// Starts or stops instances until the live ones match the desired count.
    fn reconcile(&mut self) -> Result<(), SimError> {
        let live = self.count(|p| p != Lifecycle::Stopped);
        let desired = self.desired as usize;
        if live < desired {
            for _ in live..desired {
                let Some(instance) = self.place()? else {
                    break;
                };
                let ready = self.now + duration_ns(self.config.cluster.startup);
                self.schedule(ready, EventKind::Ready { instance });
            }
        } else if live > desired {
            let mut surplus = live - desired;
            let mut stopped_serving = false;
            for phase in [Lifecycle::Starting, Lifecycle::Serving] {
                for instance in self.instances.iter_mut().rev() {
                    if surplus == 0 {
                        break;
                    }
                    if instance.phase == phase {
                        instance.phase = Lifecycle::Stopped;
                        if instance.is_empty() {
                            instance.released_ns = Some(self.now);
                        }
                        stopped_serving |= phase == Lifecycle::Serving;
                        surplus -= 1;
                    }
                }
            }
            if stopped_serving {
                self.publish();
            }
        }
        Ok(())
    }

    fn count(&self, phase: impl Fn(Lifecycle) -> bool) -> usize {
        self.instances.iter().filter(|i| phase(i.phase)).count()
    }

    /// Places a new, starting instance where the scheduler says, if any worker has room.
    fn place(&mut self) -> Result<Option<usize>, SimError> {
        let cluster = &self.config.cluster;
        let resources = Resources {
            cpus: cluster.instance_cpus,
            memory_mb: 0,
        };
        let mut view = ClusterView::default();
        for (index, (spec, id)) in cluster.workers.iter().zip(&self.workers).enumerate() {
            let mut candidate = WorkerCandidate::new(
                id.clone(),
                RuntimeKind::Process,
                Resources {
                    cpus: f64::from(spec.cores),
                    memory_mb: MEMORY_MB,
                },
            );
            let on_it = self
                .instances
                .iter()
                .filter(|i| i.worker == index && i.phase != Lifecycle::Stopped)
                .count() as u32;
            candidate.instances = on_it;
            candidate.allocated.cpus = f64::from(on_it) * cluster.instance_cpus;
            view.workers.push(candidate);
            view.service_instances.push(on_it);
        }
        let mut request = PlacementRequest::new(&self.service, &resources, RuntimeKind::Process);
        request.seed = self.config.seed ^ self.instances.len() as u64;
        let Ok(worker_id) = self.scheduler.place(&request, &view) else {
            return Ok(None);
        };
        let worker = self
            .workers
            .iter()
            .position(|w| *w == worker_id)
            .ok_or_else(|| SimError::Unsupported(format!("placed on unknown {worker_id}")))?;
        let index = self.instances.len();
        let instance: InstanceId = format!("00000000-0000-7000-8000-{index:012x}")
            .parse()
            .map_err(|e| SimError::Unsupported(format!("instance id: {e}")))?;
        let address = SocketAddr::from(([127, 0, 0, 1], 10_000 + (index % 50_000) as u16));
        self.instances.push(Instance {
            endpoint: Endpoint {
                instance,
                worker: worker_id,
                proxy: address,
                address,
                weight: 1,
            },
            worker,
            phase: Lifecycle::Starting,
            utilisation: Utilisation::starting_at(self.now),
            queue: VecDeque::new(),
            placed_ns: self.now,
            released_ns: None,
        });
        self.by_id.insert(instance, index);
        Ok(Some(index))
    }

    /// Publishes the serving instances to the balancer.
    fn publish(&self) {
        let endpoints: Vec<Endpoint> = self
            .instances
            .iter()
            .filter(|i| i.phase == Lifecycle::Serving)
            .map(|i| i.endpoint.clone())
            .collect();
        self.table
            .publish_at(&self.service, &self.route, &endpoints, self.now);
    }

    fn record_sample(&mut self, now: Duration) {
        let mut interval = std::mem::take(&mut self.interval);
        interval.latencies_ns.sort_unstable();
        let sample = Sample {
            at_s: now.as_secs_f64(),
            offered_rate: self
                .config
                .load
                .rate_at(now.saturating_sub(Duration::from_nanos(1))),
            arrivals: interval.arrivals,
            completed: interval.completed,
            completed_total: self.completed_total,
            failed: interval.failed,
            desired: self.desired,
            ready: self.count(|p| p == Lifecycle::Serving) as u32,
            provisioned: self.count(|p| p != Lifecycle::Stopped) as u32,
            in_flight: self.in_flight,
            p95_ms: nearest_rank(&interval.latencies_ns, 0.95).map(|ns| ns as f64 / 1e6),
        };
        self.outcome.samples.push(sample);
    }

    fn finish(mut self) -> Outcome {
        let end = duration_ns(self.config.duration);
        self.outcome.replica_seconds = self
            .instances
            .iter()
            .map(|i| {
                let stop = i.released_ns.unwrap_or(end).min(end);
                stop.saturating_sub(i.placed_ns.min(end)) as f64 / 1e9
            })
            .sum();
        self.outcome.latencies_ns.sort_unstable();
        self.outcome
    }
}

fn duration_ns(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
