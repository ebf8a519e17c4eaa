//! One pass over one dataset, in the order of the data's path: the state binding, scan (the store recovers first),
//! plan (the plugin, and a shadow beside it), holds, guards and the store's capabilities, the pending plan, apply,
//! trash purge, report.
//!
//! The whole plan is made before anything is touched; a plugin failure, invalid output, a tripped guard or an action
//! the store cannot do means no action of the pass is applied. A dry run repairs nothing and applies nothing. In
//! shadow mode a second plugin version plans the same segments after the active plan; its plan is compared
//! ([`shadow`]), never applied. Recording the pass (history, audit trail) is the caller's (`execute.rs`).

pub mod apply;
pub mod guard;
pub mod hold;
mod plan;
pub mod report;
pub mod shadow;
mod trash;

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::config::DatasetConfig;
use crate::plugin::{LoadedPlugin, PluginVersion};
use crate::segment::{Action, Symbols, TierTotals, sort_oldest_first};
use crate::store::Store;
use report::{Outcome, PassReport, PassStatus};

/// How to run a pass.
#[derive(Clone)]
pub struct PassOptions {
    pub dry_run: bool,
    /// The pass's "now", given to the plugin.
    pub now: DateTime<Utc>,
    /// Cancelled when the service shuts down: the pass applies nothing more after the group of actions in progress.
    pub cancel: Option<tokio_util::sync::CancellationToken>,
    /// Lets the plan past the fraction guards (never past holds or the other guards).
    pub force: bool,
    /// The dataset's legal holds: held segments are never archived or dropped.
    pub holds: Vec<hold::Hold>,
    /// Called with the trash entries about to be purged, before they are: the audit trail records a purge before it
    /// happens, so that a crash can never lose a segment without a record. An error skips the purge.
    pub before_purge: Option<PurgeHook>,
    /// Called with every action of the plan before anything is applied: the state database keeps the plan as pending
    /// until the pass is recorded, so that the actions of a pass whose process dies are recorded all the same (as
    /// `interrupted`). An error applies nothing.
    pub before_apply: Option<ApplyHook>,
    /// Shadow mode: a version that plans beside the active plugin, on the same segments, and acts on nothing
    /// ([`shadow`]). The service sets it for real passes only.
    pub shadow: Option<shadow::ShadowRun>,
    /// The identity of the state database the pass records into (and read its holds from): the store refuses a pass
    /// with another one than the dataset's last real pass had ([`Store::bind_state`]). `None` skips the check.
    pub state_id: Option<String>,
    /// Purge the trash by the pass's `now` even when it is ahead of the wall clock (`retention run --purge-by-now`);
    /// otherwise a pass purges only entries whose grace has ended by the wall clock too.
    pub purge_by_now: bool,
}

/// How far a pass's `now` may be ahead of the wall clock before the pass says so and purges by the wall clock.
pub const CLOCK_SLACK_MS: i64 = 5 * 60 * 1000;

/// See [`PassOptions::before_purge`]: `(pass id, dataset, entries)`.
pub type PurgeHook = Arc<dyn Fn(&str, &str, &[crate::store::TrashEntry]) -> Result<(), String> + Send + Sync>;

/// See [`PassOptions::before_apply`]: `(the report so far, the actions)`.
pub type ApplyHook = Arc<dyn Fn(&PassReport, &[PlannedAction<'_>]) -> Result<(), String> + Send + Sync>;

/// An action of a plan about to be applied.
#[derive(Debug, Clone, Copy)]
pub struct PlannedAction<'a> {
    pub segment: &'a str,
    pub tier: crate::segment::Tier,
    pub action: Action,
    pub bytes: u64,
    /// The plugin's reason.
    pub reason: Option<&'a str>,
}

impl std::fmt::Debug for PassOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PassOptions")
            .field("dry_run", &self.dry_run)
            .field("now", &self.now)
            .field("force", &self.force)
            .field("holds", &self.holds.len())
            .finish_non_exhaustive()
    }
}

impl PassOptions {
    fn cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(|c| c.is_cancelled())
    }
}

/// Runs one pass. Never panics on bad data or a bad plugin: failures end up in the report's status and error.
pub async fn run(
    dataset: &DatasetConfig,
    store: Arc<dyn Store>,
    plugin: Arc<LoadedPlugin>,
    opts: &PassOptions,
    progress: &(dyn Fn(PassEvent) + Send + Sync),
) -> PassReport {
    let started = Instant::now();
    let mut report = PassReport::starting(
        &dataset.name,
        opts.dry_run,
        &opts.now.to_rfc3339_opts(SecondsFormat::Millis, true),
        store.describe(),
        Some(PluginVersion::from(&plugin.meta)),
    );
    if let Err(e) = run_inner(dataset, store, plugin, opts, progress, &mut report).await {
        report.status = match e {
            PassError::Guard(_) => PassStatus::Refused,
            PassError::Cancelled(_) => PassStatus::Cancelled,
            _ => PassStatus::Failed,
        };
        if let PassError::Plugin(p) = &e {
            report.failure_kind = p.kind();
        }
        report.error = Some(e.to_string());
    }
    report.duration_ms = started.elapsed().as_secs_f64() * 1e3;
    report
}

