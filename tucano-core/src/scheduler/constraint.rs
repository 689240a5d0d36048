//! Placement constraints written as strings: `"zone=a"`, `"disk!=hdd"`, `"worker=w-3"`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::WorkerCandidate;

/// The key that names the worker itself rather than one of its labels.
pub const WORKER_KEY: &str = "worker";

/// A condition a worker must meet to take an instance: a label equal to a value
/// (`"zone=a"`), or not equal to it (`"disk!=hdd"`, which a worker without the label meets).
/// The key `worker` matches the worker's id (`"worker=w-3"`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Constraint {
    /// The label key (or `worker`).
    pub key: String,
    /// The value compared with.
    pub value: String,
    /// True for `!=`.
    pub negated: bool,
}

impl Constraint {
    /// Whether `worker` meets the constraint.
    pub fn holds(&self, worker: &WorkerCandidate) -> bool {
        let actual = if self.key == WORKER_KEY {
            Some(worker.id.as_str())
        } else {
            worker.labels.get(&self.key).map(String::as_str)
        };
        (actual == Some(self.value.as_str())) != self.negated
    }
}

impl FromStr for Constraint {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (key, value, negated) = match text.split_once("!=") {
            Some((key, value)) => (key, value, true),
            None => match text.split_once('=') {
                Some((key, value)) => (key, value, false),
                None => {
                    return Err(format!(
                        "constraint {text:?} must be \"key=value\" or \"key!=value\""
                    ));
                }
            },
        };
        if !valid_part(key) || !valid_part(value) {
            return Err(format!(
                "constraint {text:?}: key and value must be 1 to 253 of a-z A-Z 0-9 - _ . /"
            ));
        }
        Ok(Self {
            key: key.to_owned(),
            value: value.to_owned(),
            negated,
        })
    }
}

/// Whether `part` can be a label key or value: 1 to 253 of `a-z A-Z 0-9 - _ . /`.
pub(crate) fn valid_part(part: &str) -> bool {
    !part.is_empty()
        && part.len() <= 253
        && part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
}

impl TryFrom<String> for Constraint {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<Constraint> for String {
    fn from(constraint: Constraint) -> Self {
        constraint.to_string()
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = if self.negated { "!=" } else { "=" };
        write!(f, "{}{op}{}", self.key, self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::test_support::worker;

    #[test]
    fn parses_and_prints_both_forms() {
        for text in ["zone=a", "disk!=hdd", "worker=w-3", "topology.io/rack=r1"] {
            assert_eq!(text.parse::<Constraint>().unwrap().to_string(), text);
        }
        for bad in ["zone", "=a", "zone=", "zone!=", "zo ne=a", ""] {
            assert!(bad.parse::<Constraint>().is_err(), "{bad}");
        }
    }

    #[test]
    fn equality_inequality_and_the_worker_key() {
        let mut w = worker("w-3");
        w.labels.insert("zone".into(), "a".into());
        let holds = |c: &str| c.parse::<Constraint>().unwrap().holds(&w);
        assert!(holds("zone=a"));
        assert!(!holds("zone=b"));
        assert!(holds("zone!=b"));
        assert!(!holds("zone!=a"));
        assert!(holds("disk!=hdd"), "a missing label is not equal");
        assert!(!holds("disk=ssd"));
        assert!(holds("worker=w-3"));
        assert!(!holds("worker=w-4"));
    }
}
