//! One pass over one dataset: recover -> scan -> plan (plugin) -> guard -> apply -> report.
//!
//! The whole plan is made before anything is touched; a plugin failure, invalid output or a tripped guard means no
//! action of the pass is applied. A dry run repairs nothing and applies nothing. In shadow mode a second plugin version
//! plans the same segments after the active plan; its plan is compared (`crate::shadow`), never applied.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::config::DatasetConfig;
use crate::plugin::{LoadedPlugin, PassInput};
use crate::report::{Outcome, PassReport, PassStatus, PluginSummary};
use crate::segment::{Action, Symbols, TierTotals, sort_oldest_first};
use crate::store::{Applied, Store, StoreError};
use crate::{apply, guard};

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
    pub holds: Vec<crate::hold::Hold>,
    /// Called with the trash entries about to be purged, before they are: the audit trail records a purge before it
    /// happens, so that a crash can never lose a segment without a record. An error skips the purge.
    pub before_purge: Option<PurgeHook>,
    /// Called with every action of the plan before anything is applied: the state database keeps the plan as pending
    /// until the pass is recorded, so that the actions of a pass whose process dies are recorded all the same (as
    /// `interrupted`). An error applies nothing.
    pub before_apply: Option<ApplyHook>,
    /// Shadow mode: a version that plans beside the active plugin, on the same segments, and acts on nothing
    /// (`crate::shadow`). The service sets it for real passes only.
    pub shadow: Option<crate::shadow::ShadowRun>,
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
        Some(PluginSummary {
            name: plugin.meta.name.clone(),
            version: plugin.meta.version.clone(),
            digest: plugin.meta.digest.clone(),
        }),
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
enum PassError {
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

    // Plugins run synchronously under their own deadlines; keep them off the async workers.
    let step = Instant::now();
    let (plan, symbols) = {
        let segments = segments.clone();
        let dataset_name = dataset.name.clone();
        let params = dataset.params.clone();
        let pass_id = report.pass_id.clone();
        let now_ms = opts.now.timestamp_millis();
        let dry_run = opts.dry_run;
        tokio::task::spawn_blocking(move || {
            let input = PassInput {
                pass_id: &pass_id,
                dataset: &dataset_name,
                now_ms,
                dry_run,
                params: &params,
            };
            plugin.plan(input, segments, &symbols).map(|plan| (plan, symbols))
        })
        .await
        .map_err(|e| PassError::Other(format!("planning task failed: {e}")))??
    };
    report.timings.plan_ms = ms(step);
    // Shared with the shadow's plan, if any.
    let symbols = Arc::new(symbols);
    if let (Some(shadow), Some(active)) = (&opts.shadow, &report.plugin) {
        // The shadow plans the same segments after the active plan; its plan is only compared, never applied, and
        // its failure is recorded in the comparison, not in the pass.
        let cx = crate::shadow::Context {
            pass_id: &report.pass_id,
            dataset: &dataset.name,
            now_ms: opts.now.timestamp_millis(),
            params: &dataset.params,
        };
        let compared = crate::shadow::run(shadow, active, cx, segments.clone(), symbols.clone(), &plan).await;
        report.shadow = Some(compared);
    }
    report.plugin_log = plan.log;
    report.plugin_log_dropped = plan.log_dropped;
    let mut decisions = plan.decisions;
    // Holds come before the guards, so that the guards judge the plan that would really be applied.
    let overrides = crate::hold::apply(&opts.holds, &segments, &symbols, &mut decisions);
    drop(symbols);
    let reasons = plan.reasons;
    // The plugin is done with the segments; the report takes them over (names move instead of being copied).
    let segments = Arc::try_unwrap(segments).unwrap_or_else(|shared| (*shared).clone());

    let archives = decisions.iter().filter(|d| d.action == Action::Archive).count();
    if archives > 0 && !store.supports(Action::Archive) {
        report.record_plan(segments, &decisions, &reasons, |_| (Outcome::Planned, None, 0));
        return Err(PassError::Other(format!(
            "the plan archives {archives} segments but dataset {} has no archive destination (archive_url); \
             nothing was applied",
            dataset.name
        )));
    }
    let now_ms = opts.now.timestamp_millis();
    if let Err(e) = guard::check(&dataset.guard, &segments, &decisions, now_ms, opts.force) {
        report.record_plan(segments, &decisions, &reasons, |_| (Outcome::Planned, None, 0));
        report.mark_overridden(overrides);
        return Err(e.into());
    }
    if opts.dry_run {
        report.record_plan(segments, &decisions, &reasons, |_| (Outcome::Planned, None, 0));
        report.mark_overridden(overrides);
        trash_step(dataset, &*store, opts, report).await;
        return Ok(());
    }

    if opts.cancelled() {
        report.record_plan(segments, &decisions, &reasons, |_| (Outcome::Planned, None, 0));
        report.mark_overridden(overrides);
        return Err(PassError::Cancelled("nothing was applied".into()));
    }

