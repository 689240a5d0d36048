//! Active HTTP health checks of a service's instances.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `"health": {"path": "/healthz"}`: the balancer sends `GET path` to each instance every
/// `interval`; an instance that fails `unhealthy_threshold` checks in a row (no 2xx within
/// `timeout`) gets no traffic until it passes `healthy_threshold` in a row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSpec {
    /// Path (and query) to request, starting with `/`.
    pub path: String,
    /// Time between checks of one instance.
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// Time a check may take.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Failed checks in a row that make an instance unhealthy.
    #[serde(default = "default_unhealthy")]
    pub unhealthy_threshold: u32,
    /// Passed checks in a row that make an unhealthy instance healthy again.
    #[serde(default = "default_healthy")]
    pub healthy_threshold: u32,
}

fn default_interval() -> Duration {
    Duration::from_secs(5)
}

fn default_timeout() -> Duration {
    Duration::from_secs(1)
}

fn default_unhealthy() -> u32 {
    2
}

fn default_healthy() -> u32 {
    1
}

impl HealthSpec {
    /// Checks of `path` with default timing.
    pub fn path(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            interval: default_interval(),
            timeout: default_timeout(),
            unhealthy_threshold: default_unhealthy(),
            healthy_threshold: default_healthy(),
        }
    }

    /// Checks the path and bounds.
    pub fn validate(&self) -> Result<(), String> {
        let path_ok = self.path.starts_with('/')
            && self.path.len() <= 1024
            && self.path.bytes().all(|b| b.is_ascii_graphic());
        if !path_ok {
            return Err(format!(
                "health.path {:?} must start with '/' and hold at most 1024 visible ASCII characters",
                self.path
            ));
        }
        if self.interval < Duration::from_millis(100) || self.interval > Duration::from_secs(3600) {
            return Err("health.interval must be between 100ms and 1h".into());
        }
        if self.timeout.is_zero() || self.timeout > self.interval {
            return Err("health.timeout must be above 0 and at most health.interval".into());
        }
        for (name, value) in [
            ("unhealthy_threshold", self.unhealthy_threshold),
            ("healthy_threshold", self.healthy_threshold),
        ] {
            if !(1..=100).contains(&value) {
                return Err(format!("health.{name} must be between 1 and 100"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation() {
        let spec: HealthSpec = serde_json::from_str(r#"{"path":"/healthz"}"#).unwrap();
        assert_eq!(spec, HealthSpec::path("/healthz"));
        assert!(spec.validate().is_ok());
        assert!(HealthSpec::path("healthz").validate().is_err());
        assert!(HealthSpec::path("/a b").validate().is_err());
        let mut slow = HealthSpec::path("/h");
        slow.timeout = Duration::from_secs(10);
        assert!(slow.validate().is_err());
        assert!(serde_json::from_str::<HealthSpec>(r#"{"path":"/h","every":"1s"}"#).is_err());
    }
}
