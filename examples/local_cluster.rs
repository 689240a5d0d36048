//! A whole Tucano cluster in one process: controller, load balancer and two workers, serving
//! the bundled demo service `hello` with three replicas.
//!
//! `cargo run --example local_cluster`, then paste the `curl` line it prints. Ctrl-C stops
//! everything; the demo instances are this program re-executed, and they die with it.
//! `--route direct` has the balancer skip the workers' proxies (everything is on loopback, so
//! the instances are reachable from it).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tucano::core::ServiceSpec;
use tucano::core::wire::ServiceView;
use tucano::lb::RouteMode;
use tucano::{ControllerNode, ControllerNodeConfig, ShutdownSignals, WorkerNode, WorkerNodeConfig};

/// The first argument that makes this program serve one demo instance instead of a cluster.
const SERVE_DEMO: &str = "--serve-demo-instance";

/// Runs a local Tucano cluster (controller, balancer and workers in one process) and deploys
/// the demo service `hello` on it.
#[derive(Parser, Debug)]
#[command(name = "local_cluster", version)]
struct Flags {
    /// Address of the controller API.
    #[arg(long, default_value = "127.0.0.1:7070")]
    api: SocketAddr,
    /// Address of the load balancer.
    #[arg(long, default_value = "127.0.0.1:8080")]
    balancer: SocketAddr,
    /// Number of workers.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=16))]
    workers: u16,
    /// Replicas of the demo service `hello`.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=100))]
    replicas: u32,
    /// How the balancer reaches instances; `direct` saves a hop.
    ///
    /// `via-worker` takes the path a cluster spread over hosts takes. `direct` works here
    /// because everything is on loopback.
    #[arg(long, default_value = "via-worker", value_name = "via-worker|direct")]
    route: RouteMode,
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some(SERVE_DEMO) {
        return tucano::demo::main_from_env();
    }
    let flags = Flags::parse();
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(run(flags)),
        Err(error) => {
            eprintln!("local_cluster: cannot start the async runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(flags: Flags) -> ExitCode {
    tucano::init_logging();
    let mut signals = match ShutdownSignals::install() {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("local_cluster: cannot handle signals: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut config = ControllerNodeConfig::new(flags.api, flags.balancer);
    config.controller.liveness_timeout = Duration::from_secs(3);
    config.route_mode = flags.route;
    let controller = match ControllerNode::start(config).await {
        Ok(node) => node,
        Err(error) => {
            eprintln!(
                "local_cluster: {error} (is another cluster running? see --api and --balancer)"
            );
            return ExitCode::FAILURE;
        }
    };
    let mut workers = Vec::new();
    let any: SocketAddr = ([127, 0, 0, 1], 0).into();
    for _ in 0..flags.workers {
        let config = WorkerNodeConfig::new(controller.api_url(), any, any);
        match WorkerNode::start(config).await {
            Ok(worker) => workers.push(worker),
            Err(error) => {
                eprintln!("local_cluster: worker failed to start: {error}");
                return stop(controller, workers, ExitCode::FAILURE).await;
            }
        }
    }
    let deployed = tokio::select! {
        deployed = deploy(&controller, flags.replicas) => Some(deployed),
        signal = signals.recv() => {
            eprintln!("local_cluster: {signal} while deploying: stopping the cluster");
            None
        }
    };
    let outcome = match deployed {
        Some(Ok(view)) => {
            announce(&controller, &view, flags.route);
            let signal = signals.recv().await;
            eprintln!("local_cluster: {signal}: stopping the cluster");
            ExitCode::SUCCESS
        }
        Some(Err(error)) => {
            eprintln!("local_cluster: {error}");
            ExitCode::FAILURE
        }
        None => ExitCode::SUCCESS,
    };
    stop(controller, workers, outcome).await
}

/// Deploys `hello` and waits (bounded) until its replicas run.
async fn deploy(controller: &ControllerNode, replicas: u32) -> Result<ServiceView, String> {
    let program = std::env::current_exe()
        .map_err(|e| format!("cannot find this program to serve the demo: {e}"))?;
    let name = "hello".parse().map_err(|e| format!("{e}"))?;
    let mut spec = ServiceSpec::new(
        name,
        vec![program.to_string_lossy().into_owned(), SERVE_DEMO.into()],
    );
    spec.replicas = replicas;
    spec.stop_grace_period = Duration::from_secs(5);
    let client = controller.client();
    client
        .create_service(&spec)
        .await
        .map_err(|e| format!("deploying hello failed: {e}"))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let view = client
            .service("hello")
            .await
            .map_err(|e| format!("reading hello failed: {e}"))?;
        if view.replicas.running == replicas {
            return Ok(view);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "hello has {} of {replicas} replicas running after 30 s: {:?}",
                view.replicas.running,
                view.instances
                    .iter()
                    .filter_map(|i| i.reason.clone())
                    .collect::<Vec<_>>()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn announce(controller: &ControllerNode, view: &ServiceView, route: RouteMode) {
    println!();
    println!("Tucano local cluster is up.");
    println!("  controller API  http://{}", controller.api_addr());
    println!(
        "  load balancer   http://{} (route: {})",
        controller.balancer_addr(),
        route
    );
    println!(
        "  service hello   {} replicas running:",
        view.replicas.running
    );
    for instance in &view.instances {
        let worker = instance
            .worker
            .as_ref()
            .map(|w| w.to_string())
            .unwrap_or_default();
        println!("    {}  {}  on {}", instance.id, instance.state, worker);
    }
    println!();
    println!("Try:");
    println!(
        "  curl -H 'Host: hello' http://{}/",
        controller.balancer_addr()
    );
    println!("  curl http://{}/v1/services/hello", controller.api_addr());
    println!();
    println!("Ctrl-C stops everything.");
}

/// Stops the workers together (so none takes over another's instances), then the controller.
async fn stop(controller: ControllerNode, workers: Vec<WorkerNode>, code: ExitCode) -> ExitCode {
    let stopping: Vec<_> = workers
        .into_iter()
        .map(|worker| tokio::spawn(worker.shutdown()))
        .collect();
    for stopped in stopping {
        let _ = stopped.await;
    }
    controller.shutdown().await;
    code
}
