//! A plugin's stdout and stderr: captured in memory, bounded, never blocking.
//!
//! Python's `print` and tracebacks, JavaScript's `console.log` and a Rust `println!` all write to WASI stdio. The
//! defaults of wasmtime-wasi either discard that output (and with it the only trace of why a plugin trapped) or
//! forward it through a tokio-backed stream that blocks in the sync bindings. [`Captured`] is always ready, accepts
//! every write (so a chatty plugin never fails because of its output) and keeps a bounded amount: complete lines
//! go to the instance's log, marked `stdout` or `stderr`, and the last lines of stderr stay at hand for the error of a
//! call that fails.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use super::limits::{MAX_LOG_BYTES, MAX_LOG_LINE_BYTES, MAX_LOG_LINES, truncate_utf8};

/// Lines of stderr kept for a failing call's error.
pub const TAIL_LINES: usize = 20;
/// Longest stderr line kept in that tail.
const TAIL_LINE_BYTES: usize = 400;

/// Which stream a line came from; also its level in the plugin's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// What a stream holds between two drains.
#[derive(Debug, Default)]
struct Buffer {
    /// The line being written (no newline yet), at most [`MAX_LOG_LINE_BYTES`].
    partial: Vec<u8>,
    /// Bytes of the current line beyond [`MAX_LOG_LINE_BYTES`], cut.
    partial_cut: bool,
    /// Complete lines not yet drained into the log.
    lines: Vec<String>,
    /// Bytes held in `lines`.
    bytes: usize,
    /// Lines that did not fit between two drains.
    dropped: u64,
    /// The last lines of the stream (stderr only), kept even when the log is full.
    tail: VecDeque<String>,
    keep_tail: bool,
}

impl Buffer {
    fn write(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.append(&data[..i]);
                    self.end_line();
                    data = &data[i + 1..];
                }
                None => {
                    self.append(data);
                    data = &[];
                }
            }
        }
    }

    fn append(&mut self, part: &[u8]) {
        let room = MAX_LOG_LINE_BYTES.saturating_sub(self.partial.len());
        if part.len() > room {
            self.partial_cut = true;
        }
        self.partial.extend_from_slice(&part[..part.len().min(room)]);
    }

    fn end_line(&mut self) {
        let raw = std::mem::take(&mut self.partial);
        self.partial_cut = false;
        let mut line = String::from_utf8_lossy(&raw).into_owned();
        if line.ends_with('\r') {
            line.pop();
        }
        if self.keep_tail {
            let mut t = line.clone();
            truncate_utf8(&mut t, TAIL_LINE_BYTES);
            if self.tail.len() == TAIL_LINES {
                self.tail.pop_front();
            }
            self.tail.push_back(t);
        }
        if self.lines.len() >= MAX_LOG_LINES || self.bytes >= MAX_LOG_BYTES {
            self.dropped += 1;
            return;
        }
        self.bytes += line.len();
        self.lines.push(line);
    }
}

/// One captured stream of one instance. Cheap to clone: clones share the buffer.
#[derive(Debug, Clone)]
pub struct Captured {
    stream: Stream,
    buffer: Arc<Mutex<Buffer>>,
}

impl Captured {
    pub fn new(stream: Stream) -> Self {
        Captured {
            stream,
            buffer: Arc::new(Mutex::new(Buffer {
                keep_tail: stream == Stream::Stderr,
                ..Buffer::default()
            })),
        }
    }

    pub fn stream(&self) -> Stream {
        self.stream
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buffer> {
        // A poisoned lock only means a panic elsewhere mid-write; the buffer is still a buffer.
        self.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the complete lines written since the last drain, and how many did not fit. With `flush`, a last line
    /// without its newline counts as complete (the end of a call).
    pub fn drain(&self, flush: bool) -> (Vec<String>, u64) {
        let mut b = self.lock();
        if flush && !b.partial.is_empty() {
            b.end_line();
        }
        b.bytes = 0;
        (std::mem::take(&mut b.lines), std::mem::take(&mut b.dropped))
    }

    /// The last lines of the stream, oldest first, including an unfinished last line.
    pub fn tail(&self) -> Vec<String> {
        let b = self.lock();
        let mut lines: Vec<String> = b.tail.iter().cloned().collect();
        if !b.partial.is_empty() {
            let mut t = String::from_utf8_lossy(&b.partial).into_owned();
            truncate_utf8(&mut t, TAIL_LINE_BYTES);
            lines.push(t);
            if lines.len() > TAIL_LINES {
                lines.remove(0);
            }
        }
        lines
    }

    /// Forgets the tail (a call succeeded: its stderr is in the log, and a later failure should not quote it).
    pub fn clear_tail(&self) {
        self.lock().tail.clear();
    }
}

impl IsTerminal for Captured {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Captured {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

/// Never asks a writer to wait: a full buffer drops lines, it does not push back.
const PERMIT: usize = 1 << 20;

#[wasmtime_wasi::async_trait]
impl OutputStream for Captured {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.lock().write(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Captured {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for Captured {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.lock().write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_at_newlines_across_writes_and_a_flush_ends_the_last() {
        let c = Captured::new(Stream::Stdout);
        c.lock().write(b"hel");
        c.lock().write(b"lo\nwor");
        c.lock().write(b"ld\r\nlast");
        assert_eq!(c.drain(false).0, ["hello", "world"]);
        assert_eq!(c.drain(true).0, ["last"]);
        assert!(c.drain(true).0.is_empty());
    }

    #[test]
    fn a_flood_is_bounded_in_lines_and_line_length_and_counted() {
        let c = Captured::new(Stream::Stdout);
        let long = vec![b'x'; MAX_LOG_LINE_BYTES * 3];
        c.lock().write(&long);
        c.lock().write(b"\n");
        for _ in 0..MAX_LOG_LINES + 10 {
            c.lock().write(b"line\n");
        }
        let (lines, dropped) = c.drain(true);
        assert_eq!(lines[0].len(), MAX_LOG_LINE_BYTES);
        assert_eq!(lines.len(), MAX_LOG_LINES);
        assert_eq!(dropped, 11);
    }

    #[test]
    fn the_stderr_tail_keeps_the_last_lines_even_when_the_log_is_full() {
        let c = Captured::new(Stream::Stderr);
        for i in 0..MAX_LOG_LINES + 50 {
            c.lock().write(format!("line {i}\n").as_bytes());
        }
        c.lock().write(b"ValueError: bad");
        let tail = c.tail();
        assert_eq!(tail.len(), TAIL_LINES);
        assert_eq!(tail.last().unwrap(), "ValueError: bad");
        assert_eq!(tail[0], format!("line {}", MAX_LOG_LINES + 50 - TAIL_LINES + 1));
        c.drain(true);
        c.clear_tail();
        assert!(c.tail().is_empty());
    }

    #[test]
    fn invalid_utf8_is_replaced_not_refused() {
        let c = Captured::new(Stream::Stdout);
        c.lock().write(b"caf\xc3\n\xff\xfe\n");
        assert_eq!(c.drain(false).0, ["caf\u{fffd}", "\u{fffd}\u{fffd}"]);
    }
}
