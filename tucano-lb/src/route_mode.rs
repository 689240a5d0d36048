//! How the balancer reaches instances.

/// How the balancer reaches an instance; chosen per cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RouteMode {
    /// Through the instance's worker proxy, which finds it by `x-tucano-instance` (two hops;
    /// works wherever the balancer reaches the workers).
    #[default]
    ViaWorker,
    /// Straight to the instance's own address (one hop), when the balancer can reach it.
    Direct,
}

impl RouteMode {
    /// The mode's name on a command line: `via-worker` or `direct`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ViaWorker => "via-worker",
            Self::Direct => "direct",
        }
    }
}

impl std::fmt::Display for RouteMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RouteMode {
    type Err = String;

    /// `via-worker` or `direct`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "via-worker" => Ok(Self::ViaWorker),
            "direct" => Ok(Self::Direct),
            other => Err(format!(
                "unknown route mode {other:?}: use via-worker or direct"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for mode in [RouteMode::ViaWorker, RouteMode::Direct] {
            assert_eq!(mode.to_string().parse::<RouteMode>(), Ok(mode));
        }
        assert!("sideways".parse::<RouteMode>().is_err());
        assert_eq!(RouteMode::default(), RouteMode::ViaWorker);
    }
}
