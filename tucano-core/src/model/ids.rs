//! Identifiers of instances, workers and worker boots.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Identifies one instance of a service. A UUIDv7, so ids sort by creation time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InstanceId(Uuid);

impl InstanceId {
    /// A fresh, time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// The underlying UUID.
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl Default for InstanceId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for InstanceId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// Identifies one boot of a worker process: a worker that restarts keeps its [`WorkerId`]
/// and gets a new `BootId`, which tells the controller its old instances may be gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BootId(Uuid);

impl BootId {
    /// A fresh boot id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for BootId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for BootId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Longest allowed worker id.
pub const MAX_WORKER_ID_LEN: usize = 64;

/// Identifies a worker node: 1 to 64 ASCII letters, digits, `-`, `_` or `.`.
///
/// ```
/// use tucano_core::WorkerId;
/// assert!("node-1.zone-a".parse::<WorkerId>().is_ok());
/// assert!("has space".parse::<WorkerId>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkerId(String);

/// Why a string is not a valid [`WorkerId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "worker id {0:?} must be 1 to {MAX_WORKER_ID_LEN} characters of ASCII letters, digits, '-', '_' or '.'"
)]
pub struct WorkerIdError(pub String);

impl WorkerId {
    /// Validates `id`.
    pub fn new(id: impl Into<String>) -> Result<Self, WorkerIdError> {
        let id = id.into();
        let valid = !id.is_empty()
            && id.len() <= MAX_WORKER_ID_LEN
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if valid {
            Ok(Self(id))
        } else {
            Err(WorkerIdError(id))
        }
    }

    /// A random id of the form `worker-1a2b3c4d`.
    pub fn random() -> Self {
        let uuid = Uuid::new_v4().simple().to_string();
        Self(format!("worker-{}", &uuid[..8]))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for WorkerId {
    type Err = WorkerIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for WorkerId {
    type Error = WorkerIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<WorkerId> for String {
    fn from(id: WorkerId) -> Self {
        id.0
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_are_v7_and_ordered() {
        let a = InstanceId::new();
        let b = InstanceId::new();
        assert_eq!(a.as_uuid().get_version_num(), 7);
        assert!(a < b);
        assert_eq!(a.to_string().parse::<InstanceId>().unwrap(), a);
    }

    #[test]
    fn worker_ids_validate() {
        assert!(WorkerId::new("w1").is_ok());
        assert!(WorkerId::new("").is_err());
        assert!(WorkerId::new("a/b").is_err());
        assert!(WorkerId::new("x".repeat(65)).is_err());
        let random = WorkerId::random();
        assert!(WorkerId::new(random.as_str()).is_ok());
    }
}
