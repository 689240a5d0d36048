//! ProcessRuntime against real processes. The test binary doubles as the instance program
//! (and as a worker stand-in that gets SIGKILLed): with `TUCANO_TEST_CHILD` set, `main` runs
//! that role instead of the tests. Hence `harness = false`, with libtest-mimic for the CLI.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use tucano_core::wire::LogStream;
use tucano_core::{
    InstanceId, InstanceSpec, ProcessRuntime, Runtime, RuntimeError, RuntimeEvent, ServiceSpec,
};

const CHILD_ROLE: &str = "TUCANO_TEST_CHILD";

fn main() {
    if let Ok(role) = std::env::var(CHILD_ROLE) {
        run_child(&role);
        return;
    }
    let args = Arguments::from_args();
    let tests = vec![
        Trial::test(
            "start_sets_env_and_reports_running",
            start_sets_env_and_reports_running,
        ),
        Trial::test("stop_sends_sigterm_first", stop_sends_sigterm_first),
        Trial::test(
            "stop_kills_after_the_grace_period",
            stop_kills_after_the_grace_period,
        ),
        Trial::test(
            "exit_is_reported_with_its_code",
            exit_is_reported_with_its_code,
        ),
        Trial::test(
            "exit_during_startup_is_an_error_with_output",
            exit_during_startup_is_an_error_with_output,
        ),
        Trial::test(
            "startup_timeout_kills_the_process",
            startup_timeout_kills_the_process,
        ),
        Trial::test("spawn_failure_is_an_error", spawn_failure_is_an_error),
        Trial::test(
            "unknown_instances_are_not_found",
            unknown_instances_are_not_found,
        ),
        Trial::test(
            "concurrent_starts_get_distinct_ports",
            concurrent_starts_get_distinct_ports,
        ),
        Trial::test(
            "instances_die_with_a_sigkilled_worker",
            instances_die_with_a_sigkilled_worker,
        ),
        Trial::test(
            "descendants_are_stopped_with_their_instance",
            descendants_are_stopped_with_their_instance,
        ),
        Trial::test(
            "descendants_die_when_the_instance_exits",
            descendants_die_when_the_instance_exits,
        ),
    ];
    libtest_mimic::run(&args, tests).exit();
}

// ---------------------------------------------------------------------------------------------
// Child roles

fn run_child(role: &str) {
    match role {
        // Listens on PORT; a client that sends "exit N" makes it exit with code N.
        "server" => serve(false),
        // The same, but ignores SIGTERM.
        "stubborn" => serve(true),
        "fail" => {
            eprintln!("boom: cannot start");
            std::process::exit(3);
        }
        "silent" => std::thread::sleep(Duration::from_secs(600)),
        // Like `sh -c 'server'` without exec: the listener is a grandchild of the runtime.
        "parent" => {
            let status = std::env::current_exe()
                .and_then(|exe| Command::new(exe).env(CHILD_ROLE, "server").status());
            std::process::exit(status.ok().and_then(|s| s.code()).unwrap_or(1));
        }
        "host" => host(),
        other => {
            eprintln!("unknown child role {other}");
            std::process::exit(64);
        }
    }
}

fn serve(ignore_sigterm: bool) {
    if ignore_sigterm {
        // SAFETY: installing SIG_IGN for SIGTERM has no preconditions.
        unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
    }
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    for key in ["PORT", "TUCANO_INSTANCE_ID", "TUCANO_SERVICE"] {
        println!("{key}={}", std::env::var(key).unwrap_or_default());
    }
    let listener = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("bind failed: {error}");
            std::process::exit(98);
        }
    };
    for stream in listener.incoming().flatten() {
        let mut line = String::new();
        let _ = BufReader::new(&stream).read_line(&mut line);
        if let Some(code) = line.trim().strip_prefix("exit ") {
            std::process::exit(code.parse().unwrap_or(1));
        }
    }
}

/// Stands in for a worker: starts one instance, prints its pid, then waits to be killed.
fn host() {
    let Ok(rt) = tokio::runtime::Runtime::new() else {
        std::process::exit(70)
    };
    rt.block_on(async {
        let runtime = ProcessRuntime::new(Default::default()).expect("runtime");
        let started = runtime.start(&spec("server")).await.expect("start");
        println!("pid={}", started.pid.unwrap_or(0));
        let _ = std::io::stdout().flush();
        tokio::time::sleep(Duration::from_secs(600)).await;
    });
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn spec(role: &str) -> InstanceSpec {
    let program = std::env::current_exe().expect("current exe");
    let mut service = ServiceSpec::new(
        "probe".parse().expect("name"),
        vec![program.to_string_lossy().into_owned()],
    );
    service.env.insert(CHILD_ROLE.into(), role.into());
    service.startup_timeout = Duration::from_secs(10);
    service.instance(InstanceId::new())
}

fn block_on<F: std::future::Future<Output = Result<(), Failed>>>(future: F) -> Result<(), Failed> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failed::from(e.to_string()))?
        .block_on(future)
}

fn check(condition: bool, message: impl Into<String>) -> Result<(), Failed> {
    if condition {
        Ok(())
    } else {
        Err(message.into().into())
    }
}

