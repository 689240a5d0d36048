//! A Tucano worker: runs instances as local processes or Docker containers and proxies
//! requests to them.
//!
//! `cargo run --example worker -- --controller http://127.0.0.1:7070 --listen 127.0.0.1:7071 --proxy 127.0.0.1:8081`
//!
//! With Docker (image-based services; `cargo run --example build_demo_image` builds
//! `tucano-demo:latest`): `cargo run --example worker -- --runtime docker --id w1`

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tucano::core::scheduler::parse_label;
use tucano::core::{Resources, RuntimeKind, WorkerId};
use tucano::{WorkerNode, WorkerNodeConfig};

/// Runs a Tucano worker: registers with the controller, starts and stops instances (local
/// processes, or Docker containers with `--runtime docker`) on its request, reports metrics and instance states in heartbeats, and proxies
/// the balancer's requests to its instances. Ctrl-C or SIGTERM stops every instance (SIGTERM, then
/// SIGKILL after its grace period) and deregisters; if the worker is killed instead, its
/// instances die with it.
#[derive(Parser, Debug)]
#[command(name = "worker", version)]
struct Flags {
    /// Base URL of the controller API.
    #[arg(long, default_value = "http://127.0.0.1:7070")]
    controller: String,
    /// Address of this worker's API, which the controller calls.
    #[arg(long, default_value = "127.0.0.1:7071")]
    listen: SocketAddr,
    /// Address of this worker's proxy, which the balancer sends requests to.
    #[arg(long, default_value = "127.0.0.1:8081")]
    proxy: SocketAddr,
    /// IP address to advertise to the controller when --listen or --proxy is 0.0.0.0.
    #[arg(long)]
    advertise: Option<IpAddr>,
    /// The IP address the worker's instances are reached at, which the controller publishes to
    /// the balancer. The default, 127.0.0.1, is right when the balancer goes through this
    /// worker's proxy (`--route via-worker`, the controller's default); with `--route direct`
    /// on a controller on another host, give this host's address reachable from there (the
    /// instances must listen on it: tucano-demo listens on every address).
    #[arg(long, default_value = "127.0.0.1")]
    instance_host: IpAddr,
    /// What runs the instances: `process` (command-based services) or `docker` (image-based
    /// services, through the engine at DOCKER_HOST or /var/run/docker.sock). The worker
    /// advertises it, and the scheduler places each service on a worker that can run it.
    #[arg(long, default_value = "process")]
    runtime: RuntimeKind,
    /// With `--runtime docker`: attach instances to this Docker network and reach them at their
    /// address on it, instead of publishing their ports on --instance-host.
    #[arg(long)]
    docker_network: Option<String>,
    /// This worker's id (letters, digits, '-', '_', '.'); random if omitted. Give one with
    /// `--runtime docker` so that a restarted worker adopts its running containers.
    #[arg(long)]
    id: Option<WorkerId>,
    /// A label to register with, `key=value` (repeatable): placement constraints such as
    /// `"zone=a"` match them.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// CPUs to offer to instances (their requests are counted against it); the host's CPU
    /// count if omitted.
    #[arg(long, requires = "memory_mb")]
    cpus: Option<f64>,
    /// Memory to offer to instances, in MiB; the host's memory if omitted.
    #[arg(long, requires = "cpus")]
    memory_mb: Option<u64>,
    /// How often to send a heartbeat with metrics and instance states (e.g. `1s`).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    heartbeat_interval: Duration,
}

#[tokio::main]
async fn main() -> ExitCode {
    tucano::init_logging();
    match run(Flags::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("worker: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(flags: Flags) -> Result<(), Box<dyn std::error::Error>> {
    let mut signals = tucano::ShutdownSignals::install()?;
    let mut config = WorkerNodeConfig::new(flags.controller, flags.listen, flags.proxy);
    config.advertise = flags.advertise;
    config.id = flags.id;
    config.heartbeat_interval = flags.heartbeat_interval;
    config.runtime.host = flags.instance_host;
    config.runtime_kind = flags.runtime;
    config.docker_network = flags.docker_network;
    config.labels = flags.labels.into_iter().collect();
    if let (Some(cpus), Some(memory_mb)) = (flags.cpus, flags.memory_mb) {
        let capacity = Resources { cpus, memory_mb };
        capacity.validate()?;
        config.capacity = Some(capacity);
    }
    let node = WorkerNode::start(config).await?;
    println!(
        "worker {} API on http://{}, proxy on {}",
        node.worker().id(),
        node.api_addr(),
        node.proxy_addr()
    );
    let signal = signals.recv().await;
    eprintln!("worker: {signal}: shutting down");
    node.shutdown().await;
    Ok(())
}
