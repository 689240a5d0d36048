//! Which kind of runtime a worker runs instances with.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The kind of [`Runtime`](crate::Runtime) a worker uses; the scheduler matches it against
/// what a service needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeKind {
    /// Local processes ([`ProcessRuntime`](crate::ProcessRuntime)).
    Process,
    /// Docker containers.
    Docker,
}

impl FromStr for RuntimeKind {
    type Err = String;

    /// `"process"` or `"docker"`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "process" => Ok(Self::Process),
            "docker" => Ok(Self::Docker),
            other => Err(format!(
                "unknown runtime {other:?}: expected \"process\" or \"docker\""
            )),
        }
    }
}

impl fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Process => "process",
            Self::Docker => "docker",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_displays() {
        for kind in [RuntimeKind::Process, RuntimeKind::Docker] {
            assert_eq!(kind.to_string().parse::<RuntimeKind>(), Ok(kind));
        }
        assert!(
            "podman"
                .parse::<RuntimeKind>()
                .unwrap_err()
                .contains("podman")
        );
    }
}
