//! Turns the runtime's usage samples into what heartbeats report per instance: cumulative CPU
//! time into cores used between two samples, and both CPU and memory as shares of what the
//! instance asked for.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

use crate::model::{InstanceId, Resources};
use crate::runtime::UsageSample;
use crate::wire::InstanceUsage;

/// Each running instance's previous sample and latest usage.
#[derive(Debug, Default)]
pub(crate) struct UsageTracker {
    instances: HashMap<InstanceId, Tracked>,
    last_round: Option<Instant>,
}

#[derive(Debug)]
struct Tracked {
    /// The CPU time of the latest sample that succeeded, and when it was taken.
    previous: Option<(Duration, Instant)>,
    /// Usage from the latest round, if its sample succeeded.
    latest: Option<InstanceUsage>,
}

impl UsageTracker {
    /// Whether a round of samples is due at `now`: none yet, or none for `min_interval`.
    /// Heartbeats sent right after a change come closer together than their interval; a
    /// rate over a few milliseconds would be noise.
    pub fn due(&self, now: Instant, min_interval: Duration) -> bool {
        self.last_round
            .is_none_or(|last| now.saturating_duration_since(last) >= min_interval)
    }

    /// Starts a round at `now`: forgets instances no longer in `running`.
    pub fn begin_round(&mut self, now: Instant, running: &HashSet<InstanceId>) {
        self.last_round = Some(now);
        self.instances.retain(|id, _| running.contains(id));
    }

    /// Records the outcome of sampling `id` at `at`; `request` is what it asked for, if known.
    pub fn record(
        &mut self,
        id: InstanceId,
        request: Option<Resources>,
        sample: Option<UsageSample>,
        at: Instant,
    ) {
        let tracked = self.instances.entry(id).or_insert(Tracked {
            previous: None,
            latest: None,
        });
        tracked.latest = sample.map(|sample| usage_between(tracked.previous, sample, at, request));
        if let Some(sample) = sample {
            tracked.previous = Some((sample.cpu_time, at));
        }
    }

    /// When `id` was last sampled successfully, if ever: rounds sample the longest-waiting
    /// instances first.
    pub fn last_sampled(&self, id: &InstanceId) -> Option<Instant> {
        self.instances.get(id)?.previous.map(|(_, at)| at)
    }

    /// The latest usage of `id`, if its latest sample succeeded.
    pub fn latest(&self, id: &InstanceId) -> Option<InstanceUsage> {
        self.instances.get(id)?.latest
    }
}

