//! Apply: the whole plan checked against what the store can do ([`crate::store::Capabilities`]) before anything is
//! applied, then handed to the store, which carries it out in groups of its own (one filesystem sync per group, or
//! one transaction) and checks the shutdown signal between them; each action's outcome recorded in the report.

use super::report::{Outcome, PassReport};
use super::{PassError, PassEvent, PassOptions};
use crate::config::DatasetConfig;
use crate::segment::{Action, Decision, Reasons, Segment};
use crate::store::{Applied, ApplyOptions, Store, StoreError, Work};

/// Refuses a plan with an action the store cannot carry out from its segment's tier, naming the first such segment,
/// the action, the store and why, and how many there are.
pub(super) fn check_capabilities(
    store: &dyn Store,
    segments: &[Segment],
    decisions: &[Decision],
) -> Result<(), PassError> {
    let caps = store.capabilities();
    let mut refused = segments
        .iter()
        .zip(decisions)
        .filter_map(|(s, d)| caps.check(s.tier, d.action).err().map(|why| (s, d.action, why)));
    let Some((s, action, why)) = refused.next() else {
        return Ok(());
    };
    let more = refused.count();
    let also = if more > 0 {
        format!(" (and {more} more actions it cannot do)")
    } else {
        String::new()
    };
    Err(PassError::Other(format!(
        "the plan would {action} segment {:?} ({} tier), which {} cannot: {why}{also}; nothing was applied",
        s.name,
        s.tier,
        store.describe()
    )))
}

/// Applies every non-keep decision. Returns, per segment, `None` for a keep or an action not started (the pass was
/// cancelled), else the action's outcome.
pub(super) async fn apply(
    store: &dyn Store,
    segments: &[Segment],
    decisions: &[Decision],
    dataset: &DatasetConfig,
    opts: &PassOptions,
    progress: &(dyn Fn(PassEvent) + Send + Sync),
) -> Vec<Option<Result<Applied, StoreError>>> {
    let todo: Vec<usize> = (0..segments.len())
        .filter(|&i| decisions[i].action != Action::Keep)
        .collect();
    let work: Vec<Work<'_>> = todo
        .iter()
        .map(|&i| Work {
            segment: &segments[i],
            action: decisions[i].action,
        })
        .collect();
    progress(PassEvent::ApplyStarted(work.len() as u64));
    let on_progress = |n: u64| progress(PassEvent::Applied(n));
    let results = store
        .apply(
            &work,
            &ApplyOptions {
                parallelism: dataset.apply_parallelism,
                now_ms: opts.now.timestamp_millis(),
                progress: &on_progress,
                cancel: opts.cancel.as_ref(),
            },
        )
        .await;
    progress(PassEvent::ApplyFinished);
    debug_assert_eq!(results.len(), work.len());
    let mut outcomes: Vec<Option<Result<Applied, StoreError>>> = (0..segments.len()).map(|_| None).collect();
    for (&i, r) in todo.iter().zip(results) {
        outcomes[i] = r;
    }
    outcomes
}

/// Records each segment's outcome in the report (and the drops that went to the trash); returns how many planned
/// actions were not started.
pub(super) fn record(
    report: &mut PassReport,
    segments: Vec<Segment>,
    decisions: &[Decision],
    reasons: &Reasons,
    outcomes: &[Option<Result<Applied, StoreError>>],
    dataset: &str,
) -> usize {
    for (i, o) in outcomes.iter().enumerate() {
        if let Some(Err(e)) = o {
            tracing::warn!(dataset, segment = %segments[i].name, "action failed: {e}");
        }
    }
    let mut not_started = 0usize;
    report.record_plan(segments, decisions, reasons, |i| match &outcomes[i] {
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
    // The drops that went to the trash (a part of `stats.dropped`).
    for (i, o) in outcomes.iter().enumerate() {
        if let Some(Ok(a)) = o
            && a.trashed
        {
            report.stats.trashed.segments += 1;
            report.stats.trashed.bytes += a.bytes_before;
            report.segments[i].trashed = true;
        }
    }
    not_started
}
