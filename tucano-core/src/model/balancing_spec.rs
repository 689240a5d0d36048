//! How the load balancer spreads a service's requests: the policy and its options.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

/// The policy a service gets unless it asks for another.
pub const DEFAULT_BALANCING_POLICY: &str = "round_robin";
/// Most endpoints a power-of-d-choices policy may compare per pick.
pub const MAX_CHOICE_COUNT: u8 = 16;
/// Longest allowed slow-start window and ejection time.
const MAX_WINDOW: Duration = Duration::from_secs(3600);

/// A service's balancing: written either as a policy name (`"balancing": "peak_ewma"`) or as
/// an object with options:
///
/// ```json
/// "balancing": {"policy": "consistent_hash", "hash_key": {"header": "x-user"},
///               "slow_start": "30s", "panic_threshold_percent": 50,
///               "outlier": {"consecutive_failures": 5, "base_ejection_time": "30s", "max_ejection_percent": 50},
///               "retry_budget_percent": 20}
/// ```
///
/// ```
/// use tucano_core::BalancingSpec;
/// let short: BalancingSpec = serde_json::from_str(r#""peak_ewma""#).unwrap();
/// assert_eq!(short.policy, "peak_ewma");
/// let long: BalancingSpec = serde_json::from_str(r#"{"policy":"power_of_two","slow_start":"10s"}"#).unwrap();
/// assert_eq!(long.slow_start.as_secs(), 10);
/// assert_eq!(long.outlier, Default::default());
/// ```
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BalancingSpec {
    /// The policy's name: `round_robin`, `weighted_round_robin`, `least_connections`,
    /// `power_of_two`, `peak_ewma`, `feedback`, `consistent_hash`, or one an embedding program
    /// registered.
    pub policy: String,
    /// What `consistent_hash` hashes; requests without it hash on the client address.
    pub hash_key: HashKey,
    /// How many random endpoints `power_of_two`, `peak_ewma` and `feedback` compare per pick
    /// (as Envoy's `choice_count`), 2 to 16; `None` for the policy's own default (2 for
    /// `power_of_two` and `feedback`, 4 for `peak_ewma`). More choices avoid slow endpoints
    /// better at a few nanoseconds each.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub choice_count: Option<u8>,
    /// New instances (added after the service's first ones) get traffic ramping from 10 % to
    /// full over this window; `0s` (the default) turns slow start off.
    #[serde(with = "humantime_serde")]
    pub slow_start: Duration,
    /// Passive outlier ejection.
    pub outlier: OutlierSpec,
    /// When fewer than this share of instances are available (the rest ejected or failing
    /// health checks), route to all of them rather than overload the few (fail open).
    pub panic_threshold_percent: u8,
    /// Retries on connect failure may add at most this share of extra requests.
    pub retry_budget_percent: u8,
}

impl Default for BalancingSpec {
    fn default() -> Self {
        Self::named(DEFAULT_BALANCING_POLICY)
    }
}

/// What `consistent_hash` takes its key from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HashKey {
    /// The client's address.
    #[default]
    ClientIp,
    /// The value of a request header (`{"header": "x-user"}`).
    Header(String),
    /// The value of a cookie (`{"cookie": "session"}`).
    Cookie(String),
}

/// Passive outlier ejection: an instance that fails `consecutive_failures` requests in a row
/// (5xx or connection failures) gets no traffic for `base_ejection_time` × the times it was
/// ejected, while at most `max_ejection_percent` of the instances are ejected at once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutlierSpec {
    /// Failures in a row that eject an instance; 0 turns ejection off.
    pub consecutive_failures: u32,
    /// First ejection time; later ejections last longer.
    #[serde(with = "humantime_serde")]
    pub base_ejection_time: Duration,
    /// Most instances ejected at once, as a share of the service's instances.
    pub max_ejection_percent: u8,
}

impl Default for OutlierSpec {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            base_ejection_time: Duration::from_secs(30),
            max_ejection_percent: 50,
        }
    }
}

/// The object form, with a default for every field but the policy.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BalancingObject {
    policy: String,
    #[serde(default)]
    hash_key: HashKey,
    #[serde(default)]
    choice_count: Option<u8>,
    #[serde(default, with = "humantime_serde")]
    slow_start: Duration,
    #[serde(default)]
    outlier: OutlierSpec,
    #[serde(default = "default_panic_threshold")]
    panic_threshold_percent: u8,
    #[serde(default = "default_retry_budget")]
    retry_budget_percent: u8,
}

fn default_panic_threshold() -> u8 {
    50
}

fn default_retry_budget() -> u8 {
    20
}

#[derive(Deserialize)]
#[serde(untagged)]
enum BalancingRepr {
    Name(String),
    Object(BalancingObject),
}

