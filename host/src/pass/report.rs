//! Reports: what a pass planned and did, as a struct that serialises to JSON (`--json`) and renders as text.

use std::io::{self, Write};

use serde::Serialize;

use crate::plugin::{LogLine, PluginVersion};
use crate::segment::{Action, Segment, Tier, TierTotals};
use crate::store::{Recovery, Skipped, TrashEntry};

/// How a pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PassStatus {
    /// Planned (and unless a dry run, applied); individual actions may still have failed (see `stats.failed`).
    Ok,
    /// A guard refused the plan; nothing was applied.
    Refused,
    /// The pass could not plan (plugin failure, store unreachable, ...); nothing was applied.
    Failed,
    /// The service shut down during the pass: the actions finished before it are done, the rest were not started.
    Cancelled,
}

impl PassStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PassStatus::Ok => "ok",
            PassStatus::Refused => "refused",
            PassStatus::Failed => "failed",
            PassStatus::Cancelled => "cancelled",
        }
    }
}

/// Segments, rows and bytes of one action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ActionStats {
    pub segments: u64,
    /// Sum of rows over segments whose row count is known.
    pub rows: u64,
    /// Bytes of the segments before the action.
    pub bytes: u64,
}

/// Per-action figures of a pass: planned in a dry run, done in a real pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub kept: ActionStats,
    pub compressed: ActionStats,
    pub archived: ActionStats,
    /// Everything the plan dropped, whether deleted or moved to the trash.
    pub dropped: ActionStats,
    /// The part of `dropped` moved to the trash, restorable until purged (hot and compressed segments of a dataset
    /// with `trash_grace_secs` > 0); 0 in a dry run.
    pub trashed: ActionStats,
    /// Trash entries deleted for good by this pass because their grace period had ended (in a dry run: that would
    /// be); they were dropped by earlier passes.
    pub purged: ActionStats,
    /// Actions that failed and left their segment as it was; a failed purge of the trash counts as one.
    pub failed: u64,
    /// Actions skipped (not failed) because another process holds the file open for writing; tried again next pass.
    pub skipped: u64,
    /// Archives and drops that legal holds turned into keeps (counted in `kept`).
    pub overridden: u64,
    /// Bytes that left the dataset's segments (drops, archives, compression savings); in a dry run, drops and archives
    /// only, as compression savings are unknown until done. Trashed bytes stay on disk until purged.
    pub freed_bytes: u64,
}

impl Stats {
    pub fn of_mut(&mut self, action: Action) -> &mut ActionStats {
        match action {
            Action::Keep => &mut self.kept,
            Action::Compress => &mut self.compressed,
            Action::Archive => &mut self.archived,
            Action::Drop => &mut self.dropped,
        }
    }
}

/// Wall-clock time of each step of a pass, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Timings {
    /// Recovery and listing (one walk of the store).
    pub scan_ms: f64,
    pub plan_ms: f64,
    pub apply_ms: f64,
}

/// What happened to one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Dry run, or a plan that was refused: nothing done.
    Planned,
    Done,
    Failed,
    /// Not done this pass, and not a failure: another process holds the file open for writing; a later pass tries
    /// again.
    Skipped,
}

/// One line of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentRow {
    pub name: String,
    pub tier: Tier,
    pub action: Action,
    pub reason: Option<String>,
    pub bytes: u64,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When a legal hold turned the plugin's archive or drop into this keep.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overridden: Option<crate::pass::hold::Overridden>,
    /// A drop that went to the trash (restorable until purged) rather than being deleted.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub trashed: bool,
}

/// Everything about one pass over one dataset.
#[derive(Debug, Clone, Serialize)]
pub struct PassReport {
    pub pass_id: String,
    pub dataset: String,
    pub dry_run: bool,
    pub status: PassStatus,
    /// Why the pass failed or was refused.
    pub error: Option<String>,
    /// When the plugin failed: how (timeout, memory, trap, invalid-output, refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_kind: Option<crate::plugin::FailureKind>,
    /// When the pass started (RFC 3339, UTC).
    pub started_at: String,
    /// The "now" the plugin was given (RFC 3339, UTC).
    pub now: String,
    pub duration_ms: f64,
    /// Where the time went.
    pub timings: Timings,
    pub plugin: Option<PluginVersion>,
    pub store: String,
    pub recovery: Recovery,
    pub skipped: Vec<Skipped>,
    pub totals_before: TierTotals,
    pub stats: Stats,
    /// Trash entries purged by this pass (in a dry run: that would be), oldest first.
    pub purged: Vec<TrashEntry>,
    /// Every segment with its decision, oldest first.
    pub segments: Vec<SegmentRow>,
    /// What the plugin logged (bounded), and how many lines were dropped beyond the bound.
    pub plugin_log: Vec<LogLine>,
    pub plugin_log_dropped: u64,
    /// Shadow mode: the shadow version's plan against the active one's (real passes of a dataset with a shadow
    /// only). The shadow's plan is never applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<crate::pass::shadow::ShadowComparison>,
    /// What the pass wants its reader to know that is neither an error nor a segment (a `now` ahead of the clock,
    /// purges it postponed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl PassReport {
    /// The report of a pass that could not start (no usable plugin, store not openable): nothing was done.
    pub fn not_started(dataset: &str, dry_run: bool, now: &str, store: String, error: String) -> PassReport {
        PassReport {
            status: PassStatus::Failed,
            error: Some(error),
            ..PassReport::starting(dataset, dry_run, now, store, None)
        }
    }

