//! The real half of the skew experiment: ten `tucano-demo` processes on loopback, a tucano-lb
//! `Proxy` in this process in front of them, and an open-loop load generator.
//!
//! Per case, the ten backends are started once (`PORT=0`, `TUCANO_DEMO_BIND=127.0.0.1`,
//! `TUCANO_DEMO_DELAY_MS` = the case's latency, `TUCANO_INSTANCE_ID=b<i>`), and killed at the
//! end, on error and on Ctrl-C / SIGTERM (`kill_on_drop`). Per policy, a fresh
//! `RoutingTable` (built-in policies, `RouteMode::Direct`) gets the ten endpoints through
//! `EndpointSink::publish`, a `Proxy` serves it on a free loopback port, and the generator
//! sends `GET /` with `Host: skew` at Poisson arrival times (the simulation's process, same
//! seed) for warm-up + measured seconds, each request on its own task with a timeout. A
//! request's latency is measured by the client, from sending to the end of the body; the
//! backend that answered is read from the body's `instance`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tucano::core::ServiceName;
use tucano::core::transport::{EndpointSink, RouteSpec};
use tucano::lb::{PolicyRegistry, Proxy, ProxyConfig, RouteMode, RoutingTable};

use super::workload::{
    Arrivals, BACKENDS, Case, HASH_HEADER, Recorder, SERVICE, Summary, balancing, endpoints,
};

/// An error with the context it happened in.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Adds what was being done to an error.
pub trait Context<T> {
    /// `Err(e)` becomes `Err("<what>: <e>")`.
    fn context(self, what: impl FnOnce() -> String) -> Result<T, Error>;
}

impl<T, E: std::fmt::Display> Context<T> for Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|e| format!("{}: {e}", what()).into())
    }
}

/// How long a backend may take to print that it listens.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a killed backend may take to be reaped.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How the real run runs.
#[derive(Clone, Debug)]
pub struct RealParams {
    /// Requests per second (Poisson).
    pub rate: f64,
    /// Measured seconds per policy, after the warm-up.
    pub seconds: f64,
    /// Seconds per policy of requests sent but not measured, first.
    pub warmup: f64,
    /// Seed of the arrival times.
    pub seed: u64,
    /// Every request's timeout (client side); a request past it counts as an error.
    pub timeout: Duration,
    /// The `tucano-demo` executable.
    pub demo_bin: PathBuf,
}

/// The ten backends of a case; dropping them kills the processes.
struct Backends {
    children: Vec<Child>,
    addresses: Vec<SocketAddr>,
}

