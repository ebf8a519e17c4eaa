//! The trash purge, after a pass applied its plan: the entries whose grace has ended by the pass's "now" (and, unless
//! `purge_by_now`, by the wall clock too: a `now` in the future never purges an entry early) and that no hold
//! selects, recorded first through `before_purge`, then deleted, exactly those. A dry run only lists them.

use chrono::Utc;

use super::PassOptions;
use super::report::PassReport;
use crate::store::{Store, StoreError, TrashEntry};

/// Purges what is due. A failure is the pass's error and counts as one failed action; what the plan did stands. A
/// store without a trash has nothing to purge.
pub(super) async fn purge(store: &dyn Store, opts: &PassOptions, report: &mut PassReport) {
    let Some(trash) = store.trash() else { return };
    let now_ms = opts.now.timestamp_millis();
    let clock_ms = Utc::now().timestamp_millis();
    let by_ms = if opts.purge_by_now {
        now_ms
    } else {
        now_ms.min(clock_ms)
    };
    // A legal hold covers trashed segments too: they stay restorable, whatever their expiry.
    let held = |e: &TrashEntry| {
        opts.holds.iter().any(|h| {
            h.selects_name(&e.name, |key| {
                e.labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
            })
        })
    };
    let mut early = 0usize;
    let due = trash.list().await.map(|t| {
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
                Ok(()) => trash.purge(&due).await,
                Err(e) => Err(StoreError::Refused(format!(
                    "the purge could not be recorded in the audit trail first, so nothing was purged: {e}"
                ))),
            },
            None => trash.purge(&due).await,
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