/// Progress of a pass, for progress bars.
#[derive(Debug, Clone, Copy)]
pub enum PassEvent {
    /// Applying starts with this many actions.
    ApplyStarted(u64),
    /// This many more actions finished.
    Applied(u64),
    ApplyFinished,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum PassError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Plugin(#[from] crate::plugin::PluginError),
    #[error(transparent)]
    Guard(#[from] guard::GuardTripped),
    #[error("{0}")]
    Other(String),
    #[error("the service is shutting down: {0}")]
    Cancelled(String),
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// `3 d 4 h`, `12 min`, `40 s`: a duration for a note.
fn human_duration(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        s if s >= 86_400 => format!("{} d {} h", s / 86_400, s % 86_400 / 3_600),
        s if s >= 3_600 => format!("{} h {} min", s / 3_600, s % 3_600 / 60),
        s if s >= 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

async fn run_inner(
    dataset: &DatasetConfig,
    store: Arc<dyn Store>,
    plugin: Arc<LoadedPlugin>,
    opts: &PassOptions,
    progress: &(dyn Fn(PassEvent) + Send + Sync),
    report: &mut PassReport,
) -> Result<(), PassError> {
    // The dataset must be the state database's: one that was lost and re-created empty has none of its holds. (The
    // binding is written when the pass applies something, below, and when a hold is set.)
    if let Some(id) = &opts.state_id {
        store.bind_state(&dataset.name, id, false).await?;
    }
    note_clock(opts, report);

    // scan
    let step = Instant::now();
    let mut symbols = Symbols::new();
    let (recovery, scan) = store.scan(!opts.dry_run, &mut symbols).await?;
    report.recovery = recovery;
    report.skipped = scan.skipped;
    let mut segments = scan.segments;
    sort_oldest_first(&mut segments);
    report.totals_before = TierTotals::of(&segments);
    let segments = Arc::new(segments);
    report.timings.scan_ms = ms(step);

    // plan (and the shadow's plan beside it)
    let step = Instant::now();
    let (plan, symbols) = plan::plan(dataset, plugin, segments.clone(), symbols, opts, report).await?;
    report.timings.plan_ms = ms(step);
    report.plugin_log = plan.log;
    report.plugin_log_dropped = plan.log_dropped;
    let mut decisions = plan.decisions;
    let reasons = plan.reasons;

    // holds, before the guards, so that the guards judge the plan that would really be applied
    let overrides = hold::apply(&opts.holds, &segments, &symbols, &mut decisions);
    drop(symbols);
    // The plugin is done with the segments; the report takes them over (names move instead of being copied).
    let segments = Arc::try_unwrap(segments).unwrap_or_else(|shared| (*shared).clone());
    // Until something is applied, every row is as planned.
    let refuse = |report: &mut PassReport, segments, overrides, e: PassError| {
        report.record_plan(segments, &decisions, &reasons, |_| (Outcome::Planned, None, 0));
        report.mark_overridden(overrides);
        Err(e)
    };

    // what the store can do, then the guards
    if let Err(e) = apply::check_capabilities(&*store, &segments, &decisions) {
        return refuse(report, segments, overrides, e);
    }
    let now_ms = opts.now.timestamp_millis();
    if let Err(e) = guard::check(&dataset.guard, &segments, &decisions, now_ms, opts.force) {
        return refuse(report, segments, overrides, e.into());
    }
    if opts.dry_run {
        report.record_plan(segments, &decisions, &reasons, |_| (Outcome::Planned, None, 0));
        report.mark_overridden(overrides);
        trash::purge(&*store, opts, report).await;
        return Ok(());
    }
    if opts.cancelled() {
        return refuse(
            report,
            segments,
            overrides,
            PassError::Cancelled("nothing was applied".into()),
        );
    }

    // From its first applied action on, the dataset belongs to this state database (bound before the plan is
    // recorded as pending, so that a pass refused here leaves no pending plan behind).
    let applies = decisions.iter().any(|d| d.action != Action::Keep);
    if let Some(id) = &opts.state_id
        && applies
        && let Err(e) = store.bind_state(&dataset.name, id, true).await
    {
        return refuse(report, segments, overrides, e.into());
    }
    // the pending plan: no action is applied without its record
    if let Some(hook) = &opts.before_apply
        && applies
    {
        let actions: Vec<PlannedAction<'_>> = decisions
            .iter()
            .zip(segments.iter())
            .filter(|(d, _)| d.action != Action::Keep)
            .map(|(d, s)| PlannedAction {
                segment: &s.name,
                tier: s.tier,
                action: d.action,
                bytes: s.bytes,
                reason: reasons.of(d),
            })
            .collect();
        if let Err(e) = hook(report, &actions) {
            drop(actions);
            let e = PassError::Other(format!(
                "the plan could not be recorded in the state database first, so nothing was applied: {e}"
            ));
            return refuse(report, segments, overrides, e);
        }
    }

    // apply
    let step = Instant::now();
    let outcomes = apply::apply(&*store, &segments, &decisions, dataset, opts, progress).await;
    report.timings.apply_ms = ms(step);
    let not_started = apply::record(report, segments, &decisions, &reasons, &outcomes, &dataset.name);
    report.mark_overridden(overrides);
    if not_started > 0 {
        report.uncount_planned();
        return Err(PassError::Cancelled(format!(
            "{not_started} planned actions were not started"
        )));
    }

    // trash purge
    trash::purge(&*store, opts, report).await;
    Ok(())
}

/// Says so in the report when the pass's now is ahead of the clock (and what that means for the trash).
fn note_clock(opts: &PassOptions, report: &mut PassReport) {
    let ahead_ms = opts.now.timestamp_millis() - Utc::now().timestamp_millis();
    if ahead_ms > CLOCK_SLACK_MS {
        report.notes.push(format!(
            "the pass's now ({}) is {} ahead of the clock: the plugin and the guards go by it, and drops are trashed \
             at it{}",
            report.now,
            human_duration(ahead_ms),
            if opts.purge_by_now {
                "; the trash is purged by it too (--purge-by-now)"
            } else {
                ", but the trash is purged only of entries whose grace has ended by the clock (--purge-by-now \
                 purges by the pass's now)"
            }
        ));
    }
}
