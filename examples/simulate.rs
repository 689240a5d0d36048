//! Runs the autoscaling simulator's scenarios (tucano-sim) and writes their CSV tables and
//! PNG charts.
//!
//! `cargo run --release --example simulate -- <scenario|all> --out <dir> [--seed N]`
//!
//! Scenarios: response_time, burst, replicas_vs_load, step, square_wave. Each prints a
//! summary and its goals (MET / NOT MET); the exit status is 1 if a goal was not met. Same
//! seed, same files. docs/simulation.md shows and explains the charts.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tucano_sim::scenarios::{self, DEFAULT_SEED, SCENARIOS};

/// Runs simulator scenarios.
#[derive(Debug, Parser)]
struct Args {
    /// A scenario (response_time, burst, replicas_vs_load, step, square_wave) or `all`.
    scenario: String,
    /// Directory for the CSV and PNG files (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Seed of every random draw.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let names: Vec<&str> = if args.scenario == "all" {
        SCENARIOS.to_vec()
    } else {
        vec![args.scenario.as_str()]
    };
    let mut all_met = true;
    for name in names {
        let started = std::time::Instant::now();
        let results = match scenarios::compute(name, args.seed) {
            Ok(results) => results,
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::from(2);
            }
        };
        let files = match scenarios::write(&results, &args.out) {
            Ok(files) => files,
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::from(2);
            }
        };
        println!(
            "== {name} (seed {}, {:.1} s)",
            args.seed,
            started.elapsed().as_secs_f64()
        );
        print!("{}", results.report());
        for file in files {
            println!("wrote {}", file.display());
        }
        all_met &= results.goals.iter().all(|goal| goal.met);
    }
    if all_met {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