/// The usage `sample` (taken at `at`) shows against the `previous` CPU time. CPU is `None`
/// without a previous sample, or when the CPU time went backwards (another process now).
fn usage_between(
    previous: Option<(Duration, Instant)>,
    sample: UsageSample,
    at: Instant,
    request: Option<Resources>,
) -> InstanceUsage {
    let cpu_cores = previous.and_then(|(cpu_time, then)| {
        let wall = at.checked_duration_since(then)?.as_secs_f64();
        let used = sample.cpu_time.checked_sub(cpu_time)?.as_secs_f64();
        (wall > 0.0).then(|| used / wall)
    });
    let requested_cpus = request.map_or(0.0, |r| r.cpus);
    let per_core = if requested_cpus > 0.0 {
        requested_cpus
    } else {
        1.0
    };
    let memory = request
        .map(|r| r.memory_mb)
        .filter(|mb| *mb > 0)
        .map(|mb| sample.memory_bytes as f64 / (mb as f64 * 1024.0 * 1024.0));
    InstanceUsage {
        cpu: cpu_cores.map(|cores| cores / per_core),
        cpu_cores,
        memory,
        memory_bytes: sample.memory_bytes,
        cpu_pressure: sample.cpu_pressure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(cpu_ms: u64, memory_mb: u64) -> UsageSample {
        UsageSample {
            cpu_time: Duration::from_millis(cpu_ms),
            memory_bytes: memory_mb * 1024 * 1024,
            cpu_pressure: None,
        }
    }

    fn request(cpus: f64, memory_mb: u64) -> Option<Resources> {
        Some(Resources { cpus, memory_mb })
    }

    #[test]
    fn the_longest_unsampled_instances_come_first() {
        let (a, b, c) = (InstanceId::new(), InstanceId::new(), InstanceId::new());
        let t0 = Instant::now();
        let mut tracker = UsageTracker::default();
        tracker.begin_round(t0, &[a, b, c].into_iter().collect());
        tracker.record(a, None, Some(sample(1, 1)), t0);
        tracker.record(b, None, Some(sample(1, 1)), t0 + Duration::from_millis(10));
        // c's sample failed: it was never sampled.
        tracker.record(c, None, None, t0);
        let mut order = vec![b, a, c];
        order.sort_by_key(|id| tracker.last_sampled(id));
        assert_eq!(order, [c, a, b]);
        // A failure keeps the time of the last success.
        tracker.record(b, None, None, t0 + Duration::from_secs(1));
        assert_eq!(
            tracker.last_sampled(&b),
            Some(t0 + Duration::from_millis(10))
        );
    }

    #[test]
    fn cpu_is_a_rate_between_two_samples_as_a_share_of_the_request() {
        let t0 = Instant::now();
        let first = usage_between(None, sample(1_000, 64), t0, request(0.5, 256));
        assert_eq!(first.cpu, None);
        assert_eq!(first.memory, Some(0.25));
        assert_eq!(first.memory_bytes, 64 << 20);

        // 300 ms of CPU in 1 s: 0.3 cores, 60 % of a 0.5-core request.
        let t1 = t0 + Duration::from_secs(1);
        let next = usage_between(
            Some((Duration::from_millis(1_000), t0)),
            sample(1_300, 128),
            t1,
            request(0.5, 256),
        );
        assert!((next.cpu_cores.unwrap() - 0.3).abs() < 1e-9, "{next:?}");
        assert!((next.cpu.unwrap() - 0.6).abs() < 1e-9, "{next:?}");
        assert_eq!(next.memory, Some(0.5));
    }

    #[test]
    fn without_a_request_cpu_counts_against_one_core_and_memory_is_unknown() {
        let t0 = Instant::now();
        let previous = Some((Duration::ZERO, t0));
        let t1 = t0 + Duration::from_millis(500);
        for unknown in [request(0.0, 0), None] {
            let usage = usage_between(previous, sample(1_000, 10), t1, unknown);
            assert!((usage.cpu.unwrap() - 2.0).abs() < 1e-9, "{usage:?}");
            assert_eq!(usage.memory, None);
        }
    }

    #[test]
    fn cpu_time_going_backwards_or_no_time_passing_gives_no_rate() {
        let t0 = Instant::now();
        let backwards = usage_between(
            Some((Duration::from_secs(5), t0)),
            sample(1_000, 1),
            t0 + Duration::from_secs(1),
            None,
        );
        assert_eq!(backwards.cpu, None);
        let instant = usage_between(Some((Duration::ZERO, t0)), sample(1_000, 1), t0, None);
        assert_eq!(instant.cpu, None);
    }

    #[test]
    fn the_tracker_keeps_the_previous_sample_across_a_failed_one_and_forgets_gone_instances() {
        let mut tracker = UsageTracker::default();
        let id = InstanceId::new();
        let t0 = Instant::now();
        assert!(tracker.due(t0, Duration::from_secs(1)));
        tracker.begin_round(t0, &HashSet::from([id]));
        assert!(!tracker.due(t0 + Duration::from_millis(999), Duration::from_secs(1)));
        tracker.record(id, request(1.0, 0), Some(sample(0, 1)), t0);
        assert_eq!(tracker.latest(&id).unwrap().cpu, None);

        let t1 = t0 + Duration::from_secs(1);
        tracker.record(id, request(1.0, 0), None, t1);
        assert_eq!(tracker.latest(&id), None);

        let t2 = t0 + Duration::from_secs(2);
        tracker.record(id, request(1.0, 0), Some(sample(1_000, 1)), t2);
        let cpu = tracker.latest(&id).unwrap().cpu.unwrap();
        assert!((cpu - 0.5).abs() < 1e-9, "{cpu}");

        tracker.begin_round(t2, &HashSet::new());
        assert_eq!(tracker.latest(&id), None);
    }
}
