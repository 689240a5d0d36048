//! Readiness by HTTP: an instance of a service with a health check counts as started only once
//! `GET <path>` answers 2xx, not as soon as its port accepts connections. A rolling update then
//! waits for an instance that really serves before it stops an old one.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Longest one check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between checks: doubling from the first, capped at the last.
const FIRST_PAUSE: Duration = Duration::from_millis(20);
const LONGEST_PAUSE: Duration = Duration::from_millis(500);
/// Most bytes of a response read to find its status line.
const MAX_STATUS_LINE: usize = 1024;

/// Checks `GET path` on `address` until it answers 2xx; after `deadline`, or once
/// `still_starting` says the start was given up (the instance is being stopped), the last
/// failure.
pub(crate) async fn wait_until_ready(
    address: SocketAddr,
    path: &str,
    deadline: Instant,
    still_starting: impl Fn() -> bool,
) -> Result<(), String> {
    let mut pause = FIRST_PAUSE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let outcome =
            match tokio::time::timeout(left.min(CHECK_TIMEOUT), check(address, path)).await {
                Ok(Ok(status)) if (200..300).contains(&status) => return Ok(()),
                Ok(Ok(status)) => format!("GET {path} answered {status}"),
                Ok(Err(error)) => format!("GET {path} failed: {error}"),
                Err(_) => format!("GET {path} took longer than {:?}", left.min(CHECK_TIMEOUT)),
            };
        if Instant::now() + pause >= deadline || !still_starting() {
            return Err(outcome);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}

/// One `GET path` over a fresh connection; the response's status code.
async fn check(address: SocketAddr, path: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect(address).await?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: tucano-worker\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::with_capacity(128);
    let mut buffer = [0u8; 256];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < MAX_STATUS_LINE {
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..read]);
    }
    status_of(&head)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response"))
}

/// The status code of an HTTP/1.x status line at the start of `head`.
fn status_of(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    parts.next().filter(|v| v.starts_with("HTTP/1."))?;
    parts
        .next()?
        .parse()
        .ok()
        .filter(|s| (100..600).contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn status_lines_are_read_and_garbage_refused() {
        assert_eq!(status_of(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(status_of(b"HTTP/1.0 503 Busy\r\nx: y\r\n"), Some(503));
        assert_eq!(status_of(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_of(b"HTTP/1.1 abc\r\n"), None);
        assert_eq!(status_of(b""), None);
    }

    /// A server that answers 503 to its first `unready` requests, then 200.
    async fn server(unready: usize) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for served in 0.. {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let mut buffer = [0u8; 1024];
                let _ = stream.read(&mut buffer).await;
                let status = if served < unready {
                    "503 Busy"
                } else {
                    "200 OK"
                };
                let _ = stream
                    .write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        address
    }

    #[tokio::test]
    async fn waits_for_a_2xx_and_gives_up_at_the_deadline_with_the_reason() {
        let ready_later = server(3).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        assert_eq!(
            wait_until_ready(ready_later, "/healthz", deadline, || true).await,
            Ok(())
        );

        let never = server(usize::MAX).await;
        let deadline = Instant::now() + Duration::from_millis(300);
        let error = wait_until_ready(never, "/healthz", deadline, || true)
            .await
            .unwrap_err();
        assert!(error.contains("answered 503"), "{error}");
        // A start given up ends the wait long before its deadline.
        let far = Instant::now() + Duration::from_secs(60);
        let began = Instant::now();
        assert!(
            wait_until_ready(never, "/healthz", far, || false)
                .await
                .is_err()
        );
        assert!(began.elapsed() < Duration::from_secs(5));
    }
}
