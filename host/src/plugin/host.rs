//! Host imports: the functions a plugin can call (`log`, `batch-names`) and the per-instance state behind them.
//!
//! The state also carries the sandbox: an empty WASI context (no preopened directories, environment, arguments,
//! sockets or stdio) and the memory limiter that records when a plugin hits its cap, so that the error can say so.

use std::ops::Range;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::retention::policy as wit;
use super::bindings::{LogLevel, SegmentNames};
use crate::segment::Segment;

/// Most log lines kept per pass; later lines are counted, not kept.
pub const MAX_LOG_LINES: usize = 1_000;
/// Most bytes of log text kept per pass.
pub const MAX_LOG_BYTES: usize = 256 << 10;
/// Longest log line kept; longer lines are truncated.
pub const MAX_LOG_LINE_BYTES: usize = 2 << 10;

/// One line a plugin logged.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogLine {
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
    fn push(&mut self, level: LogLevel, mut message: String) {
        if self.lines.len() >= MAX_LOG_LINES || self.bytes >= MAX_LOG_BYTES {
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

/// Cuts `s` to at most `max` bytes on a character boundary.
pub fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// Enforces the memory cap and remembers that it was hit (the trap alone does not say why).
#[derive(Debug)]
pub struct MemoryLimiter {
    pub cap_bytes: usize,
    /// The size a plugin asked for beyond the cap, if it did.
    pub exceeded: Option<usize>,
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
}

impl HostState {
    pub fn new(cap_bytes: usize, tag: String) -> Self {
        // The builder's defaults are the sandbox: no preopens, no env, no args, empty stdin, discarded output.
        let wasi = WasiCtx::builder()
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
            },
            log: LogSink {
                tag,
                ..LogSink::default()
            },
            batch: CurrentBatch::default(),
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
