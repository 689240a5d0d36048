//! A Tucano controller: the API operators and workers talk to, and the load balancer.
//!
//! `cargo run --example controller -- --api 127.0.0.1:7070 --balancer 127.0.0.1:8080 --liveness-timeout 3s`
//!
//! With every worker on this host, `--route direct` has the balancer send requests straight
//! to the instances instead of through the workers' proxies.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tucano::core::controller::RebalanceConfig;
use tucano::core::scheduler::Strategy;
use tucano::lb::RouteMode;
use tucano::{ControllerNode, ControllerNodeConfig, StateStore};

/// Runs a Tucano controller: the controller API (services, workers) and the load balancer
/// that routes each request by its Host header to a running instance of that service.
#[derive(Parser, Debug)]
#[command(name = "controller", version)]
struct Flags {
    /// Address of the controller API, which operators and workers call.
    #[arg(long, default_value = "127.0.0.1:7070")]
    api: SocketAddr,
    /// Address of the load balancer, which clients send requests to (`Host: <service>`).
    #[arg(long, default_value = "127.0.0.1:8080")]
    balancer: SocketAddr,
    /// A worker silent for this long is declared dead and its instances are replaced on
    /// other workers (e.g. `3s`, `500ms`).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    liveness_timeout: Duration,
    /// SQLite file the controller keeps its state in, so a restarted controller resumes
    /// where it stopped. Created if missing.
    #[arg(
        long,
        default_value = "tucano-controller.db",
        conflicts_with = "in_memory"
    )]
    state: PathBuf,
    /// Keep state in memory only (lost when the controller stops).
    #[arg(long)]
    in_memory: bool,
    /// How the balancer reaches instances; `direct` saves a hop.
    ///
    /// `direct` needs every instance address reachable from this host. Workers report their
    /// instances at 127.0.0.1:PORT unless started with `--instance-host`, so use it only when all
    /// workers run on this host or report a reachable `--instance-host`.
    #[arg(long, default_value = "via-worker", value_name = "via-worker|direct")]
    route: RouteMode,
    /// How services whose spec names no `placement.strategy` are placed: `least_loaded`
    /// (lowest reported load), `spread` (least allocated worker) or `binpack` (fill a worker
    /// before the next).
    #[arg(
        long,
        default_value = "least_loaded",
        value_name = "least_loaded|spread|binpack"
    )]
    placement_strategy: Strategy,
    /// Turns rebalancing on: this often (e.g. `30s`), instances of a service whose spread
    /// over the workers that can take them differs by two or more move to even it out (new
    /// instance first, old one stopped once the new runs).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "INTERVAL")]
    rebalance_interval: Option<Duration>,
    /// Most instances one rebalancing pass moves.
    #[arg(long, default_value_t = 1, requires = "rebalance_interval", value_parser = clap::value_parser!(u32).range(1..))]
    rebalance_max_moves: u32,
}

#[tokio::main]
async fn main() -> ExitCode {
    tucano::init_logging();
    match run(Flags::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("controller: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(flags: Flags) -> Result<(), Box<dyn std::error::Error>> {
    let mut signals = tucano::ShutdownSignals::install()?;
    let mut config = ControllerNodeConfig::new(flags.api, flags.balancer);
    config.controller.liveness_timeout = flags.liveness_timeout;
    config.route_mode = flags.route;
    config.placement_strategy = flags.placement_strategy;
    config.controller.rebalance = flags.rebalance_interval.map(|interval| RebalanceConfig {
        interval,
        max_moves: flags.rebalance_max_moves,
    });
    config.state = if flags.in_memory {
        StateStore::Memory
    } else {
        StateStore::Sqlite(flags.state)
    };
    let node = ControllerNode::start(config).await?;
    println!("controller API on http://{}", node.api_addr());
    println!(
        "load balancer on http://{} (route: {})",
        node.balancer_addr(),
        flags.route
    );
    let signal = signals.recv().await;
    eprintln!("controller: {signal}: shutting down");
    node.shutdown().await;
    Ok(())
}
