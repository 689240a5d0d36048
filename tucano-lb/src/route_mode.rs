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
