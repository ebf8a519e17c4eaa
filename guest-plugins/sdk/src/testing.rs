//! Unit tests for a plugin under plain `cargo test`: describe a pass in code (its "now", parameters and segments), run
//! a [`Plugin`] over it, and assert on every segment's decision and reason and on the plugin's log. No `retention`
//! binary, no JSON fixture, no component: the plugin is compiled for the build machine like any crate's unit tests.
//!
//! ```
//! use retention_sdk::prelude::*;
//! use retention_sdk::testing::{Pass, seg};
//!
//! struct DropDebug {
//!     days: i64,
//! }
//!
//! impl Plugin for DropDebug {
//!     const INFO: Info = Info { name: "drop-debug", version: "0.1.0", description: "Drops old debug logs." };
//!
//!     fn begin(ctx: &Context) -> Result<Self, String> {
//!         ctx.check_params(&["days"])?;
//!         Ok(DropDebug { days: ctx.param_or("days", 7)? })
//!     }
//!
//!     fn decide(&mut self, seg: &Segment) -> Decision {
//!         if seg.age_days() >= self.days && seg.label("level") == Some("debug") {
//!             Decision::drop("old debug log")
//!         } else {
//!             Decision::keep()
//!         }
//!     }
//! }
//!
//! let out = Pass::new("2026-03-01T00:00:00Z")
//!     .param("days", 7)
//!     .segment(seg("api/debug-2026-02-20.log").age_days(9).label("level", "debug").bytes(100))
//!     .segment(seg("api/debug-2026-02-28.log").time("2026-02-28T00:00:00Z").label("level", "debug"))
//!     .run::<DropDebug>()
//!     .unwrap();
//! assert_eq!(out.action("api/debug-2026-02-20.log"), Action::Drop);
//! assert_eq!(out.reason("api/debug-2026-02-20.log"), Some("old debug log"));
//! assert_eq!(out.action("api/debug-2026-02-28.log"), Action::Keep);
//!
//! // A misspelt parameter fails `begin`, and with it the pass.
//! let err = Pass::new("2026-03-01").param("dayz", 7).run::<DropDebug>().unwrap_err();
//! assert_eq!(err.call(), "begin");
//! assert_eq!(err.message(), "unknown parameter `dayz` (expected: days)");
//! ```
//!
//! # What runs
//!
//! What a test runs is what runs in the component: [`Pass::run`] calls the SDK's export glue (the functions that
//! [`export_plugin!`](crate::export_plugin) wires to the component's exports) with the contract's `pass-context` and
//! `segment-batch` records, so the per-segment API, the symbol table, the interning of reasons and the SDK's own checks
//! are the component's code. Around it, this module plays the host's part, as `retention plugin test` does:
//!
//! - `info` is checked as at load: name and version of 1 to 128 printable characters.
//! - The pass context: the now, the dataset name (default `test`), the pass id `test`, the dry-run flag (default
//!   true, as in `retention plugin test`), the parameters sorted by key, and the totals per tier computed from the
//!   segments.
//! - `begin`; then, if the plugin asked for observe-first, every batch through `observe`; then every batch through
//!   `decide`. Segments come oldest first (by end time, then name) in batches of [`Pass::batch_size`] (by default
//!   [`DEFAULT_BATCH_SIZE`], the host's `runtime.batch_size`), each label key and value sent once per pass as a
//!   symbol. Calls are numbered like the host's errors: `observe (batch 0)`, ..., then `decide (batch n)`, ...
//! - `batch-names` answers the names of the batch being observed or decided, so `seg.name()` works.
//! - The answers are checked as the host checks them: one valid action per segment, allowed from its tier (the SDK
//!   refuses a forbidden one first, naming the segment), reason numbers within the reason texts. Reasons are cut at
//!   512 bytes, error messages and log lines at 2 KiB, and the log keeps at most 1,000 lines and 256 KiB per pass.
//! - [`log!`](crate::log!) lines are captured per run ([`Outcome::logs`], [`Failure::logs`]) instead of going to the
//!   host.
//!
//! Not simulated: the sandbox's deadline per call and memory cap, and traps. A panic in the plugin, which in the
//! component is a trap that fails the pass, here fails the test (check it with `#[should_panic]`).
//!
//! # Where it is available
//!
//! On every target but `wasm32` (`#[cfg(not(target_arch = "wasm32"))]`): it is never compiled into a component, and a
//! plugin needs no cargo feature or dev-dependency to use it. The guest workspace builds for `wasm32-wasip2` by
//! default (its `.cargo/config.toml`), so run tests for the build machine: `cargo test --target host-tuple`. Write
//! them in the plugin's `src/lib.rs` (`#[cfg(test)] mod tests`): a plugin crate is a `cdylib`, which integration tests
//! under `tests/` cannot link, and its plugin type is usually private.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

use crate::bindings::retention::policy::host::SegmentNames;
use crate::bindings::retention::policy::types::{LabelColumn, Param, PassContext, SegmentBatch, Verdicts};
use crate::imports::native::{Capturing, MAX_LOG_LINE_BYTES, truncated};
use crate::runtime::{self, Slot};
use crate::time::{DAY_MS, Date, HOUR_MS, MINUTE_MS, SECOND_MS};
use crate::{Action, DatasetTotals, Info, LogLevel, Plugin, Tier, TierTotals};

/// Segments per batch unless [`Pass::batch_size`] says otherwise: the host's default `runtime.batch_size`.
pub const DEFAULT_BATCH_SIZE: usize = 4096;

/// The host cuts reason texts to this many bytes (`MAX_REASON_BYTES`).
const MAX_REASON_BYTES: usize = 512;

/// The longest plugin name or version the host accepts from `info`.
const MAX_INFO_BYTES: usize = 128;

/// Where a segment's time range ends: at an instant, or an age before the pass's now (resolved when the pass runs,
/// so that a segment can be described before the pass it goes into).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    At(i64),
    Ago(i64),
}

impl End {
    fn resolve(self, now_ms: i64) -> i64 {
        match self {
            End::At(ms) => ms,
            End::Ago(age_ms) => now_ms.saturating_sub(age_ms),
        }
    }
}

/// Where a segment's time range starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// At its end (a store that knows one time, such as a file's modification time).
    AtEnd,
    /// At this instant.
    At(i64),
    /// This many milliseconds before its end.
    Before(i64),
}

/// Describes a segment named `name`: hot, ending at the pass's now, 0 bytes, rows unknown, no labels. Change any of
/// it with the [`TestSegment`] methods.
pub fn seg(name: impl Into<String>) -> TestSegment {
    TestSegment {
        name: name.into(),
        tier: Tier::Hot,
        end: End::Ago(0),
        start: Start::AtEnd,
        bytes: 0,
        rows: None,
        labels: Vec::new(),
    }
}

