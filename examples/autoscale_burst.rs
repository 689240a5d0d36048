//! Autoscaling on a real local cluster: a burst of requests to the demo service's
//! `/work?ms=50` through the balancer, with the `capacity` policy on, printing replicas over
//! time. Replicas go up while the burst lasts and back to the minimum after it.
//!
//! `cargo run --release --example autoscale_burst -- --requests 1000 --concurrency 32`
//!
//! Prints one line every half second: seconds since the burst began, desired and running
//! replicas, requests completed. The demo instances are this program re-executed.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use tucano::core::{AutoscaleSpec, ServiceSpec};
use tucano::{ControllerNode, ControllerNodeConfig, WorkerNode, WorkerNodeConfig};

/// The first argument that makes this program serve one demo instance instead.
const SERVE_DEMO: &str = "--serve-demo-instance";
/// Longest the whole run may take.
const RUN_LIMIT: Duration = Duration::from_secs(180);

/// Drives a burst against an autoscaled demo service and prints its replicas over time.
#[derive(Parser, Debug)]
#[command(name = "autoscale_burst", version)]
struct Flags {
    /// Requests in the burst.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    requests: u32,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=512))]
    concurrency: u32,
    /// The service's autoscaling, as in its spec.
    #[arg(
        long,
        default_value = r#"{"policy": "capacity", "min": 1, "max": 8, "max_in_flight": 4, "idle_timeout": "5s"}"#
    )]
    autoscale: String,
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some(SERVE_DEMO) {
        return tucano::demo::main_from_env();
    }
    let flags = Flags::parse();
    let outcome = tokio::runtime::Runtime::new()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
        .and_then(|runtime| runtime.block_on(run(flags)));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("autoscale_burst: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(flags: Flags) -> Result<(), String> {
    let autoscale: AutoscaleSpec =
        serde_json::from_str(&flags.autoscale).map_err(|e| format!("--autoscale: {e}"))?;
    let any: SocketAddr = ([127, 0, 0, 1], 0).into();
    let mut config = ControllerNodeConfig::new(any, any);
    config.autoscale.interval = Duration::from_millis(500);
    let controller = ControllerNode::start(config)
        .await
        .map_err(|e| e.to_string())?;
    let mut workers = Vec::new();
    for _ in 0..2 {
        let config = WorkerNodeConfig::new(controller.api_url(), any, any);
        workers.push(WorkerNode::start(config).await.map_err(|e| e.to_string())?);
    }
    let outcome = burst(&controller, &flags, autoscale).await;
    for worker in workers {
        worker.shutdown().await;
    }
    controller.shutdown().await;
    outcome
}

async fn burst(
    controller: &ControllerNode,
    flags: &Flags,
    autoscale: AutoscaleSpec,
) -> Result<(), String> {
    let program = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut spec = ServiceSpec::new(
        "burst".parse().map_err(|e| format!("{e}"))?,
        vec![program.to_string_lossy().into_owned(), SERVE_DEMO.into()],
    );
    spec.replicas = autoscale.min.max(1);
    let min = autoscale.min;
    spec.autoscale = Some(autoscale);
    let client = controller.client();
    client
        .create_service(&spec)
        .await
        .map_err(|e| format!("deploying failed: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .service("burst")
        .await
        .map_err(|e| format!("reading the service failed: {e}"))?
        .replicas
        .running
        < spec.replicas
    {
        if Instant::now() > deadline {
            return Err("the service did not start within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("http://{}/work?ms=50", controller.balancer_addr());
    let (next, done, failed) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let total = flags.requests as usize;
    let senders: Vec<_> = (0..flags.concurrency)
        .map(|_| {
            let (http, url) = (http.clone(), url.clone());
            let (next, done, failed) = (next.clone(), done.clone(), failed.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    let ok = http
                        .get(&url)
                        .header("host", "burst")
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    if !ok {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let began = Instant::now();
    let mut peak = 0;
    println!("seconds,desired,running,completed");
    loop {
        let view = client
            .service("burst")
            .await
            .map_err(|e| format!("reading the service failed: {e}"))?;
        let completed = done.load(Ordering::Relaxed);
        peak = peak.max(view.spec.replicas);
        println!(
            "{:.1},{},{},{completed}",
            began.elapsed().as_secs_f64(),
            view.spec.replicas,
            view.replicas.running
        );
        let settled = completed >= total && view.spec.replicas == min.max(1);
        if settled || began.elapsed() > RUN_LIMIT {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for sender in senders {
        let _ = sender.await;
    }
    let view = client
        .service("burst")
        .await
        .map_err(|e| format!("reading the service failed: {e}"))?;
    println!();
    println!(
        "{total} requests, {} failed; replicas peaked at {peak}, back to {}",
        failed.load(Ordering::Relaxed),
        view.spec.replicas
    );
    for event in &view.scaling_events {
        println!("  {} -> {}: {}", event.from, event.to, event.reason);
    }
    client
        .delete_service("burst")
        .await
        .map_err(|e| format!("deleting failed: {e}"))?;
    Ok(())
}
