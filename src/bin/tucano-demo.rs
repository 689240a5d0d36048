//! `tucano-demo`: the demo HTTP service Tucano deploys. Configured by environment variables; see `--help` and the
//! `tucano::demo` module.

use std::process::ExitCode;

use clap::Parser;

/// Tucano's demo HTTP service (the workload its examples and tests deploy).
///
/// Configured by environment variables, not flags:
///   PORT                 TCP port to listen on (required)
///   TUCANO_INSTANCE_ID   instance id reported in responses (optional)
///   TUCANO_SERVICE       service name reported in responses (optional)
///   TUCANO_DEMO_BIND     IP address to bind (optional, default 0.0.0.0)
///   RUST_LOG             log filter for the stderr logs (optional, default info)
///
/// Routes (GET, JSON): /  /work?ms=N  /factor?n=N  /healthz  /crash?code=N  /alloc?mb=N.
/// SIGTERM or SIGINT: prints "received SIGTERM" (or SIGINT), drains in-flight requests, exits 0.
#[derive(Parser)]
#[command(name = "tucano-demo", version, verbatim_doc_comment)]
struct Cli {}

fn main() -> ExitCode {
    let _cli = Cli::parse();
    tucano::demo::main_from_env()
}