/// A segment of a test [`Pass`], made by [`seg`]: what the host knows of a file, a time chunk or an archived object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestSegment {
    name: String,
    tier: Tier,
    end: End,
    start: Start,
    bytes: u64,
    rows: Option<u64>,
    labels: Vec<(String, String)>,
}

impl TestSegment {
    /// The tier it is in (default hot).
    pub fn tier(mut self, tier: Tier) -> Self {
        self.tier = tier;
        self
    }

    /// Its end time, as RFC 3339 (`2026-02-20T12:00:00Z`, `2026-02-20T13:00:00.250+01:00`) or a date (`2026-02-20`,
    /// midnight UTC): the `time` of a `retention plugin test` fixture. Ages are measured from it.
    ///
    /// # Panics
    ///
    /// When `time` is neither.
    pub fn time(mut self, time: &str) -> Self {
        self.end = End::At(parse_time_or_panic(time));
        self
    }

    /// Its end time in milliseconds since the Unix epoch (UTC).
    pub fn end_ms(mut self, ms: i64) -> Self {
        self.end = End::At(ms);
        self
    }

    /// Ends `age_ms` milliseconds before the pass's now (negative: in the future).
    pub fn age_ms(mut self, age_ms: i64) -> Self {
        self.end = End::Ago(age_ms);
        self
    }

    /// Ends exactly `days` days before the pass's now, so that [`Segment::age_days`](crate::Segment::age_days) is
    /// `days`.
    pub fn age_days(self, days: i64) -> Self {
        self.age_ms(days.saturating_mul(DAY_MS))
    }

    /// Its start time, as for [`time`](TestSegment::time) (default: its end).
    ///
    /// # Panics
    ///
    /// When `time` is not an RFC 3339 time or a date.
    pub fn start(mut self, time: &str) -> Self {
        self.start = Start::At(parse_time_or_panic(time));
        self
    }

    /// Its start time in milliseconds since the Unix epoch (UTC).
    pub fn start_ms(mut self, ms: i64) -> Self {
        self.start = Start::At(ms);
        self
    }

    /// Starts `span_ms` milliseconds before its end, wherever the end is (e.g. an hour's chunk of a table).
    pub fn span_ms(mut self, span_ms: i64) -> Self {
        self.start = Start::Before(span_ms);
        self
    }

    /// Its size in bytes, as stored in its tier (default 0).
    pub fn bytes(mut self, bytes: u64) -> Self {
        self.bytes = bytes;
        self
    }

    /// Its number of rows (default: unknown).
    pub fn rows(mut self, rows: u64) -> Self {
        self.rows = Some(rows);
        self
    }

    /// A label; setting a key again replaces its value.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let (key, value) = (key.into(), value.into());
        match self.labels.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.labels.push((key, value)),
        }
        self
    }
}

/// A pass to run a plugin over: the context `begin` gets and the segments `observe` and `decide` get.
///
/// Defaults: dataset `test`, pass id `test`, dry run (as `retention plugin test`), no parameters, no segments,
/// batches of [`DEFAULT_BATCH_SIZE`].
#[derive(Debug, Clone)]
pub struct Pass {
    now_ms: i64,
    dataset: String,
    pass_id: String,
    dry_run: bool,
    params: Vec<(String, String)>,
    segments: Vec<TestSegment>,
    batch_size: usize,
}

impl Pass {
    /// A pass whose now is `now`, as RFC 3339 (`2026-03-01T00:00:00Z`) or a date (`2026-03-01`, midnight UTC).
    ///
    /// # Panics
    ///
    /// When `now` is neither.
    pub fn new(now: &str) -> Pass {
        Pass::at_ms(parse_time_or_panic(now))
    }

    /// A pass whose now is `now_ms` milliseconds since the Unix epoch (UTC).
    pub fn at_ms(now_ms: i64) -> Pass {
        Pass {
            now_ms,
            dataset: "test".into(),
            pass_id: "test".into(),
            dry_run: true,
            params: Vec::new(),
            segments: Vec::new(),
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }

    /// The dataset's name, for [`Context::dataset`](crate::Context::dataset).
    pub fn dataset(mut self, name: impl Into<String>) -> Self {
        self.dataset = name.into();
        self
    }

    /// The pass's id, for [`Context::pass_id`](crate::Context::pass_id).
    pub fn pass_id(mut self, id: impl Into<String>) -> Self {
        self.pass_id = id.into();
        self
    }

    /// Whether the host only reports the plan, for [`Context::dry_run`](crate::Context::dry_run).
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// A parameter. Values reach the plugin as text, as the config's numbers and booleans do: `.param("days", 7)`
    /// and `.param("days", "7")` are the same. Setting a key again replaces its value.
    pub fn param(mut self, key: impl Into<String>, value: impl fmt::Display) -> Self {
        let (key, value) = (key.into(), value.to_string());
        match self.params.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.params.push((key, value)),
        }
        self
    }

    /// Adds a segment. The order does not matter: the plugin sees them oldest first, and [`Outcome::decisions`]
    /// answers in the order they were added.
    pub fn segment(mut self, segment: TestSegment) -> Self {
        self.segments.push(segment);
        self
    }

    /// Adds several segments, as [`segment`](Pass::segment) does.
    pub fn segments(mut self, segments: impl IntoIterator<Item = TestSegment>) -> Self {
        self.segments.extend(segments);
        self
    }

    /// Segments per `observe` and `decide` call. A small size makes a few segments cross batch boundaries, where
    /// the SDK fetches names and sends symbols again; a plugin's decisions must not depend on it.
    ///
    /// # Panics
    ///
    /// When `size` is 0 (the host accepts 1 to 1,048,576).
    pub fn batch_size(mut self, size: usize) -> Self {
        assert!(size > 0, "a batch holds at least one segment");
        self.batch_size = size;
        self
    }

    /// The pass's now, in milliseconds since the Unix epoch (UTC).
    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    /// The totals per tier that [`Context::totals`](crate::Context::totals) will give: the number and bytes of the
    /// pass's segments in each tier, as the host counts them.
    pub fn totals(&self) -> DatasetTotals {
        let mut totals = DatasetTotals {
            hot: TierTotals::ZERO,
            compressed: TierTotals::ZERO,
            archived: TierTotals::ZERO,
        };
        for s in &self.segments {
            let t = match s.tier {
                Tier::Hot => &mut totals.hot,
                Tier::Compressed => &mut totals.compressed,
                Tier::Archived => &mut totals.archived,
            };
            t.segments += 1;
            t.bytes = t.bytes.saturating_add(s.bytes);
        }
        totals
    }

