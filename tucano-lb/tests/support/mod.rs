//! Real loopback servers and clients for the proxy tests.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tucano_core::transport::RouteSpec;
use tucano_core::transport::{Endpoint, EndpointSink, InstanceDirectory};
use tucano_core::{InstanceId, ServiceName, WorkerId};
use tucano_lb::{Proxy, ProxyConfig, ProxyServer, RoutingTable, WorkerProxy};

/// The longest any single network wait in these tests may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// `future`, or a panic naming `what` after [`WAIT`].
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(WAIT, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {WAIT:?}: {what}"),
    }
}

/// Polls `condition` every 10 ms until it holds, failing after [`WAIT`].
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    within(what, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

/// An HTTP backend that answers every request with JSON describing it:
/// `{"backend", "method", "uri", "headers": {name: [values]}, "body_bytes"}`.
///
/// `?ms=N` delays the answer by N ms (after reading the body); path `/hop` adds hop-by-hop
/// headers to the response; path `/app-error` answers 404 with an `x-tucano-error` header of
/// its own; path `/load` answers with `x-tucano-load: <v>` from `?v=`; `/healthz` answers 200,
/// or 503 while the backend is set unhealthy. While set failing, every request gets 503.
pub struct EchoBackend {
    pub name: String,
    pub addr: SocketAddr,
    /// How many connections it has accepted.
    pub connections: Arc<AtomicUsize>,
    /// Requests it received, by method.
    pub requests: Arc<Mutex<HashMap<String, usize>>>,
    /// While true, `/healthz` answers 503.
    pub unhealthy: Arc<AtomicBool>,
    /// While true, every request gets 503.
    pub failing: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl EchoBackend {
    /// How many requests with `method` it received.
    pub fn received(&self, method: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .get(method)
            .copied()
            .unwrap_or(0)
    }
}

/// What an echo backend's handler shares with it.
#[derive(Clone)]
struct EchoShared {
    name: Arc<str>,
    requests: Arc<Mutex<HashMap<String, usize>>>,
    unhealthy: Arc<AtomicBool>,
    failing: Arc<AtomicBool>,
}

impl Drop for EchoBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn echo_backend(name: &str) -> EchoBackend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shared = EchoShared {
        name: Arc::from(name),
        requests: Arc::default(),
        unhealthy: Arc::default(),
        failing: Arc::default(),
    };
    let connections = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::clone(&connections);
    let handler_shared = shared.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            accepted.fetch_add(1, Ordering::Relaxed);
            let shared = handler_shared.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| echo(shared.clone(), request));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    EchoBackend {
        name: name.to_owned(),
        addr,
        connections,
        requests: shared.requests,
        unhealthy: shared.unhealthy,
        failing: shared.failing,
        task,
    }
}

