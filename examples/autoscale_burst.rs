//! Autoscaling on a real local cluster: a burst of requests to the demo service's
//! `/work?ms=50` through the balancer, with the `capacity` policy on, printing replicas over
//! time. Replicas go up while the burst lasts and back to the minimum after it.
//!
//! `cargo run --release --example autoscale_burst -- --requests 1000 --concurrency 32`
//!
//! Prints one line every half second: seconds since the burst began, desired and running
//! replicas, requests completed. The demo instances are this program re-executed.
//!
//! `--scale-from-zero 5` measures instead how long the first request to a service scaled to
//! zero takes, five times over (the service goes back to zero between rounds).

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
    /// How often the autoscalers decide (the controller node's default is 1 s).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    loop_interval: Duration,
    /// Instead of a burst, time this many first requests to the service scaled to zero.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=50))]
    scale_from_zero: Option<u32>,
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
    config.autoscale.interval = flags.loop_interval;
    let controller = ControllerNode::start(config)
        .await
        .map_err(|e| e.to_string())?;
    let mut workers = Vec::new();
    for _ in 0..2 {
        let config = WorkerNodeConfig::new(controller.api_url(), any, any);
        workers.push(WorkerNode::start(config).await.map_err(|e| e.to_string())?);
    }
    let outcome = match flags.scale_from_zero {
        Some(rounds) => from_zero(&controller, rounds).await,
        None => burst(&controller, &flags, autoscale).await,
    };
    for worker in workers {
        worker.shutdown().await;
    }
    controller.shutdown().await;
    outcome
}

/// The demo service running this program, named `name`.
fn demo_spec(name: &str) -> Result<ServiceSpec, String> {
    let program = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    Ok(ServiceSpec::new(
        name.parse().map_err(|e| format!("{e}"))?,
        vec![program.to_string_lossy().into_owned(), SERVE_DEMO.into()],
    ))
}

/// Waits (at most `within`) until `name` has `replicas` desired and as many running.
async fn settle(
    controller: &ControllerNode,
    name: &str,
    replicas: u32,
    within: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + within;
    loop {
        let view = controller
            .client()
            .service(name)
            .await
            .map_err(|e| format!("reading the service failed: {e}"))?;
        let settled = view.spec.replicas == replicas
            && view.replicas.running == replicas
            && view.replicas.terminating == 0;
        if settled {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{name} did not settle at {replicas} replicas within {within:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Times the first request to a service that scaled itself to zero, `rounds` times.
async fn from_zero(controller: &ControllerNode, rounds: u32) -> Result<(), String> {
    let mut spec = demo_spec("sleepy")?;
    spec.autoscale = Some(
        serde_json::from_str(
            r#"{"policy": "capacity", "min": 1, "max": 2, "idle_timeout": "60s", "to_zero": {"idle_timeout": "2s"}}"#,
        )
        .map_err(|e| e.to_string())?,
    );
    let client = controller.client();
    client
        .create_service(&spec)
        .await
        .map_err(|e| format!("deploying failed: {e}"))?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("http://{}/", controller.balancer_addr());
    let mut worst = Duration::ZERO;
    for round in 1..=rounds {
        settle(controller, "sleepy", 0, Duration::from_secs(30)).await?;
        let began = Instant::now();
        let status = http
            .get(&url)
            .header("host", "sleepy")
            .send()
            .await
            .map_err(|e| format!("the first request failed: {e}"))?
            .status();
        let took = began.elapsed();
        worst = worst.max(took);
        println!("round {round}: first request answered {status} after {took:.2?}");
    }
    println!("worst of {rounds}: {worst:.2?}");
    client
        .delete_service("sleepy")
        .await
        .map_err(|e| format!("deleting failed: {e}"))?;
    Ok(())
}

async fn burst(
    controller: &ControllerNode,
    flags: &Flags,
    autoscale: AutoscaleSpec,
) -> Result<(), String> {
    let mut spec = demo_spec("burst")?;
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