    /// A report at the start of a pass: a new pass id, the start time, nothing done yet.
    pub fn starting(
        dataset: &str,
        dry_run: bool,
        now: &str,
        store: String,
        plugin: Option<PluginVersion>,
    ) -> PassReport {
        PassReport {
            pass_id: uuid::Uuid::now_v7().to_string(),
            dataset: dataset.to_string(),
            dry_run,
            status: PassStatus::Ok,
            error: None,
            failure_kind: None,
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            now: now.to_string(),
            duration_ms: 0.0,
            timings: Timings::default(),
            plugin,
            store,
            recovery: Recovery::default(),
            skipped: Vec::new(),
            totals_before: TierTotals::default(),
            stats: Stats::default(),
            purged: Vec::new(),
            segments: Vec::new(),
            plugin_log: Vec::new(),
            plugin_log_dropped: 0,
            shadow: None,
            notes: Vec::new(),
        }
    }

    /// Fills `segments` and `stats` from a plan; `outcome(i)` says what happened to segment `i`.
    /// Takes the segments by value: their names move into the rows instead of being copied.
    pub fn record_plan(
        &mut self,
        segments: Vec<Segment>,
        decisions: &[crate::segment::Decision],
        reasons: &crate::segment::Reasons,
        mut outcome: impl FnMut(usize) -> (Outcome, Option<String>, u64),
    ) {
        self.segments.reserve(segments.len());
        for (i, (s, d)) in segments.into_iter().zip(decisions).enumerate() {
            let (o, error, bytes_after) = outcome(i);
            let counted = d.action == Action::Keep || !matches!(o, Outcome::Failed | Outcome::Skipped);
            if counted {
                let st = self.stats.of_mut(d.action);
                st.segments += 1;
                st.rows += s.rows.unwrap_or(0);
                st.bytes += s.bytes;
                self.stats.freed_bytes += match (d.action, o) {
                    (Action::Keep, _) => 0,
                    (Action::Compress, Outcome::Done) => s.bytes.saturating_sub(bytes_after),
                    (Action::Compress, _) => 0,
                    (Action::Archive | Action::Drop, _) => s.bytes,
                };
            } else if o == Outcome::Skipped {
                self.stats.skipped += 1;
            } else {
                self.stats.failed += 1;
            }
            self.segments.push(SegmentRow {
                name: s.name,
                tier: s.tier,
                action: d.action,
                reason: reasons.of(d).map(str::to_string),
                bytes: s.bytes,
                outcome: o,
                error,
                overridden: None,
                trashed: false,
            });
        }
    }

    /// Marks the rows whose decision a hold changed (one entry per segment, in order).
    pub fn mark_overridden(&mut self, overrides: Vec<Option<crate::pass::hold::Overridden>>) {
        for (row, o) in self.segments.iter_mut().zip(overrides) {
            if o.is_some() {
                self.stats.overridden += 1;
                row.overridden = o;
            }
        }
    }

    /// Takes actions that were planned but never started (a cancelled pass) back out of the stats, which
    /// [`PassReport::record_plan`] counted as planned.
    pub fn uncount_planned(&mut self) {
        for row in &self.segments {
            if row.outcome == Outcome::Planned && row.action != Action::Keep {
                let st = self.stats.of_mut(row.action);
                st.segments -= 1;
                st.bytes -= row.bytes;
                if matches!(row.action, Action::Archive | Action::Drop) {
                    self.stats.freed_bytes -= row.bytes;
                }
            }
        }
    }

    /// Records the trash entries a pass purged (or, dry run, would purge).
    pub fn record_purged(&mut self, purged: Vec<TrashEntry>) {
        for e in &purged {
            self.stats.purged.segments += 1;
            self.stats.purged.bytes += e.bytes;
        }
        self.purged = purged;
    }

