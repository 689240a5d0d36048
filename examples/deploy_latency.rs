//! Deploy latency on the Docker runtime: the time from `POST /v1/services` (N replicas) until
//! each instance is `running`, against N raw `docker create` + `docker start` calls of the
//! same image made the same way (all at once) in the same run.
//!
//! ```text
//! cargo run --release --example deploy_latency -- --replicas 10 --rounds 5
//! ```
//!
//! Each round runs both, alternating which goes first. The k-th fastest Tucano instance is
//! compared with the k-th fastest raw container: the difference is what Tucano adds for that
//! instance. Raw containers are timed twice: when `docker start` returned, and when the
//! container's port accepted a connection (which is when Tucano reports `running`; raw start
//! does not wait for it). Prints p50, p99 and max over every instance of every round. Needs a
//! Docker engine; builds `tucano-demo:latest` first.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use clap::Parser;
use tucano::core::{InstanceState, RuntimeKind, ServiceSpec};
use tucano::docker::bollard::Docker;
use tucano::docker::bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use tucano::docker::bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, StartContainerOptions,
};
use tucano::docker::testing::{containers_labelled, remove_containers_labelled};
use tucano::docker::{DEMO_IMAGE, build_demo_image, connect};
use tucano::{ControllerNode, ControllerNodeConfig, WorkerNode, WorkerNodeConfig};

/// Pause before each deploy, so that the engine has finished removing the previous one's
/// containers.
const SETTLE: Duration = Duration::from_secs(2);
/// Label of the raw containers, for cleanup.
const RAW_LABEL: &str = "tucano.bench=deploy-latency";

/// Measures deploy latency: Tucano against raw engine calls.
#[derive(Parser, Debug)]
#[command(name = "deploy_latency")]
struct Flags {
    /// Instances per deploy.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    replicas: u32,
    /// Rounds (each deploys with Tucano and raw once).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
}

