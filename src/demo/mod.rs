//! `tucano-demo`: the small HTTP service Tucano deploys in its examples, tests and benchmarks.
//!
//! It is a library module so that any program can serve it: the `tucano-demo` binary is a thin wrapper around
//! [`main_from_env`], and an example can re-execute itself and call [`main_from_env`] (or [`run`]) to serve an instance.
//!
//! # Environment (read by [`DemoConfig::from_env`])
//! - `PORT` (required): TCP port to listen on.
//! - `TUCANO_INSTANCE_ID`, `TUCANO_SERVICE` (optional): reported in responses; JSON `null` when unset.
//! - `TUCANO_DEMO_BIND` (optional): IP address to bind instead of `0.0.0.0`.
//! - `TUCANO_DEMO_DELAY_MS` (optional): latency added to every request but `/healthz`.
//! - `TUCANO_DEMO_CAPACITY` (optional, default 100): every response reports
//!   `x-tucano-load: <requests in flight / capacity>` for the `feedback` balancing policy.
//!
//! # Routes (all `GET`, all JSON)
//! - `/` → `{"instance", "service", "pid", "headers"}`; `headers` maps each lowercase header name to its value, and a
//!   header received several times has its values joined with `", "`.
//! - `/work?ms=N` → sleeps N ms (N ≤ 60000), then `{"instance", "slept_ms"}`.
//! - `/factor?n=N` → factorises N (1 ≤ N < 2^64) by trial division on a blocking thread, then
//!   `{"n", "factors", "sha256", "instance"}`; the hash is described at [`factors_sha256`].
//! - `/healthz` → `{"status":"ok"}`.
//! - `/crash?code=N` → answers `{"instance", "exiting_with_code"}`, then exits the **whole process** with code N
//!   (0–255, default 1) about 100 ms later, skipping graceful shutdown.
//! - `/alloc?mb=N` → allocates N MiB, writes every page, keeps it for the life of the server, then
//!   `{"instance", "allocated_mb", "held_mb"}`.
//!
//! A missing or malformed query parameter is `400` and an unknown path `404`, a known path with another method `405`,
//! each with the body `{"error":{"code":"bad_request"|"not_found"|"method_not_allowed","message":"..."}}`.
//!
//! # Standard output
//! [`serve`] and [`serve_with_shutdown`] print (and flush) one line per event to stdout, for process logs and
//! `docker logs`: `tucano-demo listening on ADDR port=PORT ...` at start, `tucano-demo received SIGTERM, shutting
//! down gracefully` (or `SIGINT`) on a signal, `tucano-demo exiting with code N on request (GET /crash)`, and
//! `tucano-demo stopped` at the end. [`main_from_env`] sends `tracing` logs to stderr (filter with `RUST_LOG`).
//!
//! # Shutdown
//! On SIGTERM or SIGINT, [`serve`] stops accepting connections, lets in-flight requests finish, and returns `Ok`, so
//! the binary exits with status 0. Further signals during the drain are ignored; a supervisor's SIGKILL still ends it.

mod config;
mod error;
mod factor;
mod routes;

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use tokio::net::TcpListener;

pub use config::{
    DEFAULT_CAPACITY, DemoConfig, ENV_BIND, ENV_CAPACITY, ENV_DELAY_MS, ENV_INSTANCE_ID, ENV_PORT,
    ENV_SERVICE,
};
pub use error::DemoError;
pub use factor::{factorize, factors_sha256};
pub use routes::{DEFAULT_CRASH_CODE, MAX_ALLOC_MB, MAX_WORK_MS, router};

use crate::ShutdownSignals;

/// How long [`run`] waits for stray blocking work (e.g. a factorisation whose client went away) after the server stops.
const RUNTIME_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(1);

/// Binds `config.addr()` and serves the demo until SIGTERM or SIGINT, then shuts down gracefully and returns `Ok`.
///
/// Prints the startup line and the signal line to stdout (see the [module docs](self)). Must run inside a Tokio
/// runtime with the IO and time drivers enabled.
pub async fn serve(config: DemoConfig) -> Result<(), DemoError> {
    let mut signals = ShutdownSignals::install().map_err(DemoError::Signal)?;
    let addr = config.addr();
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| DemoError::Bind { addr, source })?;
    let shutdown = async move {
        let name = signals.recv().await;
        say(&format!(
            "tucano-demo received {name}, shutting down gracefully"
        ));
        tracing::info!(signal = name, "shutting down gracefully");
    };
    serve_with_shutdown(listener, config, shutdown).await
}

/// Serves the demo on an already bound `listener` until `shutdown` completes, then drains in-flight requests and
/// returns. `config.bind` and `config.port` are ignored (the listener decides); no signal handlers are installed.
///
/// # Example
/// ```
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use tucano::demo::{DemoConfig, serve_with_shutdown};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let addr = listener.local_addr()?;
/// let config = DemoConfig::new(addr.port()).with_instance("doc-1").with_service("hello");
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let server = tokio::spawn(serve_with_shutdown(listener, config, async {
///     let _ = stopped.await;
/// }));
///
/// let mut stream = tokio::net::TcpStream::connect(addr).await?;
/// stream
///     .write_all(b"GET /factor?n=360 HTTP/1.1\r\nHost: hello\r\nConnection: close\r\n\r\n")
///     .await?;
/// let mut response = String::new();
/// stream.read_to_string(&mut response).await?;
/// assert!(response.starts_with("HTTP/1.1 200"));
/// assert!(response.contains(r#""factors":[2,2,2,3,3,5]"#));
/// assert!(response.contains(r#""instance":"doc-1""#));
///
/// let _ = stop.send(());
/// server.await??;
/// # Ok(())
/// # }
/// ```
pub async fn serve_with_shutdown<F>(
    listener: TcpListener,
    config: DemoConfig,
    shutdown: F,
) -> Result<(), DemoError>
where
    F: Future<Output = ()> + Send + 'static,
{
    let local = listener.local_addr().map_err(DemoError::Serve)?;
    let app = router(&config);
    say(&format!(
        "tucano-demo listening on {local} port={} instance={} service={} pid={}",
        local.port(),
        config.instance.as_deref().unwrap_or("-"),
        config.service.as_deref().unwrap_or("-"),
        std::process::id(),
    ));
    tracing::info!(%local, instance = ?config.instance, service = ?config.service, "tucano-demo listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(DemoError::Serve)?;
    say("tucano-demo stopped");
    tracing::info!("tucano-demo stopped");
    Ok(())
}

/// Builds a multi-threaded Tokio runtime and runs [`serve`] on it until SIGTERM or SIGINT.
///
/// Blocks the calling thread; do not call it from inside an async runtime.
pub fn run(config: DemoConfig) -> Result<(), DemoError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(DemoError::Runtime)?;
    let result = runtime.block_on(serve(config));
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_TIMEOUT);
    result
}

/// The whole `tucano-demo` program: logs to stderr, reads [`DemoConfig::from_env`], then [`run`]s.
///
/// Returns exit status 0 after a graceful shutdown, 2 for a configuration error (e.g. `PORT` missing) and 1 for any
/// other failure (e.g. the port is taken), after printing the reason to stderr.
pub fn main_from_env() -> ExitCode {
    init_tracing();
    let result = DemoConfig::from_env().and_then(run);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "tucano-demo: {error}");
            if error.is_config() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Installs a stderr `tracing` subscriber filtered by `RUST_LOG` (default `info`), unless one is already installed.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Writes one line to stdout and flushes it; a closed stdout is ignored rather than a panic.
pub(crate) fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
