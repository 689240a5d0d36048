//! A standalone Tucano load balancer in front of static backends.
//!
//! `cargo run --release --example balancer -- --listen 127.0.0.1:8090 --service hello=127.0.0.1:9001,127.0.0.1:9002 --policy round_robin`
//!
//! then `curl -H 'Host: hello' http://127.0.0.1:8090/`. The same parts a controller uses —
//! a [`RoutingTable`] fed through [`EndpointSink`] and a [`Proxy`] reading it — composed
//! without a controller: the endpoints are fixed at start and reached directly
//! ([`RouteMode::Direct`]), not through a worker proxy.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tucano::core::transport::{Endpoint, EndpointSink, RouteSpec};
use tucano::core::{BalancingSpec, HashKey, HealthSpec, InstanceId, ServiceName, WorkerId};
use tucano::lb::{PolicyRegistry, Proxy, ProxyConfig, RouteMode, RoutingTable};

/// mimalloc rather than the system allocator: a proxy allocates and frees small buffers and
/// header maps on every request, which glibc's malloc does markedly slower.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The worker id every static endpoint is published under.
const STATIC_WORKER: &str = "static";
/// Largest weight `ADDR@W` accepts.
const MAX_WEIGHT: u32 = 1000;
/// How long the runtime waits for leftover tasks once the proxy has shut down.
const RUNTIME_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(1);

/// Runs Tucano's load balancer alone, in front of fixed backends: each request is routed by
/// its Host header (the service name; port and case ignored) to one of that service's
/// addresses, chosen by the balancing policy, over pooled keep-alive connections.
/// SIGINT or SIGTERM stops accepting, lets requests in progress finish (up to 30 s) and
/// exits; a second signal exits at once.
#[derive(Parser, Debug)]
#[command(name = "balancer", version)]
struct Flags {
    /// Address to listen on for client requests.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// A service and its backends: `NAME=ADDR[,ADDR...]`, where NAME is the Host clients send
    /// (a DNS label: a-z, 0-9, '-') and each ADDR is `IP:PORT`, optionally with a weight
    /// `IP:PORT@W` (1 to 1000, default 1; used by weighted policies). Repeat for more services.
    #[arg(long = "service", value_name = "NAME=ADDR[,ADDR...]", required = true)]
    services: Vec<ServiceArg>,
    /// Balancing policy of every service: any name the policy registry knows (round_robin,
    /// weighted_round_robin, least_connections, power_of_two, peak_ewma, feedback,
    /// consistent_hash, ...); an unknown name is refused with the list of known ones.
    #[arg(long, default_value = "round_robin")]
    policy: String,
    /// What consistent_hash hashes: `client_ip`, `header:NAME` or `cookie:NAME` (requests
    /// without that header or cookie hash on the client address). Only with consistent_hash.
    #[arg(long, value_name = "client_ip|header:NAME|cookie:NAME")]
    hash_key: Option<HashKeyArg>,
    /// Random backends power_of_two, peak_ewma and feedback compare per pick, 2 to 16
    /// (default: 2 for power_of_two and feedback, 4 for peak_ewma).
    #[arg(long, value_name = "N")]
    choice_count: Option<u8>,
    /// Slow-start window, e.g. `30s`: a backend that joins a service already serving ramps
    /// from 10 % to full traffic over it; `0s` turns slow start off. (Backends given here are
    /// all present from the start, so they all start at full weight.)
    #[arg(long, default_value = "0s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    slow_start: Duration,
    /// Check each backend with `GET PATH` (every 5 s, 1 s timeout; 2 failures take it out,
    /// 1 success brings it back), e.g. `/healthz`. No active checks when omitted.
    #[arg(long, value_name = "PATH")]
    health_path: Option<String>,
    /// How long to wait for a TCP connection to a backend before answering 502, e.g. `500ms`.
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    connect_timeout: Duration,
    /// Tokio worker threads serving requests; default: the number of CPUs.
    #[arg(long, value_name = "N")]
    threads: Option<NonZeroUsize>,
}

/// One `--service NAME=ADDR[@W][,ADDR[@W]...]`.
#[derive(Clone, Debug)]
struct ServiceArg {
    name: ServiceName,
    backends: Vec<Backend>,
}

/// One backend address and its weight.
#[derive(Clone, Copy, Debug)]
struct Backend {
    address: SocketAddr,
    weight: u32,
}

impl FromStr for ServiceArg {
    type Err = String;

    fn from_str(arg: &str) -> Result<Self, Self::Err> {
        let (name, addresses) = arg
            .split_once('=')
            .ok_or_else(|| format!("{arg:?} is not NAME=ADDR[,ADDR...]"))?;
        let name: ServiceName = name.parse().map_err(|error| format!("{error}"))?;
        let mut seen = HashSet::new();
        let backends = addresses
            .split(',')
            .map(|item| {
                let backend = item.parse::<Backend>()?;
                if seen.insert(backend.address) {
                    Ok(backend)
                } else {
                    Err(format!(
                        "backend {} is listed twice for {name}",
                        backend.address
                    ))
                }
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self { name, backends })
    }
}

impl FromStr for Backend {
    type Err = String;

    fn from_str(item: &str) -> Result<Self, Self::Err> {
        let item = item.trim();
        if item.is_empty() {
            return Err("an address is empty (check for a stray ',')".into());
        }
        let (address, weight) = match item.split_once('@') {
            Some((address, weight)) => (address, Some(weight)),
            None => (item, None),
        };
        let address: SocketAddr = address
            .parse()
            .map_err(|_| format!("{address:?} is not IP:PORT (e.g. 127.0.0.1:9001)"))?;
        if address.port() == 0 || address.ip().is_unspecified() {
            return Err(format!(
                "{address} is not a backend address: give a concrete IP and a non-zero port"
            ));
        }
        let weight = match weight {
            None => 1,
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|w| (1..=MAX_WEIGHT).contains(w))
                .ok_or_else(|| {
                    format!(
                        "weight {text:?} of {address} is not a whole number from 1 to {MAX_WEIGHT}"
                    )
                })?,
        };
        Ok(Self { address, weight })
    }
}

