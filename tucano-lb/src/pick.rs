//! The outcome of routing a request: the chosen endpoint, counted in flight.

use std::net::SocketAddr;

use http::HeaderValue;
use tucano_core::InstanceId;

use crate::backend::Backend;
use crate::endpoint_state::InFlightGuard;

/// The endpoint chosen for one request. The request counts as in flight on that endpoint
/// until the `Pick` (or the guard taken out of it) is dropped.
#[derive(Debug)]
pub struct Pick {
    instance: InstanceId,
    upstream: SocketAddr,
    instance_header: HeaderValue,
    guard: InFlightGuard,
}

impl Pick {
    /// Starts counting a request on `backend`.
    pub(crate) fn new(backend: &Backend) -> Self {
        Self {
            instance: *backend.instance(),
            upstream: backend.upstream_addr(),
            instance_header: backend.instance_header().clone(),
            guard: backend.state().track(),
        }
    }

    /// The chosen instance.
    pub fn instance(&self) -> &InstanceId {
        &self.instance
    }

    /// The guard counting this request in flight.
    pub fn guard(&self) -> &InFlightGuard {
        &self.guard
    }

    /// Where to send the request: the instance's worker proxy, or the instance itself.
    pub(crate) fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// The `x-tucano-instance` value for the request.
    pub(crate) fn instance_header(&self) -> &HeaderValue {
        &self.instance_header
    }

    /// The guard alone, to keep the request counted until its response ends.
    pub(crate) fn into_guard(self) -> InFlightGuard {
        self.guard
    }
}
