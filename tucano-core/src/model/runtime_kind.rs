//! Which kind of runtime a worker runs instances with.

use std::fmt;

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

impl fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Process => "process",
            Self::Docker => "docker",
        })
    }
}
