//! Where a service's instances may go and how they are spread: `"placement"` in its spec.

use serde::{Deserialize, Serialize};

use crate::scheduler::{Constraint, Strategy};

/// Most constraints one service may carry.
pub const MAX_CONSTRAINTS: usize = 32;

/// A service's placement rules, written
/// `"placement": {"strategy": "binpack", "constraints": ["zone=a"], "max_per_worker": 1}`;
/// every field is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementSpec {
    /// The strategy for this service (`least_loaded`, `spread`, `binpack`); the cluster's
    /// default if omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    /// Conditions on the worker's labels or id (`"zone=a"`, `"disk!=hdd"`, `"worker=w-3"`),
    /// all of which must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<Constraint>,
    /// Most instances of the service on one worker (anti-affinity); unlimited if omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_worker: Option<u32>,
}

impl PlacementSpec {
    /// True when no field is set.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Checks the bounds serde cannot: at most [`MAX_CONSTRAINTS`] constraints, a
    /// `max_per_worker` of at least 1.
    pub fn validate(&self) -> Result<(), String> {
        if self.constraints.len() > MAX_CONSTRAINTS {
            return Err(format!(
                "placement.constraints may have at most {MAX_CONSTRAINTS} entries"
            ));
        }
        if self.max_per_worker == Some(0) {
            return Err("placement.max_per_worker must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_form_and_refuses_bad_values() {
        let spec: PlacementSpec = serde_json::from_str(
            r#"{"strategy": "binpack", "constraints": ["zone=a", "disk!=hdd"], "max_per_worker": 1}"#,
        )
        .unwrap();
        assert_eq!(spec.strategy, Some(Strategy::Binpack));
        assert_eq!(spec.constraints.len(), 2);
        assert!(spec.constraints[1].negated);
        spec.validate().unwrap();
        assert!(serde_json::from_str::<PlacementSpec>(r#"{"constraints": ["zone"]}"#).is_err());
        assert!(serde_json::from_str::<PlacementSpec>(r#"{"strategy": "random"}"#).is_err());
        assert!(serde_json::from_str::<PlacementSpec>(r#"{"max_per_node": 1}"#).is_err());
        let zero: PlacementSpec = serde_json::from_str(r#"{"max_per_worker": 0}"#).unwrap();
        assert!(zero.validate().is_err());
        assert!(PlacementSpec::default().is_default());
        assert_eq!(
            serde_json::to_string(&spec).unwrap(),
            r#"{"strategy":"binpack","constraints":["zone=a","disk!=hdd"],"max_per_worker":1}"#
        );
    }
}
