//! How long an instance works on one request, on a worker of speed 1.

use std::time::Duration;

use crate::random::SplitMix64;

/// A service-time distribution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ServiceTime {
    /// Always the same time.
    Constant(Duration),
    /// Exponentially distributed with this mean (memoryless: most requests are short, a few
    /// are several times the mean).
    Exponential(Duration),
}

impl ServiceTime {
    /// The mean service time.
    pub fn mean(&self) -> Duration {
        match self {
            Self::Constant(d) | Self::Exponential(d) => *d,
        }
    }

    /// One request's service time in seconds on a worker of speed 1.
    pub fn sample(&self, rng: &mut SplitMix64) -> f64 {
        match self {
            Self::Constant(d) => d.as_secs_f64(),
            Self::Exponential(mean) => rng.exponential(mean.as_secs_f64()),
        }
    }
}

impl std::fmt::Display for ServiceTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Constant(d) => write!(f, "constant {}", humantime::format_duration(*d)),
            Self::Exponential(d) => {
                write!(f, "exponential, mean {}", humantime::format_duration(*d))
            }
        }
    }
}
