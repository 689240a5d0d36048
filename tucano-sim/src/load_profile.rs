//! The offered load: a Poisson arrival process whose rate is constant within each phase
//! (a step, a square wave, a burst), optionally ending after a number of requests.

use std::time::Duration;

use crate::random::SplitMix64;

/// One phase of a load profile: `rate` requests per second for `duration`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Phase {
    /// How long the phase lasts.
    pub duration: Duration,
    /// Mean arrivals per second during it (0: none).
    pub rate: f64,
}

/// Phases played in order, then no more arrivals.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadProfile {
    phases: Vec<Phase>,
    limit: Option<u64>,
}

impl LoadProfile {
    /// The phases in order, without a limit on requests.
    pub fn new(phases: Vec<Phase>) -> Self {
        Self {
            phases,
            limit: None,
        }
    }

    /// `rate` per second for `duration`.
    pub fn constant(rate: f64, duration: Duration) -> Self {
        Self::new(vec![Phase { duration, rate }])
    }

    /// `low` per second until `at`, then `high` until `duration`.
    pub fn step(low: f64, high: f64, at: Duration, duration: Duration) -> Self {
        Self::new(vec![
            Phase {
                duration: at,
                rate: low,
            },
            Phase {
                duration: duration.saturating_sub(at),
                rate: high,
            },
        ])
    }

    /// `low` and `high` alternating every `half_period`, starting low, for `duration`.
    pub fn square_wave(low: f64, high: f64, half_period: Duration, duration: Duration) -> Self {
        let mut phases = Vec::new();
        let mut left = duration;
        let mut high_now = false;
        while !left.is_zero() && !half_period.is_zero() {
            let length = half_period.min(left);
            phases.push(Phase {
                duration: length,
                rate: if high_now { high } else { low },
            });
            left -= length;
            high_now = !high_now;
        }
        Self::new(phases)
    }

    /// Exactly `requests` arrivals at `rate` per second, then none until `duration`.
    pub fn burst(requests: u64, rate: f64, duration: Duration) -> Self {
        Self {
            phases: vec![Phase { duration, rate }],
            limit: Some(requests),
        }
    }

    /// The phases.
    pub fn phases(&self) -> &[Phase] {
        &self.phases
    }

    /// The time the last phase ends.
    pub fn duration(&self) -> Duration {
        self.phases.iter().map(|p| p.duration).sum()
    }

    /// The mean arrival rate at `at` (0 after the last phase).
    pub fn rate_at(&self, at: Duration) -> f64 {
        let mut end = Duration::ZERO;
        for phase in &self.phases {
            end += phase.duration;
            if at < end {
                return phase.rate;
            }
        }
        0.0
    }

    /// The arrival times of this profile, drawn from `rng`.
    pub fn arrivals(&self, rng: SplitMix64) -> Arrivals {
        Arrivals {
            phases: self.phases.clone(),
            limit: self.limit,
            rng,
            phase: 0,
            phase_start_s: 0.0,
            at_s: 0.0,
            count: 0,
        }
    }
}

/// Arrival times, in order.
#[derive(Clone, Debug)]
pub struct Arrivals {
    phases: Vec<Phase>,
    limit: Option<u64>,
    rng: SplitMix64,
    phase: usize,
    phase_start_s: f64,
    at_s: f64,
    count: u64,
}

impl Arrivals {
    /// The next arrival, in nanoseconds from the start, or `None` when the profile is over.
    ///
    /// Within a phase the gaps are exponential; a gap that would cross into the next phase
    /// is drawn again from the phase boundary at the next phase's rate (exact for a Poisson
    /// process, which has no memory).
    pub fn next_ns(&mut self) -> Option<u64> {
        if self.limit.is_some_and(|limit| self.count >= limit) {
            return None;
        }
        loop {
            let phase = self.phases.get(self.phase)?;
            let end_s = self.phase_start_s + phase.duration.as_secs_f64();
            if phase.rate > 0.0 {
                let next = self.at_s + self.rng.exponential(1.0 / phase.rate);
                if next < end_s {
                    self.at_s = next;
                    self.count += 1;
                    return Some((next * 1e9) as u64);
                }
            }
            self.phase += 1;
            self.phase_start_s = end_s;
            self.at_s = end_s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count_in(profile: &LoadProfile, from_s: f64, to_s: f64) -> usize {
        let mut arrivals = profile.arrivals(SplitMix64::new(5));
        std::iter::from_fn(|| arrivals.next_ns())
            .map(|ns| ns as f64 / 1e9)
            .filter(|s| (from_s..to_s).contains(s))
            .count()
    }

    #[test]
    fn a_step_changes_the_rate_at_the_step() {
        let step = LoadProfile::step(
            10.0,
            200.0,
            Duration::from_secs(100),
            Duration::from_secs(200),
        );
        let low = count_in(&step, 0.0, 100.0);
        let high = count_in(&step, 100.0, 200.0);
        assert!((800..1200).contains(&low), "{low}");
        assert!((19_000..21_000).contains(&high), "{high}");
        assert_eq!(count_in(&step, 200.0, 1e9), 0);
        assert_eq!(step.rate_at(Duration::from_secs(150)), 200.0);
    }

    #[test]
    fn a_square_wave_alternates_starting_low_and_a_burst_stops_at_its_count() {
        let wave =
            LoadProfile::square_wave(0.0, 100.0, Duration::from_secs(10), Duration::from_secs(35));
        let rates: Vec<f64> = wave.phases().iter().map(|p| p.rate).collect();
        assert_eq!(rates, [0.0, 100.0, 0.0, 100.0]);
        assert_eq!(wave.duration(), Duration::from_secs(35));
        assert_eq!(count_in(&wave, 0.0, 10.0), 0);
        assert_eq!(count_in(&wave, 20.0, 30.0), 0);
        let burst = LoadProfile::burst(1000, 500.0, Duration::from_secs(60));
        assert_eq!(count_in(&burst, 0.0, 60.0), 1000);
    }
}