    /// Runs plugin `P` over the pass as the host would (see the [module](self) documentation): a fresh plugin value,
    /// `begin`, `observe` if asked, `decide`. Returns every segment's decision, or the failure that fails the pass.
    ///
    /// # Panics
    ///
    /// When two segments have the same name (the host never sends such a pass), or when the plugin panics.
    pub fn run<P: Plugin>(&self) -> Result<Outcome, Failure> {
        let capture = Capturing::start();
        let result = self.drive::<P>(&capture);
        let log = capture.finish();
        let logs = log
            .lines
            .into_iter()
            .map(|(level, message)| LogLine { level, message })
            .collect();
        match result {
            Ok((decisions, observed_first)) => Ok(Outcome {
                decisions,
                observed_first,
                logs,
                logs_dropped: log.dropped,
            }),
            Err((call, message)) => Err(Failure {
                call,
                message,
                logs,
                logs_dropped: log.dropped,
            }),
        }
    }

    /// The pass itself; an error is the failing call's name and message.
    fn drive<P: Plugin>(&self, capture: &Capturing) -> Result<(Vec<Decided>, bool), (String, String)> {
        check_info(&P::INFO).map_err(|message| ("info".to_string(), message))?;
        let segments = self.oldest_first();
        let (batches, symbols) = build_batches(&segments, self.batch_size);

        let slot = Slot::<P>::new();
        let options = runtime::begin(&slot, self.context()).map_err(|m| ("begin".to_string(), bounded(m)))?;
        // One counter for all calls, as in the host's error messages.
        let mut call_number = 0;
        let mut feed = SymbolFeed { symbols, sent: 0 };
        if options.observe_first {
            for b in &batches {
                let call = format!("observe (batch {call_number})");
                call_number += 1;
                capture.set_names(Some(names(&segments[b.range.clone()])));
                let result = runtime::observe(&slot, feed.attach(b));
                capture.set_names(None);
                result.map_err(|m| (call, bounded(m)))?;
            }
        }

        let mut decided: Vec<Option<Decided>> = vec![None; segments.len()];
        for b in &batches {
            let call = format!("decide (batch {call_number})");
            call_number += 1;
            let part = &segments[b.range.clone()];
            capture.set_names(Some(names(part)));
            let result = runtime::decide(&slot, feed.attach(b));
            capture.set_names(None);
            let verdicts = result.map_err(|m| (call.clone(), bounded(m)))?;
            let checked = check_verdicts(&verdicts, part).map_err(|m| (call, m))?;
            for ((s, (action, reason)), index) in part.iter().zip(checked).zip(b.range.clone()) {
                decided[s.input] = Some(Decided {
                    name: s.name.clone(),
                    tier: s.tier,
                    action,
                    reason,
                    index: index as u64,
                });
            }
        }
        let decisions = decided
            .into_iter()
            .map(|d| d.expect("every batch of the pass was decided"))
            .collect();
        Ok((decisions, options.observe_first))
    }

    /// The contract's pass context.
    fn context(&self) -> PassContext {
        let mut params: Vec<Param> = self
            .params
            .iter()
            .map(|(key, value)| Param {
                key: key.clone(),
                value: value.clone(),
            })
            .collect();
        params.sort_by(|a, b| a.key.cmp(&b.key));
        PassContext {
            pass_id: self.pass_id.clone(),
            dataset: self.dataset.clone(),
            now_ms: self.now_ms,
            dry_run: self.dry_run,
            params,
            totals: self.totals(),
        }
    }

    /// The segments with their times resolved, in the contract's order: by end time, then by name.
    fn oldest_first(&self) -> Vec<Resolved> {
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = self.segments.iter().find(|s| !seen.insert(s.name.as_str())) {
            panic!("segment name {:?} appears twice in the pass", dup.name);
        }
        let mut out: Vec<Resolved> = self
            .segments
            .iter()
            .enumerate()
            .map(|(input, s)| {
                let end_ms = s.end.resolve(self.now_ms);
                let start_ms = match s.start {
                    Start::AtEnd => end_ms,
                    Start::At(ms) => ms,
                    Start::Before(span) => end_ms.saturating_sub(span),
                };
                let mut labels = s.labels.clone();
                // As a fixture's labels (a JSON object read into a sorted map) reach the host.
                labels.sort();
                Resolved {
                    input,
                    name: s.name.clone(),
                    tier: s.tier,
                    start_ms,
                    end_ms,
                    bytes: s.bytes,
                    rows: s.rows,
                    labels,
                }
            })
            .collect();
        out.sort_by(|a, b| a.end_ms.cmp(&b.end_ms).then_with(|| a.name.cmp(&b.name)));
        out
    }
}

/// A segment of a pass with its times resolved against the pass's now.
struct Resolved {
    /// Position in the order the test added it.
    input: usize,
    name: String,
    tier: Tier,
    start_ms: i64,
    end_ms: i64,
    bytes: u64,
    rows: Option<u64>,
    /// Sorted by key.
    labels: Vec<(String, String)>,
}

/// One batch's columns, without symbols (they are attached when the batch is sent).
struct TestBatch {
    range: Range<usize>,
    batch: SegmentBatch,
    /// The largest symbol id its labels use.
    max_symbol: u32,
}

/// The pass's symbols and how many were sent: each goes out once per pass, with the first batch that needs it,
/// whether that batch is observed or decided (as the host's `SymbolFeed` does).
struct SymbolFeed {
    /// Symbol `n` is `symbols[n - 1]`.
    symbols: Vec<String>,
    sent: u32,
}

impl SymbolFeed {
    /// A copy of the batch to send (the SDK takes it by value), with the symbols it needs that were not sent yet.
    fn attach(&mut self, b: &TestBatch) -> SegmentBatch {
        let mut batch = b.batch.clone();
        if b.max_symbol > self.sent {
            batch.symbols = self.symbols[self.sent as usize..b.max_symbol as usize].to_vec();
            self.sent = b.max_symbol;
        }
        batch
    }
}

