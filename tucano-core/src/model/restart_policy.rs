//! Whether an instance that ended on its own is replaced: `"restart"` in a service's spec.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::runtime::ExitStatus;

/// What happens when an instance exits on its own or cannot be started. An instance lost with
/// its worker is always replaced: that is the worker's failure, not the instance's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartPolicy {
    /// Replace it, whatever its exit (a long-running service).
    #[default]
    Always,
    /// Replace it unless it exited with code 0 (a task that may finish).
    OnFailure,
    /// Never replace it: the replica slot stays ended until the service is scaled (even to
    /// the same count) or updated.
    Never,
}

impl RestartPolicy {
    /// Whether an instance that ended with `exit` (`None`: no exit status known, e.g. it could
    /// not be started or vanished) gets a replacement.
    pub fn replaces(self, exit: Option<&ExitStatus>) -> bool {
        match self {
            Self::Always => true,
            Self::OnFailure => !exit.is_some_and(ExitStatus::success),
            Self::Never => false,
        }
    }

    /// True for the default, `always`.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Always => "always",
            Self::OnFailure => "on_failure",
            Self::Never => "never",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: Option<i32>, signal: Option<i32>) -> ExitStatus {
        ExitStatus {
            code,
            signal,
            oom_killed: false,
        }
    }

    #[test]
    fn each_policy_decides_on_the_exit() {
        let clean = exit(Some(0), None);
        let crashed = exit(Some(3), None);
        let killed = exit(None, Some(9));
        let oom = ExitStatus {
            oom_killed: true,
            ..clean
        };
        for status in [
            Some(&clean),
            Some(&crashed),
            Some(&killed),
            Some(&oom),
            None,
        ] {
            assert!(RestartPolicy::Always.replaces(status));
            assert!(!RestartPolicy::Never.replaces(status));
        }
        assert!(!RestartPolicy::OnFailure.replaces(Some(&clean)));
        assert!(RestartPolicy::OnFailure.replaces(Some(&crashed)));
        assert!(RestartPolicy::OnFailure.replaces(Some(&killed)));
        assert!(RestartPolicy::OnFailure.replaces(Some(&oom)));
        assert!(RestartPolicy::OnFailure.replaces(None));
    }

    #[test]
    fn parses_the_documented_names() {
        for (text, policy) in [
            ("\"always\"", RestartPolicy::Always),
            ("\"on_failure\"", RestartPolicy::OnFailure),
            ("\"never\"", RestartPolicy::Never),
        ] {
            assert_eq!(serde_json::from_str::<RestartPolicy>(text).unwrap(), policy);
            assert_eq!(format!("\"{policy}\""), text);
        }
        assert!(serde_json::from_str::<RestartPolicy>("\"sometimes\"").is_err());
    }
}