async fn echo(
    shared: EchoShared,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let name = shared.name;
    let (parts, mut body) = request.into_parts();
    *shared
        .requests
        .lock()
        .unwrap()
        .entry(parts.method.to_string())
        .or_default() += 1;
    let mut body_bytes = 0usize;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => body_bytes += frame.data_ref().map_or(0, Bytes::len),
            Err(_) => break,
        }
    }
    let delay = parts
        .uri
        .query()
        .and_then(|q| q.strip_prefix("ms="))
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(delay)).await;
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (header, value) in &parts.headers {
        headers
            .entry(header.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let body = json!({
        "backend": &*name,
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "headers": headers,
        "body_bytes": body_bytes,
    });
    let mut response = Response::builder().header("content-type", "application/json");
    match parts.uri.path() {
        "/hop" => {
            response = response
                .header("connection", "x-backend-private")
                .header("x-backend-private", "1")
                .header("keep-alive", "timeout=5")
                .header("proxy-authenticate", "Basic realm=x")
                .header("x-backend-public", "1");
        }
        "/app-error" => {
            response = response
                .status(StatusCode::NOT_FOUND)
                .header("x-tucano-error", "unknown_instance");
        }
        "/load" => {
            let load = parts
                .uri
                .query()
                .and_then(|q| q.strip_prefix("v="))
                .unwrap_or("0");
            response = response.header("x-tucano-load", load);
        }
        "/healthz" if shared.unhealthy.load(Ordering::Relaxed) => {
            response = response.status(StatusCode::SERVICE_UNAVAILABLE);
        }
        _ => {}
    }
    if shared.failing.load(Ordering::Relaxed) {
        response = response.status(StatusCode::SERVICE_UNAVAILABLE);
    }
    Ok(response
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap())
}

/// An instance directory the test fills in.
#[derive(Default)]
pub struct TestDirectory(Mutex<HashMap<InstanceId, SocketAddr>>);

impl TestDirectory {
    pub fn insert(&self, id: InstanceId, addr: SocketAddr) {
        self.0.lock().unwrap().insert(id, addr);
    }
}

impl InstanceDirectory for TestDirectory {
    fn address_of(&self, id: &InstanceId) -> Option<SocketAddr> {
        self.0.lock().unwrap().get(id).copied()
    }
}

/// An address on which nothing listens.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

pub fn service(name: &str) -> ServiceName {
    name.parse().unwrap()
}

/// Backends, a worker proxy in front of them, and a balancer routing service `hello` to
/// them through the worker proxy.
pub struct Cluster {
    pub backends: Vec<EchoBackend>,
    pub ids: Vec<InstanceId>,
    pub directory: Arc<TestDirectory>,
    pub worker: ProxyServer,
    pub table: Arc<RoutingTable>,
    pub balancer: ProxyServer,
}

impl Cluster {
    pub async fn start(backends: usize) -> Self {
        Self::with_config(backends, ProxyConfig::default()).await
    }

    pub async fn with_config(count: usize, config: ProxyConfig) -> Self {
        let mut backends = Vec::new();
        for i in 0..count {
            backends.push(echo_backend(&format!("backend-{i}")).await);
        }
        let directory = Arc::new(TestDirectory::default());
        let ids: Vec<InstanceId> = backends
            .iter()
            .map(|backend| {
                let id = InstanceId::new();
                directory.insert(id, backend.addr);
                id
            })
            .collect();
        let worker = WorkerProxy::bind(
            "127.0.0.1:0".parse().unwrap(),
            Arc::clone(&directory) as Arc<dyn InstanceDirectory>,
            config.clone(),
        )
        .await
        .unwrap();
        let table = Arc::new(RoutingTable::new());
        let balancer = Proxy::bind("127.0.0.1:0".parse().unwrap(), Arc::clone(&table), config)
            .await
            .unwrap();
        let cluster = Self {
            backends,
            ids,
            directory,
            worker,
            table,
            balancer,
        };
        let endpoints = (0..count).map(|i| cluster.endpoint(i)).collect();
        cluster
            .table
            .publish(&service("hello"), &RouteSpec::default(), endpoints);
        cluster
    }

    /// The endpoint of backend `i`, reached through the worker proxy.
    pub fn endpoint(&self, i: usize) -> Endpoint {
        Endpoint {
            instance: self.ids[i],
            worker: WorkerId::new("worker-1").unwrap(),
            proxy: self.worker.local_addr(),
            address: self.backends[i].addr,
            weight: 1,
        }
    }

    /// The name of the backend serving instance `id`.
    pub fn backend_of(&self, id: &str) -> &str {
        let i = self
            .ids
            .iter()
            .position(|known| known.to_string() == id)
            .unwrap_or_else(|| panic!("unknown instance {id}"));
        &self.backends[i].name
    }

    /// In-flight counts of `hello`'s endpoints.
    pub fn in_flight(&self) -> Vec<usize> {
        self.table
            .route("hello")
            .map(|route| {
                route
                    .endpoints()
                    .iter()
                    .map(|b| b.state().in_flight())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn balancer_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.balancer.local_addr())
    }
}

pub type TestBody = BoxBody<Bytes, Infallible>;

pub fn client() -> Client<HttpConnector, TestBody> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn empty() -> TestBody {
    Empty::new().boxed()
}

pub fn full(bytes: impl Into<Bytes>) -> TestBody {
    Full::new(bytes.into()).boxed()
}

/// A response read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts this is a proxy error with `status` and `code`.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {:?}", self.body);
        assert_eq!(self.headers["content-type"], "application/json");
        let json = self.json();
        assert_eq!(json["error"]["code"], code, "{json}");
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }

    /// The values of `header` the echo backend received.
    pub fn received(&self, header: &str) -> Vec<String> {
        self.json()["headers"][header]
            .as_array()
            .map(|values| {
                values
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Sends `request` and reads the whole response.
pub async fn send(client: &Client<HttpConnector, TestBody>, request: Request<TestBody>) -> Reply {
    within("request", async {
        let response = client.request(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    })
    .await
}

/// A GET of `url` with Host `host`.
pub fn get(url: &str, host: &str) -> Request<TestBody> {
    Request::get(url)
        .header("host", host)
        .body(empty())
        .unwrap()
}

/// A response to a hand-written request.
#[derive(Debug)]
pub struct RawReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.header("content-type"), Some("application/json"));
        assert_eq!(self.json()["error"]["code"], code);
    }
}

/// Writes `request` as is to `addr` and reads until the server closes the connection (send
/// `Connection: close` or use HTTP/1.0). Handles Content-Length bodies only.
pub async fn raw(addr: SocketAddr, request: impl AsRef<[u8]>) -> RawReply {
    within("raw request", async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_ref()).await.unwrap();
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).await.unwrap();
        let split = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&bytes)));
        let head = String::from_utf8(bytes[..split].to_vec()).unwrap();
        let body = bytes[split + 4..].to_vec();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers = lines
            .map(|line| {
                let (name, value) = line.split_once(':').unwrap();
                (name.trim().to_owned(), value.trim().to_owned())
            })
            .collect();
        RawReply {
            status,
            headers,
            body,
        }
    })
    .await
}

/// A request body of `total` bytes in 64 KiB chunks, with no declared length (so it is sent
/// chunked).
pub struct ChunkedBody {
    left: usize,
    chunk: Bytes,
}

impl ChunkedBody {
    pub fn new(total: usize) -> Self {
        Self {
            left: total,
            chunk: Bytes::from(vec![b'x'; 64 * 1024]),
        }
    }
}

impl Body for ChunkedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.left == 0 {
            return Poll::Ready(None);
        }
        let n = this.left.min(this.chunk.len());
        this.left -= n;
        Poll::Ready(Some(Ok(Frame::data(this.chunk.slice(..n)))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