    /// Renders the report for a terminal. A dry run lists every segment; a real pass lists what it did.
    pub fn write_text(&self, out: &mut impl Write) -> io::Result<()> {
        let e = escaped;
        let mode = if self.dry_run { "dry run" } else { "pass" };
        write!(out, "dataset {}: {mode} {}", e(&self.dataset), self.pass_id)?;
        if let Some(p) = &self.plugin {
            write!(
                out,
                ", plugin {} {} (sha256 {})",
                e(&p.name),
                e(&p.version),
                &p.digest[..12]
            )?;
        }
        writeln!(out, ", now {}", self.now)?;
        writeln!(out, "  store: {}", e(&self.store))?;
        for n in &self.notes {
            writeln!(out, "  note: {}", e(n))?;
        }
        for t in &self.recovery.temp_removed {
            let verb = if self.dry_run { "would remove" } else { "removed" };
            writeln!(out, "  recovery: {verb} leftover temporary file {}", e(t))?;
        }
        for l in &self.recovery.left_alone {
            writeln!(out, "  recovery: {}: {}", e(&l.name), e(&l.reason))?;
        }
        for (name, kept, removed) in &self.recovery.duplicates_resolved {
            let verb = if self.dry_run { "would keep" } else { "kept" };
            writeln!(
                out,
                "  recovery: {} was both {kept} and {removed}: {verb} the {kept} copy",
                e(name)
            )?;
        }
        for name in &self.recovery.trash_copies_removed {
            let verb = if self.dry_run { "would remove" } else { "removed" };
            writeln!(
                out,
                "  recovery: {} was both in place and in the trash (an interrupted move): {verb} the trash's copy",
                e(name)
            )?;
        }
        for s in &self.recovery.settled {
            writeln!(out, "  recovery: {}: {}", e(&s.name), e(&s.reason))?;
        }
        for c in &self.recovery.conflicts {
            writeln!(out, "  conflict: {}: {} (left alone)", e(&c.name), e(&c.reason))?;
        }
        for s in &self.skipped {
            writeln!(out, "  skipped: {}: {}", e(&s.name), e(&s.reason))?;
        }
        let rows: Vec<&SegmentRow> = self
            .segments
            .iter()
            .filter(|r| self.dry_run || r.action != Action::Keep || r.overridden.is_some())
            .collect();
        if !rows.is_empty() {
            // Rows are written by hand, not with `{:<width$}`: a dry run prints one per segment, hundreds of thousands,
            // and std's padding counts characters and allocates for every field.
            let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0).clamp(7, 60);
            writeln!(
                out,
                "  {:<8} {:<10} {:>9}  {:<width$}  REASON",
                "ACTION", "TIER", "BYTES", "SEGMENT"
            )?;
            let mut size = String::with_capacity(16);
            for r in rows {
                size.clear();
                push_human_bytes(&mut size, r.bytes);
                out.write_all(b"  ")?;
                write_padded(out, r.action.as_str(), 9)?;
                write_padded(out, r.tier.as_str(), 11)?;
                write_spaces(out, 9usize.saturating_sub(size.len()))?;
                out.write_all(size.as_bytes())?;
                out.write_all(b"  ")?;
                write_padded(out, &e(&r.name), width + 2)?;
                out.write_all(e(r.reason.as_deref().unwrap_or("-")).as_bytes())?;
                if r.outcome == Outcome::Failed {
                    out.write_all(b" FAILED")?;
                }
                if r.outcome == Outcome::Skipped {
                    out.write_all(b" SKIPPED")?;
                }
                if let Some(err) = &r.error {
                    write!(out, ": {}", e(err))?;
                }
                if let Some(o) = &r.overridden {
                    write!(
                        out,
                        " [OVERRIDDEN: the plugin said {}; {}]",
                        o.action.as_str(),
                        e(&o.hold)
                    )?;
                }
                out.write_all(b"\n")?;
            }
        }
        for p in &self.purged {
            let verb = if self.dry_run { "would purge" } else { "purged" };
            let since = chrono::DateTime::from_timestamp_millis(p.trashed_at_ms).map_or_else(
                || p.trashed_at_ms.to_string(),
                |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            );
            writeln!(
                out,
                "  trash: {verb} {} ({}, {}), in the trash since {since}",
                escaped(&p.name),
                p.tier,
                human_bytes(p.bytes)
            )?;
        }
        for l in &self.plugin_log {
            writeln!(out, "  plugin {}: {}", l.level, e(&l.message))?;
        }
        if self.plugin_log_dropped > 0 {
            writeln!(out, "  plugin log: {} more lines dropped", self.plugin_log_dropped)?;
        }
        let s = &self.stats;
        let total = self.totals_before.all();
        let verb = if self.dry_run { "would free" } else { "freed" };
        writeln!(
            out,
            "  summary: {} segments ({}): keep {}, compress {} ({}), archive {} ({}), drop {} ({}); {verb} {}; \
             {} failed{}; {:.2} s",
            total.segments,
            human_bytes(total.bytes),
            s.kept.segments,
            s.compressed.segments,
            human_bytes(s.compressed.bytes),
            s.archived.segments,
            human_bytes(s.archived.bytes),
            s.dropped.segments,
            human_bytes(s.dropped.bytes),
            human_bytes(s.freed_bytes),
            s.failed,
            if s.skipped > 0 {
                format!(", {} skipped (in use by a writer)", s.skipped)
            } else {
                String::new()
            },
            self.duration_ms / 1e3
        )?;
        if s.overridden > 0 {
            writeln!(
                out,
                "  held: {} archives or drops overridden by legal holds (kept)",
                s.overridden
            )?;
        }
        if s.trashed.segments > 0 || s.purged.segments > 0 {
            let purged = if self.dry_run { "would purge" } else { "purged" };
            writeln!(
                out,
                "  trash: {} dropped segments ({}) moved to the trash; {purged} {} ({})",
                s.trashed.segments,
                human_bytes(s.trashed.bytes),
                s.purged.segments,
                human_bytes(s.purged.bytes)
            )?;
        }
        let t = &self.timings;
        writeln!(
            out,
            "  time: scan {:.0} ms, plan {:.0} ms, apply {:.0} ms",
            t.scan_ms, t.plan_ms, t.apply_ms
        )?;
        let error = e(self.error.as_deref().unwrap_or("?"));
        match self.status {
            PassStatus::Ok => {
                if self.error.is_some() {
                    writeln!(out, "  ERROR: {error}")?;
                }
            }
            PassStatus::Refused => writeln!(out, "  REFUSED: {error}")?,
            PassStatus::Failed => writeln!(out, "  FAILED: {error}")?,
            PassStatus::Cancelled => writeln!(out, "  CANCELLED: {error}")?,
        }
        Ok(())
    }
}

