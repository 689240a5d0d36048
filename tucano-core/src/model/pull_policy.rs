//! Whether a container runtime may pull a service's image.

use std::fmt;

use serde::{Deserialize, Serialize};

/// When the runtime pulls the image of an image-based service. The default never pulls: an
/// image that is not in the engine is a clear `image_not_found` error, so that a typo does not
/// turn into a long wait on a registry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PullPolicy {
    /// Use the engine's image; never pull.
    #[default]
    Never,
    /// Pull only when the engine lacks the image.
    Missing,
    /// Pull before every start.
    Always,
}

impl fmt::Display for PullPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Never => "never",
            Self::Missing => "missing",
            Self::Always => "always",
        })
    }
}