#[tokio::main]
async fn main() -> ExitCode {
    let flags = Flags::parse();
    match run(&flags).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("deploy_latency: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(flags: &Flags) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let docker = connect().await?;
    build_demo_image(&docker, Path::new(env!("CARGO_MANIFEST_DIR"))).await?;
    let any: SocketAddr = ([127, 0, 0, 1], 0).into();
    let controller = ControllerNode::start(ControllerNodeConfig::new(any, any)).await?;
    let worker_id = format!("deploy-bench-{}", std::process::id());
    let mut config = WorkerNodeConfig::new(controller.api_url(), any, any);
    config.id = Some(worker_id.parse()?);
    config.runtime_kind = RuntimeKind::Docker;
    config.heartbeat_interval = Duration::from_millis(200);
    let worker = WorkerNode::start(config).await?;

    let result = rounds(flags, &docker, &controller).await;
    remove_containers_labelled(&docker, RAW_LABEL).await;
    worker.shutdown().await;
    controller.shutdown().await;
    let (raw, ready, tucano) = result?;

    let added = |baseline: &[Duration]| -> Vec<Duration> {
        baseline
            .iter()
            .zip(&tucano)
            .map(|(raw, tucano)| tucano.saturating_sub(*raw))
            .collect()
    };
    let (added_to_start, added_to_ready) = (added(&raw), added(&ready));
    println!(
        "{} rounds of {} instances (per instance, from the first call):",
        flags.rounds, flags.replicas
    );
    println!("{:<34} {:>9} {:>9} {:>9}", "", "p50", "p99", "max");
    for (name, times) in [
        ("raw docker create + start", &raw),
        ("raw create + start + port ready", &ready),
        ("tucano POST -> running", &tucano),
        ("added to create + start", &added_to_start),
        ("added to create + start + ready", &added_to_ready),
    ] {
        println!(
            "{name:<34} {:>7.1}ms {:>7.1}ms {:>7.1}ms",
            ms(percentile(times, 0.50)),
            ms(percentile(times, 0.99)),
            ms(percentile(times, 1.0)),
        );
    }
    let n = flags.replicas as usize;
    let whole: Vec<f64> = ready
        .chunks(n)
        .zip(tucano.chunks(n))
        .map(|(raw, tucano)| ms(last(tucano)) - ms(last(raw)))
        .collect();
    let per_instance = whole.iter().copied().fold(f64::MIN, f64::max) / n as f64;
    println!(
        "whole deploy, tucano all running - raw all ready, per round: {} ms; worst per instance: {per_instance:.1} ms",
        whole
            .iter()
            .map(|d| format!("{d:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// Per-instance times: raw start returned, raw ready, Tucano running.
type Times = (Vec<Duration>, Vec<Duration>, Vec<Duration>);

/// Every round's per-instance times (raw started, raw ready, Tucano running), each round's
/// sorted so that the k-th fastest of one is paired with the k-th fastest of the others.
async fn rounds(
    flags: &Flags,
    docker: &Docker,
    controller: &ControllerNode,
) -> Result<Times, Box<dyn std::error::Error + Send + Sync>> {
    let (mut raw, mut ready, mut tucano) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..flags.rounds {
        let (pairs, mut t) = if round % 2 == 0 {
            let r = raw_round(docker, round, flags.replicas).await?;
            (
                r,
                tucano_round(controller, docker, round, flags.replicas).await?,
            )
        } else {
            let t = tucano_round(controller, docker, round, flags.replicas).await?;
            (raw_round(docker, round, flags.replicas).await?, t)
        };
        let mut r: Vec<Duration> = pairs.iter().map(|p| p.0).collect();
        let mut q: Vec<Duration> = pairs.iter().map(|p| p.1).collect();
        r.sort();
        q.sort();
        t.sort();
        eprintln!(
            "round {round}: raw all started in {:.1} ms (all ready {:.1} ms), tucano all running in {:.1} ms",
            ms(r[r.len() - 1]),
            ms(q[q.len() - 1]),
            ms(t[t.len() - 1])
        );
        raw.extend(r);
        ready.extend(q);
        tucano.extend(t);
    }
    Ok((raw, ready, tucano))
}

/// Creates and starts `n` demo containers at once, as the runtime would; returns when each
/// start returned and when each accepted connections, then removes them.
async fn raw_round(
    docker: &Docker,
    round: u32,
    n: u32,
) -> Result<Vec<(Duration, Duration)>, Box<dyn std::error::Error + Send + Sync>> {
    tokio::time::sleep(SETTLE).await;
    let began = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..n {
        let docker = docker.clone();
        let name = format!("tucano-bench-raw-{}-{round}-{i}", std::process::id());
        tasks.push(tokio::spawn(async move {
            let (key, value) = RAW_LABEL.split_once('=').unwrap_or((RAW_LABEL, ""));
            let body = ContainerCreateBody {
                image: Some(DEMO_IMAGE.to_owned()),
                env: Some(vec!["PORT=8080".to_owned()]),
                labels: Some(HashMap::from([(key.to_owned(), value.to_owned())])),
                exposed_ports: Some(HashMap::from([("8080/tcp".to_owned(), HashMap::new())])),
                host_config: Some(HostConfig {
                    nano_cpus: Some(100_000_000),
                    memory: Some(128 << 20),
                    port_bindings: Some(HashMap::from([(
                        "8080/tcp".to_owned(),
                        Some(vec![PortBinding {
                            host_ip: Some("127.0.0.1".to_owned()),
                            host_port: Some("0".to_owned()),
                        }]),
                    )])),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let options = CreateContainerOptionsBuilder::new().name(&name).build();
            docker.create_container(Some(options), body).await?;
            docker
                .start_container(&name, None::<StartContainerOptions>)
                .await?;
            let started = began.elapsed();
            let ready = ready_at(&docker, &name, began).await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((started, ready))
        }));
    }
    let mut times = Vec::new();
    for task in tasks {
        times.push(task.await??);
    }
    remove_containers_labelled(docker, RAW_LABEL).await;
    Ok(times)
}

/// When container `name` first accepted a connection on its own address (what "running"
/// means to Tucano), measured from `began`; 10 s at most.
async fn ready_at(
    docker: &Docker,
    name: &str,
    began: Instant,
) -> Result<Duration, Box<dyn std::error::Error + Send + Sync>> {
    let inspect = docker
        .inspect_container(name, None::<InspectContainerOptions>)
        .await?;
    let ip = inspect
        .network_settings
        .and_then(|n| n.networks)
        .and_then(|n| n.values().find_map(|e| e.ip_address.clone()))
        .ok_or("no container address")?;
    let address: SocketAddr = format!("{ip}:8080").parse()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(address).await.is_err() {
        if Instant::now() > deadline {
            return Err(format!("{name} not ready within 10 s").into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(began.elapsed())
}

/// Deploys service `bench-{round}` with `n` replicas; returns when each instance became
/// running (as the controller recorded it), then deletes the service.
async fn tucano_round(
    controller: &ControllerNode,
    docker: &Docker,
    round: u32,
    n: u32,
) -> Result<Vec<Duration>, Box<dyn std::error::Error + Send + Sync>> {
    let client = controller.client();
    let name = format!("bench-{round}");
    let mut spec = ServiceSpec::from_image(name.parse()?, DEMO_IMAGE);
    spec.replicas = n;
    spec.stop_grace_period = Duration::from_secs(2);
    // Small requests, so that every replica fits on the one worker whatever its CPU count.
    spec.resources.cpus = 0.1;
    tokio::time::sleep(SETTLE).await;
    let began = Instant::now();
    let began_at = SystemTime::now();
    client.create_service(&spec).await?;
    // Polled slowly, not to steal the CPU the engine needs; each instance's time comes from
    // the controller's own record of when it became running.
    let deadline = began + Duration::from_secs(120);
    let times = loop {
        if Instant::now() > deadline {
            return Err(format!("{name}: not all running within 120 s").into());
        }
        let view = client.service(&name).await?;
        let running: Vec<Duration> = view
            .instances
            .iter()
            .filter(|i| i.state == InstanceState::Running)
            .map(|i| i.updated_at.duration_since(began_at).unwrap_or_default())
            .collect();
        if running.len() == n as usize {
            break running;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    client.delete_service(&name).await?;
    let label = format!("tucano.service={name}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !containers_labelled(docker, &label).await?.is_empty() {
        if Instant::now() > deadline {
            return Err(format!("{name}: containers left after delete").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(times)
}

/// The last (largest, the lists being sorted) of `times`.
fn last(times: &[Duration]) -> Duration {
    times.last().copied().unwrap_or_default()
}

/// The `q` quantile of `times` (nearest rank; 0 for none).
fn percentile(times: &[Duration], q: f64) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied().unwrap_or_default()
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