/// `s` made safe to print on a terminal: control characters (C0, DEL, C1: newlines, escape sequences) and the
/// bidirectional overrides that reorder text are written as `\u{..}`, and a backslash as `\\`, so that whoever can
/// name a file (or write a plugin's reason or log) cannot forge report lines or send terminal escapes. Borrowed when
/// there is nothing to escape (the common case, cheap for a report of a million rows).
pub fn escaped(s: &str) -> std::borrow::Cow<'_, str> {
    fn needs(c: char) -> bool {
        c == '\\' || c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }
    if !s.chars().any(needs) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if needs(c) => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `1.5 KiB`, `3.2 GiB`; exact below 1 KiB.
pub fn human_bytes(n: u64) -> String {
    let mut s = String::new();
    push_human_bytes(&mut s, n);
    s
}

/// Appends `n` as [`human_bytes`] writes it.
pub fn push_human_bytes(out: &mut String, n: u64) {
    use std::fmt::Write as _;
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        let _ = write!(out, "{n} B");
        return;
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    let _ = write!(out, "{v:.1} {}", UNITS[u]);
}

/// Writes `s` then spaces up to `width` bytes (names are mostly ASCII; a multi-byte name only shifts its own row).
fn write_padded(out: &mut impl Write, s: &str, width: usize) -> io::Result<()> {
    out.write_all(s.as_bytes())?;
    write_spaces(out, width.saturating_sub(s.len()))
}

fn write_spaces(out: &mut impl Write, n: usize) -> io::Result<()> {
    const SPACES: &[u8; 64] = &[b' '; 64];
    let mut n = n;
    while n > 0 {
        let k = n.min(SPACES.len());
        out.write_all(&SPACES[..k])?;
        n -= k;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_line_up_under_their_headers() {
        let mut report = PassReport {
            pass_id: "p".into(),
            dataset: "d".into(),
            dry_run: true,
            status: PassStatus::Ok,
            error: None,
            failure_kind: None,
            started_at: String::new(),
            now: String::new(),
            duration_ms: 0.0,
            timings: Timings::default(),
            plugin: None,
            store: "s".into(),
            recovery: Recovery::default(),
            skipped: vec![],
            totals_before: TierTotals::default(),
            stats: Stats::default(),
            purged: vec![],
            segments: vec![],
            plugin_log: vec![],
            plugin_log_dropped: 0,
            shadow: None,
            notes: vec![],
        };
        report.segments.push(SegmentRow {
            name: "api/debug-2026-01-01.log".into(),
            tier: Tier::Hot,
            action: Action::Drop,
            reason: Some("too old".into()),
            bytes: 1536,
            outcome: Outcome::Planned,
            error: None,
            overridden: None,
            trashed: false,
        });
        let mut out = Vec::new();
        report.write_text(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[2],
            "  ACTION   TIER           BYTES  SEGMENT                   REASON"
        );
        assert_eq!(
            lines[3],
            "  drop     hot          1.5 KiB  api/debug-2026-01-01.log  too old"
        );
    }

    #[test]
    fn bytes_read_as_humans_write_them() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
