//! The simulated cluster: workers of a given size and speed, and how an instance on them
//! serves requests.

use std::time::Duration;

/// One worker machine.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WorkerSpec {
    /// CPUs it offers the scheduler.
    pub cores: u32,
    /// How fast it serves: a request's service time is divided by this (1: nominal, 0.5:
    /// twice as slow, as an older or busier machine).
    pub speed: f64,
}

/// The workers and how instances behave on them.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterSpec {
    /// The workers, in order (named `w0`, `w1`, ...).
    pub workers: Vec<WorkerSpec>,
    /// CPUs each instance requests: how many fit on a worker.
    pub instance_cpus: f64,
    /// Requests an instance works on at once; more wait in its queue, first come first
    /// served (a server with that many worker threads).
    pub concurrency: u32,
    /// Time from placing an instance to its serving (process start and readiness).
    pub startup: Duration,
}

impl ClusterSpec {
    /// `count` workers of `cores` CPUs and speed 1.
    pub fn uniform(count: usize, cores: u32) -> Self {
        Self {
            workers: vec![WorkerSpec { cores, speed: 1.0 }; count],
            instance_cpus: 1.0,
            concurrency: 1,
            startup: Duration::from_secs(1),
        }
    }

    /// How many instances fit on the whole cluster.
    pub fn slots(&self) -> u32 {
        if self.instance_cpus <= 0.0 {
            return u32::MAX;
        }
        self.workers
            .iter()
            .map(|w| (f64::from(w.cores) / self.instance_cpus).floor() as u32)
            .sum()
    }
}