/// Cuts the pass into batches of `size`, column by column, and gives every label key and value a symbol id, in the
/// order the pass first uses them.
fn build_batches(segments: &[Resolved], size: usize) -> (Vec<TestBatch>, Vec<String>) {
    let mut symbols: Vec<String> = Vec::new();
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut intern = |text: &str| -> u32 {
        if let Some(&id) = ids.get(text) {
            return id;
        }
        symbols.push(text.to_string());
        let id = symbols.len() as u32;
        ids.insert(text.to_string(), id);
        id
    };
    // Labels as (key id, value id), each segment's sorted by key id like the host's.
    let labels: Vec<Vec<(u32, u32)>> = segments
        .iter()
        .map(|s| {
            let mut l: Vec<(u32, u32)> = s.labels.iter().map(|(k, v)| (intern(k), intern(v))).collect();
            l.sort_unstable();
            l
        })
        .collect();
    let mut batches = Vec::new();
    for start in (0..segments.len()).step_by(size) {
        let range = start..(start + size).min(segments.len());
        let part = &segments[range.clone()];
        let mut columns: Vec<LabelColumn> = Vec::new();
        let mut max_symbol = 0;
        for (i, seg_labels) in labels[range.clone()].iter().enumerate() {
            for &(key, value) in seg_labels {
                max_symbol = max_symbol.max(key).max(value);
                let column = match columns.iter().position(|c| c.key == key) {
                    Some(c) => c,
                    None => {
                        columns.push(LabelColumn {
                            key,
                            values: vec![0; part.len()],
                        });
                        columns.len() - 1
                    }
                };
                columns[column].values[i] = value;
            }
        }
        let batch = SegmentBatch {
            first_index: start as u64,
            symbols: Vec::new(),
            start_ms: part.iter().map(|s| s.start_ms).collect(),
            end_ms: part.iter().map(|s| s.end_ms).collect(),
            rows: part
                .iter()
                .map(|s| s.rows.map_or(-1, |r| r.min(i64::MAX as u64) as i64))
                .collect(),
            bytes: part.iter().map(|s| s.bytes).collect(),
            tiers: part.iter().map(|s| s.tier as u8).collect(),
            labels: columns,
        };
        batches.push(TestBatch {
            range,
            batch,
            max_symbol,
        });
    }
    (batches, symbols)
}

/// A batch's names in the `segment-names` layout: concatenated, with each name's end offset.
fn names(part: &[Resolved]) -> SegmentNames {
    let mut names = SegmentNames {
        text: String::new(),
        ends: Vec::with_capacity(part.len()),
    };
    for s in part {
        names.text.push_str(&s.name);
        names.ends.push(names.text.len() as u32);
    }
    names
}

/// The host's check of `info`: a name and version it can show and record.
fn check_info(info: &Info) -> Result<(), String> {
    for (what, v) in [("name", info.name), ("version", info.version)] {
        if v.is_empty() || v.len() > MAX_INFO_BYTES || v.chars().any(char::is_control) {
            return Err(format!(
                "{what} must be 1 to {MAX_INFO_BYTES} printable characters, got {v:?}"
            ));
        }
    }
    Ok(())
}

/// The host's check of one batch's verdicts (`check_and_append`), with the host's messages: one valid action per
/// segment, allowed from its tier, and reasons that refer to the batch's texts. The SDK never sends anything else,
/// but the host checks, so a test does too. Returns each segment's action and reason, cut like the host cuts it.
fn check_verdicts(v: &Verdicts, part: &[Resolved]) -> Result<Vec<(Action, Option<String>)>, String> {
    let n = part.len();
    if v.actions.len() != n {
        return Err(format!(
            "returned {} actions for a batch of {n} segments (one per segment expected)",
            v.actions.len()
        ));
    }
    if !v.reasons.is_empty() && v.reasons.len() != n {
        return Err(format!(
            "returned {} reasons for a batch of {n} segments (none, or one per segment expected)",
            v.reasons.len()
        ));
    }
    if v.reason_texts.len() > n {
        return Err(format!(
            "returned {} reason texts for a batch of {n} segments (at most one per segment)",
            v.reason_texts.len()
        ));
    }
    let mut out = Vec::with_capacity(n);
    for (i, (s, &code)) in part.iter().zip(&v.actions).enumerate() {
        let name = &s.name;
        let Some(&action) = Action::ALL.get(code as usize) else {
            return Err(format!(
                "returned action code {code} for segment {name:?}, which is not an action (0 keep, 1 compress, \
                 2 archive, 3 drop)"
            ));
        };
        if !action.allowed_from(s.tier) {
            return Err(format!(
                "decided {action} for {} segment {name:?}, which the contract does not allow (compress only from \
                 hot, archive only from hot or compressed)",
                s.tier
            ));
        }
        let reason = match v.reasons.get(i).copied().unwrap_or(0) {
            0 => None,
            r => match v.reason_texts.get(r as usize - 1) {
                Some(text) => Some(truncated(text, MAX_REASON_BYTES).to_string()),
                None => {
                    return Err(format!(
                        "reason {r} of segment {name:?} points past the {} reason texts",
                        v.reason_texts.len()
                    ));
                }
            },
        };
        out.push((action, reason));
    }
    Ok(out)
}

/// A plugin's error message, cut as the host cuts it.
fn bounded(message: String) -> String {
    truncated(&message, MAX_LOG_LINE_BYTES).to_string()
}

/// A time in a test: RFC 3339, or a date alone (midnight UTC).
fn parse_time_or_panic(text: &str) -> i64 {
    parse_time(text).unwrap_or_else(|e| panic!("{e}"))
}

/// Parses `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)` (`T` or a space, `Z` in either case)
/// into milliseconds since the Unix epoch; fractions below a millisecond are dropped.
fn parse_time(text: &str) -> Result<i64, String> {
    let bad = || format!("{text:?} is not an RFC 3339 time (e.g. 2026-03-01T00:00:00Z) or a date (2026-03-01)");
    let digits = |range: Range<usize>| -> Result<i64, String> {
        match text.get(range) {
            Some(s) if !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) => s.parse().map_err(|_| bad()),
            _ => Err(bad()),
        }
    };
    let b = text.as_bytes();
    let at = |i: usize| b.get(i).copied();
    if at(4) != Some(b'-') || at(7) != Some(b'-') {
        return Err(bad());
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let date = Date::new(year as i32, month as u32, day as u32).ok_or_else(bad)?;
    if b.len() == 10 {
        return Ok(date.start_ms());
    }
    if !matches!(at(10), Some(b'T' | b't' | b' ')) || at(13) != Some(b':') || at(16) != Some(b':') {
        return Err(bad());
    }
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if hour > 23 || minute > 59 || second > 59 {
        return Err(bad());
    }
    let mut i = 19;
    let mut millis = 0;
    if at(i) == Some(b'.') {
        let start = i + 1;
        i = start;
        while at(i).is_some_and(|c| c.is_ascii_digit()) {
            i += 1;
        }
        if i == start {
            return Err(bad());
        }
        // The first three digits are the milliseconds, padded on the right ("5" is 500 ms).
        for (k, c) in b[start..i].iter().take(3).enumerate() {
            millis += i64::from(c - b'0') * [100, 10, 1][k];
        }
    }
    let offset_ms = match &text[i..] {
        "Z" | "z" => 0,
        zone if zone.len() == 6 && (zone.starts_with('+') || zone.starts_with('-')) && at(i + 3) == Some(b':') => {
            let (h, m) = (digits(i + 1..i + 3)?, digits(i + 4..i + 6)?);
            if h > 23 || m > 59 {
                return Err(bad());
            }
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            sign * (h * HOUR_MS + m * MINUTE_MS)
        }
        _ => return Err(bad()),
    };
    Ok(date.start_ms() + hour * HOUR_MS + minute * MINUTE_MS + second * SECOND_MS + millis - offset_ms)
}