    // From its first applied action on, the dataset belongs to this state database (bound before the plan is
    // recorded as pending, so that a pass refused here leaves no pending plan behind).
    if let Some(id) = &opts.state_id
        && decisions.iter().any(|d| d.action != Action::Keep)
        && let Err(e) = store.bind_state(&dataset.name, id, true).await
    {
        report.record_plan(segments, &decisions, &reasons, |_| (Outcome::Planned, None, 0));
        report.mark_overridden(overrides);
        return Err(e.into());
    }
    if let Some(hook) = &opts.before_apply {
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
        if !actions.is_empty()
            && let Err(e) = hook(report, &actions)
        {
            report.record_plan(segments, &decisions, &reasons, |_| (Outcome::Planned, None, 0));
            report.mark_overridden(overrides);
            return Err(PassError::Other(format!(
                "the plan could not be recorded in the state database first, so nothing was applied: {e}"
            )));
        }
    }

    let step = Instant::now();
    let actions = decisions.iter().filter(|d| d.action != Action::Keep).count() as u64;
    progress(PassEvent::ApplyStarted(actions));
    let on_progress = |n: u64| progress(PassEvent::Applied(n));
    let outcomes = apply::apply(
        &*store,
        &segments,
        &decisions,
        dataset.apply_parallelism,
        now_ms,
        &on_progress,
        opts.cancel.as_ref(),
    )
    .await;
    progress(PassEvent::ApplyFinished);
    report.timings.apply_ms = ms(step);
    for (i, o) in outcomes.iter().enumerate() {
        if let Some(Err(e)) = o {
            tracing::warn!(dataset = %dataset.name, segment = %segments[i].name, "action failed: {e}");
        }
    }
    let mut not_started = 0usize;
    report.record_plan(segments, &decisions, &reasons, |i| match &outcomes[i] {
        None if decisions[i].action == Action::Keep => (Outcome::Done, None, 0),
        None => {
            not_started += 1;
            (Outcome::Planned, None, 0)
        }
        Some(Ok(a)) => (Outcome::Done, None, a.bytes_after),
        // A writer still holds the file: not a failure, the action waits for a later pass.
        Some(Err(e @ StoreError::Busy { .. })) => (Outcome::Skipped, Some(e.to_string()), 0),
        Some(Err(e)) => (Outcome::Failed, Some(e.to_string()), 0),
    });
    report.mark_overridden(overrides);
    count_trashed(report, &outcomes);
    if not_started > 0 {
        report.uncount_planned();
        return Err(PassError::Cancelled(format!(
            "{not_started} planned actions were not started"
        )));
    }
    trash_step(dataset, &*store, opts, report).await;
    Ok(())
}

// --- trash ------------------------------------------------------------------------------------------------------------

/// Counts the drops that went to the trash (a part of `stats.dropped`).
fn count_trashed(report: &mut PassReport, outcomes: &[Option<Result<Applied, StoreError>>]) {
    for (i, o) in outcomes.iter().enumerate() {
        if let Some(Ok(a)) = o
            && a.trashed
        {
            report.stats.trashed.segments += 1;
            report.stats.trashed.bytes += a.bytes_before;
            report.segments[i].trashed = true;
        }
    }
}

/// After a pass applied its plan: purges the trash entries whose grace has ended by the pass's "now" (and, unless
/// `purge_by_now`, by the wall clock too: a `now` in the future never purges an entry early). A dry run only lists
/// them. A failure is the pass's error and counts as one failed action; what the plan did stands.
async fn trash_step(dataset: &DatasetConfig, store: &dyn Store, opts: &PassOptions, report: &mut PassReport) {
    let _ = dataset;
    let now_ms = opts.now.timestamp_millis();
    let clock_ms = Utc::now().timestamp_millis();
    let by_ms = if opts.purge_by_now {
        now_ms
    } else {
        now_ms.min(clock_ms)
    };
    // A legal hold covers trashed segments too: they stay restorable, whatever their expiry.
    let held = |e: &crate::store::TrashEntry| {
        opts.holds.iter().any(|h| {
            h.selects_name(&e.name, |key| {
                e.labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
            })
        })
    };
    let mut early = 0usize;
    let due = store.trash().await.map(|t| {
        t.into_iter()
            .filter(|e| e.expires_at_ms <= now_ms && !held(e))
            .filter(|e| {
                let ok = e.expires_at_ms <= by_ms;
                early += usize::from(!ok);
                ok
            })
            .collect::<Vec<_>>()
    });
    if early > 0 {
        report.notes.push(format!(
            "{early} trash entries expire by the pass's now but not yet by the clock: not purged (--purge-by-now \
             purges by the pass's now)"
        ));
    }
    // Exactly the entries recorded are purged: the store deletes these, it does not look for expired ones again.
    let purged = match due {
        Ok(due) if opts.dry_run || due.is_empty() => Ok(due),
        Ok(due) => match &opts.before_purge {
            Some(hook) => match hook(&report.pass_id, &report.dataset, &due) {
                Ok(()) => store.purge(&due).await,
                Err(e) => Err(crate::store::StoreError::Refused(format!(
                    "the purge could not be recorded in the audit trail first, so nothing was purged: {e}"
                ))),
            },
            None => store.purge(&due).await,
        },
        Err(e) => Err(e),
    };
    match purged {
        Ok(purged) => report.record_purged(purged),
        Err(e) => {
            tracing::warn!(dataset = %report.dataset, "purging the trash failed: {e}");
            report.stats.failed += 1;
            report.error = Some(format!("purging the trash failed: {e}"));
        }
    }
}
