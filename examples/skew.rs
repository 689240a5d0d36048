//! The skew experiment of issue 3: how each balancing policy copes with backends of very
//! different speeds, measured as latency percentiles (p50, p90, p99, p99.9, max, mean) and the
//! share of requests each backend got.
//!
//! Two cases, each with ten backends:
//! - `spread`: latencies from 1 ms to 1 s in geometric steps (1 2 5 10 22 46 100 215 464 1000
//!   ms), the shape of tower's balance demo;
//! - `one_slow`: 5 to 10 ms, the first backend slowed by 200 ms.
//!
//! The load is an open Poisson process (500 requests/s by default, seeded), the same for every
//! policy: a policy that makes requests slow still gets all of them (a closed loop would send
//! fewer requests while they are slow and flatter it), and requests pile up in flight on slow
//! backends, which is what the load-aware policies react to. Backends serve any number of
//! requests at once in the same time (`tucano-demo`'s delay is a sleep). Requests of the
//! warm-up are sent but not measured. The goal of the issue is peak_ewma's p99 at most
//! 0.1 × round robin's; each table ends with that verdict.
//!
//! Reading the `spread` tables: `power_of_two`, `peak_ewma` and `feedback` (above 8 endpoints)
//! draw two distinct endpoints at random and keep the better one, so both of the `k` slowest of
//! ten are drawn together, and one of them gets the request, for k(k-1)/2 of the 45 pairs: at
//! least 2.2 % of requests go to the 464 ms or the 1 s backend, whatever the cost function, and
//! their p99 cannot be below the 464 ms backend's latency.
//!
//! Two modes:
//!
//! - `sim`: a deterministic discrete-event simulation of the real policies on a simulated
//!   clock (see `skew/sim.rs`); 2 s of warm-up then 120 s measured by default (60 000
//!   requests), a fraction of a second of real time per policy. Same seed, same numbers
//!   (default seed 3).
//!
//!   `cargo run --release --example skew -- sim [--seed 3] [--rate 500] [--seconds 120]`
//!
//! - `real`: ten `tucano-demo` processes on loopback (`TUCANO_DEMO_DELAY_MS`), a tucano-lb
//!   `Proxy` in this process in front of them, an HTTP load generator (see `skew/real.rs`);
//!   2 s of warm-up then 15 s measured per policy and case by default, about 4 minutes for
//!   every policy and both cases. Needs the demo binary built first:
//!
//!   `cargo build --release --bin tucano-demo --example skew`
//!   `target/release/examples/skew real [--policies round_robin,peak_ewma] [--seconds 15]`
//!
//! Common flags: `--cases spread,one_slow`, `--policies a,b` (default: all built-ins),
//! `--rate`, `--seconds`, `--warmup`, `--seed`, `--csv` (CSV rows instead of tables); `sim`
//! also takes `--jitter` (default 0.1: ±10 %), `real` takes `--timeout` (per request, default
//! 5 s) and `--demo-bin`.
//! `benches/skew.sh` builds and runs both modes.

#[path = "skew/real.rs"]
mod real;
#[path = "skew/sim.rs"]
mod sim;
#[path = "skew/workload.rs"]
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use real::{Context as _, Error, RealParams};
use sim::SimParams;
use workload::{Case, DEFAULT_RATE, DEFAULT_SEED, Summary};

/// The skew experiment of issue 3: latency percentiles of every balancing policy over
/// backends of very different speeds, simulated (deterministic) or over loopback (real).
#[derive(Parser, Debug)]
#[command(name = "skew")]
struct Flags {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Deterministic discrete-event simulation of the real policies (no sleeping, no network).
    Sim {
        #[command(flatten)]
        common: Common,
        /// Measured simulated seconds per policy and case, after the warm-up.
        #[arg(long, default_value_t = 120.0)]
        seconds: f64,
        /// Relative jitter of each simulated latency (0.1 = uniform within ±10 %).
        #[arg(long, default_value_t = 0.1)]
        jitter: f64,
    },
    /// Ten tucano-demo processes on loopback behind an in-process tucano-lb Proxy.
    Real {
        #[command(flatten)]
        common: Common,
        /// Measured seconds per policy and case, after the warm-up.
        #[arg(long, default_value_t = 15.0)]
        seconds: f64,
        /// Timeout of every request, e.g. `5s`.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// The tucano-demo executable; default: `tucano-demo` next to this example's
        /// directory (`target/release/tucano-demo` for `target/release/examples/skew`).
        #[arg(long, value_name = "PATH")]
        demo_bin: Option<PathBuf>,
    },
}

/// Flags of both modes.
#[derive(Args, Debug)]
struct Common {
    /// Cases to run, comma-separated: spread, one_slow.
    #[arg(long, default_value = "spread,one_slow", value_parser = parse_cases)]
    cases: Cases,
    /// Policies to run, comma-separated, or `all`.
    #[arg(long, default_value = "all", value_parser = parse_policies)]
    policies: Policies,
    /// Requests per second (Poisson arrivals).
    #[arg(long, default_value_t = DEFAULT_RATE)]
    rate: f64,
    /// Seconds of requests first sent but not measured, per policy and case.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seed of the arrivals (and, in `sim`, of the jitter and the policies' random draws).
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// Print CSV rows instead of tables.
    #[arg(long)]
    csv: bool,
}

