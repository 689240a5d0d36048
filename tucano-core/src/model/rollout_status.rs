//! Where a service's latest rolling update stands, as `GET /v1/services/{name}` shows it.

use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// A service's revision when it is created; each spec change that needs new instances adds one.
pub const FIRST_REVISION: u64 = 1;

/// [`FIRST_REVISION`], for serde defaults of records written before revisions existed.
pub fn first_revision() -> u64 {
    FIRST_REVISION
}

/// The phase of a rolling update.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    /// New instances are replacing the old ones.
    InProgress,
    /// Every replica runs the new revision.
    Complete,
    /// The new revision missed its deadline; the previous one is coming back.
    RollingBack,
    /// Every replica runs the previous revision again.
    RolledBack,
}

impl RolloutState {
    /// True while instances are being replaced.
    pub fn is_active(self) -> bool {
        matches!(self, Self::InProgress | Self::RollingBack)
    }
}

impl fmt::Display for RolloutState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InProgress => "in_progress",
            Self::Complete => "complete",
            Self::RollingBack => "rolling_back",
            Self::RolledBack => "rolled_back",
        })
    }
}

/// A service's latest rolling update: from which revision to which, how far, and why it was
/// rolled back if it was.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutStatus {
    /// Its phase.
    pub state: RolloutState,
    /// The revision the update replaces.
    pub from_revision: u64,
    /// The revision it rolls out.
    pub to_revision: u64,
    /// Replicas of the revision being rolled towards (`to_revision`, or `from_revision` while
    /// rolling back) that are healthy.
    pub ready: u32,
    /// Why it was rolled back, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the update was asked for.
    #[serde(with = "humantime_serde")]
    pub started_at: SystemTime,
    /// When its phase or progress last changed.
    #[serde(with = "humantime_serde")]
    pub updated_at: SystemTime,
}