/// True when `pid` no longer runs (gone, or a zombie nobody reaped yet).
fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}

fn wait_dead(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if is_dead(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    is_dead(pid)
}

fn new_runtime() -> Result<ProcessRuntime, Failed> {
    ProcessRuntime::new(Default::default()).map_err(|e| e.to_string().into())
}

// ---------------------------------------------------------------------------------------------
// Tests

fn start_sets_env_and_reports_running() -> Result<(), Failed> {
    block_on(async {
        let runtime = new_runtime()?;
        let spec = spec("server");
        let started = runtime.start(&spec).await?;
        TcpStream::connect_timeout(&started.address, Duration::from_secs(2))?;
        let listed = runtime.list().await?;
        check(
            listed
                .iter()
                .any(|i| i.id == spec.id && i.address == started.address),
            "listed",
        )?;
        // Output is collected asynchronously; give it a moment.
        let mut lines = Vec::new();
        for _ in 0..50 {
            lines = runtime.logs(spec.id, 10).await?;
            if lines.len() >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let text: Vec<String> = lines.iter().map(|l| l.line.clone()).collect();
        check(
            text.contains(&format!("PORT={}", started.address.port())),
            format!("PORT in {text:?}"),
        )?;
        check(
            text.contains(&format!("TUCANO_INSTANCE_ID={}", spec.id)),
            "instance id env",
        )?;
        check(
            text.contains(&"TUCANO_SERVICE=probe".to_string()),
            "service env",
        )?;
        check(
            lines.iter().all(|l| l.stream == LogStream::Stdout),
            "stdout stream",
        )?;
        runtime.stop(spec.id, Duration::from_secs(5)).await?;
        check(
            runtime.list().await?.is_empty(),
            "stopped instance is not listed",
        )
    })
}

fn stop_sends_sigterm_first() -> Result<(), Failed> {
    block_on(async {
        let runtime = new_runtime()?;
        let spec = spec("server");
        let started = runtime.start(&spec).await?;
        let begun = Instant::now();
        let status = runtime.stop(spec.id, Duration::from_secs(10)).await?;
        check(
            status.signal == Some(libc::SIGTERM),
            format!("ended by {status:?}"),
        )?;
        check(
            begun.elapsed() < Duration::from_secs(5),
            "SIGTERM ends it well before the grace period",
        )?;
        check(
            wait_dead(started.pid.unwrap_or(0), Duration::from_secs(2)),
            "process gone",
        )
    })
}

fn stop_kills_after_the_grace_period() -> Result<(), Failed> {
    block_on(async {
        let runtime = new_runtime()?;
        let spec = spec("stubborn");
        let started = runtime.start(&spec).await?;
        let grace = Duration::from_millis(400);
        let begun = Instant::now();
        let status = runtime.stop(spec.id, grace).await?;
        check(
            status.signal == Some(libc::SIGKILL),
            format!("ended by {status:?}"),
        )?;
        check(
            begun.elapsed() >= grace,
            "SIGKILL only after the grace period",
        )?;
        check(
            wait_dead(started.pid.unwrap_or(0), Duration::from_secs(2)),
            "process gone",
        )
    })
}

fn exit_is_reported_with_its_code() -> Result<(), Failed> {
    block_on(async {
        let runtime = new_runtime()?;
        let mut events = runtime.subscribe();
        let spec = spec("server");
        let started = runtime.start(&spec).await?;
        let mut stream = TcpStream::connect_timeout(&started.address, Duration::from_secs(2))?;
        stream.write_all(b"exit 7\n")?;
        let event = tokio::time::timeout(Duration::from_secs(5), events.recv()).await??;
        let RuntimeEvent::Exited { instance, status } = event;
        check(instance == spec.id, "event names the instance")?;
        check(status.code == Some(7), format!("exit status {status:?}"))?;
        check(
            runtime.list().await?.is_empty(),
            "exited instance is not listed",
        )?;
        // An exited instance keeps its logs until it is stopped (forgotten).
        check(
            !runtime.logs(spec.id, 10).await?.is_empty(),
            "logs kept after exit",
        )?;
        let status = runtime.stop(spec.id, Duration::from_secs(1)).await?;
        check(
            status.code == Some(7),
            "stop of an exited instance returns its status",
        )
    })
}

fn exit_during_startup_is_an_error_with_output() -> Result<(), Failed> {
    block_on(async {
        let runtime = new_runtime()?;
        match runtime.start(&spec("fail")).await {
            Err(RuntimeError::ExitedDuringStartup { status, output }) => {
                check(status.code == Some(3), format!("{status:?}"))?;
                check(
                    output.iter().any(|l| l.contains("boom")),
                    format!("output {output:?}"),
                )
            }
            other => Err(format!("expected ExitedDuringStartup, got {other:?}").into()),
        }
    })
}

fn startup_timeout_kills_the_process() -> Result<(), Failed> {
    block_on(async {
        let runtime = new_runtime()?;
        let mut spec = spec("silent");
        spec.startup_timeout = Duration::from_millis(500);
        let mut events = runtime.subscribe();
        let result = runtime.start(&spec).await;
        check(
            matches!(result, Err(RuntimeError::StartupTimeout { .. })),
            format!("{result:?}"),
        )?;
        let event = tokio::time::timeout(Duration::from_secs(5), events.recv()).await??;
        let RuntimeEvent::Exited { status, .. } = event;
        check(
            status.signal == Some(libc::SIGKILL),
            "killed after the startup timeout",
        )?;
        check(runtime.list().await?.is_empty(), "nothing left listed")
    })
}

fn spawn_failure_is_an_error() -> Result<(), Failed> {
    block_on(async {
        let runtime = new_runtime()?;
        let mut spec = spec("server");
        spec.command = vec!["/nonexistent/tucano-program".into()];
        let result = runtime.start(&spec).await;
        check(
            matches!(&result, Err(RuntimeError::Spawn { program, .. }) if program.contains("nonexistent")),
            format!("{result:?}"),
        )
    })
}

fn unknown_instances_are_not_found() -> Result<(), Failed> {
    block_on(async {
        let runtime = new_runtime()?;
        let id = InstanceId::new();
        check(
            matches!(
                runtime.stop(id, Duration::from_secs(1)).await,
                Err(RuntimeError::NotFound(_))
            ),
            "stop",
        )?;
        check(
            matches!(runtime.logs(id, 5).await, Err(RuntimeError::NotFound(_))),
            "logs",
        )
    })
}

fn concurrent_starts_get_distinct_ports() -> Result<(), Failed> {
    block_on(async {
        let runtime = new_runtime()?;
        let specs: Vec<InstanceSpec> = (0..6).map(|_| spec("server")).collect();
        let mut tasks = tokio::task::JoinSet::new();
        for spec in specs.clone() {
            let runtime = runtime.clone();
            tasks.spawn(async move { runtime.start(&spec).await });
        }
        let mut ports = std::collections::HashSet::new();
        while let Some(result) = tasks.join_next().await {
            ports.insert(result.map_err(|e| e.to_string())??.address.port());
        }
        check(
            ports.len() == specs.len(),
            format!("distinct ports {ports:?}"),
        )?;
        for spec in &specs {
            runtime.stop(spec.id, Duration::from_secs(5)).await?;
        }
        Ok(())
    })
}

fn instances_die_with_a_sigkilled_worker() -> Result<(), Failed> {
    let mut host = Command::new(std::env::current_exe()?)
        .env(CHILD_ROLE, "host")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut stdout = host.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let mut byte = [0u8; 1];
        while stdout.read(&mut byte).map(|n| n == 1).unwrap_or(false) {
            if byte[0] == b'\n' {
                let _ = tx.send(text.clone());
                text.clear();
            } else {
                text.push(byte[0] as char);
            }
        }
    });
    let pid = loop {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => {
                if let Some(pid) = line.strip_prefix("pid=") {
                    break pid.trim().parse::<u32>()?;
                }
            }
            Err(_) => {
                let _ = host.kill();
                return Err("host never reported its instance".into());
            }
        }
    };
    check(
        pid > 0 && !is_dead(pid),
        "instance runs while its worker runs",
    )?;
    host.kill()?; // SIGKILL: no cleanup code runs in the host.
    host.wait()?;
    check(
        wait_dead(pid, Duration::from_secs(5)),
        format!("instance {pid} outlived its worker"),
    )
}

fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Starts a "parent" instance; returns its spec, its pid and its one child's pid.
async fn start_parent(runtime: &ProcessRuntime) -> Result<(InstanceSpec, u32, u32), Failed> {
    let spec = spec("parent");
    // Ready means the grandchild's listener answered: the readiness check accepts any process
    // of the instance's group.
    let started = runtime.start(&spec).await?;
    let leader = started.pid.unwrap_or(0);
    match children_of(leader).as_slice() {
        [child] => Ok((spec, leader, *child)),
        other => Err(format!("expected one grandchild, found {other:?}").into()),
    }
}

fn descendants_are_stopped_with_their_instance() -> Result<(), Failed> {
    block_on(async {
        let runtime = new_runtime()?;
        let (spec, leader, grandchild) = start_parent(&runtime).await?;
        runtime.stop(spec.id, Duration::from_secs(5)).await?;
        check(wait_dead(leader, Duration::from_secs(2)), "leader gone")?;
        check(
            wait_dead(grandchild, Duration::from_secs(2)),
            "grandchild gone with the stop",
        )
    })
}

fn descendants_die_when_the_instance_exits() -> Result<(), Failed> {
    block_on(async {
        let runtime = new_runtime()?;
        let mut events = runtime.subscribe();
        let (_, leader, grandchild) = start_parent(&runtime).await?;
        // The leader dies on its own, leaving its child behind; the runtime cleans the group.
        let leader_pid = nix::unistd::Pid::from_raw(i32::try_from(leader)?);
        nix::sys::signal::kill(leader_pid, nix::sys::signal::Signal::SIGKILL)?;
        tokio::time::timeout(Duration::from_secs(5), events.recv()).await??;
        check(
            wait_dead(grandchild, Duration::from_secs(2)),
            "grandchild outlived its instance",
        )
    })
}