/// One segment's decision in a test pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    /// The segment's name.
    pub name: String,
    /// The tier it was in.
    pub tier: Tier,
    /// What the plugin decided.
    pub action: Action,
    /// Why, as the host records it (cut at 512 bytes); `None` without a reason.
    pub reason: Option<String>,
    /// Its position in the pass: 0 for the oldest.
    pub index: u64,
}

/// One line the plugin logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Its level.
    pub level: LogLevel,
    /// Its text (cut at 2 KiB, as the host cuts it).
    pub message: String,
}

/// What a successful pass produced: a decision per segment and the plugin's log.
#[derive(Debug, Clone)]
pub struct Outcome {
    decisions: Vec<Decided>,
    observed_first: bool,
    logs: Vec<LogLine>,
    logs_dropped: u64,
}

impl Outcome {
    /// Every segment's decision, in the order the segments were added to the pass.
    pub fn decisions(&self) -> &[Decided] {
        &self.decisions
    }

    /// The decision for the segment named `name`.
    ///
    /// # Panics
    ///
    /// When the pass has no such segment (the message lists those it has).
    pub fn decision(&self, name: &str) -> &Decided {
        match self.decisions.iter().find(|d| d.name == name) {
            Some(d) => d,
            None => {
                let known: Vec<&str> = self.decisions.iter().map(|d| d.name.as_str()).collect();
                panic!("no segment {name:?} in the pass (it has {known:?})")
            }
        }
    }

    /// The action decided for the segment named `name` (panics like [`decision`](Outcome::decision)).
    pub fn action(&self, name: &str) -> Action {
        self.decision(name).action
    }

    /// The reason given for the segment named `name`, if any (panics like [`decision`](Outcome::decision)).
    pub fn reason(&self, name: &str) -> Option<&str> {
        self.decision(name).reason.as_deref()
    }

    /// The names of the segments decided `action`, oldest first: `out.names_with(Action::Drop)`.
    pub fn names_with(&self, action: Action) -> Vec<&str> {
        let mut hits: Vec<&Decided> = self.decisions.iter().filter(|d| d.action == action).collect();
        hits.sort_by_key(|d| d.index);
        hits.into_iter().map(|d| d.name.as_str()).collect()
    }

    /// Whether the plugin asked for observe-first, and so saw every segment through `observe` before deciding.
    pub fn observed_first(&self) -> bool {
        self.observed_first
    }

    /// The lines the plugin logged during the pass, within the host's bounds.
    pub fn logs(&self) -> &[LogLine] {
        &self.logs
    }

    /// How many lines the host would have counted but not kept (over 1,000 lines or 256 KiB).
    pub fn logs_dropped(&self) -> u64 {
        self.logs_dropped
    }
}

/// Why a pass failed: the call that failed and its message. In the component nothing of such a pass is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    call: String,
    message: String,
    logs: Vec<LogLine>,
    logs_dropped: u64,
}

impl Failure {
    /// The call, named as in the host's errors: `info`, `begin`, `observe (batch 0)`, `decide (batch 3)`.
    pub fn call(&self) -> &str {
        &self.call
    }

    /// The message: the plugin's own error (from `begin`, or [`Segment::fail_pass`](crate::Segment::fail_pass)),
    /// the SDK's (a decision outside the tier table), or the host's check (cut at 2 KiB, as the host cuts it).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The lines the plugin logged before it failed.
    pub fn logs(&self) -> &[LogLine] {
        &self.logs
    }

    /// How many lines the host would have counted but not kept.
    pub fn logs_dropped(&self) -> u64 {
        self.logs_dropped
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.call, self.message)
    }
}

impl std::error::Error for Failure {}

#[cfg(test)]
mod tests {
    //! The testing module against small plugins, each exercising one part of the host's role.

    use super::*;
    use crate::{Context, Decision, Segment};

    const NOW: &str = "2026-03-01T00:00:00Z";

    /// Drops debug segments at least `days` old, naming them in the reason; logs what it was given.
    struct DropDebug {
        days: i64,
    }

    impl Plugin for DropDebug {
        const INFO: Info = Info {
            name: "drop-debug",
            version: "1",
            description: "test",
        };

        fn begin(ctx: &Context) -> Result<Self, String> {
            ctx.check_params(&["days"])?;
            crate::log!(info, "{} segments in {}", ctx.totals().segments(), ctx.dataset());
            Ok(DropDebug {
                days: ctx.param_or("days", 7)?,
            })
        }

        fn decide(&mut self, seg: &Segment<'_>) -> Decision {
            if seg.age_days() >= self.days && seg.label_is("level", "debug") {
                Decision::drop(format!("{} is old debug", seg.name()))
            } else {
                Decision::keep()
            }
        }
    }

    /// Compresses every segment, whatever its tier: the SDK must refuse it for compressed and archived ones.
    struct CompressAll;

    impl Plugin for CompressAll {
        const INFO: Info = Info {
            name: "compress-all",
            version: "1",
            description: "test",
        };

        fn begin(_: &Context) -> Result<Self, String> {
            Ok(CompressAll)
        }

        fn decide(&mut self, seg: &Segment<'_>) -> Decision {
            // Reading the name makes the SDK's message name the segment.
            let _ = seg.name();
            Decision::compress("squeeze")
        }
    }

    /// Observes first, remembering names; every decision's reason says how much it had seen by then.
    struct Observer {
        seen: Vec<String>,
        decided: u64,
    }

    impl Plugin for Observer {
        const INFO: Info = Info {
            name: "observer",
            version: "1",
            description: "test",
        };
        const OBSERVE_FIRST: bool = true;

        fn begin(_: &Context) -> Result<Self, String> {
            Ok(Observer {
                seen: Vec::new(),
                decided: 0,
            })
        }

        fn observe(&mut self, seg: &Segment<'_>) {
            self.seen.push(seg.name().to_string());
        }

        fn decide(&mut self, _: &Segment<'_>) -> Decision {
            if self.decided == 0 {
                crate::log!(info, "observed {}", self.seen.join(" "));
            }
            self.decided += 1;
            Decision::keep().because(format!("decision {} after {} observed", self.decided, self.seen.len()))
        }
    }