fn main() -> ExitCode {
    let flags = Flags::parse();
    let result = match flags.mode {
        Mode::Sim {
            common,
            seconds,
            jitter,
        } => run_sim(&common, seconds, jitter),
        Mode::Real {
            common,
            seconds,
            timeout,
            demo_bin,
        } => run_real(&common, seconds, timeout, demo_bin),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("skew: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `--cases`: a list, parsed as one value.
#[derive(Clone, Debug)]
struct Cases(Vec<Case>);

/// `--policies`: a list, parsed as one value.
#[derive(Clone, Debug)]
struct Policies(Vec<String>);

fn parse_cases(list: &str) -> Result<Cases, String> {
    workload::parse_cases(list).map(Cases)
}

fn parse_policies(list: &str) -> Result<Policies, String> {
    workload::parse_policies(list).map(Policies)
}

fn check(common: &Common, seconds: f64) -> Result<(), Error> {
    let positive = |x: f64| x.is_finite() && x > 0.0;
    let valid = positive(common.rate)
        && positive(seconds)
        && common.warmup.is_finite()
        && common.warmup >= 0.0;
    if !valid {
        return Err("--rate and --seconds must be above 0, --warmup at least 0".into());
    }
    Ok(())
}

fn run_sim(common: &Common, seconds: f64, jitter: f64) -> Result<(), Error> {
    check(common, seconds)?;
    if !(0.0..1.0).contains(&jitter) {
        return Err("--jitter must be in [0, 1)".into());
    }
    let params = SimParams {
        rate: common.rate,
        seconds,
        warmup: common.warmup,
        jitter,
        seed: common.seed,
    };
    if !common.csv {
        println!(
            "skew sim: seed {}, Poisson {} req/s, {} s warm-up + {} s measured (simulated), latency jitter ±{:.0} %, backends of unbounded concurrency",
            params.seed,
            params.rate,
            params.warmup,
            params.seconds,
            params.jitter * 100.0
        );
    }
    for (index, case) in common.cases.0.iter().enumerate() {
        let rows = common
            .policies
            .0
            .iter()
            .map(|policy| sim::simulate(case, policy, &params))
            .collect::<Result<Vec<Summary>, String>>()?;
        print_case("sim", case, &rows, common.csv, index == 0);
    }
    Ok(())
}

fn run_real(
    common: &Common,
    seconds: f64,
    timeout: Duration,
    demo_bin: Option<PathBuf>,
) -> Result<(), Error> {
    check(common, seconds)?;
    let demo_bin = match demo_bin {
        Some(path) => path,
        None => default_demo_bin()?,
    };
    if !demo_bin.is_file() {
        return Err(format!(
            "{} not found: build it with `cargo build --release --bin tucano-demo` or pass --demo-bin",
            demo_bin.display()
        )
        .into());
    }
    let params = RealParams {
        rate: common.rate,
        seconds,
        warmup: common.warmup,
        seed: common.seed,
        timeout,
        demo_bin,
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context(|| "building the Tokio runtime".to_owned())?;
    let result = runtime.block_on(async {
        // On a signal the experiment is dropped, which kills the backends.
        tokio::select! {
            result = real_cases(common, &params) => result,
            signal = shutdown_signal() => Err(format!("interrupted by {}", signal?).into()),
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    result
}

async fn real_cases(common: &Common, params: &RealParams) -> Result<(), Error> {
    if !common.csv {
        println!(
            "skew real: seed {}, Poisson {} req/s, {} s warm-up + {} s measured per policy, request timeout {:?}, backends {}",
            params.seed,
            params.rate,
            params.warmup,
            params.seconds,
            params.timeout,
            params.demo_bin.display()
        );
    }
    for (index, case) in common.cases.0.iter().enumerate() {
        let rows = real::run_case(case, &common.policies.0, params).await?;
        print_case("real", case, &rows, common.csv, index == 0);
    }
    Ok(())
}

/// Waits for SIGINT or SIGTERM and names it.
async fn shutdown_signal() -> Result<&'static str, Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt =
        signal(SignalKind::interrupt()).context(|| "listening for SIGINT".to_owned())?;
    let mut terminate =
        signal(SignalKind::terminate()).context(|| "listening for SIGTERM".to_owned())?;
    tokio::select! {
        _ = interrupt.recv() => Ok("SIGINT"),
        _ = terminate.recv() => Ok("SIGTERM"),
    }
}

/// `tucano-demo` in the directory above this executable's (`target/<profile>/`).
fn default_demo_bin() -> Result<PathBuf, Error> {
    let exe = std::env::current_exe().context(|| "finding this executable".to_owned())?;
    let profile_dir = exe
        .parent()
        .and_then(|examples| examples.parent())
        .ok_or_else(|| format!("{} has no parent directory", exe.display()))?;
    Ok(profile_dir.join("tucano-demo"))
}

fn print_case(mode: &str, case: &Case, rows: &[Summary], csv: bool, first: bool) {
    if csv {
        print!("{}", workload::table(mode, case, rows, true, first));
        return;
    }
    println!();
    println!(
        "== {mode} / {}: {} ({})",
        case.name,
        case.description,
        case.latencies_text()
    );
    print!("{}", workload::table(mode, case, rows, false, true));
    if let Some(verdict) = workload::verdict(case, rows) {
        println!("{verdict}");
    }
}
