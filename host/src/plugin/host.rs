//! Host imports: the functions a plugin can call (`log`, `batch-names`) and the per-instance state behind them.
//!
//! The state also carries the sandbox: an empty WASI context (no preopened directories, environment, arguments or
//! sockets; stdout and stderr captured into the log, see `output.rs`) and the memory limiter that records when a
//! plugin hits its cap, so that the error can say so.

use std::ops::Range;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::retention::policy as wit;
use super::bindings::{LogLevel, SegmentNames};
use super::limits::{MAX_LOG_BYTES, MAX_LOG_LINE_BYTES, MAX_LOG_LINES, truncate_utf8};
use super::output::{Captured, Stream};
use crate::segment::Segment;

/// One line a plugin logged, or wrote to stdout or stderr.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogLine {
    /// `debug`, `info`, `warn` or `error` for `log`; `stdout` or `stderr` for what the plugin printed.
    pub level: &'static str,
    pub message: String,
}

/// Bounded log of one instance: a plugin that floods `log` costs us a counter, not memory.
#[derive(Debug, Default)]
pub struct LogSink {
    pub lines: Vec<LogLine>,
    pub bytes: usize,
    pub dropped: u64,
    /// Prefix for the host's own log (`plugin=age-tiering pass=...`).
    pub tag: String,
}

impl LogSink {
    fn full(&self) -> bool {
        self.lines.len() >= MAX_LOG_LINES || self.bytes >= MAX_LOG_BYTES
    }

    /// A line the plugin wrote to stdout or stderr (already cut to [`MAX_LOG_LINE_BYTES`]).
    fn push_output(&mut self, stream: Stream, message: String) {
        if self.full() {
            self.dropped += 1;
            return;
        }
        match stream {
            // Quieter than `log`: printing is what every Python or JavaScript plugin does, not a statement of severity.
            Stream::Stdout => tracing::debug!(target: "plugin", plugin = %self.tag, stream = "stdout", "{message}"),
            Stream::Stderr => tracing::info!(target: "plugin", plugin = %self.tag, stream = "stderr", "{message}"),
        }
        self.bytes += message.len();
        self.lines.push(LogLine {
            level: stream.as_str(),
            message,
        });
    }

    fn push(&mut self, level: LogLevel, mut message: String) {
        if self.full() {
            self.dropped += 1;
            return;
        }
        truncate_utf8(&mut message, MAX_LOG_LINE_BYTES);
        let level = match level {
            LogLevel::Debug => {
                tracing::debug!(target: "plugin", plugin = %self.tag, "{message}");
                "debug"
            }
            LogLevel::Info => {
                tracing::info!(target: "plugin", plugin = %self.tag, "{message}");
                "info"
            }
            LogLevel::Warn => {
                tracing::warn!(target: "plugin", plugin = %self.tag, "{message}");
                "warn"
            }
            LogLevel::Error => {
                tracing::error!(target: "plugin", plugin = %self.tag, "{message}");
                "error"
            }
        };
        self.bytes += message.len();
        self.lines.push(LogLine { level, message });
    }
}

/// Enforces the memory cap and remembers that it was hit (the trap alone does not say why).
#[derive(Debug)]
pub struct MemoryLimiter {
    pub cap_bytes: usize,
    /// The size a plugin asked for beyond the cap, if it did.
    pub exceeded: Option<usize>,
    /// The largest memory the plugin has had (its initial memory counts): what a pass of this size needs.
    pub peak_bytes: usize,
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.cap_bytes {
            self.exceeded = Some(desired);
            return Err(wasmtime::format_err!(
                "memory limit of {} bytes exceeded: the plugin asked for {desired} bytes",
                self.cap_bytes
            ));
        }
        self.peak_bytes = self.peak_bytes.max(desired);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        // Tables hold function references; a million is far beyond any real plugin and bounds host memory.
        Ok(desired <= 1 << 20)
    }
}

/// The segments whose names `batch-names` returns: the current batch of the pass.
#[derive(Default)]
pub struct CurrentBatch {
    pub segments: Option<Arc<Vec<Segment>>>,
    pub range: Range<usize>,
}

/// Per-instance state: one per pass.
pub struct HostState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limiter: MemoryLimiter,
    pub log: LogSink,
    pub batch: CurrentBatch,
    pub stdout: Captured,
    pub stderr: Captured,
}

impl HostState {
    pub fn new(cap_bytes: usize, tag: String) -> Self {
        // The builder's defaults are the sandbox: no preopens, no env, no args, empty stdin. Output is captured
        // (never the host's own stdio: a plugin must not be able to write into a report or a terminal).
        let stdout = Captured::new(Stream::Stdout);
        let stderr = Captured::new(Stream::Stderr);
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        HostState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter {
                cap_bytes,
                exceeded: None,
                peak_bytes: 0,
            },
            log: LogSink {
                tag,
                ..LogSink::default()
            },
            batch: CurrentBatch::default(),
            stdout,
            stderr,
        }
    }

    /// Moves what the plugin printed into its log; `end` also takes unfinished last lines (the call is over).
    pub fn drain_output(&mut self, end: bool) {
        for c in [self.stdout.clone(), self.stderr.clone()] {
            let (lines, dropped) = c.drain(end);
            self.log.dropped += dropped;
            for line in lines {
                self.log.push_output(c.stream(), line);
            }
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wit::types::Host for HostState {}

impl wit::host::Host for HostState {
    fn log(&mut self, level: LogLevel, message: String) {
        self.log.push(level, message);
    }

    fn batch_names(&mut self) -> SegmentNames {
        let mut names = SegmentNames {
            text: String::new(),
            ends: Vec::new(),
        };
        if let Some(segments) = &self.batch.segments {
            let batch = &segments[self.batch.range.clone()];
            names.text.reserve(batch.iter().map(|s| s.name.len()).sum());
            names.ends.reserve(batch.len());
            for s in batch {
                names.text.push_str(&s.name);
                names.ends.push(names.text.len() as u32);
            }
        }
        names
    }
}