    /// Reads everything a segment has (index, times, size, rows, tier, labels, name) into its reason, and archives
    /// the biggest local segment it has seen so far: decisions that depend on every column and on state.
    struct Echo {
        biggest: u64,
    }

    impl Plugin for Echo {
        const INFO: Info = Info {
            name: "echo",
            version: "1",
            description: "test",
        };

        fn begin(ctx: &Context) -> Result<Self, String> {
            let t = ctx.totals();
            let params: Vec<String> = ctx.params().map(|(k, v)| format!("{k}={v}")).collect();
            crate::log!(
                debug,
                "pass {} dataset {} now {} dry {} params [{}] hot {}/{} compressed {}/{} archived {}/{}",
                ctx.pass_id(),
                ctx.dataset(),
                ctx.now_ms(),
                ctx.dry_run(),
                params.join(" "),
                t.hot.segments,
                t.hot.bytes,
                t.compressed.segments,
                t.compressed.bytes,
                t.archived.segments,
                t.archived.bytes
            );
            Ok(Echo { biggest: 0 })
        }

        fn decide(&mut self, seg: &Segment<'_>) -> Decision {
            let labels: Vec<String> = seg.labels().map(|(k, v)| format!("{k}={v}")).collect();
            let echo = format!(
                "{} #{} (newest-{}) {}..{} age {}d {}B rows {:?} {} [{}] zone:{:?} a:{}",
                seg.name(),
                seg.index(),
                seg.from_newest(),
                seg.start_ms(),
                seg.end_ms(),
                seg.age_days(),
                seg.bytes(),
                seg.rows(),
                seg.tier(),
                labels.join(" "),
                seg.label("zone"),
                seg.label_is("zone", "a"),
            );
            if seg.tier().is_local() && seg.bytes() > self.biggest {
                self.biggest = seg.bytes();
                Decision::archive(echo)
            } else {
                Decision::keep().because(echo)
            }
        }
    }

    /// Fails in `begin` after logging, or fails the pass at segment `fail_at`, or panics at segment `panic_at`.
    struct Failing {
        fail_at: Option<u64>,
        panic_at: Option<u64>,
    }

    impl Plugin for Failing {
        const INFO: Info = Info {
            name: "failing",
            version: "1",
            description: "test",
        };

        fn begin(ctx: &Context) -> Result<Self, String> {
            crate::log!(warn, "about to check");
            if let Some(why) = ctx.param_str("refuse") {
                return Err(format!("refused: {why}"));
            }
            Ok(Failing {
                fail_at: ctx.param_opt("fail_at")?,
                panic_at: ctx.param_opt("panic_at")?,
            })
        }

        fn decide(&mut self, seg: &Segment<'_>) -> Decision {
            if self.fail_at == Some(seg.index()) {
                seg.fail_pass(format!("cannot decide {}", seg.name()));
            }
            if self.panic_at == Some(seg.index()) {
                panic!("plugin panicked at {}", seg.name());
            }
            Decision::keep()
        }
    }

    /// Logs and reasons longer than the host keeps.
    struct Loud;

    impl Plugin for Loud {
        const INFO: Info = Info {
            name: "loud",
            version: "1",
            description: "test",
        };

        fn begin(ctx: &Context) -> Result<Self, String> {
            for i in 0..1005 {
                crate::log!(info, "line {i}");
            }
            match ctx.param_str("refuse") {
                Some(_) => Err("x".repeat(5000)),
                None => Ok(Loud),
            }
        }

        fn decide(&mut self, _: &Segment<'_>) -> Decision {
            Decision::keep().because("€".repeat(400))
        }
    }

    fn five_segments() -> Pass {
        Pass::new(NOW)
            .segment(seg("e").age_days(1).bytes(50).label("zone", "a"))
            .segment(
                seg("a")
                    .age_days(5)
                    .bytes(10)
                    .rows(3)
                    .label("zone", "b")
                    .label("level", "debug"),
            )
            .segment(seg("c").age_days(3).bytes(30).tier(Tier::Compressed))
            .segment(seg("b").age_days(4).bytes(20).label("level", "info").span_ms(HOUR_MS))
            .segment(seg("d").age_days(2).bytes(40).tier(Tier::Archived).label("zone", "a"))
    }

    #[test]
    fn a_plugin_decides_every_segment_with_its_reason_and_logs_in_order_given() {
        let out = Pass::new(NOW)
            .param("days", 7)
            .segment(seg("api/info-2026-02-28.log").age_days(1).label("level", "info"))
            .segment(
                seg("api/debug-2026-02-20.log")
                    .age_days(9)
                    .label("level", "debug")
                    .bytes(100),
            )
            .segment(
                seg("api/debug-2026-02-27.log")
                    .time("2026-02-27")
                    .label("level", "debug"),
            )
            .run::<DropDebug>()
            .unwrap();
        assert_eq!(out.action("api/debug-2026-02-20.log"), Action::Drop);
        assert_eq!(
            out.reason("api/debug-2026-02-20.log"),
            Some("api/debug-2026-02-20.log is old debug")
        );
        assert_eq!(out.action("api/debug-2026-02-27.log"), Action::Keep);
        assert_eq!(out.reason("api/info-2026-02-28.log"), None);
        let order: Vec<(&str, u64)> = out.decisions().iter().map(|d| (d.name.as_str(), d.index)).collect();
        assert_eq!(
            order,
            [
                ("api/info-2026-02-28.log", 2),
                ("api/debug-2026-02-20.log", 0),
                ("api/debug-2026-02-27.log", 1)
            ]
        );
        assert_eq!(out.names_with(Action::Drop), ["api/debug-2026-02-20.log"]);
        assert!(!out.observed_first());
        assert_eq!(
            out.logs(),
            [LogLine {
                level: LogLevel::Info,
                message: "3 segments in test".into()
            }]
        );
    }

    #[test]
    fn an_action_the_tier_table_forbids_fails_the_decide_call_naming_the_segment() {
        let pass = Pass::new(NOW)
            .segment(seg("hot").age_days(2))
            .segment(seg("squeezed").age_days(1).tier(Tier::Compressed));
        let err = pass.run::<CompressAll>().unwrap_err();
        assert_eq!(err.call(), "decide (batch 0)");
        assert_eq!(
            err.message(),
            "plugin decided `compress` for segment 1 (squeezed) in tier `compressed`, reason \"squeeze\", which the \
             contract forbids (compress only from hot, archive only from hot or compressed)"
        );
        // Alone, the hot segment may be compressed.
        let out = Pass::new(NOW).segment(seg("hot")).run::<CompressAll>().unwrap();
        assert_eq!(out.action("hot"), Action::Compress);
    }

