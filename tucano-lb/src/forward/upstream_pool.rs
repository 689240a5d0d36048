//! The keep-alive pool: idle upstream connections, by upstream address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;

use super::upstream_connection::UpstreamConnection;

/// How often idle connections past their idle timeout are closed, at most (and at least every
/// quarter of the idle timeout).
const MAX_SWEEP_INTERVAL: Duration = Duration::from_secs(5);
/// How often, at least, the sweep runs.
const MIN_SWEEP_INTERVAL: Duration = Duration::from_millis(100);

/// Idle keep-alive connections, most recently used first, at most `max_idle` per upstream,
/// each closed once idle for `idle_timeout`.
///
/// Taking a connection checks it is still open and ready (the upstream may have closed it
/// while it was idle) and that it has not been idle too long; a background task (on the Tokio
/// runtime the pool was made on, ending with the pool) closes connections idle past their
/// timeout. Cloning shares the pool.
#[derive(Clone, Debug)]
pub(crate) struct UpstreamPool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    idle: Mutex<HashMap<SocketAddr, Vec<Idle>>>,
    idle_timeout: Duration,
    max_idle: usize,
}

#[derive(Debug)]
struct Idle {
    connection: UpstreamConnection,
    since: Instant,
}

impl UpstreamPool {
    /// An empty pool; its sweeper runs on the current Tokio runtime, if there is one.
    pub fn new(idle_timeout: Duration, max_idle: usize) -> Self {
        let inner = Arc::new(Inner {
            idle: Mutex::new(HashMap::new()),
            idle_timeout,
            max_idle,
        });
        if let Ok(runtime) = Handle::try_current() {
            let interval = (idle_timeout / 4).clamp(MIN_SWEEP_INTERVAL, MAX_SWEEP_INTERVAL);
            runtime.spawn(sweep_until_dropped(Arc::downgrade(&inner), interval));
        }
        Self { inner }
    }

    /// An idle connection to `upstream` that is ready for a request, if there is one.
    pub fn take(&self, upstream: SocketAddr) -> Option<UpstreamConnection> {
        loop {
            let idle = self.inner.lock().get_mut(&upstream)?.pop()?;
            // Checked outside the lock; one that fails is dropped (closed) here.
            let mut connection = idle.connection;
            if idle.since.elapsed() < self.inner.idle_timeout && connection.is_ready_now() {
                return Some(connection);
            }
        }
    }

    /// Keeps `connection` for the next request to its upstream if it is ready for one and the
    /// pool has room; otherwise closes it.
    pub fn put(&self, mut connection: UpstreamConnection) {
        if self.inner.max_idle == 0 || !connection.is_ready_now() {
            return;
        }
        connection.mark_reused();
        let mut pool = self.inner.lock();
        let idle = pool.entry(connection.upstream()).or_default();
        if idle.len() < self.inner.max_idle {
            idle.push(Idle {
                connection,
                since: Instant::now(),
            });
        }
    }

    /// How many idle connections the pool holds.
    #[cfg(test)]
    pub fn idle_count(&self) -> usize {
        self.inner.lock().values().map(Vec::len).sum()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, HashMap<SocketAddr, Vec<Idle>>> {
        // The map stays consistent whatever panicked while holding it.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Closes the connections idle for `idle_timeout` or longer.
    fn sweep(&self) {
        let expired: Vec<Idle> = {
            let mut pool = self.lock();
            let mut expired = Vec::new();
            for idle in pool.values_mut() {
                // Oldest first: the expired ones are a prefix.
                let keep_from = idle.partition_point(|c| c.since.elapsed() >= self.idle_timeout);
                expired.extend(idle.drain(..keep_from));
            }
            pool.retain(|_, idle| !idle.is_empty());
            expired
        };
        drop(expired);
    }
}

async fn sweep_until_dropped(pool: Weak<Inner>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match pool.upgrade() {
            Some(pool) => pool.sweep(),
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// An upstream answering every request on a connection with an empty 200, closing the
    /// connection after `per_connection` requests.
    async fn upstream(per_connection: usize) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buffer = [0u8; 4096];
                    for _ in 0..per_connection {
                        let mut read = 0;
                        while !buffer[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                            match stream.read(&mut buffer[read..]).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => read += n,
                            }
                        }
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        address
    }

    async fn exchange(connection: &mut UpstreamConnection) -> u16 {
        let request = Request::get("/").body(RequestBody::Empty).unwrap();
        let response = connection.send(request).await.unwrap();
        response.status().as_u16()
    }

    use super::super::request_body::RequestBody;
    use http::Request;

    #[tokio::test]
    async fn a_connection_is_reused_until_its_upstream_closes_it() {
        let address = upstream(2).await;
        let pool = UpstreamPool::new(Duration::from_secs(90), 8);
        assert!(pool.take(address).is_none());
        let mut connection = UpstreamConnection::open(address).await.unwrap();
        assert_eq!(exchange(&mut connection).await, 200);
        assert!(!connection.is_reused());
        pool.put(connection);
        assert_eq!(pool.idle_count(), 1);
        let mut connection = pool.take(address).expect("the idle connection");
        assert!(connection.is_reused());
        assert_eq!(exchange(&mut connection).await, 200);
        // The upstream closes it after its second request: it does not go back.
        tokio::time::sleep(Duration::from_millis(50)).await;
        pool.put(connection);
        assert_eq!(pool.idle_count(), 0);
    }

    #[tokio::test]
    async fn a_connection_closed_while_idle_is_not_handed_out() {
        let address = upstream(1).await;
        let pool = UpstreamPool::new(Duration::from_secs(90), 8);
        let mut connection = UpstreamConnection::open(address).await.unwrap();
        assert_eq!(exchange(&mut connection).await, 200);
        // Put back at once, before the upstream's close is seen.
        pool.put(connection);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(pool.take(address).is_none());
    }

    #[tokio::test]
    async fn idle_connections_are_closed_after_the_idle_timeout_and_capped() {
        let address = upstream(100).await;
        let pool = UpstreamPool::new(Duration::from_millis(200), 2);
        for _ in 0..3 {
            let mut connection = UpstreamConnection::open(address).await.unwrap();
            assert_eq!(exchange(&mut connection).await, 200);
            pool.put(connection);
        }
        assert_eq!(pool.idle_count(), 2, "at most max_idle are kept");
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(pool.idle_count(), 0, "the sweeper closed them");
    }

    #[tokio::test]
    async fn the_sweeper_ends_with_the_pool() {
        let pool = UpstreamPool::new(Duration::from_millis(100), 2);
        let weak = Arc::downgrade(&pool.inner);
        drop(pool);
        assert!(weak.upgrade().is_none());
    }
}
