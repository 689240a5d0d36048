//! One endpoint as the balancer holds it: the controller's [`Endpoint`], its load state, and
//! what the proxy needs to send it a request, prepared once when the set is published.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderValue;
use http::uri::Authority;
use tucano_core::InstanceId;
use tucano_core::transport::Endpoint;

use crate::endpoint_state::EndpointState;
use crate::route_mode::RouteMode;

/// An endpoint in a service's [`EndpointSet`](crate::EndpointSet).
#[derive(Clone)]
pub struct Backend {
    endpoint: Endpoint,
    state: Arc<EndpointState>,
    /// Where requests for this endpoint go: its worker's proxy, or the instance itself.
    upstream_addr: SocketAddr,
    /// The same, as an HTTP authority.
    upstream: Authority,
    /// The instance id, ready to be sent as the `x-tucano-instance` header.
    instance_header: HeaderValue,
}

impl Backend {
    /// Prepares `endpoint` with the given load state, to be reached as `mode` says. `None` if
    /// its addresses cannot be written as an HTTP authority or header (which a well-formed
    /// endpoint never hits).
    pub(crate) fn new(
        endpoint: Endpoint,
        state: Arc<EndpointState>,
        mode: RouteMode,
    ) -> Option<Self> {
        let target = match mode {
            RouteMode::ViaWorker => endpoint.proxy,
            RouteMode::Direct => endpoint.address,
        };
        let upstream = Authority::from_maybe_shared(Bytes::from(target.to_string())).ok()?;
        let instance_header =
            HeaderValue::from_maybe_shared(Bytes::from(endpoint.instance.to_string())).ok()?;
        Some(Self {
            endpoint,
            state,
            upstream_addr: target,
            upstream,
            instance_header,
        })
    }

    /// The endpoint as the controller published it.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The instance this endpoint serves.
    pub fn instance(&self) -> &InstanceId {
        &self.endpoint.instance
    }

    /// The endpoint's load state, kept across republished sets.
    #[inline]
    pub fn state(&self) -> &Arc<EndpointState> {
        &self.state
    }

    /// The endpoint's weight (at least 1), before slow start.
    #[inline]
    pub fn weight(&self) -> u32 {
        self.endpoint.weight.max(1)
    }

    /// The weight the endpoint gets now: its weight times its slow-start factor.
    #[inline]
    pub fn effective_weight(&self) -> f64 {
        f64::from(self.weight()) * f64::from(self.state.weight_factor())
    }

    /// Where requests for this endpoint go.
    pub(crate) fn upstream_addr(&self) -> SocketAddr {
        self.upstream_addr
    }

    pub(crate) fn upstream(&self) -> &Authority {
        &self.upstream
    }

    pub(crate) fn instance_header(&self) -> &HeaderValue {
        &self.instance_header
    }
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("instance", &self.endpoint.instance)
            .field("worker", &self.endpoint.worker)
            .field("proxy", &self.endpoint.proxy)
            .field("address", &self.endpoint.address)
            .field("in_flight", &self.state.in_flight())
            .finish()
    }
}