impl Backends {
    /// Starts one `tucano-demo` per latency of `case` and waits until each listens.
    async fn start(bin: &Path, case: &Case) -> Result<Self, Error> {
        let mut backends = Self {
            children: Vec::with_capacity(BACKENDS),
            addresses: Vec::with_capacity(BACKENDS),
        };
        for (i, delay) in case.latencies_ms.iter().enumerate() {
            let mut child = Command::new(bin)
                .env_remove("TUCANO_DEMO_CAPACITY")
                .env("PORT", "0")
                .env("TUCANO_DEMO_BIND", "127.0.0.1")
                .env("TUCANO_SERVICE", SERVICE)
                .env("TUCANO_INSTANCE_ID", format!("b{i}"))
                .env("TUCANO_DEMO_DELAY_MS", delay.to_string())
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .context(|| format!("starting backend b{i} ({})", bin.display()))?;
            let stdout = child
                .stdout
                .take()
                .ok_or_else(|| format!("backend b{i} has no stdout"))?;
            // Kept in `backends` before waiting, so that a failure below kills it too.
            backends.children.push(child);
            let mut lines = BufReader::new(stdout).lines();
            let line = tokio::time::timeout(START_TIMEOUT, lines.next_line())
                .await
                .context(|| format!("backend b{i} did not start within {START_TIMEOUT:?}"))?
                .context(|| format!("reading backend b{i}'s output"))?
                .ok_or_else(|| format!("backend b{i} exited before listening"))?;
            let address = listening_address(&line)
                .ok_or_else(|| format!("backend b{i} printed {line:?}, not its address"))?;
            backends.addresses.push(address);
            // Keep reading its output, so it never blocks writing.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        }
        Ok(backends)
    }

    /// Kills the backends and waits for them to exit.
    async fn stop(mut self) {
        for child in &mut self.children {
            let _ = child.start_kill();
        }
        for child in &mut self.children {
            let _ = tokio::time::timeout(STOP_TIMEOUT, child.wait()).await;
        }
    }
}

/// The address in `tucano-demo listening on ADDR port=...`.
fn listening_address(line: &str) -> Option<SocketAddr> {
    line.strip_prefix("tucano-demo listening on ")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Runs every policy on `case` and returns their summaries, printing progress to stderr.
pub async fn run_case(
    case: &Case,
    policies: &[String],
    params: &RealParams,
) -> Result<Vec<Summary>, Error> {
    let backends = Backends::start(&params.demo_bin, case).await?;
    let result = run_policies(case, policies, params, &backends.addresses).await;
    backends.stop().await;
    result
}

async fn run_policies(
    case: &Case,
    policies: &[String],
    params: &RealParams,
    addresses: &[SocketAddr],
) -> Result<Vec<Summary>, Error> {
    let service: ServiceName = SERVICE.parse().context(|| "service name".to_owned())?;
    let endpoints = endpoints(addresses)?;
    let mut rows = Vec::with_capacity(policies.len());
    for policy in policies {
        eprintln!(
            "skew real: {} / {policy}: {:.0} s warm-up + {:.0} s at {:.0} req/s",
            case.name, params.warmup, params.seconds, params.rate
        );
        let table = Arc::new(
            RoutingTable::with_policies(PolicyRegistry::builtin()).with_mode(RouteMode::Direct),
        );
        let route = RouteSpec {
            balancing: balancing(policy),
            ..RouteSpec::default()
        };
        EndpointSink::publish(table.as_ref(), &service, &route, endpoints.clone());
        let config = ProxyConfig {
            response_header_timeout: params.timeout,
            shutdown_timeout: Duration::from_secs(2),
            ..ProxyConfig::default()
        };
        let server = Proxy::bind(SocketAddr::from(([127, 0, 0, 1], 0)), table, config)
            .await
            .context(|| "starting the proxy".to_owned())?;
        let result = drive(server.local_addr(), params).await;
        server.shutdown().await;
        rows.push(result?.summary(policy));
    }
    Ok(rows)
}

/// What became of one request.
enum Outcome {
    Answered { backend: usize, latency_ns: u64 },
    Failed(String),
}

/// Sends the Poisson load through the proxy at `proxy` and records the measured requests.
async fn drive(proxy: SocketAddr, params: &RealParams) -> Result<Recorder, Error> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(params.timeout)
        .build()
        .context(|| "building the HTTP client".to_owned())?;
    let url = format!("http://{proxy}/");
    let mut arrivals = Arrivals::new(params.rate, params.seed);
    let warmup_ns = (params.warmup * 1e9) as u64;
    let end_ns = ((params.warmup + params.seconds) * 1e9) as u64;
    let start = Instant::now();
    let mut tasks: JoinSet<(bool, Outcome)> = JoinSet::new();
    let mut recorder = Recorder::new();
    let mut first_error = None;
    let mut collect = |measured: bool, outcome: Outcome, recorder: &mut Recorder| {
        if !measured {
            return;
        }
        match outcome {
            Outcome::Answered {
                backend,
                latency_ns,
            } => recorder.record(backend, latency_ns),
            Outcome::Failed(error) => {
                recorder.error();
                first_error.get_or_insert(error);
            }
        }
    };
    let mut seq = 0u64;
    loop {
        let at_ns = arrivals.next_ns();
        if at_ns >= end_ns {
            break;
        }
        tokio::time::sleep_until(start + Duration::from_nanos(at_ns)).await;
        let request = client
            .get(&url)
            .header(reqwest::header::HOST, SERVICE)
            .header(HASH_HEADER, seq.to_string())
            .timeout(params.timeout);
        tasks.spawn(async move { (at_ns >= warmup_ns, send(request).await) });
        seq += 1;
        while let Some(done) = tasks.try_join_next() {
            let (measured, outcome) = done.context(|| "a request task".to_owned())?;
            collect(measured, outcome, &mut recorder);
        }
    }
    // Every request has its own timeout; this only guards against a stuck task.
    let deadline = Instant::now() + params.timeout + Duration::from_secs(2);
    while !tasks.is_empty() {
        match tokio::time::timeout_at(deadline, tasks.join_next()).await {
            Ok(Some(done)) => {
                let (measured, outcome) = done.context(|| "a request task".to_owned())?;
                collect(measured, outcome, &mut recorder);
            }
            Ok(None) => break,
            Err(_) => {
                let stuck = tasks.len();
                tasks.abort_all();
                return Err(format!("{stuck} requests still running past their timeout").into());
            }
        }
    }
    if let Some(error) = first_error {
        eprintln!("skew real: first failed request: {error}");
    }
    Ok(recorder)
}

/// Sends one request and reads its whole answer.
async fn send(request: reqwest::RequestBuilder) -> Outcome {
    let sent = Instant::now();
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) => return Outcome::Failed(format!("request failed: {error}")),
    };
    let status = response.status();
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(error) => return Outcome::Failed(format!("reading the body failed: {error}")),
    };
    let latency_ns = u64::try_from(sent.elapsed().as_nanos()).unwrap_or(u64::MAX);
    if !status.is_success() {
        return Outcome::Failed(format!(
            "status {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    let instance = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("instance")?.as_str().map(str::to_owned));
    match instance
        .as_deref()
        .and_then(|i| i.strip_prefix('b')?.parse::<usize>().ok())
        .filter(|&i| i < BACKENDS)
    {
        Some(backend) => Outcome::Answered {
            backend,
            latency_ns,
        },
        None => Outcome::Failed(format!(
            "answer from no known backend: {}",
            String::from_utf8_lossy(&body)
        )),
    }
}