impl<'de> Deserialize<'de> for BalancingSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match BalancingRepr::deserialize(deserializer)? {
            BalancingRepr::Name(policy) => Self::named(policy),
            BalancingRepr::Object(o) => Self {
                policy: o.policy,
                hash_key: o.hash_key,
                choice_count: o.choice_count,
                slow_start: o.slow_start,
                outlier: o.outlier,
                panic_threshold_percent: o.panic_threshold_percent,
                retry_budget_percent: o.retry_budget_percent,
            },
        })
    }
}

impl BalancingSpec {
    /// The policy called `policy` with default options.
    pub fn named(policy: impl Into<String>) -> Self {
        Self {
            policy: policy.into(),
            hash_key: HashKey::default(),
            choice_count: None,
            slow_start: Duration::ZERO,
            outlier: OutlierSpec::default(),
            panic_threshold_percent: default_panic_threshold(),
            retry_budget_percent: default_retry_budget(),
        }
    }

    /// Checks names and bounds (not whether the policy exists: the balancer knows that).
    pub fn validate(&self) -> Result<(), String> {
        let name_ok = !self.policy.is_empty()
            && self.policy.len() <= 64
            && self
                .policy
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !name_ok {
            return Err(format!(
                "balancing policy {:?} must be 1 to 64 of a-z, 0-9 and '_'",
                self.policy
            ));
        }
        match &self.hash_key {
            HashKey::Header(name) | HashKey::Cookie(name) if !is_token(name) => {
                return Err(format!(
                    "balancing hash_key {name:?} is not a valid header or cookie name"
                ));
            }
            _ => {}
        }
        if let Some(count) = self.choice_count
            && !(2..=MAX_CHOICE_COUNT).contains(&count)
        {
            return Err(format!(
                "balancing choice_count must be between 2 and {MAX_CHOICE_COUNT}"
            ));
        }
        if self.slow_start > MAX_WINDOW {
            return Err("balancing slow_start may be at most 1h".into());
        }
        let outlier = &self.outlier;
        if outlier.consecutive_failures > 1000 {
            return Err("balancing outlier.consecutive_failures may be at most 1000".into());
        }
        if outlier.base_ejection_time.is_zero() || outlier.base_ejection_time > MAX_WINDOW {
            return Err(
                "balancing outlier.base_ejection_time must be above 0 and at most 1h".into(),
            );
        }
        for (name, value) in [
            ("outlier.max_ejection_percent", outlier.max_ejection_percent),
            ("panic_threshold_percent", self.panic_threshold_percent),
            ("retry_budget_percent", self.retry_budget_percent),
        ] {
            if value > 100 {
                return Err(format!("balancing {name} must be between 0 and 100"));
            }
        }
        Ok(())
    }
}

/// An HTTP token (header or cookie name): 1 to 256 visible ASCII characters, no separators.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<BalancingSpec, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn name_or_object() {
        assert_eq!(
            parse(r#""feedback""#).unwrap(),
            BalancingSpec::named("feedback")
        );
        assert_eq!(parse(r#""feedback""#).unwrap().choice_count, None);
        let spec = parse(
            r#"{"policy":"consistent_hash","hash_key":{"cookie":"session"},
                "outlier":{"consecutive_failures":3},"panic_threshold_percent":0}"#,
        )
        .unwrap();
        assert_eq!(spec.hash_key, HashKey::Cookie("session".into()));
        assert_eq!(spec.outlier.consecutive_failures, 3);
        assert_eq!(spec.outlier.base_ejection_time, Duration::from_secs(30));
        assert_eq!(spec.panic_threshold_percent, 0);
        assert_eq!(spec.retry_budget_percent, 20);
        assert_eq!(
            parse(r#"{"policy":"x","hash_key":"client_ip"}"#)
                .unwrap()
                .hash_key,
            HashKey::ClientIp
        );
        // Round trip through the object form.
        let again: BalancingSpec =
            serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
        assert_eq!(again, spec);
    }

    #[test]
    fn refuses_bad_options() {
        assert!(parse(r#"{"policy":"x","typo":1}"#).is_err());
        assert!(parse(r#"{"hash_key":"client_ip"}"#).is_err());
        for bad in [
            BalancingSpec::named("Peak-EWMA"),
            BalancingSpec::named(""),
            BalancingSpec {
                hash_key: HashKey::Header("bad header".into()),
                ..Default::default()
            },
            BalancingSpec {
                slow_start: Duration::from_secs(7200),
                ..Default::default()
            },
            BalancingSpec {
                panic_threshold_percent: 101,
                ..Default::default()
            },
            BalancingSpec {
                choice_count: Some(1),
                ..Default::default()
            },
            BalancingSpec {
                choice_count: Some(17),
                ..Default::default()
            },
            BalancingSpec {
                outlier: OutlierSpec {
                    base_ejection_time: Duration::ZERO,
                    ..Default::default()
                },
                ..Default::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        assert!(BalancingSpec::default().validate().is_ok());
        let four = parse(r#"{"policy":"peak_ewma","choice_count":4}"#).unwrap();
        assert_eq!(four.choice_count, Some(4));
        assert!(four.validate().is_ok());
    }
}
