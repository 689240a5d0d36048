//! An upstream response body streaming back, and the connection it arrives on.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::upstream_connection::UpstreamConnection;
use super::upstream_pool::UpstreamPool;

/// The body of an upstream response. Polling it drives its connection (see
/// [`UpstreamConnection`]); when it is dropped after its end, the connection goes back to the
/// pool for the next request, and otherwise (the client went away mid-body) it is closed.
#[derive(Debug)]
pub(crate) struct UpstreamBody {
    body: Incoming,
    connection: Option<UpstreamConnection>,
    pool: UpstreamPool,
    /// The body has returned its last frame (a chunked body never says so beforehand).
    ended: bool,
}

impl UpstreamBody {
    pub(crate) fn new(body: Incoming, connection: UpstreamConnection, pool: UpstreamPool) -> Self {
        Self {
            body,
            connection: Some(connection),
            pool,
            ended: false,
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if let Some(connection) = &mut this.connection {
            // Reads what has arrived into the body; a connection that ended leaves the body
            // to report how (complete, or an error).
            if !connection.drive(cx) {
                this.connection = None;
            }
        }
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            this.ended = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take()
            && (self.ended || self.body.is_end_stream())
        {
            self.pool.put(connection);
        }
    }
}
