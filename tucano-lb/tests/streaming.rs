//! A 100 MB request body streams through the balancer and the worker proxy without either
//! holding it whole: this test process (client, both proxies and the backend) never grows by
//! anything near the body's size. Alone in its own test binary so that no other test's memory
//! shows up in the measurement.

mod support;

use http::Request;
use http_body_util::BodyExt;
use support::*;

/// This process's peak resident memory, in KiB (Linux `VmHWM`).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_body_streams_through_without_being_buffered() {
    let cluster = Cluster::start(1).await;
    let client = client();
    // Warm up connections and allocator pools first.
    let warm = Request::post(cluster.balancer_url("/upload"))
        .header("host", "hello")
        .body(ChunkedBody::new(1024 * 1024).boxed())
        .unwrap();
    assert_eq!(send(&client, warm).await.status, 200);
    let before = peak_rss_kib();
    assert!(before > 0, "cannot read VmHWM from /proc/self/status");

    let size = 100 * 1024 * 1024;
    let upload = Request::post(cluster.balancer_url("/upload"))
        .header("host", "hello")
        .body(ChunkedBody::new(size).boxed())
        .unwrap();
    let reply = send(&client, upload).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["body_bytes"], size);
    let grown_mib = peak_rss_kib().saturating_sub(before) / 1024;
    assert!(
        grown_mib < 32,
        "peak memory grew by {grown_mib} MiB while streaming 100 MiB"
    );
}