    #[test]
    fn observe_first_plugins_see_every_segment_oldest_first_before_the_first_decision() {
        for size in [1, 2, 5, DEFAULT_BATCH_SIZE] {
            let out = five_segments().batch_size(size).run::<Observer>().unwrap();
            assert!(out.observed_first());
            assert_eq!(out.logs()[0].message, "observed a b c d e", "batch size {size}");
            let reasons: Vec<&str> = ["a", "b", "c", "d", "e"].map(|n| out.reason(n).unwrap()).to_vec();
            assert_eq!(
                reasons,
                [1, 2, 3, 4, 5].map(|i| format!("decision {i} after 5 observed")),
                "batch size {size}"
            );
        }
    }

    #[test]
    fn batches_of_any_size_give_the_same_decisions_names_labels_and_state() {
        let whole = five_segments().run::<Echo>().unwrap();
        assert_eq!(
            whole.reason("a"),
            Some(
                "a #0 (newest-4) 1771891200000..1771891200000 age 5d 10B rows Some(3) hot [level=debug zone=b] \
                 zone:Some(\"b\") a:false"
            )
        );
        assert_eq!(
            whole.reason("b"),
            Some(
                "b #1 (newest-3) 1771974000000..1771977600000 age 4d 20B rows None hot [level=info] zone:None a:false"
            )
        );
        assert_eq!(
            whole.reason("d"),
            Some(
                "d #3 (newest-1) 1772150400000..1772150400000 age 2d 40B rows None archived [zone=a] \
                 zone:Some(\"a\") a:true"
            )
        );
        assert_eq!(whole.names_with(Action::Archive), ["a", "b", "c", "e"]);
        for size in [1, 2, 3, 4] {
            let cut = five_segments().batch_size(size).run::<Echo>().unwrap();
            assert_eq!(cut.decisions(), whole.decisions(), "batch size {size}");
        }
    }

    #[test]
    fn calls_are_numbered_across_batches_like_the_hosts_errors() {
        let pass = five_segments().param("fail_at", 3);
        let err = pass.clone().batch_size(2).run::<Failing>().unwrap_err();
        assert_eq!((err.call(), err.message()), ("decide (batch 1)", "cannot decide d"));
        let err = pass.batch_size(4096).run::<Failing>().unwrap_err();
        assert_eq!(err.call(), "decide (batch 0)");
        assert_eq!(err.to_string(), "decide (batch 0): cannot decide d");
    }

    #[test]
    fn a_failing_begin_returns_its_error_and_the_lines_logged_before_it() {
        let err = five_segments().param("refuse", "no way").run::<Failing>().unwrap_err();
        assert_eq!(err.call(), "begin");
        assert_eq!(err.message(), "refused: no way");
        assert_eq!(
            err.logs(),
            [LogLine {
                level: LogLevel::Warn,
                message: "about to check".into()
            }]
        );
        let err = Pass::new(NOW).param("dayz", 7).run::<DropDebug>().unwrap_err();
        assert_eq!(
            (err.call(), err.message()),
            ("begin", "unknown parameter `dayz` (expected: days)")
        );
    }

    #[test]
    fn the_context_has_the_now_dataset_dry_run_sorted_params_and_the_totals_per_tier() {
        let out = five_segments()
            .dataset("app-logs")
            .pass_id("p-7")
            .dry_run(false)
            .param("z", true)
            .param("a", "1")
            .param("z", false)
            .run::<Echo>()
            .unwrap();
        assert_eq!(
            out.logs()[0].message,
            "pass p-7 dataset app-logs now 1772323200000 dry false params [a=1 z=false] hot 3/80 compressed 1/30 \
             archived 1/40"
        );
        assert_eq!(five_segments().totals().local_bytes(), 110);
        let out = Pass::new(NOW).run::<Echo>().unwrap();
        assert_eq!(
            out.logs()[0].message,
            "pass test dataset test now 1772323200000 dry true params [] hot 0/0 compressed 0/0 archived 0/0"
        );
        assert!(out.decisions().is_empty());
    }

    #[test]
    fn segments_with_equal_end_times_come_in_name_order() {
        let out = Pass::new(NOW)
            .segments(["b", "c", "a"].map(|n| seg(n).time("2026-02-01T10:00:00Z")))
            .segment(seg("z").time("2026-01-31"))
            .run::<Echo>()
            .unwrap();
        let index = |n| out.decision(n).index;
        assert_eq!([index("z"), index("a"), index("b"), index("c")], [0, 1, 2, 3]);
    }

    #[test]
    fn reasons_log_lines_and_error_messages_are_cut_like_the_hosts() {
        let out = Pass::new(NOW).segment(seg("a")).run::<Loud>().unwrap();
        // On a character boundary: 170 three-byte characters are 510 bytes, one more would be 513.
        assert_eq!(out.reason("a"), Some("€".repeat(170).as_str()));
        assert_eq!(out.logs().len(), 1000);
        assert_eq!(out.logs()[999].message, "line 999");
        assert_eq!(out.logs_dropped(), 5);
        let err = Pass::new(NOW).param("refuse", "").run::<Loud>().unwrap_err();
        assert_eq!(err.message().len(), 2048);

        let c = Capturing::start();
        crate::log(LogLevel::Error, &"€".repeat(1000));
        let log = c.finish();
        assert_eq!(log.lines[0].1, "€".repeat(682));

        // 256 KiB of text is 128 lines of 2 KiB: the 129th and later are counted, not kept.
        let c = Capturing::start();
        for _ in 0..200 {
            crate::log(LogLevel::Info, &"x".repeat(2048));
        }
        let log = c.finish();
        assert_eq!((log.lines.len(), log.dropped), (128, 72));
    }

    #[test]
    fn a_panicking_plugin_fails_the_test_and_leaves_the_next_run_clean() {
        let pass = five_segments().param("panic_at", 2).batch_size(2);
        let panic = std::panic::catch_unwind(|| pass.run::<Failing>()).unwrap_err();
        assert_eq!(panic.downcast_ref::<String>().unwrap(), "plugin panicked at c");
        // The capture and the SDK's per-batch caches were released on the way out.
        let out = five_segments().run::<Echo>().unwrap();
        assert_eq!(out.decisions().len(), 5);
    }

    #[test]
    #[should_panic(expected = "segment name \"a\" appears twice in the pass")]
    fn two_segments_with_one_name_are_refused() {
        let _ = Pass::new(NOW)
            .segment(seg("a"))
            .segment(seg("a").age_days(1))
            .run::<Echo>();
    }

