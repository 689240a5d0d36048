//! A bounded buffer of an instance's last output lines.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::wire::{LogLine, LogStream};

/// Longest line kept; longer output is split.
pub const MAX_LINE_BYTES: usize = 4096;

/// The last lines an instance wrote: at most `max_lines` lines and `max_bytes` bytes.
#[derive(Debug)]
pub struct LogBuffer {
    max_lines: usize,
    max_bytes: usize,
    kept: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    lines: VecDeque<LogLine>,
    bytes: usize,
}

impl LogBuffer {
    /// A buffer that keeps the last `max_lines` lines, within `max_bytes`.
    pub fn new(max_lines: usize, max_bytes: usize) -> Self {
        Self {
            max_lines: max_lines.max(1),
            max_bytes,
            kept: Mutex::new(Kept::default()),
        }
    }

    /// Appends a line, dropping the oldest while over either bound (the newest line stays).
    pub fn push(&self, stream: LogStream, bytes: &[u8]) {
        let line = String::from_utf8_lossy(bytes).into_owned();
        let mut kept = self
            .kept
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        kept.bytes += line.len();
        kept.lines.push_back(LogLine { stream, line });
        while kept.lines.len() > self.max_lines
            || (kept.bytes > self.max_bytes && kept.lines.len() > 1)
        {
            if let Some(old) = kept.lines.pop_front() {
                kept.bytes -= old.line.len();
            }
        }
    }

    /// The last `n` lines, oldest first.
    pub fn tail(&self, n: usize) -> Vec<LogLine> {
        let kept = self
            .kept
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let skip = kept.lines.len().saturating_sub(n);
        kept.lines.iter().skip(skip).cloned().collect()
    }

    /// Reads `reader` to its end, appending each line (split at [`MAX_LINE_BYTES`]).
    pub async fn collect(&self, stream: LogStream, mut reader: impl AsyncRead + Unpin) {
        let mut chunk = [0u8; 8192];
        let mut line = Vec::with_capacity(256);
        loop {
            let read = match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            for &byte in &chunk[..read] {
                if byte == b'\n' {
                    self.push(stream, trim_cr(&line));
                    line.clear();
                } else {
                    line.push(byte);
                    if line.len() == MAX_LINE_BYTES {
                        self.push(stream, &line);
                        line.clear();
                    }
                }
            }
        }
        if !line.is_empty() {
            self.push(stream, trim_cr(&line));
        }
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_the_last_lines_and_splits_long_ones() {
        let buffer = LogBuffer::new(3, 1 << 20);
        let long = "x".repeat(MAX_LINE_BYTES + 10);
        let input = format!("one\r\ntwo\nthree\n{long}\ntail");
        buffer.collect(LogStream::Stderr, input.as_bytes()).await;
        let lines: Vec<_> = buffer.tail(10).into_iter().map(|l| l.line).collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].len(), MAX_LINE_BYTES);
        assert_eq!(lines[1], "x".repeat(10));
        assert_eq!(lines[2], "tail");
        assert_eq!(buffer.tail(1)[0].stream, LogStream::Stderr);
    }

    #[test]
    fn keeps_within_the_byte_bound() {
        let buffer = LogBuffer::new(100, 20);
        for i in 0..10 {
            buffer.push(LogStream::Stdout, format!("line-{i}").as_bytes());
        }
        let lines: Vec<_> = buffer.tail(100).into_iter().map(|l| l.line).collect();
        assert_eq!(lines, ["line-7", "line-8", "line-9"]);
    }
}
