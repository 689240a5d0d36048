//! The seam every balancing policy implements.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderMap;

use crate::backend::Backend;
use crate::endpoint_set::EndpointSet;

/// A balancing policy: picks the endpoint a request goes to.
///
/// One instance serves one service. [`pick`](Balancer::pick) is on every request's path: it
/// must be synchronous, must not allocate or lock, and must return `None` for an empty set
/// (never divide by its length). Load information lives in each endpoint's
/// [`EndpointState`](crate::EndpointState), which survives endpoint-set updates; a policy
/// keeps only its own decision state (a counter, a ring, a schedule).
///
/// ```
/// use std::sync::Arc;
/// use tucano_lb::{Backend, Balancer, EndpointSet, PickContext};
///
/// /// Always the first endpoint.
/// #[derive(Debug)]
/// struct First;
///
/// impl Balancer for First {
///     fn pick<'a>(&self, endpoints: &'a EndpointSet, _: &PickContext<'_>) -> Option<&'a Backend> {
///         endpoints.get(0)
///     }
/// }
///
/// assert!(First.pick(&EndpointSet::empty(), &PickContext::none()).is_none());
/// ```
pub trait Balancer: Send + Sync + fmt::Debug + 'static {
    /// The endpoint for a request, or `None` when there is none to choose from.
    fn pick<'a>(
        &self,
        endpoints: &'a EndpointSet,
        request: &PickContext<'_>,
    ) -> Option<&'a Backend>;

    /// Called off the request path whenever the service's endpoint set is replaced
    /// (including the first set the policy sees). A policy whose decision state depends on
    /// the set (a hash ring, a weighted schedule) returns a replacement built for
    /// `endpoints`; the routing table swaps the set and the replacement in together, so a
    /// pick never sees one without the other. The default keeps `self`.
    fn rebuild(&self, endpoints: &EndpointSet) -> Option<Arc<dyn Balancer>> {
        let _ = endpoints;
        None
    }
}

/// What a policy may look at in the request it places (to hash on a header or the client's
/// address) and the time of the pick (for estimates that decay). Cheap to build: it only
/// borrows.
#[derive(Clone, Copy, Debug, Default)]
pub struct PickContext<'a> {
    client: Option<IpAddr>,
    headers: Option<&'a HeaderMap>,
    now_ns: u64,
}

impl<'a> PickContext<'a> {
    /// A context that knows nothing about the request, at time 0.
    pub const fn none() -> Self {
        Self {
            client: None,
            headers: None,
            now_ns: 0,
        }
    }

    /// The context of a request from `client` with `headers`, at `now_ns`
    /// ([`clock::now_ns`](crate::clock::now_ns) in a live proxy, simulated time in a simulation).
    pub const fn new(client: IpAddr, headers: &'a HeaderMap, now_ns: u64) -> Self {
        Self {
            client: Some(client),
            headers: Some(headers),
            now_ns,
        }
    }

    /// A context that knows only the time.
    pub const fn at(now_ns: u64) -> Self {
        Self {
            client: None,
            headers: None,
            now_ns,
        }
    }

    /// The time of the pick, in nanoseconds.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// The client's address, when known.
    pub fn client(&self) -> Option<IpAddr> {
        self.client
    }

    /// The request's headers, when known.
    pub fn headers(&self) -> Option<&'a HeaderMap> {
        self.headers
    }
}
