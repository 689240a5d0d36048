//! Integration tests of the `tucano-demo` binary: each test runs the real executable on a free loopback port.

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_tucano-demo");
const START_TIMEOUT: Duration = Duration::from_secs(15);
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
const START_ATTEMPTS: usize = 5;

/// A running `tucano-demo` child. Dropping it kills the process (SIGKILL) and reaps it, so a failing test leaves
/// nothing behind.
struct Demo {
    child: Child,
    port: u16,
    stdout: Arc<Mutex<Vec<String>>>,
    stdout_reader: Option<JoinHandle<()>>,
    stderr: Arc<Mutex<String>>,
}

impl Demo {
    /// Starts the binary with `PORT` set to a free port plus `env`, and waits until it prints its startup line and
    /// accepts TCP connections. Retries with a new port when the child exits during start-up (e.g. the port was
    /// taken between our probe and its bind).
    fn start(env: &[(&str, &str)]) -> Demo {
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(env) {
                Ok(demo) => return demo,
                Err(reason) => failures.push(reason),
            }
        }
        panic!("tucano-demo did not start after {START_ATTEMPTS} attempts: {failures:#?}");
    }

    fn try_start(env: &[(&str, &str)]) -> Result<Demo, String> {
        let port = free_port();
        let mut command = Command::new(BIN);
        command
            .env_remove("TUCANO_INSTANCE_ID")
            .env_remove("TUCANO_SERVICE")
            .env_remove("TUCANO_DEMO_BIND")
            .env("PORT", port.to_string())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn tucano-demo");

        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stdout_pipe = child.stdout.take().expect("stdout piped");
        let lines = Arc::clone(&stdout);
        let stdout_reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout_pipe).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line);
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut stderr_pipe = child.stderr.take().expect("stderr piped");
        let text = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                text.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });

        let mut demo = Demo {
            child,
            port,
            stdout,
            stdout_reader: Some(stdout_reader),
            stderr,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = demo.child.try_wait().expect("try_wait") {
                // Give the pipe readers a moment to collect the reason.
                std::thread::sleep(Duration::from_millis(50));
                return Err(format!(
                    "exited during start-up on port {port} with {status}; stderr: {}",
                    demo.stderr()
                ));
            }
            let announced = demo
                .stdout()
                .contains(&format!("listening on 0.0.0.0:{port}"));
            if announced && TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(demo);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not accepting connections on port {port} after {START_TIMEOUT:?}; stdout: {}; stderr: {}",
                    demo.stdout(),
                    demo.stderr()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("http://127.0.0.1:{}{path_and_query}", self.port)
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).unwrap())
    }

    fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).unwrap();
    }

    /// Everything the child printed to stdout so far, one line per line.
    fn stdout(&self) -> String {
        self.stdout.lock().unwrap().join("\n")
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits (bounded) for the child to exit, then for its stdout to be fully read.
    async fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + EXIT_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "tucano-demo did not exit within {EXIT_TIMEOUT:?}; stdout: {}",
                self.stdout()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        if let Some(reader) = self.stdout_reader.take() {
            while !reader.is_finished() {
                assert!(
                    Instant::now() < deadline,
                    "stdout of tucano-demo not closed after exit"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            reader.join().unwrap();
        }
        status
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A port that was free a moment ago (bind to port 0, read it, release it); `Demo::start` retries on a conflict.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn get_json(url: &str) -> (StatusCode, Value) {
    let response = client().get(url).send().await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{url}: content-type {content_type:?}"
    );
    let body: Value = response.json().await.unwrap();
    (status, body)
}

fn assert_error(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "body: {body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "empty error message: {body}");
}

#[tokio::test]
async fn root_reports_identity_and_received_headers() {
    let demo = Demo::start(&[
        ("TUCANO_INSTANCE_ID", "inst-42"),
        ("TUCANO_SERVICE", "hello"),
    ]);
    let response = client()
        .get(demo.url("/"))
        .header("x-tucano-test", "abc")
        .header("x-multi", "one")
        .header("x-multi", "two")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["instance"], "inst-42");
    assert_eq!(body["service"], "hello");
    assert_eq!(body["pid"], u64::from(demo.child.id()));
    assert_eq!(body["headers"]["x-tucano-test"], "abc");
    assert_eq!(body["headers"]["x-multi"], "one, two");
    assert_eq!(
        body["headers"]["host"],
        format!("127.0.0.1:{}", demo.port),
        "body: {body}"
    );
    assert!(demo.stdout().contains(&format!("port={}", demo.port)));
}

#[tokio::test]
async fn root_reports_null_identity_when_unset_and_healthz_is_ok() {
    let demo = Demo::start(&[]);
    let (status, body) = get_json(&demo.url("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["instance"].is_null(), "body: {body}");
    assert!(body["service"].is_null(), "body: {body}");

    let (status, body) = get_json(&demo.url("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, serde_json::json!({"status": "ok"}));
}

#[tokio::test]
async fn work_sleeps_at_least_the_requested_time() {
    let demo = Demo::start(&[("TUCANO_INSTANCE_ID", "w-1")]);
    let started = Instant::now();
    let (status, body) = get_json(&demo.url("/work?ms=50")).await;
    let elapsed = started.elapsed();
    assert_eq!(status, StatusCode::OK);
    assert!(elapsed >= Duration::from_millis(50), "took {elapsed:?}");
    assert_eq!(body["slept_ms"], 50);
    assert_eq!(body["instance"], "w-1");
}

#[tokio::test]
async fn factor_returns_the_factors_and_their_sha256() {
    let demo = Demo::start(&[("TUCANO_INSTANCE_ID", "f-1")]);
    let (status, body) = get_json(&demo.url("/factor?n=360")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["n"], 360);
    assert_eq!(body["factors"], serde_json::json!([2, 2, 2, 3, 3, 5]));
    let expected: String = Sha256::digest(b"2,2,2,3,3,5")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(body["sha256"], expected);
    assert_eq!(body["instance"], "f-1");

    let (status, body) = get_json(&demo.url("/factor?n=1")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["factors"], serde_json::json!([]));
    assert_eq!(
        body["sha256"],
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );

    // u64::MAX = 3 · 5 · 17 · 257 · 641 · 65537 · 6700417, exact in the JSON text.
    let (status, body) = get_json(&demo.url("/factor?n=18446744073709551615")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["factors"],
        serde_json::json!([3, 5, 17, 257, 641, 65537, 6700417])
    );
}

#[tokio::test]
async fn bad_query_parameters_are_400_json() {
    let demo = Demo::start(&[]);
    for path in [
        "/work",
        "/work?ms=abc",
        "/work?ms=-1",
        "/work?ms=60001",
        "/factor",
        "/factor?n=0",
        "/factor?n=-5",
        "/factor?n=18446744073709551616",
        "/factor?n=1.5",
        "/crash?code=256",
        "/crash?code=x",
        "/alloc",
        "/alloc?mb=lots",
        "/alloc?mb=99999999999",
    ] {
        let (status, body) = get_json(&demo.url(path)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_error(&body, "bad_request");
    }
    // None of those crashed or wedged the server.
    let (status, _) = get_json(&demo.url("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_route_is_404_json_and_wrong_method_is_405_json() {
    let demo = Demo::start(&[]);
    for path in ["/nope", "/work/extra", "/v1/services"] {
        let (status, body) = get_json(&demo.url(path)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_error(&body, "not_found");
    }
    let response = client().post(demo.url("/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = response.json().await.unwrap();
    assert_error(&body, "method_not_allowed");
}

#[tokio::test]
async fn crash_exits_with_the_requested_code() {
    let mut demo = Demo::start(&[]);
    // The demo answers before exiting; the exit status is what matters, so a lost response is tolerated.
    if let Ok(response) = client().get(demo.url("/crash?code=3")).send().await {
        assert_eq!(response.status(), StatusCode::OK);
    }
    let status = demo.wait_exit().await;
    assert_eq!(status.code(), Some(3), "status: {status}");
    assert!(
        demo.stdout().contains("exiting with code 3"),
        "stdout: {}",
        demo.stdout()
    );
}

#[tokio::test]
async fn sigterm_logs_finishes_in_flight_requests_and_exits_zero() {
    let mut demo = Demo::start(&[]);
    let in_flight = tokio::spawn(client().get(demo.url("/work?ms=600")).send());
    // Let the request reach the server before the signal.
    tokio::time::sleep(Duration::from_millis(200)).await;
    demo.signal(Signal::SIGTERM);

    let response = tokio::time::timeout(EXIT_TIMEOUT, in_flight)
        .await
        .expect("in-flight request finished in time")
        .unwrap()
        .expect("in-flight request completed despite SIGTERM");
    assert_eq!(response.status(), StatusCode::OK);
    let status = demo.wait_exit().await;
    assert!(status.success(), "status: {status}");
    let stdout = demo.stdout();
    assert!(stdout.contains("received SIGTERM"), "stdout: {stdout}");
    // It stopped accepting new connections.
    assert!(TcpStream::connect(("127.0.0.1", demo.port)).is_err());
}

#[tokio::test]
async fn sigint_shuts_down_gracefully_too() {
    let mut demo = Demo::start(&[]);
    demo.signal(Signal::SIGINT);
    let status = demo.wait_exit().await;
    assert!(status.success(), "status: {status}");
    assert!(
        demo.stdout().contains("received SIGINT"),
        "stdout: {}",
        demo.stdout()
    );
}

#[tokio::test]
async fn alloc_holds_memory_and_reports_the_total() {
    let demo = Demo::start(&[("TUCANO_INSTANCE_ID", "a-1")]);
    let (status, body) = get_json(&demo.url("/alloc?mb=16")).await;
    assert_eq!(status, StatusCode::OK, "body: {body}");
    assert_eq!(body["allocated_mb"], 16);
    assert_eq!(body["held_mb"], 16);
    assert_eq!(body["instance"], "a-1");

    let (status, body) = get_json(&demo.url("/alloc?mb=16")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["held_mb"], 32);

    // The memory is resident: the child's RSS is at least what it holds.
    let statm = std::fs::read_to_string(format!("/proc/{}/status", demo.child.id())).unwrap();
    let rss_kib: u64 = statm
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap();
    assert!(rss_kib >= 32 * 1024, "VmRSS {rss_kib} KiB");
}

#[test]
fn missing_port_is_a_configuration_error() {
    let mut child = Command::new(BIN)
        .env_remove("PORT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + EXIT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tucano-demo without PORT did not exit within {EXIT_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains("PORT"), "stderr: {stderr}");
}

#[tokio::test]
async fn a_configured_delay_slows_requests_and_every_response_reports_load() {
    let demo = Demo::start(&[
        ("TUCANO_DEMO_DELAY_MS", "150"),
        ("TUCANO_DEMO_CAPACITY", "4"),
    ]);
    let started = Instant::now();
    let response = client().get(demo.url("/")).send().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(response.status(), StatusCode::OK);
    // One request in flight out of a capacity of 4.
    let load = response
        .headers()
        .get("x-tucano-load")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(load, "0.250");
    // Health checks are not slowed down.
    let started = Instant::now();
    let response = client().get(demo.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(started.elapsed() < Duration::from_millis(150));
}
