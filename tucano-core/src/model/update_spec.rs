//! How a changed spec replaces a service's instances: `"update"` in its spec.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::MAX_REPLICAS;

/// Longest allowed rollout deadline.
pub const MAX_UPDATE_DEADLINE: Duration = Duration::from_secs(3600);

/// A rolling update's pace and patience, written
/// `"update": {"max_surge": 1, "max_unavailable": 0, "deadline": "60s", "min_ready": "0s"}`;
/// every field is optional.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateSpec {
    /// New instances that may run above the replica count while the update goes on.
    #[serde(default = "default_max_surge")]
    pub max_surge: u32,
    /// Replicas that may be unavailable (below the replica count) while the update goes on.
    #[serde(default)]
    pub max_unavailable: u32,
    /// If no new instance becomes healthy for this long, the update is rolled back.
    #[serde(default = "default_deadline", with = "humantime_serde")]
    pub deadline: Duration,
    /// How long a new instance must have been running to count as healthy.
    #[serde(default, with = "humantime_serde")]
    pub min_ready: Duration,
}

impl Default for UpdateSpec {
    fn default() -> Self {
        Self {
            max_surge: default_max_surge(),
            max_unavailable: 0,
            deadline: default_deadline(),
            min_ready: Duration::ZERO,
        }
    }
}

fn default_max_surge() -> u32 {
    1
}

fn default_deadline() -> Duration {
    Duration::from_secs(60)
}

impl UpdateSpec {
    /// True when every field has its default.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Checks what serde cannot: an update that can make progress, bounded values.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_surge == 0 && self.max_unavailable == 0 {
            return Err(
                "update.max_surge and update.max_unavailable may not both be 0: the update could not start a new instance nor stop an old one"
                    .into(),
            );
        }
        if self.max_surge > MAX_REPLICAS || self.max_unavailable > MAX_REPLICAS {
            return Err(format!(
                "update.max_surge and update.max_unavailable may be at most {MAX_REPLICAS}"
            ));
        }
        if self.deadline.is_zero() || self.deadline > MAX_UPDATE_DEADLINE {
            return Err(format!(
                "update.deadline must be above 0 and at most {}",
                humantime::format_duration(MAX_UPDATE_DEADLINE)
            ));
        }
        if self.min_ready >= self.deadline {
            return Err("update.min_ready must be shorter than update.deadline".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_form_with_defaults() {
        let spec: UpdateSpec =
            serde_json::from_str(r#"{"max_surge": 2, "max_unavailable": 1, "deadline": "5s"}"#)
                .unwrap();
        assert_eq!(spec.max_surge, 2);
        assert_eq!(spec.max_unavailable, 1);
        assert_eq!(spec.deadline, Duration::from_secs(5));
        assert_eq!(spec.min_ready, Duration::ZERO);
        spec.validate().unwrap();
        let empty: UpdateSpec = serde_json::from_str("{}").unwrap();
        assert!(empty.is_default());
        assert_eq!(empty.max_surge, 1);
    }

    #[test]
    fn refuses_updates_that_cannot_progress_or_are_unbounded() {
        for json in [
            r#"{"max_surge": 0, "max_unavailable": 0}"#,
            r#"{"max_surge": 1001}"#,
            r#"{"deadline": "0s"}"#,
            r#"{"deadline": "2h"}"#,
            r#"{"deadline": "5s", "min_ready": "5s"}"#,
        ] {
            let spec: UpdateSpec = serde_json::from_str(json).unwrap();
            assert!(spec.validate().is_err(), "{json} should be refused");
        }
        assert!(serde_json::from_str::<UpdateSpec>(r#"{"surge": 1}"#).is_err());
    }
}
