//! The body of every response a proxy sends: an upstream body streamed through, or a small
//! body the proxy wrote itself.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, SizeHint};

use crate::endpoint_state::InFlightGuard;
use crate::forward::UpstreamBody;

/// A response body. An upstream body carries the in-flight guard of its endpoint and drops it
/// as soon as the body ends or fails (or, at the latest, when the body is dropped because the
/// client went away).
#[derive(Debug)]
pub(crate) struct ProxyBody {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Upstream {
        body: UpstreamBody,
        guard: Option<InFlightGuard>,
    },
    Full(Full<Bytes>),
}

impl ProxyBody {
    /// Streams `body` through, keeping `guard` until it ends.
    pub fn upstream(body: UpstreamBody, guard: Option<InFlightGuard>) -> Self {
        Self {
            inner: Inner::Upstream { body, guard },
        }
    }

    /// A body of `bytes`.
    pub fn full(bytes: Bytes) -> Self {
        Self {
            inner: Inner::Full(Full::new(bytes)),
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match &mut self.get_mut().inner {
            Inner::Upstream { body, guard } => {
                let polled = Pin::new(body).poll_frame(cx);
                if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
                    guard.take();
                }
                polled
            }
            Inner::Full(full) => Pin::new(full)
                .poll_frame(cx)
                .map_err(|never| match never {}),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Upstream { body, .. } => body.is_end_stream(),
            Inner::Full(full) => full.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Upstream { body, .. } => body.size_hint(),
            Inner::Full(full) => full.size_hint(),
        }
    }
}