/// `--hash-key`: a [`HashKey`] written as `client_ip`, `header:NAME` or `cookie:NAME`.
#[derive(Clone, Debug)]
struct HashKeyArg(HashKey);

impl FromStr for HashKeyArg {
    type Err = String;

    fn from_str(arg: &str) -> Result<Self, Self::Err> {
        let key = match arg.split_once(':') {
            None if arg == "client_ip" => HashKey::ClientIp,
            // Header names are case-insensitive; cookie names are not.
            Some(("header", name)) => HashKey::Header(name.to_ascii_lowercase()),
            Some(("cookie", name)) => HashKey::Cookie(name.to_owned()),
            _ => {
                return Err(format!(
                    "{arg:?} is not client_ip, header:NAME or cookie:NAME"
                ));
            }
        };
        Ok(Self(key))
    }
}

/// Flag combinations the parser alone cannot refuse.
#[derive(Debug, thiserror::Error)]
enum SetupError {
    #[error("service {0} is given more than once; list all its addresses in one --service")]
    DuplicateService(ServiceName),
    #[error("--policy: {0}")]
    UnknownPolicy(#[from] tucano::lb::UnknownPolicy),
    #[error("--hash-key is used only by --policy consistent_hash, not {0}")]
    HashKeyWithoutHashing(String),
    #[error("invalid balancing flags: {0}")]
    Balancing(String),
    #[error("--health-path: {0}")]
    Health(String),
    #[error("--connect-timeout must be above 0")]
    ZeroConnectTimeout,
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

fn main() -> ExitCode {
    tucano::init_logging();
    match run(Flags::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("balancer: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Checks the flags, then serves on a runtime with the asked-for thread count until a signal.
fn run(flags: Flags) -> Result<(), Box<dyn std::error::Error>> {
    let table = RoutingTable::with_policies(PolicyRegistry::builtin()).with_mode(RouteMode::Direct);
    let route = route_spec(&flags, table.registry())?;
    check_unique(&flags.services)?;
    if flags.connect_timeout.is_zero() {
        return Err(SetupError::ZeroConnectTimeout.into());
    }
    let threads = flags
        .threads
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, NonZeroUsize::get);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .map_err(SetupError::Runtime)?;
    let result = runtime.block_on(serve(flags, table, route, threads));
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_TIMEOUT);
    result
}

/// Publishes every service and proxies until SIGINT or SIGTERM.
async fn serve(
    flags: Flags,
    table: RoutingTable,
    route: RouteSpec,
    threads: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut signals = tucano::ShutdownSignals::install()?;
    let worker = WorkerId::new(STATIC_WORKER)?;
    for service in &flags.services {
        let endpoints = service
            .backends
            .iter()
            .map(|backend| Endpoint {
                instance: InstanceId::new(),
                worker: worker.clone(),
                // Direct mode sends to `address`; there is no worker proxy in between.
                proxy: backend.address,
                address: backend.address,
                weight: backend.weight,
            })
            .collect();
        table.publish(&service.name, &route, endpoints);
    }
    let config = ProxyConfig {
        connect_timeout: flags.connect_timeout,
        ..ProxyConfig::default()
    };
    let server = Proxy::bind(flags.listen, Arc::new(table), config).await?;
    println!(
        "balancer on http://{} ({}, {threads} threads)",
        server.local_addr(),
        route.balancing.policy,
    );
    for service in &flags.services {
        let backends: Vec<String> = service
            .backends
            .iter()
            .map(|b| match b.weight {
                1 => b.address.to_string(),
                w => format!("{}@{w}", b.address),
            })
            .collect();
        println!("  Host: {} -> {}", service.name, backends.join(", "));
    }
    let signal = signals.recv().await;
    eprintln!("balancer: {signal}: shutting down");
    tokio::select! {
        () = server.shutdown() => {}
        signal = signals.recv() => eprintln!("balancer: {signal} again: exiting now"),
    }
    Ok(())
}

/// The route every service gets, from the policy flags, checked against `registry`.
fn route_spec(flags: &Flags, registry: &PolicyRegistry) -> Result<RouteSpec, SetupError> {
    registry.factory(&flags.policy)?;
    let mut balancing = BalancingSpec::named(flags.policy.clone());
    if let Some(HashKeyArg(key)) = &flags.hash_key {
        if flags.policy != "consistent_hash" {
            return Err(SetupError::HashKeyWithoutHashing(flags.policy.clone()));
        }
        balancing.hash_key = key.clone();
    }
    balancing.choice_count = flags.choice_count;
    balancing.slow_start = flags.slow_start;
    balancing.validate().map_err(SetupError::Balancing)?;
    let health = match &flags.health_path {
        Some(path) => {
            let health = HealthSpec::path(path.clone());
            health.validate().map_err(SetupError::Health)?;
            Some(health)
        }
        None => None,
    };
    Ok(RouteSpec {
        balancing,
        health,
        ..RouteSpec::default()
    })
}

/// Refuses a service named by two `--service` flags.
fn check_unique(services: &[ServiceArg]) -> Result<(), SetupError> {
    let mut seen = HashSet::new();
    match services.iter().find(|s| !seen.insert(&s.name)) {
        Some(duplicate) => Err(SetupError::DuplicateService(duplicate.name.clone())),
        None => Ok(()),
    }
}
