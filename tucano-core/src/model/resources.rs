//! Compute resources an instance asks for.

use serde::{Deserialize, Serialize};

/// Largest CPU count a spec may ask for.
pub const MAX_CPUS: f64 = 1024.0;
/// Largest memory a spec may ask for, in MiB (1 TiB).
pub const MAX_MEMORY_MB: u64 = 1024 * 1024;

/// CPU and memory one instance asks for, written `{"cpus": 0.5, "memory_mb": 128}`.
///
/// Runtimes that can enforce limits (Docker) do; schedulers count them against a worker's
/// capacity.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPUs, fractional (`0.5` is half a core).
    #[serde(default = "default_cpus")]
    pub cpus: f64,
    /// Memory in MiB.
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u64,
}

fn default_cpus() -> f64 {
    0.25
}

fn default_memory_mb() -> u64 {
    128
}

impl Default for Resources {
    fn default() -> Self {
        Self {
            cpus: default_cpus(),
            memory_mb: default_memory_mb(),
        }
    }
}

impl Resources {
    /// Checks the values are positive, finite and within bounds.
    pub fn validate(&self) -> Result<(), String> {
        if !self.cpus.is_finite() || self.cpus <= 0.0 || self.cpus > MAX_CPUS {
            return Err(format!(
                "resources.cpus must be a number above 0 and at most {MAX_CPUS}, got {}",
                self.cpus
            ));
        }
        if self.memory_mb == 0 || self.memory_mb > MAX_MEMORY_MB {
            return Err(format!(
                "resources.memory_mb must be between 1 and {MAX_MEMORY_MB}, got {}",
                self.memory_mb
            ));
        }
        Ok(())
    }
}
