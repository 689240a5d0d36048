//! One HTTP/1.1 connection to an upstream, driven by whoever is using it.

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{TrySendError, http1};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tracing::debug;

use super::request_body::RequestBody;

type Driver = http1::Connection<TokioIo<TcpStream>, RequestBody>;

/// A keep-alive connection to one upstream.
///
/// hyper splits a client connection into a handle that sends requests and a future that does
/// the reading and writing. Instead of spawning that future as a task of its own (one task
/// wake-up each way for every request, as hyper-util's pooled client does), the request that
/// holds the connection polls it: [`send`](Self::send) while waiting for the response head,
/// then the response body (see [`UpstreamBody`](super::UpstreamBody)) while streaming it back.
/// An idle connection in the pool is polled by no one; it is checked when it is taken out.
pub(crate) struct UpstreamConnection {
    upstream: SocketAddr,
    sender: http1::SendRequest<RequestBody>,
    /// `None` once the connection has ended.
    driver: Option<Pin<Box<Driver>>>,
    reused: bool,
}

impl UpstreamConnection {
    /// Opens a connection to `upstream` (without a timeout: the caller bounds it).
    pub async fn open(upstream: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(upstream).await?;
        if let Err(error) = stream.set_nodelay(true) {
            debug!(%upstream, %error, "cannot set TCP_NODELAY");
        }
        let (sender, driver) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        Ok(Self {
            upstream,
            sender,
            driver: Some(Box::pin(driver)),
            reused: false,
        })
    }

    /// The upstream this connection goes to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// True when this connection served a request before.
    pub fn is_reused(&self) -> bool {
        self.reused
    }

    /// Marks the connection as having served a request, as it goes back to the pool.
    pub fn mark_reused(&mut self) {
        self.reused = true;
    }

    /// Sends `request` and waits for the response head, driving the connection meanwhile. A
    /// request the connection could not start sending (it had just been closed) comes back in
    /// the error.
    pub async fn send(
        &mut self,
        request: Request<RequestBody>,
    ) -> Result<Response<Incoming>, TrySendError<Request<RequestBody>>> {
        let mut response = std::pin::pin!(self.sender.try_send_request(request));
        poll_fn(|cx| {
            if let Poll::Ready(result) = response.as_mut().poll(cx) {
                return Poll::Ready(result);
            }
            if self.drive(cx) {
                Poll::Pending
            } else {
                // The connection ended: the response future resolves with its error now.
                response.as_mut().poll(cx)
            }
        })
        .await
    }

    /// Polls the connection's reads and writes; false once it has ended.
    pub fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(driver) = &mut self.driver
            && let Poll::Ready(result) = driver.as_mut().poll(cx)
        {
            if let Err(error) = result {
                debug!(upstream = %self.upstream, %error, "upstream connection failed");
            }
            self.driver = None;
        }
        self.driver.is_some()
    }

    /// True when the connection is open and ready for another request, after letting it
    /// catch up on what happened since it was last polled (the end of the previous exchange,
    /// or the upstream closing it).
    pub fn is_ready_now(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        self.drive(&mut cx) && self.sender.is_ready()
    }
}

impl std::fmt::Debug for UpstreamConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamConnection")
            .field("upstream", &self.upstream)
            .field("open", &self.driver.is_some())
            .field("reused", &self.reused)
            .finish()
    }
}