    #[test]
    fn a_plugin_info_the_host_would_refuse_fails_the_pass() {
        struct Nameless;
        impl Plugin for Nameless {
            const INFO: Info = Info {
                name: "",
                version: "1",
                description: "test",
            };
            fn begin(_: &Context) -> Result<Self, String> {
                Ok(Nameless)
            }
            fn decide(&mut self, _: &Segment<'_>) -> Decision {
                Decision::keep()
            }
        }
        let err = Pass::new(NOW).run::<Nameless>().unwrap_err();
        assert_eq!(
            (err.call(), err.message()),
            ("info", "name must be 1 to 128 printable characters, got \"\"")
        );
        assert!(
            check_info(&Info {
                name: "x",
                version: "1\n",
                description: ""
            })
            .is_err()
        );
    }

    #[test]
    fn verdicts_the_sdk_never_sends_are_refused_with_the_hosts_messages() {
        let part = five_segments().oldest_first();
        let part = &part[..2];
        let v = |actions: Vec<u8>, reasons: Vec<u32>, texts: &[&str]| Verdicts {
            actions,
            reasons,
            reason_texts: texts.iter().map(|t| t.to_string()).collect(),
        };
        let err = |verdicts| check_verdicts(&verdicts, part).unwrap_err();
        assert_eq!(
            err(v(vec![0], vec![], &[])),
            "returned 1 actions for a batch of 2 segments (one per segment expected)"
        );
        assert_eq!(
            err(v(vec![0, 0], vec![1], &["x"])),
            "returned 1 reasons for a batch of 2 segments (none, or one per segment expected)"
        );
        assert_eq!(
            err(v(vec![0, 0], vec![], &["x", "y", "z"])),
            "returned 3 reason texts for a batch of 2 segments (at most one per segment)"
        );
        assert_eq!(
            err(v(vec![0, 7], vec![], &[])),
            "returned action code 7 for segment \"b\", which is not an action (0 keep, 1 compress, 2 archive, 3 drop)"
        );
        assert_eq!(
            err(v(vec![0, 0], vec![0, 2], &["x"])),
            "reason 2 of segment \"b\" points past the 1 reason texts"
        );
        let archived = [Resolved {
            tier: Tier::Archived,
            ..five_segments().oldest_first().remove(0)
        }];
        assert_eq!(
            check_verdicts(&v(vec![2], vec![], &[]), &archived).unwrap_err(),
            "decided archive for archived segment \"a\", which the contract does not allow (compress only from hot, \
             archive only from hot or compressed)"
        );
        assert_eq!(
            check_verdicts(&v(vec![3, 1], vec![1, 0], &["old"]), part).unwrap(),
            [(Action::Drop, Some("old".to_string())), (Action::Compress, None)]
        );
    }

    #[test]
    fn times_parse_as_rfc3339_with_fractions_and_offsets_or_as_dates() {
        let day = 1_772_323_200_000; // 2026-03-01T00:00:00Z
        assert_eq!(parse_time("2026-03-01"), Ok(day));
        assert_eq!(parse_time("2026-03-01T00:00:00Z"), Ok(day));
        assert_eq!(parse_time("2026-03-01t00:00:00z"), Ok(day));
        assert_eq!(parse_time("2026-03-01 00:00:00Z"), Ok(day));
        assert_eq!(
            parse_time("2026-03-01T01:02:03.5Z"),
            Ok(day + HOUR_MS + 2 * MINUTE_MS + 3_500)
        );
        assert_eq!(parse_time("2026-03-01T00:00:00.123456789Z"), Ok(day + 123));
        assert_eq!(parse_time("2026-03-01T01:00:00+01:00"), Ok(day));
        assert_eq!(parse_time("2026-02-28T23:30:00-00:30"), Ok(day));
        assert_eq!(parse_time("1969-12-31T23:59:59Z"), Ok(-1_000));
        for bad in [
            "",
            "2026-3-01",
            "2026-02-30",
            "2026-03-01T24:00:00Z",
            "2026-03-01T00:60:00Z",
            "2026-03-01T00:00:00",
            "2026-03-01T00:00:00.Z",
            "2026-03-01T00:00:00+0100",
            "2026-03-01T00:00:00+01:60",
            "2026-03-01X00:00:00Z",
            "+2026-03-01",
            "2026-03-01T00:00:00Z ",
        ] {
            assert!(parse_time(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ages_and_spans_are_relative_to_the_passs_now() {
        let pass = Pass::at_ms(100 * DAY_MS + 5)
            .segment(seg("old").age_days(9).span_ms(DAY_MS))
            .segment(seg("future").age_ms(-HOUR_MS).start_ms(7))
            .segment(seg("fixed").end_ms(3 * DAY_MS).start("1970-01-02"));
        let out = pass.run::<Echo>().unwrap();
        assert!(out.reason("old").unwrap().contains(&format!(
            "#1 (newest-1) {}..{} age 9d",
            90 * DAY_MS + 5,
            91 * DAY_MS + 5
        )));
        assert!(
            out.reason("future")
                .unwrap()
                .contains(&format!("#2 (newest-0) 7..{} age -1d", 100 * DAY_MS + 5 + HOUR_MS))
        );
        assert!(
            out.reason("fixed")
                .unwrap()
                .contains(&format!("#0 (newest-2) {}..{} age 97d", DAY_MS, 3 * DAY_MS))
        );
    }

    #[test]
    fn outside_a_run_names_are_absent_and_the_sdk_says_so() {
        let slot = Slot::<CompressAll>::new();
        runtime::begin(&slot, Pass::new(NOW).segment(seg("a")).context()).unwrap();
        let segments = Pass::new(NOW).segment(seg("a")).oldest_first();
        let (batches, symbols) = build_batches(&segments, 1);
        let mut feed = SymbolFeed { symbols, sent: 0 };
        let err = runtime::decide(&slot, feed.attach(&batches[0])).unwrap_err();
        assert!(
            err.starts_with("host returned 0 segment names for a batch of 1 segments"),
            "{err}"
        );
    }

    #[test]
    fn each_symbol_is_sent_once_with_the_first_batch_that_uses_it() {
        let segments = five_segments().oldest_first();
        let (batches, symbols) = build_batches(&segments, 2);
        assert_eq!(symbols, ["level", "debug", "zone", "b", "info", "a"]);
        let mut feed = SymbolFeed { symbols, sent: 0 };
        let sent: Vec<Vec<String>> = batches.iter().map(|b| feed.attach(b).symbols).collect();
        assert_eq!(sent, [vec!["level", "debug", "zone", "b", "info"], vec!["a"], vec![]]);
        // A second round (decide after observe) sends none again.
        assert!(batches.iter().all(|b| feed.attach(b).symbols.is_empty()));
    }
}
